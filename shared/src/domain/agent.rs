//! The vocabulary of agent runs: the tools a model is offered (the client's own,
//! and the project's server tools), the calls it makes, and the rules their
//! definitions follow. Tool definitions are kept as the client wrote them and
//! passed to the provider as given; only what stewrd relies on is checked.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{browser, model::RequireApproval};

/// Client tools per run.
pub const MAX_CLIENT_TOOLS: usize = 64;
/// Server tools per project.
pub const MAX_SERVER_TOOLS: usize = 32;
/// Model calls per run unless `max_steps` says otherwise, and the most it may say.
pub const DEFAULT_MAX_STEPS: i32 = 10;
pub const MAX_STEPS_LIMIT: i32 = 100;
/// The largest tool output (a client's or a server tool's) given to the model.
pub const MAX_TOOL_OUTPUT_BYTES: usize = 64 * 1024;
/// Tool calls made of one model answer; the model gets an error for each call
/// beyond it (an answer of 1,500 calls once opened 1,500 connections at once).
pub const MAX_TOOL_CALLS_PER_ANSWER: usize = 128;
/// Server tool calls of one run in flight at once; the rest of a step's calls
/// wait their turn.
pub const MAX_TOOL_CALLS_IN_FLIGHT: usize = 16;
/// The longest `Retry-After` a tool's answer is honoured for (longer asks are
/// cut to it; the wait still counts against the call's time budget).
pub const MAX_TOOL_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// A server tool's timeout unless it sets one, and the longest it may set.
pub const DEFAULT_TOOL_TIMEOUT_SECS: u32 = 30;
pub const MAX_TOOL_TIMEOUT_SECS: u32 = 600;

/// Why a tool definition or a tool choice is refused; `param` names the field.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolRefusal {
    pub param: String,
    pub message: String,
}

pub(crate) fn refuse(param: impl Into<String>, message: impl Into<String>) -> ToolRefusal {
    ToolRefusal {
        param: param.into(),
        message: message.into(),
    }
}

/// A function name as OpenAI allows it.
pub const TOOL_NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// A function name as OpenAI allows it: `^[A-Za-z0-9_-]{1,64}$`.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One of the client's own tools: offered to the model as the client wrote
/// it, and answered by the client (`tool_outputs`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClientTool {
    pub name: String,
    /// The definition as given (OpenAI's function-tool format).
    pub definition: Value,
}

/// One of stewrd's own tools a run asks for in `tools` (`{"type": "web_fetch"}`,
/// `{"type": "browser", "require_approval": "never"}`): made by stewrd, offered
/// to the model as functions (`web_fetch`; `browser_navigate`, `browser_click`…).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `web_fetch {"url"}`: a GET, HTML given as Markdown.
    WebFetch,
    /// The browser's actions, made in the run's browser on `stewrd
    /// browser-host`; with `require_approval: always`, each waits for a person.
    Browser { approval: RequireApproval },
}

impl Builtin {
    /// The built-in tool an entry of `tools` asks for, if it is one (a
    /// `require_approval` that is not `never` or `always`: none).
    pub fn parse(entry: &Value) -> Option<Self> {
        match entry.get("type").and_then(Value::as_str)? {
            "web_fetch" => Some(Self::WebFetch),
            "browser" => {
                let approval = match entry.get("require_approval") {
                    None | Some(Value::Null) => RequireApproval::Never,
                    Some(value) => RequireApproval::parse(value.as_str()?)?,
                };
                Some(Self::Browser { approval })
            }
            _ => None,
        }
    }

    /// The type it is asked for by.
    pub fn kind(self) -> &'static str {
        match self {
            Self::WebFetch => "web_fetch",
            Self::Browser { .. } => "browser",
        }
    }

    /// The functions' names, as the model sees them.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Self::WebFetch => vec!["web_fetch"],
            Self::Browser { .. } => browser::Action::ALL.iter().map(|a| a.name()).collect(),
        }
    }

    /// The entry as stored with the run.
    pub fn stored(self) -> Value {
        match self {
            Self::WebFetch => json!({"type": "web_fetch"}),
            Self::Browser { approval } => {
                json!({"type": "browser", "require_approval": approval.as_str()})
            }
        }
    }

    /// Whether calls of it wait for a person's yes.
    pub fn approval(self) -> RequireApproval {
        match self {
            Self::WebFetch => RequireApproval::Never,
            Self::Browser { approval } => approval,
        }
    }

    /// The functions as the model is offered them, with their names.
    pub fn as_functions(self) -> Vec<(&'static str, Value)> {
        match self {
            Self::WebFetch => vec![(
                "web_fetch",
                json!({"type": "function", "function": {
                "name": "web_fetch",
                "description": "Fetches a web page (GET) and gives its text: HTML as Markdown, \
                                text as is; a PDF or an image is kept as a file.",
                "parameters": {"type": "object", "required": ["url"], "properties": {
                    "url": {"type": "string", "description": "An http or https URL"}}}}}),
            )],
            Self::Browser { .. } => browser::Action::ALL
                .iter()
                .map(|a| (a.name(), a.as_function()))
                .collect(),
        }
    }
}

