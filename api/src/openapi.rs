//! The OpenAPI 3.1 document, generated from the handlers and types themselves so
//! it cannot drift from the code, served at `GET /openapi.json`.

use axum::{Json, Router, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{routes, state::AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stewrd",
        description = "Durable, bring-your-own-key AI agent jobs: submit a message, get a \
                       session id at once, poll or receive a signed webhook.",
    ),
    paths(
        routes::agent::create,
        routes::sessions::list,
        routes::sessions::show,
        routes::sessions::cancel,
        routes::sessions::deliveries,
        routes::sessions::retry_delivery,
        routes::steps::steps,
        routes::steps::tool_outputs,
        routes::approvals::approvals,
        routes::tools::show,
        routes::tools::replace,
        routes::tools::admin_show,
        routes::tools::admin_replace,
        routes::mcp::show,
        routes::mcp::replace,
        routes::mcp::tools,
        routes::mcp::admin_show,
        routes::mcp::admin_replace,
        routes::mcp::admin_tools,
        routes::events::events,
        routes::project::show,
        routes::project::put_llm,
        routes::project::delete_llm,
        routes::project::put_webhook,
        routes::project::new_webhook_secret,
        routes::admin::create_project,
        routes::admin::list,
        routes::admin::show,
        routes::admin::show_llm,
        routes::admin::put_llm,
        routes::admin::delete_llm,
        routes::admin::put_rate_limit,
        routes::usage::put_limits,
        routes::usage::project_usage,
        routes::usage::admin_usage,
        routes::prices::show,
        routes::prices::replace,
        routes::admin::create_key,
        routes::admin::revoke_key,
        routes::files::upload,
        routes::files::list,
        routes::files::show,
        routes::files::content,
        routes::files::remove,
        routes::files::session_files,
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        crate::dashboard::actions::login,
    ),
    modifiers(&BearerSchemes, &AdminThrottleAnswers),
    tags(
        (name = "sessions", description = "Messages, sessions and their results"),
        (name = "project", description = "The calling project's configuration"),
        (name = "files", description = "Files: uploads for messages, and artifacts tools made"),
        (name = "webhooks", description = "Webhook delivery log"),
        (name = "admin", description = "The operator's API (STEWRD_ADMIN_TOKEN)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

/// A schema written as JSON Schema, for what the derive cannot say (tools).
pub(crate) fn json_schema(
    schema: serde_json::Value,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    serde_json::from_value(schema).expect("the schemas written here are valid")
}

/// A file's bytes, as its content is answered.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code, reason = "describes an answer in the document")]
pub(crate) struct Binary(Vec<u8>);

/// A model's name, as every field naming one takes it: 1 to 200 printable
/// characters, not all blank.
pub(crate) const MODEL_NAME_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// `fallback_models`: at most 5 model names.
pub(crate) fn fallback_models_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    json_schema(serde_json::json!({
        "type": ["array", "null"],
        "maxItems": stewrd_shared::domain::llm::MAX_FALLBACK_MODELS,
        "items": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": MODEL_NAME_PATTERN}
    }))
}

/// Project calls use a project API key; admin calls the admin token.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("project_key", bearer("A project API key, `sk-stw_…`"));
        components.add_security_scheme("admin_token", bearer("The operator's STEWRD_ADMIN_TOKEN"));
        components.add_security_scheme("metrics_token", bearer("STEWRD_METRICS_TOKEN, when set"));
    }
}

/// Every admin call (and the dashboard's sign-in, which says so itself) may
/// answer 429 `too_many_attempts` after too many wrong admin tokens from the
/// caller's address: the answer is written once here rather than on each.
struct AdminThrottleAnswers;

impl Modify for AdminThrottleAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::ToResponse;
        let (_, answer) = responses::TooManyAttempts::response();
        for (path, item) in &mut openapi.paths.paths {
            if !path.starts_with("/v1/admin") {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .insert("429".to_owned(), answer.clone());
            }
        }
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

/// The error answers most operations share, written once: an operation lists
/// them as `(status = 503, response = inline(Unavailable))`.
#[allow(dead_code, reason = "types that only describe answers in the document")]
pub(crate) mod responses {
    use crate::error::ErrorResponse;

    /// Invalid body or parameter
    #[derive(utoipa::ToResponse)]
    pub(crate) struct BadRequest(ErrorResponse);

    /// Missing, invalid or revoked API key
    #[derive(utoipa::ToResponse)]
    pub(crate) struct BadKey(ErrorResponse);

    /// Missing or wrong admin token
    #[derive(utoipa::ToResponse)]
    pub(crate) struct BadAdminToken(ErrorResponse);

    /// No such resource (also for another project's)
    #[derive(utoipa::ToResponse)]
    pub(crate) struct NotFound(ErrorResponse);

    /// Body larger than 1 MiB
    #[derive(utoipa::ToResponse)]
    pub(crate) struct TooLarge(ErrorResponse);

    /// A limit of the project refuses it (`too_many_queued_runs`,
    /// `token_budget_exhausted`); retry after the Retry-After seconds
    #[derive(utoipa::ToResponse)]
    #[response(headers(("Retry-After" = u32, description = "Seconds to wait")))]
    pub(crate) struct OverLimit(ErrorResponse);

    /// Too many wrong admin tokens from this address (`too_many_attempts`): a
    /// wrong token waits the Retry-After seconds; the right one is always taken
    #[derive(utoipa::ToResponse)]
    #[response(headers(("Retry-After" = u32, description = "Seconds to wait")))]
    pub(crate) struct TooManyAttempts(ErrorResponse);

    /// The database is unavailable; retry after the Retry-After seconds
    #[derive(utoipa::ToResponse)]
    #[response(headers(("Retry-After" = u32, description = "Seconds to wait")))]
    pub(crate) struct Unavailable(ErrorResponse);
}
