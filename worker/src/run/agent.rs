//! The loop of a run: call the model; if it asks for tools, commit its answer,
//! have the toolbox answer the calls and commit their results (pausing while
//! any waits for a person); then call the model again; until it answers
//! without tools or a bound stops it. A plain run (no tool offered) is the same
//! loop, ending at its first answer. Every step is committed before the next
//! begins, so a run resumed after a crash starts at its first missing step and
//! never pays for a committed model call again. The loop never asks what kind
//! a tool is: that is the toolbox's (`crate::tools`).

use std::time::{Duration, Instant};

use stewrd_shared::{
    db::{
        DbError,
        limits::{self, Reservation},
        mcp::pin_mcp_tools,
        run::{ClaimedRun, Requeue, RunOutcome},
        step::{
            Lease, ModelStep, NewModelStep, NewToolStep, StepKind, StepRow, ToolState, ToolStep,
            ToolsCommitted, commit_model_step, commit_tool_steps,
        },
    },
    domain::{
        agent::ToolCall,
        budget,
        model::{FailureCode, KeySource},
        structured,
        usage::Usage,
    },
    runtime::metrics as names,
};
use time::OffsetDateTime;

use super::{
    Decision, Verdict,
    conversation::{self, History},
    model::{self, CallContext, KEY_WORKS},
};
use crate::{
    Worker,
    db::Patience,
    provider::{ChatRequest, Completion},
    tools::{Call, Toolbox, Unprepared, mcp},
};

/// How long a step's commit waits out a Postgres outage.
const COMMIT_PATIENCE: Duration = Duration::from_secs(60);
/// The fewest answer tokens a call is capped to when the run's
/// `max_total_tokens` leaves less than the model's output limit: below it,
/// the call is not made.
const MIN_ANSWER_TOKENS: i64 = 16;
/// How long a run whose call fits its token budget only once other runs'
/// calls in flight are counted waits before it tries again.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// One claim's progress through its run.
pub(super) struct Loop<'a> {
    worker: &'a Worker,
    run: &'a ClaimedRun,
    context: CallContext<'a>,
    history: History,
    toolbox: Toolbox,
    /// Tokens used by the run's committed steps.
    usage: Usage,
}

/// Whether the loop goes on after a turn.
enum Turn {
    Next,
    Stop(Verdict),
}

impl From<Verdict> for Turn {
    fn from(verdict: Verdict) -> Self {
        Self::Stop(verdict)
    }
}

impl<'a> Loop<'a> {
    pub(super) fn new(
        worker: &'a Worker,
        run: &'a ClaimedRun,
        context: CallContext<'a>,
        history: History,
    ) -> Self {
        Self {
            worker,
            run,
            context,
            history,
            toolbox: Toolbox::load(run, run.progress.mcp_tools.as_deref().unwrap_or_default()),
            usage: run.progress.usage_so_far.unwrap_or_default(),
        }
    }