/// The tools a run asks for: the client's functions and stewrd's built-ins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTools {
    pub client: Vec<ClientTool>,
    pub builtins: Vec<Builtin>,
}

impl RunTools {
    /// A run's stored `tools` (checked at submit), or `None` when an entry is
    /// neither a named function nor a built-in: a stored run no worker can read.
    pub fn decode(stored: Option<&Value>) -> Option<Self> {
        let mut tools = Self::default();
        let Some(stored) = stored else {
            return Some(tools);
        };
        for entry in stored.as_array()? {
            if let Some(builtin) = Builtin::parse(entry) {
                tools.builtins.push(builtin);
                continue;
            }
            let name = entry.get("function")?.get("name")?.as_str()?;
            tools.client.push(ClientTool {
                name: name.to_owned(),
                definition: entry.clone(),
            });
        }
        Some(tools)
    }

    /// The entries to store (`None` for none).
    pub fn encode(&self) -> Option<Value> {
        let entries: Vec<Value> = self
            .client
            .iter()
            .map(|t| t.definition.clone())
            .chain(self.builtins.iter().map(|b| b.stored()))
            .collect();
        (!entries.is_empty()).then_some(Value::Array(entries))
    }

    /// Every name the model is offered among them.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.client
            .iter()
            .map(|t| t.name.as_str())
            .chain(self.builtins.iter().flat_map(|b| b.names()))
    }
}

/// Checks the client's `tools` (OpenAI's function-tool format, or a built-in
/// tool's `{"type": "web_fetch"}`): at most 64, names valid and unique, none
/// a server tool's, `parameters` an object.
pub fn check_client_tools(tools: &[Value], server_names: &[&str]) -> Result<RunTools, ToolRefusal> {
    if tools.len() > MAX_CLIENT_TOOLS {
        return Err(refuse(
            "tools",
            format!("`tools` holds at most {MAX_CLIENT_TOOLS} tools"),
        ));
    }
    let mut checked: Vec<ClientTool> = Vec::with_capacity(tools.len());
    let mut builtins: Vec<Builtin> = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        if let Some(builtin) = Builtin::parse(tool) {
            if builtins.iter().any(|b| b.kind() == builtin.kind()) {
                return Err(refuse(
                    &param,
                    format!("`{}` is asked for twice", builtin.kind()),
                ));
            }
            builtins.push(builtin);
            continue;
        }
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some("browser") => {
                return Err(refuse(
                    format!("{param}.require_approval"),
                    "`require_approval` must be \"never\" or \"always\"",
                ));
            }
            _ => {
                return Err(refuse(
                    &param,
                    format!("`{param}.type` must be \"function\", \"web_fetch\" or \"browser\""),
                ));
            }
        }
        let Some(function) = tool.get("function").and_then(Value::as_object) else {
            return Err(refuse(
                &param,
                format!("`{param}.function` must be an object"),
            ));
        };
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !valid_tool_name(name) {
            return Err(refuse(
                format!("{param}.function.name"),
                "a tool name must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'",
            ));
        }
        if checked.iter().any(|t| t.name == name) {
            return Err(refuse(
                format!("{param}.function.name"),
                format!("the tool name `{name}` is given twice"),
            ));
        }
        if server_names.contains(&name) {
            return Err(refuse(
                format!("{param}.function.name"),
                format!("`{name}` is the name of one of the project's server tools"),
            ));
        }
        if function.get("description").is_some_and(|d| !d.is_string()) {
            return Err(refuse(
                format!("{param}.function.description"),
                "`description` must be text",
            ));
        }
        if function.get("parameters").is_some_and(|p| !p.is_object()) {
            return Err(refuse(
                format!("{param}.function.parameters"),
                "`parameters` must be a JSON Schema object",
            ));
        }
        checked.push(ClientTool {
            name: name.to_owned(),
            definition: tool.clone(),
        });
    }
    if let Some(taken) = builtins
        .iter()
        .flat_map(|b| b.names())
        .find(|name| checked.iter().any(|t| t.name == *name) || server_names.contains(name))
    {
        return Err(refuse(
            "tools",
            format!("`{taken}` is the name of a built-in tool asked for"),
        ));
    }
    Ok(RunTools {
        client: checked,
        builtins,
    })
}

