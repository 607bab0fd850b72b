//! The loop of a run: call the model; if it asks for tools, commit its answer,
//! run the server tools and commit their results (pausing for the client's
//! tools); then call the model again; until it answers without tools or a bound
//! stops it. A plain run (no tool offered) is the same loop, ending at its
//! first answer. Every step is committed before the next begins, so a run
//! resumed after a crash starts at its first missing step and never pays for a
//! committed model call again.

use std::time::Instant;

use stewrd_shared::domain::usage::Usage;
use stewrd_shared::{
    db::{
        DbError,
        limits::exhausted_budget,
        run::{ClaimedRun, RunOutcome},
        step::{
            Lease, NewModelStep, NewToolStep, StepRow, ToolsCommitted, commit_model_step,
            commit_tool_steps,
        },
    },
    domain::{
        agent::{ServerTool, ToolCall},
        model::{FailureCode, KeySource, StepStatus, StepType},
    },
    runtime::metrics as names,
};
use time::OffsetDateTime;

use super::{
    Decision, Verdict,
    conversation::{self, History},
    model::{self, CallContext, KEY_WORKS},
};
use crate::{Worker, db::Patience, tools};

/// How long a step's commit waits out a Postgres outage.
const COMMIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// One claim's progress through its run.
pub(super) struct Loop<'a> {
    pub worker: &'a Worker,
    pub run: &'a ClaimedRun,
    pub context: CallContext<'a>,
    pub history: History,
}