    /// An `async` block, not an `async fn`, so the loop is held once in the
    /// run's state, not twice (see `consumer::work`).
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub(super) fn run(mut self) -> impl Future<Output = Verdict> + Send + 'a {
        async move {
            if let Some((code, message)) = self.toolbox.missing(self.worker) {
                return self.fail(code, message);
            }
            if let Some(verdict) = self.pin_mcp_tools().await {
                return verdict;
            }
            loop {
                let calls = self.unanswered_calls();
                let turn = if calls.is_empty() {
                    self.ask_model().await
                } else {
                    self.answer(&calls).await
                };
                if let Turn::Stop(verdict) = turn {
                    return verdict;
                }
            }
        }
    }

    /// At the run's first step: every MCP server's tools, listed and committed
    /// with the run, so every later step (and the run resumed elsewhere)
    /// offers the same ones. A server that cannot be listed fails the run.
    async fn pin_mcp_tools(&mut self) -> Option<Verdict> {
        if self.run.project.mcp_servers.is_empty() || self.run.progress.mcp_tools.is_some() {
            return None;
        }
        let listed = match mcp::list_all(self.worker, self.run).await {
            Ok(listed) => listed,
            Err(message) => return Some(self.fail(FailureCode::McpServerUnavailable, message)),
        };
        let lease = self.lease();
        let pinned = self
            .worker
            .db_patiently(
                Patience::For(COMMIT_PATIENCE),
                "pin the run's MCP tools",
                |client| {
                    let listed = &listed;
                    async move { pin_mcp_tools(&client, lease, listed).await }
                },
            )
            .await;
        match pinned {
            Ok(Some(pinned)) => {
                self.toolbox = Toolbox::load(self.run, &pinned);
                None
            }
            Ok(None) => Some(Verdict::LeaseLost),
            Err(error) => Some(self.uncommitted(&error, "the run's MCP tools")),
        }
    }

    /// The toolbox answers the calls of the last model answer; their steps
    /// commit (pausing the run while any waits). Calls that need a person's
    /// yes are asked for first, and nothing is made before the decision.
    async fn answer(&mut self, calls: &[Call]) -> Turn {
        if let Some(limit) = self.run.request.agent.max_total_tokens
            && self.usage.total_tokens > limit
        {
            return self
                .fail(
                    FailureCode::MaxTotalTokensExceeded,
                    format!(
                        "the run used {} tokens, more than its max_total_tokens of {limit}",
                        self.usage.total_tokens
                    ),
                )
                .into();
        }
        let asking = self.toolbox.asking(calls, self.next_index());
        if !asking.is_empty() {
            return match self.commit_tools(&asking).await {
                Ok(ToolsCommitted::Paused { webhook }) => Verdict::Paused { webhook }.into(),
                Ok(ToolsCommitted::LeaseLost) => Verdict::LeaseLost.into(),
                // (A wait always pauses.)
                Ok(ToolsCommitted::Written) => Turn::Next,
                Err(verdict) => verdict.into(),
            };
        }
        let prepared = match self
            .toolbox
            .prepare(self.worker, self.run, self.lease(), calls)
            .await
        {
            Ok(prepared) => prepared,
            Err(Unprepared::LeaseLost) => return Verdict::LeaseLost.into(),
            Err(Unprepared::Fail(code, message)) => return self.fail(code, message).into(),
            Err(Unprepared::Db(error)) => {
                tracing::warn!(%error, "cannot mark the calls sent; the run resumes later");
                return Verdict::HandBack.into();
            }
        };
        let steps = self
            .toolbox
            .answer(self.worker, self.run, calls, self.next_index(), &prepared)
            .await;
        match self.commit_tools(&steps).await {
            Ok(ToolsCommitted::Written) => self.show_made_files(&steps).await,
            Ok(ToolsCommitted::Paused { webhook }) => Verdict::Paused { webhook }.into(),
            Ok(ToolsCommitted::LeaseLost) => Verdict::LeaseLost.into(),
            Err(verdict) => verdict.into(),
        }
    }

    /// The images the tools just made, read for the next model call (as a
    /// resumed run would read them).
    async fn show_made_files(&mut self, steps: &[NewToolStep]) -> Turn {
        let made: Vec<_> = steps.iter().flat_map(|s| s.files.iter().copied()).collect();
        let project = self.run.project_id;
        match self
            .history
            .files
            .learn(self.worker, project, made, true)
            .await
        {
            Ok(()) => Turn::Next,
            Err(error) => {
                tracing::warn!(%error, "cannot read a tool's artifact; the run resumes later");
                Verdict::HandBack.into()
            }
        }
    }

    /// Calls the model: an answer without tool calls ends the run, one with
    /// tool calls is committed as a step.
    async fn ask_model(&mut self) -> Turn {
        let model_calls = self.model_calls();
        if model_calls >= self.run.request.agent.max_steps {
            return self.fail(
                FailureCode::MaxStepsExceeded,
                format!("the model was called {model_calls} times (max_steps) and still asked for tools"),
            ).into();
        }
        let mut request = conversation::request(
            self.run,
            self.context.choice,
            &self.history,
            self.toolbox.offered(),
        );
        if let Some(verdict) = self.reserve(&mut request).await {
            return verdict.into();
        }
        let started_at = OffsetDateTime::now_utc();
        let call_started = Instant::now();
        let index = self.next_index();
        let completion =
            match model::call(self.worker, self.run, &request, &self.context, index).await {
                Ok(completion) => completion,
                Err(verdict) => return self.keep_text(verdict).into(),
            };
        self.context.first = false;
        metrics::histogram!(names::STEP_DURATION, "type" => "model_call")
            .record(call_started.elapsed().as_secs_f64());
        count_tokens(completion.usage);
        match completion
            .tool_calls
            .as_ref()
            .filter(|_| !self.toolbox.is_empty())
        {
            Some(tool_calls) => {
                self.keep_answer(&completion, Some(tool_calls), None, index, started_at)
                    .await
            }
            None => {
                let format = self.run.request.agent.response_format.as_ref();
                if let Some(schema) = structured::schema_of(format) {
                    let errors = structured::errors(schema, completion.content.as_deref());
                    if !errors.is_empty() {
                        return self
                            .reject(&completion, &errors.join("\n"), index, started_at)
                            .await;
                    }
                }
                self.finish(completion, index, started_at).into()
            }
        }
    }

    /// The last answer: the run succeeds with it (an agent run keeps it as
    /// its last step).
    fn finish(&self, completion: Completion, index: i32, started_at: OffsetDateTime) -> Verdict {
        metrics::counter!(names::STEPS, "type" => "model_call", "outcome" => "succeeded")
            .increment(1);
        Verdict::Finish(Decision {
            outcome: RunOutcome::Succeeded {
                output: completion.content.unwrap_or_default(),
                usage: completion.usage,
            },
            key_status: KEY_WORKS,
            // An agent run (or one whose answers were sent back) keeps its
            // last answer as a step.
            last_step: (!self.toolbox.is_empty() || !self.history.steps.is_empty())
                .then_some((index, started_at)),
        })
    }

    /// A final answer that does not match the run's schema: kept as a step
    /// with what failed (its tokens counted), and sent back to the model with
    /// it, at most `max_repairs` times; then the run fails with
    /// `invalid_structured_output`, the last answer as its output.
    async fn reject(
        &mut self,
        completion: &Completion,
        errors: &str,
        index: i32,
        started_at: OffsetDateTime,
    ) -> Turn {
        let repairs = self
            .history
            .steps
            .iter()
            .filter(|s| s.model().is_some_and(|m| m.rejected.is_some()))
            .count();
        if let Turn::Stop(verdict) = self
            .keep_answer(completion, None, Some(errors), index, started_at)
            .await
        {
            return verdict.into();
        }
        let allowed = usize::try_from(self.run.request.agent.max_repairs).unwrap_or(0);
        if repairs >= allowed {
            return self
                .fail(
                    FailureCode::InvalidStructuredOutput,
                    format!(
                        "the answer does not match the response_format schema after \
                         {repairs} repairs: {}",
                        errors.lines().next().unwrap_or_default()
                    ),
                )
                .into();
        }
        tracing::info!(repairs, "the answer does not match the schema; sent back");
        Turn::Next
    }

    /// An answer that asks for tools (committed before any tool is called),
    /// or one `rejected` for not matching the run's schema.
    async fn keep_answer(
        &mut self,
        completion: &Completion,
        tool_calls: Option<&serde_json::Value>,
        rejected: Option<&str>,
        index: i32,
        started_at: OffsetDateTime,
    ) -> Turn {
        let step = NewModelStep {
            index,
            provider: self.context.choice.provider,
            model: &self.context.choice.model,
            content: completion.content.as_deref(),
            tool_calls,
            usage: completion.usage,
            rejected,
            started_at,
        };
        match self.commit_model(&step).await {
            Ok(true) => {}
            Ok(false) => return Verdict::LeaseLost.into(),
            Err(verdict) => return verdict.into(),
        }
        if let Some(call) = completion.usage {
            add_usage(&mut self.usage, call);
        }
        self.history.steps.push(model_row(self.run, &step));
        Turn::Next
    }

    /// The calls of the last model answer that have no committed result yet:
    /// those with no step, and those approved while they waited (made with
    /// the arguments their step holds: the ones approved).
    fn unanswered_calls(&self) -> Vec<Call> {
        let steps = &self.history.steps;
        let Some(last_model) = steps.iter().rposition(|s| s.model().is_some()) else {
            return Vec::new();
        };
        let written: Vec<(i32, &ToolStep)> = steps[last_model..]
            .iter()
            .filter_map(|s| s.tool().map(|tool| (s.index, tool)))
            .collect();
        steps[last_model]
            .model()
            .and_then(|answer| answer.tool_calls.as_ref())
            .map(ToolCall::all_in)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(position, call)| {
                match written.iter().find(|(_, tool)| tool.call.id == call.id) {
                    None => Some(Call {
                        call,
                        position,
                        approved: None,
                    }),
                    Some((index, tool)) if tool.state == ToolState::Approved => Some(Call {
                        call: tool.call.clone(),
                        position,
                        approved: tool.approval.clone().map(|approval| (*index, approval)),
                    }),
                    Some(_) => None,
                }
            })
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
            .filter(|s| s.model().is_some())
            .count();
        i32::try_from(calls).unwrap_or(i32::MAX)
    }

    /// The text the run has so far: its last model answer's.
    fn last_text(&self) -> Option<String> {
        self.history
            .steps
            .iter()
            .rev()
            .find_map(StepRow::model)
            .and_then(|answer| answer.content.clone())
    }

    /// Before each model call (the first of a claim included): its worst case
    /// (the prompt's tokens, over-estimated, plus `max_tokens` or the model's
    /// output limit) must fit in what is left of the run's `max_total_tokens`
    /// and, reserved across workers, of the project's budgets (tokens and
    /// dollars, at the model's price) and the run's `max_cost_usd`; the call's
    /// counted usage and cost settle the reservation. A call that cannot fit
    /// is not made: the run fails (`max_total_tokens_exceeded`,
    /// `token_budget_exhausted`, `cost_budget_exhausted`, `price_unknown`);
    /// one that fits once other runs' calls in flight are counted waits for
    /// them (the run is requeued). Without a client's `max_tokens`, a call
    /// whose model's output limit would not fit what is left of
    /// `max_total_tokens` is sent with `max_tokens` set to what is left (at
    /// least [`MIN_ANSWER_TOKENS`]) instead of being refused.
    async fn reserve(&self, request: &mut ChatRequest) -> Option<Verdict> {
        let default_cap = self
            .worker
            .config
            .default_llm
            .tokens_per_day
            .filter(|_| self.context.choice.key_source == KeySource::Default);
        let budgeted = self.run.project.limits.has_budget()
            || default_cap.is_some()
            || self.run.request.agent.max_cost_usd.is_some();
        if !budgeted && self.run.request.agent.max_total_tokens.is_none() {
            return None;
        }
        let model = &self.context.choice.model;
        let prompt = budget::prompt_tokens(request.prompt_bytes());
        let mut output = budget::output_tokens(request.max_tokens.map(i64::from), model);
        if let Some(limit) = self.run.request.agent.max_total_tokens {
            let left = i64::from(limit) - i64::from(self.usage.total_tokens) - prompt;
            if request.max_tokens.is_none() && (MIN_ANSWER_TOKENS..output).contains(&left) {
                output = left;
                request.max_tokens = i32::try_from(left).ok();
            }
        }
        let worst = prompt.saturating_add(output);
        if let Some(limit) = self.run.request.agent.max_total_tokens {
            let used = i64::from(self.usage.total_tokens);
            if used + worst > i64::from(limit) {
                return Some(self.fail(
                    FailureCode::MaxTotalTokensExceeded,
                    format!(
                        "the next model call could use up to {worst} tokens (its prompt and \
                         max_tokens): with the {used} used, more than the run's \
                         max_total_tokens of {limit}"
                    ),
                ));
            }
        }
        if !budgeted {
            return None;
        }
        let call = limits::Call {
            project: self.run.project_id,
            run: self.run.id,
            prompt_tokens: prompt,
            output_tokens: output,
            key_source: self.context.choice.key_source,
            default_key_cap: default_cap,
            provider: self.context.choice.provider,
            model,
        };
        let reserved = self
            .worker
            .db(|client| async move { limits::reserve_call(&client, call).await })
            .await;
        let budget = match reserved {
            Ok(Reservation::Reserved) => return None,
            Ok(Reservation::Exhausted(budget)) => budget,
            Ok(Reservation::PriceUnknown) => {
                metrics::counter!(names::LIMIT_REFUSALS, "reason" => "price_unknown", "stage" => self.stage())
                    .increment(1);
                return Some(self.fail(
                    FailureCode::PriceUnknown,
                    format!(
                        "a budget in dollars applies and {} on {} has no known price; \
                         set one with PUT /v1/admin/prices",
                        model, self.context.choice.provider
                    ),
                ));
            }
            Ok(Reservation::Wait(budget)) => {
                tracing::info!(
                    budget = budget.limit_name(),
                    worst,
                    "the call fits the budget only once calls in flight are counted; waiting"
                );
                return Some(Verdict::Requeue(Requeue {
                    delay: BUDGET_WAIT,
                    counts_as_attempt: false,
                    rate_slot: None,
                }));
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reserve the call against the project's budgets");
                return Some(Verdict::HandBack);
            }
        };
        metrics::counter!(names::LIMIT_REFUSALS, "reason" => budget.limit_name(), "stage" => self.stage())
            .increment(1);
        Some(self.fail(
            budget.failure_code(),
            format!(
                "{} (the next call could use up to {worst} tokens)",
                budget.exhausted_message()
            ),
        ))
    }

    /// Where a refusal happened, for the metric: at the claim's first call or
    /// at a later step.
    fn stage(&self) -> &'static str {
        if self.context.first { "claim" } else { "step" }
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
            attempt: self.run.lease.attempt,
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
        let wait_timeout = self.worker.config.worker.requires_action_timeout;
        let committed = self
            .worker
            .db_patiently(Patience::For(COMMIT_PATIENCE), "commit tool results", |client| async move {
                commit_tool_steps(&client, lease, steps, wait_timeout).await
            })
            .await
            .map_err(|error| self.uncommitted(&error, "the tool results"))?;
        if committed == ToolsCommitted::Written {
            self.worker.announcer.changed(self.run.session_id);
        }
        if committed != ToolsCommitted::LeaseLost {
            for step in steps {
                let outcome = step.state.status().as_str();
                metrics::counter!(names::STEPS, "type" => "tool_call", "outcome" => outcome)
                    .increment(1);
                let row = tool_row(self.run, step);
                // A step completed in place replaces the one it waited in.
                match self.history.steps.iter_mut().find(|s| s.index == row.index) {
                    Some(waited) => *waited = row,
                    None => self.history.steps.push(row),
                }
            }
        }
        Ok(committed)
    }
}

