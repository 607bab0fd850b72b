//! Artifacts: what a tool gives besides short text (an image, a PDF, any
//! binary body, or text past 64 KiB) kept as a file (`purpose: artifact`,
//! with the run's session and id). One file per tool call: its id derives
//! from the run and the call, so a retried or resumed step finds the file its
//! first attempt made instead of making a second. Every kind of tool that
//! returns bytes goes through here.

use futures_util::stream;
use serde_json::json;
use stewrd_shared::{
    db::{file::FileRow, run::ClaimedRun},
    domain::{
        agent::{MAX_TOOL_OUTPUT_BYTES, ToolCall, error_output},
        file::{FileId, Purpose, sniff},
    },
    files::{Target, UploadError},
};

use crate::Worker;

/// What the model is given of a tool's answer, and the files it made.
pub(crate) struct Given {
    pub output: String,
    pub files: Vec<FileId>,
}

/// Whether a body is text by what its sender said (or, said nothing, by its bytes).
fn is_text(body: &[u8], said: Option<&str>) -> bool {
    match said.map(|s| {
        s.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }) {
        Some(kind) => {
            kind.starts_with("text/") || kind == "application/json" || kind.ends_with("+json")
        }
        None => sniff(body).is_none() && std::str::from_utf8(body).is_ok(),
    }
}

/// What the model gets of a tool's answer: text as it is, up to 64 KiB; text
/// past that is kept whole as a file and the model gets its start and the
/// file's id; bytes that are not text are kept as a file and the model gets
/// its description. Without a file store, the model gets the start as text.
pub(crate) async fn given(
    worker: &Worker,
    run: &ClaimedRun,
    call: &ToolCall,
    tool: &str,
    answer: Answer<'_>,
) -> Given {
    let text = is_text(answer.body, answer.content_type);
    let long = answer.body.len() > MAX_TOOL_OUTPUT_BYTES || answer.cut;
    if text && (!long || worker.files.is_none()) {
        return Given {
            output: start_of(answer.body),
            files: Vec::new(),
        };
    }
    if worker.files.is_none() {
        // Bytes shown as text would be noise: say why there is nothing.
        return Given {
            output: error_output(&format!(
                "the tool answered {} bytes that are not text, and files are off on this \
                 server (STEWRD_FILE_STORE)",
                answer.body.len()
            )),
            files: Vec::new(),
        };
    }
    let filename = answer
        .filename
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{tool}-{}", call.id));
    if answer.cut {
        // Past the largest file: the model is told why it gets nothing.
        let limit = worker.config.files.max_bytes;
        return Given {
            output: error_output(&format!(
                "the tool's answer is larger than {limit} bytes (the largest file); not kept"
            )),
            files: Vec::new(),
        };
    }
    match keep(worker, run, call, 0, &filename, answer.body.to_vec()).await {
        Ok(file) if text => Given {
            output: format!(
                "{}\n\n[cut at {MAX_TOOL_OUTPUT_BYTES} bytes: the whole output ({} bytes) is file {}]",
                start_of(answer.body),
                file.bytes,
                file.id
            ),
            files: vec![file.id],
        },
        Ok(file) => Given {
            output: described(&file),
            files: vec![file.id],
        },
        Err(why) => Given {
            output: error_output(&format!(
                "the tool's answer could not be kept as a file: {why}"
            )),
            files: Vec::new(),
        },
    }
}

/// A tool's answer, as it came.
pub(crate) struct Answer<'a> {
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
    pub filename: Option<&'a str>,
    /// The body went on past the largest file.
    pub cut: bool,
}

/// The first 64 KiB of a body, as text (a character cut at the end is left
/// out whole).
fn start_of(body: &[u8]) -> String {
    let mut end = body.len().min(MAX_TOOL_OUTPUT_BYTES);
    let mut back = 0;
    // A UTF-8 continuation byte (10xxxxxx) at `end` means a character straddles it.
    while end > 0 && end < body.len() && body[end] & 0xC0 == 0x80 && back < 3 {
        end -= 1;
        back += 1;
    }
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// What the model is told of a file.
pub(crate) fn described(file: &FileRow) -> String {
    json!({"file_id": file.id, "filename": file.filename, "content_type": file.content_type,
           "bytes": file.bytes})
    .to_string()
}

/// Keeps `bytes` as artifact `part` of `call` (the same file for every
/// attempt: a call that gives several files numbers them from 0).
pub(crate) async fn keep(
    worker: &Worker,
    run: &ClaimedRun,
    call: &ToolCall,
    part: usize,
    filename: &str,
    bytes: Vec<u8>,
) -> Result<FileRow, String> {
    let Some(files) = &worker.files else {
        return Err("files are off on this server (STEWRD_FILE_STORE)".into());
    };
    let target = Target {
        project: run.project_id,
        id: if part == 0 {
            FileId::of_artifact(run.id, &call.id)
        } else {
            FileId::of_artifact(run.id, &format!("{}#{part}", call.id))
        },
        purpose: Purpose::Artifact,
        filename: filename.to_owned(),
        session: Some(run.session_id),
        run: Some(run.id),
    };
    let body = stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(bytes))]);
    files
        .upload(&target, body)
        .await
        .map_err(|error| match error {
            UploadError::TooLarge { .. } | UploadError::OverQuota { .. } => error.to_string(),
            other => {
                tracing::warn!(error = %other, "cannot keep a tool's artifact");
                "the file store failed".to_owned()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_told_by_its_type_or_its_bytes() {
        assert!(is_text(b"{}", Some("application/json; charset=utf-8")));
        assert!(is_text(b"x", Some("text/markdown")));
        assert!(!is_text(b"x", Some("image/png")));
        assert!(is_text(b"plain", None));
        assert!(!is_text(b"\x89PNG\r\n\x1a\n", None));
        assert!(!is_text(b"\xff\xfe", None));
    }

    #[test]
    fn the_start_of_a_long_body_is_cut_at_a_character() {
        let mut body = "a".repeat(MAX_TOOL_OUTPUT_BYTES - 1).into_bytes();
        body.extend_from_slice("é tail".as_bytes());
        let start = start_of(&body);
        assert_eq!(start.len(), MAX_TOOL_OUTPUT_BYTES - 1);
        assert!(!start.contains('\u{FFFD}'));
    }
}
