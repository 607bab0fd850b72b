//! The body of `POST /v1/agent` and its checks: the message, its settings, and
//! what makes the run an agent run (tools, tool choice, bounds).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stewrd_shared::{
    db::run::AgentSettings,
    domain::file::FileId,
    domain::{
        agent::{
            DEFAULT_MAX_STEPS, MAX_CLIENT_TOOLS, MAX_STEPS_LIMIT, RunTools, ServerTool,
            TOOL_NAME_PATTERN, ToolRefusal, check_client_tools, check_response_format,
            check_tool_choice,
        },
        id::SessionId,
        llm::check_fallback_models,
        structured, text,
    },
    ops::{Given, dollars},
};
use utoipa::openapi::{RefOr, schema::Schema};

use crate::{error::ApiError, openapi::json_schema};

/// Metadata limits, as Stripe's: enough for ids and tags, not for payloads.
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY_CHARS: usize = 40;
const MAX_METADATA_VALUE_CHARS: usize = 500;
const MAX_MODEL_CHARS: usize = 200;

/// The request body. `Serialize` gives its fingerprint for `Idempotency-Key`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentIn {
    /// The user's message (not blank).
    #[schema(min_length = 1, pattern = r"^[^\x00]*[^\s\x00\x85][^\x00]*$")]
    pub(super) message: String,
    #[serde(default)]
    pub(super) session_id: Option<SessionId>,
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub(super) model: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[^\x00]*$")]
    pub(super) system: Option<String>,
    /// Where to send this run's webhook (overrides the project's).
    #[serde(default)]
    #[schema(format = "uri", max_length = 2048)]
    pub(super) webhook_url: Option<String>,
    /// Up to 50 keys of 1-40 characters, values of at most 500.
    #[serde(default)]
    #[schema(schema_with = metadata_schema)]
    pub(super) metadata: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub(super) max_tokens: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub(super) temperature: Option<f64>,
    /// The client's own tools, in OpenAI's function-tool format (at most 64).
    #[serde(default)]
    #[schema(schema_with = tools_schema)]
    pub(super) tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required`, or `{"type": "function", "function": {"name": …}}`.
    #[serde(default)]
    #[schema(schema_with = tool_choice_schema)]
    pub(super) tool_choice: Option<Value>,
    /// Model calls at most (1-100, default 10).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 100)]
    pub(super) max_steps: Option<i64>,
    /// The run fails once its model calls used more tokens than this.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 1, maximum = 100000000)]
    pub(super) max_total_tokens: Option<i64>,
    /// With a `json_schema` response format: how many times an answer that
    /// does not match is sent back to the model with what failed (0-10,
    /// default 2, counted in `max_steps`) before the run fails with
    /// `invalid_structured_output`.
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    #[schema(minimum = 0, maximum = 10)]
    pub(super) max_repairs: Option<i64>,
    /// US dollars this run may spend at most: before each model call its
    /// worst case at the model's price is reserved against it (and against
    /// the project's `usd_per_day` / `usd_per_month`); a call that does not
    /// fit is not made (`cost_budget_exhausted`). A model without a known
    /// price is refused (`price_unknown`).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 1000000000)]
    pub(super) max_cost_usd: Option<f64>,
    /// Models tried in order, within this run, when the model is not found,
    /// or unavailable or rate limited after its retries (at most 5; the
    /// project's, set with `PUT /v1/project/llm`, when not given). The
    /// conversation goes on unchanged; each step records its model.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fallback_models_schema)]
    pub(super) fallback_models: Option<Vec<String>>,
    /// Passed to the provider as given (`text`, `json_object` or `json_schema`).
    #[serde(default)]
    #[schema(schema_with = response_format_schema)]
    pub(super) response_format: Option<Value>,
    /// Stream the answer: `GET /v1/sessions/{id}/events` then carries its text
    /// as `run.delta` events while the model writes it.
    #[serde(default)]
    pub(super) stream: bool,
    /// Files attached to this message (at most 10; images, PDFs and text).
    #[serde(default)]
    #[schema(max_items = 10)]
    pub(super) files: Option<Vec<FileId>>,
}

/// `metadata`: what `validate_metadata` accepts, for generated clients and fuzzers.
fn metadata_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    let text = |max: usize, min: usize| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(max))
            .min_length(Some(min))
            .pattern(Some("^[^\\x00]*$"))
    };
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .max_properties(Some(MAX_METADATA_KEYS))
        .property_names(Some(text(MAX_METADATA_KEY_CHARS, 1)))
        .additional_properties(Some(text(MAX_METADATA_VALUE_CHARS, 0)))
        .build()
}

/// `tools`: OpenAI's function tools (names must also differ from each other
/// and from the project's server tools, which a schema cannot say), and
/// stewrd's built-ins `{"type": "web_fetch"}` and `{"type": "browser",
/// "require_approval": "never"|"always"}`.
fn tools_schema() -> RefOr<Schema> {
    json_schema(json!({
        "type": ["array", "null"], "maxItems": MAX_CLIENT_TOOLS,
        "items": {"oneOf": [
            {"type": "object", "required": ["type", "function"], "properties": {
                "type": {"type": "string", "enum": ["function"]},
                "function": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "pattern": TOOL_NAME_PATTERN},
                    "description": {"type": "string", "pattern": "^[^\\x00]*$"},
                    "parameters": {"type": "object"}}}}},
            {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["web_fetch"]}}},
            {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["browser"]},
                "require_approval": {"type": "string", "enum": ["never", "always"]}}}]}
    }))
}