fn add_usage(sum: &mut Usage, call: Usage) {
    sum.prompt_tokens += call.prompt_tokens;
    sum.completion_tokens += call.completion_tokens;
    sum.total_tokens += call.total_tokens;
    sum.cost_usd = match (sum.cost_usd, call.cost_usd) {
        (Some(sum), Some(cost)) => Some(sum + cost),
        (sum, cost) => sum.or(cost),
    };
}

/// The provider's reported tokens, in totals (never per project: cardinality).
fn count_tokens(usage: Option<Usage>) {
    if let Some(usage) = usage {
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        metrics::counter!(names::TOKENS, "type" => "prompt").increment(count(usage.prompt_tokens));
        metrics::counter!(names::TOKENS, "type" => "completion")
            .increment(count(usage.completion_tokens));
    }
}

/// The row a committed model answer is, as a later read would find it.
fn model_row(run: &ClaimedRun, step: &NewModelStep<'_>) -> StepRow {
    metrics::counter!(names::STEPS, "type" => "model_call", "outcome" => "succeeded").increment(1);
    StepRow {
        run_id: run.id,
        index: step.index,
        started_at: step.started_at,
        finished_at: Some(OffsetDateTime::now_utc()),
        kind: StepKind::Model(ModelStep {
            model: step.model.to_owned(),
            content: step.content.map(str::to_owned),
            tool_calls: step.tool_calls.cloned(),
            usage: step.usage,
            rejected: step.rejected.map(str::to_owned),
        }),
    }
}

/// The row a committed tool step is, as a later read would find it.
fn tool_row(run: &ClaimedRun, step: &NewToolStep) -> StepRow {
    StepRow {
        run_id: run.id,
        index: step.index,
        started_at: step.started_at,
        finished_at: Some(OffsetDateTime::now_utc()),
        kind: StepKind::Tool(ToolStep {
            call: step.call.clone(),
            executor: step.executor,
            server: step.server.clone(),
            state: step.state.clone(),
            attempts: step.attempts,
            files: step.files.clone(),
            approval: step.approval.clone(),
        }),
    }
}
