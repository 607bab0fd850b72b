//! The conversation a run sends: the effective system prompt, every answered
//! exchange of its session, then its own message.

use stewrd_shared::{
    db::{
        DbError,
        run::{ClaimedRun, EarlierRun, earlier_runs},
    },
    llm::LlmChoice,
    model::RunStatus,
};

use crate::{
    Worker,
    provider::{ChatMessage, ChatRequest},
};

/// The whole conversation: the effective system prompt, every answered exchange
/// of the session, then this run's message.
pub(super) async fn conversation(
    worker: &Worker,
    run: &ClaimedRun,
    choice: &LlmChoice,
) -> Result<ChatRequest, DbError> {
    let earlier = if run.turn > 1 {
        worker
            .db(|client| async move { earlier_runs(&client, run.session_id, run.turn).await })
            .await?
    } else {
        Vec::new()
    };
    Ok(ChatRequest {
        model: choice.model.clone(),
        messages: build_messages(&earlier, run.system.as_deref(), &run.input),
        max_tokens: run.max_tokens,
        temperature: run.temperature,
    })
}

/// Only answered exchanges enter the history: a failed or cancelled message is
/// shown in the session but was never answered, so the model does not see it.
/// The latest system prompt given in the session applies.
fn build_messages(earlier: &[EarlierRun], system: Option<&str>, input: &str) -> Vec<ChatMessage> {
    let system = system.or_else(|| earlier.iter().rev().find_map(|run| run.system.as_deref()));
    let mut messages = Vec::with_capacity(earlier.len() * 2 + 2);
    if let Some(system) = system {
        messages.push(ChatMessage::new("system", system));
    }
    for run in earlier {
        if let (RunStatus::Succeeded, Some(output)) = (run.status, &run.output) {
            messages.push(ChatMessage::new("user", &run.input));
            messages.push(ChatMessage::new("assistant", output));
        }
    }
    messages.push(ChatMessage::new("user", input));
    messages
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
        let messages = build_messages(&history, None, "now");
        let roles: Vec<_> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(messages[0].content, "be brief");
        assert_eq!(messages[5].content, "now");
        assert!(messages.iter().all(|m| m.content != "lost"));
    }

    #[test]
    fn a_new_system_prompt_replaces_the_old_one() {
        let history = [earlier(
            "hi",
            Some("hello"),
            RunStatus::Succeeded,
            Some("old"),
        )];
        let messages = build_messages(&history, Some("new"), "now");
        assert_eq!(messages[0].content, "new");
        assert_eq!(messages.iter().filter(|m| m.role == "system").count(), 1);
    }
}
