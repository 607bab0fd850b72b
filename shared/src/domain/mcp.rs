//! MCP servers as tool sources: a project's servers as configured, and the
//! tools a run pinned from them. Header values are secrets and never appear
//! here: a server shows only the names of the headers it is sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    agent::{MAX_TOOL_TIMEOUT_SECS, ToolRefusal, refuse},
    model::RequireApproval,
};

/// A project connects at most this many servers.
pub const MAX_MCP_SERVERS: usize = 8;
/// Headers per server.
pub const MAX_MCP_HEADERS: usize = 16;
/// One header value, in bytes.
pub const MAX_MCP_HEADER_VALUE: usize = 4096;
/// Names in `allowed_tools`.
pub const MAX_ALLOWED_TOOLS: usize = 128;
/// A call's limit when the server gives none.
pub const DEFAULT_MCP_TIMEOUT_SECS: u32 = 60;

/// Headers stewrd sets itself (the transport's), refused in a server's headers.
const OWN_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "idempotency-key",
    "last-event-id",
    "mcp-protocol-version",
    "mcp-session-id",
    "transfer-encoding",
    "upgrade",
];

/// One of a project's MCP servers, as stored and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpServer {
    #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
    pub name: String,
    #[schema(format = "uri")]
    pub url: String,
    /// The names of the headers sent with every request (their values are
    /// secrets: stored sealed, never shown).
    pub headers: Vec<String>,
    /// The tools offered; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    /// One call's limit, 1 to 600 s.
    pub timeout_secs: u32,
    pub require_approval: RequireApproval,
}

/// One server as a client gives it: header values included.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerIn {
    /// `^[a-z0-9_-]{1,32}$`, unique in the project.
    #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
    pub name: String,
    /// The server's Streamable HTTP endpoint (the webhook URL checks apply).
    #[schema(format = "uri")]
    pub url: String,
    /// Sent with every request to the server (at most 16; values at most
    /// 4096 bytes). Stored sealed; shown by name only.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_tools: Option<Vec<String>>,
    /// 1 to 600 s (default 60).
    #[serde(default = "default_timeout")]
    #[schema(minimum = 1, maximum = 600)]
    pub timeout_secs: u32,
    #[serde(default)]
    pub require_approval: RequireApproval,
}

fn default_timeout() -> u32 {
    DEFAULT_MCP_TIMEOUT_SECS
}

impl McpServerIn {
    /// Checks everything but the URL (which needs a DNS lookup: see `ops`).
    pub fn check_form(servers: &[McpServerIn]) -> Result<(), ToolRefusal> {
        if servers.len() > MAX_MCP_SERVERS {
            return Err(refuse(
                "servers",
                format!("a project connects at most {MAX_MCP_SERVERS} MCP servers"),
            ));
        }
        for (i, server) in servers.iter().enumerate() {
            let at = |field: &str| format!("servers[{i}].{field}");
            if !valid_server_name(&server.name) {
                return Err(refuse(
                    at("name"),
                    "a server name must be 1 to 32 characters of a-z, 0-9, '_' or '-'",
                ));
            }
            if servers[..i].iter().any(|s| s.name == server.name) {
                return Err(refuse(
                    at("name"),
                    format!("the server name `{}` is given twice", server.name),
                ));
            }
            check_headers(&server.headers).map_err(|message| refuse(at("headers"), message))?;
            if let Some(allowed) = &server.allowed_tools
                && (allowed.len() > MAX_ALLOWED_TOOLS
                    || allowed.iter().any(|t| t.is_empty() || t.len() > 128))
            {
                return Err(refuse(
                    at("allowed_tools"),
                    format!(
                        "`allowed_tools` holds at most {MAX_ALLOWED_TOOLS} names of 1 to 128 characters"
                    ),
                ));
            }
            if !(1..=MAX_TOOL_TIMEOUT_SECS).contains(&server.timeout_secs) {
                return Err(refuse(
                    at("timeout_secs"),
                    format!("`timeout_secs` must be 1 to {MAX_TOOL_TIMEOUT_SECS}"),
                ));
            }
        }
        Ok(())
    }

    /// The server as stored and shown (`url` as checked).
    pub fn shown(&self, url: String) -> McpServer {
        McpServer {
            name: self.name.clone(),
            url,
            headers: self.headers.keys().cloned().collect(),
            allowed_tools: self.allowed_tools.clone(),
            timeout_secs: self.timeout_secs,
            require_approval: self.require_approval,
        }
    }
}

fn valid_server_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A header's name must be an HTTP token not of the transport's own; its
/// value visible ASCII or spaces. The message never quotes a value.
fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    if headers.len() > MAX_MCP_HEADERS {
        return Err(format!("at most {MAX_MCP_HEADERS} headers"));
    }
    for (name, value) in headers {
        let token = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err("a header name must be an HTTP token of 1 to 64 characters".into());
        }
        if OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!("the header `{name}` is set by stewrd itself"));
        }
        if value.len() > MAX_MCP_HEADER_VALUE || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!(
                "the value of `{name}` must be at most {MAX_MCP_HEADER_VALUE} visible ASCII characters"
            ));
        }
    }
    Ok(())
}

