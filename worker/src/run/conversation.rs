//! The conversation a run sends: the effective system prompt, every answered
//! exchange of its session (an agent run's with its tool calls and results),
//! then its own message and its own committed steps. Rebuilt from committed rows
//! only, so a resumed run sends exactly what an uninterrupted one would.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde_json::Value;
use stewrd_shared::{
    db::{
        DbError,
        file::files_by_id,
        run::{ClaimedRun, EarlierRun, earlier_runs},
        step::{StepKind, StepRow, steps_of_runs},
    },
    domain::{
        file::{FileId, Shown, shown_as},
        id::ProjectId,
        llm::LlmChoice,
        model::{Role, RunStatus},
        structured,
    },
};

use crate::{
    Worker,
    provider::{ChatMessage, ChatRequest, FileData, ImageUrl, Part},
};

/// What the run starts from: the messages before its own steps, its steps,
/// and what the files the conversation holds are shown as.
pub(super) struct History {
    pub base: Vec<ChatMessage>,
    pub steps: Vec<StepRow>,
    pub files: FileParts,
}

/// The parts files are shown as: a message's attached files, and the images
/// tools made (artifacts). Read once per claim, and as steps make more.
#[derive(Default)]
pub(super) struct FileParts(HashMap<FileId, Part>);

/// Why the history could not be read (the run is handed back, and read again
/// on its next claim).
#[derive(Debug, thiserror::Error)]
pub(super) enum LoadError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read a file of the conversation: {0}")]
    Files(String),
}

impl FileParts {
    /// Reads the files `ids` name (the ready ones of `project`) and keeps
    /// their parts; `images_only` for artifacts (only images are shown).
    pub(super) async fn learn(
        &mut self,
        worker: &Worker,
        project: ProjectId,
        ids: Vec<FileId>,
        images_only: bool,
    ) -> Result<(), LoadError> {
        let ids: Vec<FileId> = ids
            .into_iter()
            .filter(|id| !self.0.contains_key(id))
            .collect();
        let Some(files) = worker.files.as_ref().filter(|_| !ids.is_empty()) else {
            return Ok(());
        };
        let rows = worker
            .db(|client| async move { files_by_id(&client, project, &ids).await })
            .await?;
        for row in rows {
            let Some(kind) = shown_as(&row.content_type) else {
                continue;
            };
            if images_only && kind != Shown::Image {
                continue;
            }
            let bytes = files
                .read_all(&row)
                .await
                .map_err(|e| LoadError::Files(e.to_string()))?;
            self.0
                .insert(row.id, part(kind, &row.content_type, &row.filename, &bytes));
        }
        Ok(())
    }

    /// A file's part; one no longer stored says so.
    fn of(&self, id: FileId) -> Part {
        self.0.get(&id).cloned().unwrap_or_else(|| Part::Text {
            text: format!("[file {id} is no longer available]"),
        })
    }
}