fn tool_choice_schema() -> RefOr<Schema> {
    json_schema(json!({"oneOf": [
        {"type": "null"},
        {"type": "string", "enum": ["auto", "none", "required"]},
        {"type": "object", "required": ["type", "function"], "properties": {
            "type": {"type": "string", "enum": ["function"]},
            "function": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "pattern": TOOL_NAME_PATTERN}}}}}
    ]}))
}

fn response_format_schema() -> RefOr<Schema> {
    json_schema(json!({"oneOf": [
        {"type": "null"},
        {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]}}}
    ]}))
}

pub(super) fn validate(body: &CreateAgentIn) -> Result<(), ApiError> {
    if body.message.chars().all(text::is_blank) {
        return Err(ApiError::invalid(
            "invalid_value",
            "message",
            "`message` must not be empty",
        ));
    }
    if let Some(model) = &body.model
        && !text::is_label(model, MAX_MODEL_CHARS)
    {
        return Err(ApiError::invalid(
            "invalid_value",
            "model",
            format!("`model` must be 1 to {MAX_MODEL_CHARS} printable characters"),
        ));
    }
    if let Some(metadata) = &body.metadata {
        validate_metadata(metadata)?;
    }
    if let Some(max_tokens) = body.max_tokens
        && !(1..=1_000_000).contains(&max_tokens)
    {
        return Err(ApiError::invalid(
            "invalid_value",
            "max_tokens",
            "`max_tokens` must be between 1 and 1000000",
        ));
    }
    if let Some(temperature) = body.temperature
        && !(0.0..=2.0).contains(&temperature)
    {
        return Err(ApiError::invalid(
            "invalid_value",
            "temperature",
            "`temperature` must be between 0 and 2",
        ));
    }
    Ok(())
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(ApiError::invalid(
            "invalid_value",
            "metadata",
            format!("`metadata` holds at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(ApiError::invalid(
                "invalid_value",
                "metadata",
                format!("metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(ApiError::invalid(
                "invalid_value",
                format!("metadata.{key}"),
                format!("metadata values are at most {MAX_METADATA_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

/// The most `max_total_tokens` may say.
const MAX_TOTAL_TOKENS_LIMIT: i64 = 100_000_000;

fn refused(refusal: ToolRefusal) -> ApiError {
    ApiError::invalid("invalid_value", refusal.param, refusal.message)
}

/// The run's agent settings, checked against the project's server tools (a
/// client tool may not take one's name, and `tool_choice` may name either).
pub(super) fn agent_settings(
    body: &CreateAgentIn,
    server_tools: &[ServerTool],
) -> Result<AgentSettings, ApiError> {
    let server_names: Vec<&str> = server_tools.iter().map(|t| t.name.as_str()).collect();
    let client_tools = match &body.tools {
        Some(tools) => check_client_tools(tools, &server_names).map_err(refused)?,
        None => RunTools::default(),
    };
    if let Some(choice) = &body.tool_choice {
        let offered: Vec<&str> = client_tools
            .names()
            .chain(server_names.iter().copied())
            .collect();
        check_tool_choice(choice, &offered).map_err(refused)?;
    }
    if let Some(format) = &body.response_format {
        check_response_format(format).map_err(refused)?;
    }
    let max_steps = match body.max_steps {
        None => DEFAULT_MAX_STEPS,
        Some(n) => i32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_STEPS_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_value",
                    "max_steps",
                    format!("`max_steps` must be between 1 and {MAX_STEPS_LIMIT}"),
                )
            })?,
    };
    let max_total_tokens = match body.max_total_tokens {
        None => None,
        Some(n @ 1..=MAX_TOTAL_TOKENS_LIMIT) => i32::try_from(n).ok(),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "max_total_tokens",
                format!("`max_total_tokens` must be between 1 and {MAX_TOTAL_TOKENS_LIMIT}"),
            ));
        }
    };
    let max_repairs = match body.max_repairs {
        None => structured::DEFAULT_MAX_REPAIRS,
        Some(n) => i32::try_from(n)
            .ok()
            .filter(|n| (0..=structured::MAX_REPAIRS_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_value",
                    "max_repairs",
                    format!(
                        "`max_repairs` must be between 0 and {}",
                        structured::MAX_REPAIRS_LIMIT
                    ),
                )
            })?,
    };
    let max_cost_usd = dollars("max_cost_usd", Given::Amount(body.max_cost_usd))?;
    let fallback_models =
        check_fallback_models(body.fallback_models.as_deref().unwrap_or_default())
            .map_err(|message| ApiError::invalid("invalid_value", "fallback_models", message))?;
    Ok(AgentSettings {
        max_repairs,
        max_cost_usd,
        fallback_models,
        tools: client_tools,
        tool_choice: body.tool_choice.clone(),
        response_format: body.response_format.clone(),
        max_steps,
        max_total_tokens,
        stream: body.stream,
    })
}