/// Whether `tool` is offered under a server's `allowed_tools`.
pub fn allowed(server: &McpServer, tool: &str) -> bool {
    server
        .allowed_tools
        .as_ref()
        .is_none_or(|allowed| allowed.iter().any(|t| t == tool))
}

/// One tool a run offers from an MCP server, as listed at its first step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    pub server: String,
    /// As the model sees it: `<server>__<tool>`, cut to 64 characters.
    pub name: String,
    /// As the server knows it.
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Value,
    /// The server says calling it twice does no harm (`readOnlyHint` or
    /// `idempotentHint`): a call whose answer was lost may be made again.
    pub repeatable: bool,
}

impl McpTool {
    /// The tool as the model is offered it.
    pub fn as_function(&self) -> Value {
        let mut function = json!({"name": self.name, "parameters": self.parameters});
        if let Some(description) = &self.description {
            function["description"] = json!(description);
        }
        json!({"type": "function", "function": function})
    }

    /// The tool as `GET …/mcp_servers/{name}/tools` shows it.
    pub fn shown(&self) -> Value {
        json!({"name": self.name, "description": self.description, "parameters": self.parameters})
    }
}

/// The name the model sees for `tool` of `server`: `<server>__<tool>`, with
/// what a function name cannot hold made `_`, cut to 64 characters.
pub fn model_name(server: &str, tool: &str) -> String {
    format!("{server}__{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// A listed tool's entry as the server wrote it, made a pinned tool (`None`
/// without a name). A schema that is not an object is offered as "any object".
pub fn pinned(server: &McpServer, listed: &Value) -> Option<McpTool> {
    let tool = listed["name"].as_str().filter(|n| !n.is_empty())?;
    if !allowed(server, tool) {
        return None;
    }
    let parameters = match &listed["inputSchema"] {
        schema @ Value::Object(_) => schema.clone(),
        _ => json!({"type": "object", "properties": {}}),
    };
    let hint = |name: &str| listed["annotations"][name].as_bool() == Some(true);
    Some(McpTool {
        server: server.name.clone(),
        name: model_name(&server.name, tool),
        tool: tool.to_owned(),
        description: listed["description"].as_str().map(str::to_owned),
        parameters,
        repeatable: hint("readOnlyHint") || hint("idempotentHint"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str) -> McpServerIn {
        McpServerIn {
            name: name.into(),
            url: "https://mcp.example.com/mcp".into(),
            headers: BTreeMap::new(),
            allowed_tools: None,
            timeout_secs: 60,
            require_approval: RequireApproval::Never,
        }
    }

    #[test]
    fn names_headers_and_bounds_are_checked_with_the_field_named() {
        let param = |servers: &[McpServerIn]| {
            McpServerIn::check_form(servers)
                .err()
                .map(|r| r.param)
                .unwrap_or_default()
        };
        assert_eq!(param(&[server("github"), server("docs-2")]), "");
        assert_eq!(param(&[server("GitHub")]), "servers[0].name");
        assert_eq!(param(&[server("a"), server("a")]), "servers[1].name");
        assert_eq!(param(&vec![server("a"); 9]), "servers");
        let mut bad = server("a");
        bad.headers.insert("Mcp-Session-Id".into(), "x".into());
        assert_eq!(param(&[bad]), "servers[0].headers");
        let mut bad = server("a");
        bad.headers
            .insert("Authorization".into(), "Bearer a\r\nb".into());
        let refusal = McpServerIn::check_form(&[bad]).expect_err("refused");
        assert!(!refusal.message.contains("Bearer"), "{}", refusal.message);
        let mut bad = server("a");
        bad.timeout_secs = 0;
        assert_eq!(param(&[bad]), "servers[0].timeout_secs");
    }

    #[test]
    fn a_listed_tool_becomes_a_function_the_model_can_call() {
        let shown = server("docs").shown("https://x/mcp".into());
        let tool = pinned(
            &shown,
            &json!({"name": "search.v2", "description": "d",
                    "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}),
        )
        .expect("a tool");
        assert_eq!(tool.name, "docs__search_v2");
        assert_eq!(tool.tool, "search.v2");
        assert!(tool.repeatable);
        assert_eq!(model_name("s", &"x".repeat(100)).len(), 64);
        let writes = pinned(&shown, &json!({"name": "write", "inputSchema": "?"})).expect("a tool");
        assert!(!writes.repeatable);
        assert_eq!(writes.parameters["type"], "object");
        let mut only = shown;
        only.allowed_tools = Some(vec!["read".into()]);
        assert!(pinned(&only, &json!({"name": "write"})).is_none());
    }
}