/// Checks `tool_choice`: `auto`, `none`, `required`, or one of the offered
/// functions (`{"type": "function", "function": {"name": …}}`).
pub fn check_tool_choice(choice: &Value, offered: &[&str]) -> Result<(), ToolRefusal> {
    match choice {
        Value::String(word) if ["auto", "none", "required"].contains(&word.as_str()) => Ok(()),
        Value::Object(object) => {
            let name = object
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (object.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) if offered.contains(&name) => Ok(()),
                (Some("function"), Some(name)) => Err(refuse(
                    "tool_choice",
                    format!("`tool_choice` names `{name}`, which is not an offered tool"),
                )),
                _ => Err(refuse(
                    "tool_choice",
                    "`tool_choice` must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
                )),
            }
        }
        _ => Err(refuse(
            "tool_choice",
            "`tool_choice` must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
        )),
    }
}

/// Checks `response_format`: an object whose `type` is `text`, `json_object`
/// or `json_schema` (passed to the provider as given).
pub fn check_response_format(format: &Value) -> Result<(), ToolRefusal> {
    let kind = format.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("text" | "json_object" | "json_schema")) {
        return Err(refuse(
            "response_format",
            "`response_format.type` must be text, json_object or json_schema",
        ));
    }
    if kind == Some("json_schema") {
        let Some(schema) = super::structured::schema_of(Some(format)).filter(|s| s.is_object())
        else {
            return Err(refuse(
                "response_format.json_schema.schema",
                "a json_schema response format needs `json_schema.schema`, a JSON Schema object",
            ));
        };
        super::structured::check_schema(schema).map_err(|why| {
            refuse(
                "response_format.json_schema.schema",
                format!("the schema cannot check answers: {why}"),
            )
        })?;
    }
    Ok(())
}

/// One of a project's server tools: stewrd calls `url` when the model asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTool {
    /// `^[A-Za-z0-9_-]{1,64}$`, unique in the project.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\x00]*$")]
    pub description: Option<String>,
    /// A JSON Schema object for the arguments.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Where stewrd POSTs the call (the webhook URL checks apply; at most 2048
    /// characters as sent, answered in normalized form, which may be longer).
    #[schema(format = "uri")]
    pub url: String,
    /// One attempt's limit, 1 to 600 s (default 30).
    #[serde(default = "default_timeout")]
    #[schema(minimum = 1, maximum = 600)]
    pub timeout_secs: u32,
    /// Whether its calls wait for a person's yes (default `never`).
    #[serde(default)]
    pub require_approval: RequireApproval,
}

fn empty_object() -> Value {
    json!({"type": "object", "properties": {}})
}

fn default_timeout() -> u32 {
    DEFAULT_TOOL_TIMEOUT_SECS
}

impl ServerTool {
    /// The tool as the model is offered it.
    pub fn as_function(&self) -> Value {
        let mut function = json!({"name": self.name, "parameters": self.parameters});
        if let Some(description) = &self.description {
            function["description"] = json!(description);
        }
        json!({"type": "function", "function": function})
    }

    /// Checks everything but the URL (which needs a DNS lookup: see `ops`).
    pub fn check_form(tools: &[ServerTool]) -> Result<(), ToolRefusal> {
        if tools.len() > MAX_SERVER_TOOLS {
            return Err(refuse(
                "tools",
                format!("a project has at most {MAX_SERVER_TOOLS} server tools"),
            ));
        }
        for (i, tool) in tools.iter().enumerate() {
            if !valid_tool_name(&tool.name) {
                return Err(refuse(
                    format!("tools[{i}].name"),
                    "a tool name must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'",
                ));
            }
            if tools[..i].iter().any(|t| t.name == tool.name) {
                return Err(refuse(
                    format!("tools[{i}].name"),
                    format!("the tool name `{}` is given twice", tool.name),
                ));
            }
            if !tool.parameters.is_object() {
                return Err(refuse(
                    format!("tools[{i}].parameters"),
                    "`parameters` must be a JSON Schema object",
                ));
            }
            if !(1..=MAX_TOOL_TIMEOUT_SECS).contains(&tool.timeout_secs) {
                return Err(refuse(
                    format!("tools[{i}].timeout_secs"),
                    format!("`timeout_secs` must be 1 to {MAX_TOOL_TIMEOUT_SECS}"),
                ));
            }
        }
        Ok(())
    }
}

