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
        routes::admin::create_key,
        routes::admin::revoke_key,
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
    ),
    modifiers(&BearerSchemes),
    tags(
        (name = "sessions", description = "Messages, sessions and their results"),
        (name = "project", description = "The calling project's configuration"),
        (name = "webhooks", description = "Webhook delivery log"),
        (name = "admin", description = "The operator's API (STEWRD_ADMIN_TOKEN)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

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
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}