/// How the model is given a file: images as `image_url` and PDFs as `file`
/// parts (data URLs of the exact bytes), text as its text.
fn part(kind: Shown, content_type: &str, filename: &str, bytes: &[u8]) -> Part {
    let data_url = || format!("data:{content_type};base64,{}", BASE64.encode(bytes));
    match kind {
        Shown::Image => Part::ImageUrl {
            image_url: ImageUrl { url: data_url() },
        },
        Shown::Pdf => Part::File {
            file: FileData {
                filename: filename.to_owned(),
                file_data: data_url(),
            },
        },
        Shown::Text => Part::Text {
            text: String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// Loads the session's answered exchanges and this run's committed steps (one
/// query each, and none for a first message with no steps), and the files
/// they hold.
pub(super) async fn load(worker: &Worker, run: &ClaimedRun) -> Result<History, LoadError> {
    let earlier = if run.turn > 1 {
        worker
            .db(|client| async move { earlier_runs(&client, run.session_id, run.turn).await })
            .await?
    } else {
        Vec::new()
    };
    let answered: Vec<&EarlierRun> = earlier
        .iter()
        .filter(|e| e.status == RunStatus::Succeeded)
        .collect();
    let mut with_steps: Vec<_> = answered
        .iter()
        .filter(|e| e.step_count > 0)
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
    let mut files = FileParts::default();
    let attached: Vec<FileId> = answered
        .iter()
        .flat_map(|e| e.files.iter().copied())
        .chain(run.request.files.iter().copied())
        .collect();
    files.learn(worker, run.project_id, attached, false).await?;
    let made: Vec<FileId> = steps.iter().flat_map(step_files).collect();
    files.learn(worker, run.project_id, made, true).await?;
    let (own, earlier_steps): (Vec<_>, Vec<_>) =
        steps.into_iter().partition(|s| s.run_id == run.id);
    let base = build_messages(
        &earlier,
        &earlier_steps,
        run.request.system.as_deref(),
        user_message(&run.request.input, &run.request.files, &files),
        &files,
    );
    Ok(History {
        base,
        steps: own,
        files,
    })
}

/// The files a step made.
pub(super) fn step_files(step: &StepRow) -> Vec<FileId> {
    step.tool()
        .map(|tool| tool.files.clone())
        .unwrap_or_default()
}

/// A user message: its text, then the files it carries, in order.
fn user_message(input: &str, attached: &[FileId], files: &FileParts) -> ChatMessage {
    if attached.is_empty() {
        return ChatMessage::new(Role::User, input);
    }
    let mut parts = vec![Part::Text {
        text: input.to_owned(),
    }];
    parts.extend(attached.iter().map(|id| files.of(*id)));
    ChatMessage::user_parts(parts)
}

/// Only answered exchanges enter the history: a failed or cancelled message is
/// shown in the session but was never answered, so the model does not see it.
/// The latest system prompt given in the session applies.
fn build_messages(
    earlier: &[EarlierRun],
    steps: &[StepRow],
    system: Option<&str>,
    input: ChatMessage,
    files: &FileParts,
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
            messages.push(user_message(&run.input, &run.files, files));
            let own: Vec<StepRow> = steps
                .iter()
                .filter(|s| s.run_id == run.id)
                .cloned()
                .collect();
            messages.extend(step_messages(&own, files));
        } else if let Some(output) = &run.output {
            messages.push(user_message(&run.input, &run.files, files));
            messages.push(ChatMessage::new(Role::Assistant, output));
        }
    }
    messages.push(input);
    messages
}

/// Committed steps as messages: each model answer as it came (with its tool
/// calls), then one tool message per answered call, in the order they were
/// made, and after a step's tool messages the images its tools made, in one
/// user message (a tool message carries text only).
pub(super) fn step_messages(steps: &[StepRow], files: &FileParts) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(steps.len());
    let mut images = Vec::new();
    for step in steps {
        match &step.kind {
            StepKind::Model(answer) => {
                flush_images(&mut messages, &mut images);
                messages.push(ChatMessage::assistant(
                    answer.content.as_deref(),
                    answer.tool_calls.as_ref(),
                ));
                // An answer sent back: the model is told what failed.
                if let Some(errors) = &answer.rejected {
                    messages.push(ChatMessage::new(
                        Role::User,
                        &structured::repair_message(errors),
                    ));
                }
            }
            StepKind::Tool(tool) => {
                if let Some(output) = tool.state.output() {
                    messages.push(ChatMessage::tool(&tool.call.id, output));
                    images.extend(tool.files.iter().filter_map(|id| files.0.get(id).cloned()));
                }
            }
        }
    }
    flush_images(&mut messages, &mut images);
    messages
}

fn flush_images(messages: &mut Vec<ChatMessage>, images: &mut Vec<Part>) {
    if !images.is_empty() {
        messages.push(ChatMessage::user_parts(std::mem::take(images)));
    }
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
    messages.extend(step_messages(&history.steps, &history.files));
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
            files: Vec::new(),
        }
    }

    #[test]
    fn the_history_holds_answered_exchanges_then_the_new_message() {
        let history = [
            earlier("hi", Some("hello"), RunStatus::Succeeded, Some("be brief")),
            earlier("lost", None, RunStatus::Failed, None),
            earlier("again", Some("yes"), RunStatus::Succeeded, None),
        ];
        let now = ChatMessage::new(Role::User, "now");
        let messages = build_messages(&history, &[], None, now, &FileParts::default());
        let roles: Vec<_> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(messages[0].text(), Some("be brief"));
        assert_eq!(messages[5].text(), Some("now"));
        assert!(messages.iter().all(|m| m.text() != Some("lost")));
    }

    #[test]
    fn a_new_system_prompt_replaces_the_old_one() {
        let history = [earlier(
            "hi",
            Some("hello"),
            RunStatus::Succeeded,
            Some("old"),
        )];
        let now = ChatMessage::new(Role::User, "now");
        let messages = build_messages(&history, &[], Some("new"), now, &FileParts::default());
        assert_eq!(messages[0].text(), Some("new"));
        assert_eq!(
            messages.iter().filter(|m| m.role == Role::System).count(),
            1
        );
    }
}