impl Loop<'_> {
    pub(super) async fn run(mut self) -> Verdict {
        let server_tools: Vec<ServerTool> =
            serde_json::from_value(self.run.server_tools.clone()).unwrap_or_default();
        let client_tools: Vec<String> = self
            .run
            .agent
            .tools
            .as_ref()
            .map(|tools| {
                tools
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let agent = self.run.is_agent();
        let signing = tools::Signing::default();
        let mut usage = self.run.usage_so_far.unwrap_or_default();
        loop {
            let unanswered = self.unanswered_calls();
            if !unanswered.is_empty() {
                if let Some(limit) = self.run.agent.max_total_tokens
                    && usage.total_tokens > limit
                {
                    return self.fail(
                        FailureCode::MaxTotalTokensExceeded,
                        format!(
                            "the run used {} tokens, more than its max_total_tokens of {limit}",
                            usage.total_tokens
                        ),
                    );
                }
                let steps = tools::run_calls(
                    self.worker,
                    self.run,
                    &unanswered,
                    &server_tools,
                    &client_tools,
                    self.next_index(),
                    &signing,
                )
                .await;
                match self.commit_tools(&steps).await {
                    Ok(ToolsCommitted::Written) => continue,
                    Ok(ToolsCommitted::Paused { webhook }) => return Verdict::Paused { webhook },
                    Ok(ToolsCommitted::LeaseLost) => return Verdict::LeaseLost,
                    Err(verdict) => return verdict,
                }
            }
            let model_calls = self.model_calls();
            if model_calls >= self.run.agent.max_steps {
                return self.fail(
                    FailureCode::MaxStepsExceeded,
                    format!("the model was called {model_calls} times (max_steps) and still asked for tools"),
                );
            }
            if let Some(verdict) = self.over_budget().await {
                return verdict;
            }
            let request =
                conversation::request(self.run, self.context.choice, &self.history, &server_tools);
            let started_at = OffsetDateTime::now_utc();
            let call_started = Instant::now();
            let step = self.next_index();
            let completion =
                match model::call(self.worker, self.run, &request, &self.context, step).await {
                    Ok(completion) => completion,
                    Err(verdict) => return self.keep_text(verdict),
                };
            self.context.first = false;
            metrics::histogram!(names::STEP_DURATION, "type" => "model_call")
                .record(call_started.elapsed().as_secs_f64());
            count_tokens(completion.usage);
            let index = self.next_index();
            let tool_calls = completion.tool_calls.clone().filter(|_| agent);
            let Some(tool_calls) = tool_calls else {
                metrics::counter!(names::STEPS, "type" => "model_call", "outcome" => "succeeded")
                    .increment(1);
                return Verdict::Finish(Decision {
                    outcome: RunOutcome::Succeeded {
                        output: completion.content.unwrap_or_default(),
                        usage: completion.usage,
                    },
                    key_status: KEY_WORKS,
                    last_step: agent.then_some((index, started_at)),
                });
            };
            let step = NewModelStep {
                index,
                model: &self.context.choice.model,
                content: completion.content.as_deref(),
                tool_calls: Some(&tool_calls),
                usage: completion.usage,
                started_at,
            };
            match self.commit_model(&step).await {
                Ok(true) => {}
                Ok(false) => return Verdict::LeaseLost,
                Err(verdict) => return verdict,
            }
            if let Some(call) = completion.usage {
                usage.prompt_tokens += call.prompt_tokens;
                usage.completion_tokens += call.completion_tokens;
                usage.total_tokens += call.total_tokens;
                usage.cost_usd = match (usage.cost_usd, call.cost_usd) {
                    (Some(sum), Some(cost)) => Some(sum + cost),
                    (sum, cost) => sum.or(cost),
                };
            }
            self.history.steps.push(model_row(self.run, &step));
        }
    }

    /// The calls of the last model answer that have no committed result yet.
    fn unanswered_calls(&self) -> Vec<ToolCall> {
        let steps = &self.history.steps;
        let Some(last_model) = steps.iter().rposition(|s| s.kind == StepType::ModelCall) else {
            return Vec::new();
        };
        let answered: Vec<&str> = steps[last_model..]
            .iter()
            .filter(|s| s.kind == StepType::ToolCall)
            .filter_map(|s| s.tool_call_id.as_deref())
            .collect();
        steps[last_model]
            .tool_calls
            .as_ref()
            .map(ToolCall::all_in)
            .unwrap_or_default()
            .into_iter()
            .filter(|call| !answered.contains(&call.id.as_str()))
            .collect()
    }

    fn next_index(&self) -> i32 {
        self.history.steps.last().map_or(0, |s| s.index + 1)
    }

    fn model_calls(&self) -> i32 {
        let calls = self
            .history
            .steps
            .iter()
            .filter(|s| s.kind == StepType::ModelCall)
            .count();
        i32::try_from(calls).unwrap_or(i32::MAX)
    }

    /// The text the run has so far: its last model answer's.
    fn last_text(&self) -> Option<String> {
        self.history
            .steps
            .iter()
            .rev()
            .find(|s| s.kind == StepType::ModelCall)
            .and_then(|s| s.content.clone())
    }

    /// Before each model call (the first of a claim included): a project whose
    /// token budget is used up makes no further call, and the run fails with
    /// `token_budget_exhausted`. A call already made is let finish and counted,
    /// so a project overshoots by at most the calls it had in flight at once.
    async fn over_budget(&self) -> Option<Verdict> {
        let default_cap = self
            .worker
            .config
            .default_llm
            .tokens_per_day
            .filter(|_| self.context.choice.key_source == KeySource::Default);
        if !self.run.limits.has_budget() && default_cap.is_none() {
            return None;
        }
        let project_id = self.run.project_id;
        let checked = self
            .worker
            .db(|client| async move { exhausted_budget(&client, project_id, default_cap).await })
            .await;
        let budget = match checked {
            Ok(budget) => budget?,
            Err(error) => {
                tracing::warn!(%error, "cannot check the project's token budget");
                return Some(Verdict::HandBack);
            }
        };
        let stage = if self.context.first { "claim" } else { "step" };
        metrics::counter!(names::LIMIT_REFUSALS, "reason" => budget.limit_name(), "stage" => stage)
            .increment(1);
        Some(self.fail(
            FailureCode::TokenBudgetExhausted,
            budget.exhausted_message().to_owned(),
        ))
    }

    fn fail(&self, code: FailureCode, message: String) -> Verdict {
        Verdict::Finish(Decision {
            outcome: RunOutcome::Failed {
                code,
                message,
                output: self.last_text(),
            },
            key_status: None,
            last_step: None,
        })
    }

    /// A failed run keeps the text it had.
    fn keep_text(&self, verdict: Verdict) -> Verdict {
        match verdict {
            Verdict::Finish(mut decision) => {
                if let RunOutcome::Failed { output, .. } = &mut decision.outcome {
                    *output = output.take().or_else(|| self.last_text());
                }
                Verdict::Finish(decision)
            }
            other => other,
        }
    }

    fn lease(&self) -> Lease {
        Lease {
            run_id: self.run.id,
            worker: self.worker.id,
            attempt: self.run.attempt,
        }
    }

    async fn commit_model(&self, step: &NewModelStep<'_>) -> Result<bool, Verdict> {
        let lease = self.lease();
        self.worker
            .db_patiently(
                Patience::For(COMMIT_PATIENCE),
                "commit a step",
                |client| async move { commit_model_step(&client, lease, step).await },
            )
            .await
            .inspect(|&written| {
                if written {
                    self.worker.announcer.changed(self.run.session_id);
                }
            })
            .map_err(|error| self.uncommitted(&error, "a model step"))
    }

    /// After a step's commit failed: a write Postgres refuses for what it
    /// holds fails the run (made again, the step would be refused again, its
    /// calls paid and its tools called each time); otherwise the run resumes
    /// once its lease expires.
    fn uncommitted(&self, error: &DbError, what: &str) -> Verdict {
        if error.is_data() {
            tracing::error!(%error, "cannot store {what}: Postgres refuses it; the run fails");
            return self.fail(
                FailureCode::StepNotStorable,
                format!("{what} could not be stored: {}", error.server_message()),
            );
        }
        tracing::warn!(%error, "cannot commit {what}; the run will resume once its lease expires");
        Verdict::LeaseLost
    }

    async fn commit_tools(&mut self, steps: &[NewToolStep]) -> Result<ToolsCommitted, Verdict> {
        let lease = self.lease();
        let pause = steps
            .iter()
            .any(|s| s.status == StepStatus::Pending)
            .then_some(self.worker.config.worker.requires_action_timeout);
        let committed = self
            .worker
            .db_patiently(
                Patience::For(COMMIT_PATIENCE),
                "commit tool results",
                |client| async move { commit_tool_steps(&client, lease, steps, pause).await },
            )
            .await
            .map_err(|error| self.uncommitted(&error, "the tool results"))?;
        if committed == ToolsCommitted::Written {
            self.worker.announcer.changed(self.run.session_id);
        }
        if committed != ToolsCommitted::LeaseLost {
            for step in steps {
                let outcome = match step.status {
                    StepStatus::Pending => "pending",
                    StepStatus::Succeeded => "succeeded",
                    StepStatus::Failed => "failed",
                };
                metrics::counter!(names::STEPS, "type" => "tool_call", "outcome" => outcome)
                    .increment(1);
                self.history.steps.push(tool_row(self.run, step));
            }
        }
        Ok(committed)
    }
}

/// The row a committed model answer is, as a later read would find it.
/// The provider's reported tokens, in totals (never per project: cardinality).
fn count_tokens(usage: Option<Usage>) {
    if let Some(usage) = usage {
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        metrics::counter!(names::TOKENS, "type" => "prompt").increment(count(usage.prompt_tokens));
        metrics::counter!(names::TOKENS, "type" => "completion")
            .increment(count(usage.completion_tokens));
    }
}

fn model_row(run: &ClaimedRun, step: &NewModelStep<'_>) -> StepRow {
    metrics::counter!(names::STEPS, "type" => "model_call", "outcome" => "succeeded").increment(1);
    StepRow {
        run_id: run.id,
        index: step.index,
        kind: StepType::ModelCall,
        status: StepStatus::Succeeded,
        model: Some(step.model.to_owned()),
        content: step.content.map(str::to_owned),
        tool_calls: step.tool_calls.cloned(),
        usage: step.usage,
        tool_call_id: None,
        name: None,
        arguments: None,
        executor: None,
        output: None,
        attempts: 0,
        started_at: step.started_at,
        finished_at: Some(OffsetDateTime::now_utc()),
    }
}

fn tool_row(run: &ClaimedRun, step: &NewToolStep) -> StepRow {
    StepRow {
        run_id: run.id,
        index: step.index,
        kind: StepType::ToolCall,
        status: step.status,
        model: None,
        content: None,
        tool_calls: None,
        usage: None::<Usage>,
        tool_call_id: Some(step.tool_call_id.clone()),
        name: Some(step.name.clone()),
        arguments: Some(step.arguments.clone()),
        executor: Some(step.executor),
        output: step.output.clone(),
        attempts: step.attempts,
        started_at: step.started_at,
        finished_at: Some(OffsetDateTime::now_utc()),
    }
}