/// A tool call the model asked for, as the provider wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text; the model may write invalid JSON.
    pub arguments: String,
}

impl ToolCall {
    /// The calls of an assistant message's `tool_calls` (entries without an id
    /// or a name are left out: nothing could answer them).
    pub fn all_in(tool_calls: &Value) -> Vec<ToolCall> {
        tool_calls
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|call| {
                let function = call.get("function")?;
                Some(ToolCall {
                    id: call.get("id")?.as_str()?.to_owned(),
                    name: function.get("name")?.as_str()?.to_owned(),
                    arguments: function
                        .get("arguments")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                })
            })
            .collect()
    }

    /// The call as the contract shows it in `required_action`.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "type": "function",
               "function": {"name": self.name, "arguments": self.arguments}})
    }
}

/// What a tool gives the model when it cannot run: `{"error": "…"}`.
pub fn error_output(message: &str) -> String {
    json!({"error": message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "parameters": {"type": "object"}}})
    }

    #[test]
    fn client_tools_are_checked_where_stewrd_relies_on_them() {
        let checked = check_client_tools(&[tool("get_weather"), tool("a-b_9")], &[]);
        let names: Vec<String> = checked
            .unwrap_or_default()
            .client
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["get_weather", "a-b_9"]);
        let with_fetch = check_client_tools(&[tool("lookup"), json!({"type": "web_fetch"})], &[])
            .expect("a built-in beside a function");
        assert_eq!(with_fetch.builtins, [Builtin::WebFetch]);
        let stored = with_fetch.encode();
        assert_eq!(RunTools::decode(stored.as_ref()), Some(with_fetch));
        let param = |tools: &[Value], server: &[&str]| {
            check_client_tools(tools, server).err().map(|e| e.param)
        };
        assert_eq!(
            param(&[tool("bad name")], &[]).as_deref(),
            Some("tools[0].function.name")
        );
        assert_eq!(
            param(
                &[json!({"type": "browser", "require_approval": "maybe"})],
                &[]
            )
            .as_deref(),
            Some("tools[0].require_approval")
        );
        let browser = check_client_tools(
            &[json!({"type": "browser", "require_approval": "always"})],
            &[],
        )
        .expect("the browser");
        assert_eq!(
            browser.builtins,
            [Builtin::Browser {
                approval: RequireApproval::Always
            }]
        );
        assert_eq!(RunTools::decode(browser.encode().as_ref()), Some(browser));
        assert_eq!(
            param(&[tool("web_fetch"), json!({"type": "web_fetch"})], &[]).as_deref(),
            Some("tools")
        );
        assert_eq!(
            param(
                &[json!({"type": "web_fetch"}), json!({"type": "web_fetch"})],
                &[]
            )
            .as_deref(),
            Some("tools[1]")
        );
        assert_eq!(
            param(&[tool("x"), tool("x")], &[]).as_deref(),
            Some("tools[1].function.name")
        );
        assert_eq!(
            param(&[tool("lookup")], &["lookup"]).as_deref(),
            Some("tools[0].function.name")
        );
        let many: Vec<_> = (0..65).map(|i| tool(&format!("t{i}"))).collect();
        assert_eq!(param(&many, &[]).as_deref(), Some("tools"));
        let odd = json!({"type": "function", "function": {"name": "f", "parameters": [1]}});
        assert_eq!(
            param(&[odd], &[]).as_deref(),
            Some("tools[0].function.parameters")
        );
        assert_eq!(
            param(&[json!({"type": "code"})], &[]).as_deref(),
            Some("tools[0]")
        );
    }

    #[test]
    fn tool_choice_must_name_an_offered_tool() {
        for choice in [json!("auto"), json!("none"), json!("required")] {
            assert!(check_tool_choice(&choice, &[]).is_ok());
        }
        let named = json!({"type": "function", "function": {"name": "f"}});
        assert!(check_tool_choice(&named, &["f"]).is_ok());
        assert!(check_tool_choice(&named, &["g"]).is_err());
        assert!(check_tool_choice(&json!("always"), &[]).is_err());
    }

    #[test]
    fn tool_calls_are_read_from_the_providers_shape() {
        let calls = json!([
            {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
            {"type": "function", "function": {"name": "no_id"}},
            {"id": "call_2", "type": "function", "function": {"name": "b"}}
        ]);
        let parsed = ToolCall::all_in(&calls);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].arguments, "{\"x\":1}");
        assert_eq!(parsed[1].arguments, "");
    }
}
