//! The conversation a run sends: the effective system prompt, every answered
//! exchange of its session (an agent run's with its tool calls and results),
//! then its own message and its own committed steps. Rebuilt from committed rows
//! only, so a resumed run sends exactly what an uninterrupted one would.

use serde_json::Value;
use stewrd_shared::{
    db::{
        DbError,
        run::{ClaimedRun, EarlierRun, earlier_runs},
        step::{StepKind, StepRow, steps_of_runs},
    },
    domain::{
        llm::LlmChoice,
        model::{Role, RunStatus},
    },
};

use crate::{
    Worker,
    provider::{ChatMessage, ChatRequest},
};

/// What the run starts from: the messages before its own steps, and its steps.
pub(super) struct History {
    pub base: Vec<ChatMessage>,
    pub steps: Vec<StepRow>,
}

/// Loads the session's answered exchanges and this run's committed steps (one
/// query each, and none for a first message with no steps).
pub(super) async fn load(worker: &Worker, run: &ClaimedRun) -> Result<History, DbError> {
    let earlier = if run.turn > 1 {
        worker
            .db(|client| async move { earlier_runs(&client, run.session_id, run.turn).await })
            .await?
    } else {
        Vec::new()
    };
    let mut with_steps: Vec<_> = earlier
        .iter()
        .filter(|e| e.status == RunStatus::Succeeded && e.step_count > 0)
        .map(|e| e.id)
        .collect();
    if run.progress.step_count > 0 {
        with_steps.push(run.id);
    }
    let steps = if with_steps.is_empty() {
        Vec::new()
    } else {
        worker
            .db(|client| async move { steps_of_runs(&client, &with_steps).await })
            .await?
    };
    let (own, earlier_steps): (Vec<_>, Vec<_>) =
        steps.into_iter().partition(|s| s.run_id == run.id);
    Ok(History {
        base: build_messages(
            &earlier,
            &earlier_steps,
            run.request.system.as_deref(),
            &run.request.input,
        ),
        steps: own,
    })
}

/// Only answered exchanges enter the history: a failed or cancelled message is
/// shown in the session but was never answered, so the model does not see it.
/// The latest system prompt given in the session applies.
fn build_messages(
    earlier: &[EarlierRun],
    steps: &[StepRow],
    system: Option<&str>,
    input: &str,
) -> Vec<ChatMessage> {
    let system = system.or_else(|| earlier.iter().rev().find_map(|run| run.system.as_deref()));
    let mut messages = Vec::with_capacity(earlier.len() * 2 + steps.len() + 2);
    if let Some(system) = system {
        messages.push(ChatMessage::new(Role::System, system));
    }
    for run in earlier {
        if run.status != RunStatus::Succeeded {
            continue;
        }
        if run.step_count > 0 {
            messages.push(ChatMessage::new(Role::User, &run.input));
            let own: Vec<StepRow> = steps
                .iter()
                .filter(|s| s.run_id == run.id)
                .cloned()
                .collect();
            messages.extend(step_messages(&own));
        } else if let Some(output) = &run.output {
            messages.push(ChatMessage::new(Role::User, &run.input));
            messages.push(ChatMessage::new(Role::Assistant, output));
        }
    }
    messages.push(ChatMessage::new(Role::User, input));
    messages
}

/// Committed steps as messages: each model answer as it came (with its tool
/// calls), then one tool message per answered call, in the order they were made.
pub(super) fn step_messages(steps: &[StepRow]) -> Vec<ChatMessage> {
    steps
        .iter()
        .filter_map(|step| match &step.kind {
            StepKind::Model(answer) => Some(ChatMessage::assistant(
                answer.content.as_deref(),
                answer.tool_calls.as_ref(),
            )),
            StepKind::Tool(tool) => tool
                .state
                .output()
                .map(|output| ChatMessage::tool(&tool.call.id, output)),
        })
        .collect()
}

/// The next model call's request: the history, the steps so far, and every
/// tool offered (`tools`, the toolbox's definitions).
pub(super) fn request(
    run: &ClaimedRun,
    choice: &LlmChoice,
    history: &History,
    tools: Vec<Value>,
) -> ChatRequest {
    let mut messages = history.base.clone();
    messages.extend(step_messages(&history.steps));
    let agent = &run.request.agent;
    ChatRequest {
        model: choice.model.clone(),
        messages,
        max_tokens: run.request.max_tokens,
        temperature: run.request.temperature,
        tool_choice: agent.tool_choice.clone().filter(|_| !tools.is_empty()),
        tools,
        response_format: agent.response_format.clone(),
        stream: agent.stream,
        // Asked of every provider: OpenAI sends a stream's usage only when
        // asked, and an OpenAI-compatible server may follow it; OpenRouter
        // takes the option too. A stream that still ends without usage is
        // counted from its text (`model::counted`).
        stream_options: agent
            .stream
            .then(|| serde_json::json!({"include_usage": true})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earlier(
        input: &str,
        output: Option<&str>,
        status: RunStatus,
        system: Option<&str>,
    ) -> EarlierRun {
        EarlierRun {
            id: stewrd_shared::domain::id::RunId::new(),
            step_count: 0,
            input: input.into(),
            output: output.map(Into::into),
            system: system.map(Into::into),
            status,
        }
    }

    #[test]
    fn the_history_holds_answered_exchanges_then_the_new_message() {
        let history = [
            earlier("hi", Some("hello"), RunStatus::Succeeded, Some("be brief")),
            earlier("lost", None, RunStatus::Failed, None),
            earlier("again", Some("yes"), RunStatus::Succeeded, None),
        ];
        let messages = build_messages(&history, &[], None, "now");
        let roles: Vec<_> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(messages[0].content.as_deref(), Some("be brief"));
        assert_eq!(messages[5].content.as_deref(), Some("now"));
        assert!(
            messages
                .iter()
                .all(|m| m.content.as_deref() != Some("lost"))
        );
    }

    #[test]
    fn a_new_system_prompt_replaces_the_old_one() {
        let history = [earlier(
            "hi",
            Some("hello"),
            RunStatus::Succeeded,
            Some("old"),
        )];
        let messages = build_messages(&history, &[], Some("new"), "now");
        assert_eq!(messages[0].content.as_deref(), Some("new"));
        assert_eq!(
            messages.iter().filter(|m| m.role == Role::System).count(),
            1
        );
    }
}
