//! The browser tool's actions, as the model is offered them and as a worker
//! asks `stewrd browser-host` to make them (the host's HTTP API carries the
//! shapes here, so both sides read one definition).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One action of the `browser` tool (`browser_<name>` to the model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Navigate,
    Snapshot,
    Click,
    Type,
    Select,
    Press,
    Back,
    Screenshot,
}

impl Action {
    pub const ALL: [Self; 8] = [
        Self::Navigate,
        Self::Snapshot,
        Self::Click,
        Self::Type,
        Self::Select,
        Self::Press,
        Self::Back,
        Self::Screenshot,
    ];

    /// The function's name, as the model sees it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Navigate => "browser_navigate",
            Self::Snapshot => "browser_snapshot",
            Self::Click => "browser_click",
            Self::Type => "browser_type",
            Self::Select => "browser_select",
            Self::Press => "browser_press",
            Self::Back => "browser_back",
            Self::Screenshot => "browser_screenshot",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether making it again changes nothing a reader would not: such an
    /// action cut off by a crash is made again; any other is not (its
    /// outcome is unknown), as a side effect may have happened.
    pub fn only_reads(self) -> bool {
        matches!(self, Self::Navigate | Self::Snapshot | Self::Screenshot)
    }

    /// The tool as the model is offered it.
    pub fn as_function(self) -> Value {
        let (description, required, properties) = match self {
            Self::Navigate => (
                "Opens a URL in the run's browser and gives the page's snapshot.",
                json!(["url"]),
                json!({"url": {"type": "string", "description": "An http or https URL"}}),
            ),
            Self::Snapshot => (
                "Gives the page's accessibility tree as text: one element a line, \
                 `- <role> \"<name>\"`, with [ref=…] on elements that can be acted on.",
                json!([]),
                json!({}),
            ),
            Self::Click => (
                "Clicks the element of the last snapshot with this ref.",
                json!(["ref"]),
                json!({"ref": {"type": "string", "description": "A ref from the last snapshot, e.g. e12"}}),
            ),
            Self::Type => (
                "Replaces the text of a field (by ref) with `text`; with `submit`, presses Enter after.",
                json!(["ref", "text"]),
                json!({"ref": {"type": "string"}, "text": {"type": "string"},
                       "submit": {"type": "boolean"}}),
            ),
            Self::Select => (
                "Selects options (by value or label) of a select element (by ref).",
                json!(["ref", "values"]),
                json!({"ref": {"type": "string"},
                       "values": {"type": "array", "items": {"type": "string"}}}),
            ),
            Self::Press => (
                "Presses a key (e.g. Enter, Tab, Escape, ArrowDown, a letter) in the page.",
                json!(["key"]),
                json!({"key": {"type": "string"}}),
            ),
            Self::Back => (
                "Goes back to the previous page of the browser's history.",
                json!([]),
                json!({}),
            ),
            Self::Screenshot => (
                "Takes a PNG screenshot of the page (kept as a file, shown to you).",
                json!([]),
                json!({}),
            ),
        };
        json!({"type": "function", "function": {
            "name": self.name(),
            "description": description,
            "parameters": {"type": "object", "required": required, "properties": properties}}})
    }
}

/// `PUT /v1/browsers/{run}`: opens the run's browser unless open, restoring
/// `state` (as an earlier browser of the run gave it) into a new one.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OpenRequest {
    pub state: Option<Value>,
}

/// `POST /v1/browsers/{run}/actions`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ActionRequest {
    pub action: Action,
    pub arguments: Value,
}

/// An action's answer (HTTP 200, whether the action worked or not).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ActionReply {
    /// The new snapshot, or why the action failed (then `failed`).
    pub text: String,
    pub failed: bool,
    /// The browser went away during the action (crashed, killed for its
    /// memory, timed out): a reading action may be made again in a new one.
    pub lost: bool,
    /// A screenshot's PNG, in base64.
    pub png: Option<String>,
    /// The browser's state after the action (URL, cookies, local storage),
    /// to be kept for a browser that replaces this one.
    pub state: Option<Value>,
}

/// The host's answer when it cannot serve (HTTP 404 or 503): `no_browser`
/// (the run has none open here: open it, with its state, and ask again) or
/// `busy` (every session is taken: wait).
#[derive(Debug, Serialize, Deserialize)]
pub struct HostRefusal {
    pub error: String,
    pub message: String,
}
