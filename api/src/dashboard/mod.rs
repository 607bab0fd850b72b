//! `/dashboard`: the operator's web page, split into the router and extractors
//! (here), the pages it shows (`pages`) and the forms it takes (`actions`). Every
//! change goes through the operator actions of `stewrd_shared::ops`, as the admin
//! API's do, so a rule holds the same in both.

pub(crate) mod actions;
mod html;
mod live;
mod login;
mod pages;
mod tenant;

use std::collections::HashMap;

use axum::{
    Form, Router,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use secrecy::SecretString;
use stewrd_shared::{db::sign_out::is_signed_out, domain::id::ProjectId};
use time::OffsetDateTime;

use self::html::{notice, page, with_security_headers};
use crate::{error::ApiError, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(pages::projects))
        .route(
            "/dashboard/login",
            get(pages::login_page).post(actions::login),
        )
        .route("/dashboard/logout", post(actions::logout))
        .route("/dashboard/projects", post(actions::create_project))
        .route("/dashboard/projects/{id}", get(pages::project))
        .route("/dashboard/projects/{id}/llm", post(actions::save_llm))
        .route(
            "/dashboard/projects/{id}/llm/remove",
            post(actions::delete_llm),
        )
        .route(
            "/dashboard/projects/{id}/webhook",
            post(actions::save_webhook),
        )
        .route(
            "/dashboard/projects/{id}/webhook/secret",
            post(actions::rotate_secret),
        )
        .route(
            "/dashboard/projects/{id}/limits",
            post(actions::save_limits),
        )
        .route("/dashboard/projects/{id}/keys", post(actions::issue_key))
        .route(
            "/dashboard/projects/{id}/keys/{key_id}/revoke",
            post(actions::revoke_key),
        )
        .route("/dashboard/sessions/{id}", get(pages::session))
        .route(
            "/dashboard/sessions/{id}/approvals",
            post(actions::decide_approvals),
        )
        .route("/dashboard/sessions/{id}/events", get(live::events))
        .route("/dashboard/files/{id}/content", get(pages::file_content))
}

/// A signed-in operator, with the CSRF token for this session's forms.
struct Operator {
    admin_token: SecretString,
    session: String,
    csrf: String,
}

/// The page shown while no admin token is set.
fn dashboard_off() -> Response {
    page(
        "Dashboard off",
        None,
        &notice(
            "The dashboard is off until STEWRD_ADMIN_TOKEN is set.",
            true,
        ),
    )
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(admin_token) = state.config.admin_token.clone() else {
            return Err(dashboard_off());
        };
        let Some(session) = login::session(&parts.headers, &admin_token) else {
            return Err(Redirect::to("/dashboard/login").into_response());
        };
        let signed_out = async {
            let client = state.pool.get().await?;
            is_signed_out(&client, &session).await
        };
        match signed_out.await {
            Ok(false) => Ok(Self {
                csrf: login::csrf_token(&admin_token, &session),
                admin_token,
                session,
            }),
            Ok(true) => Err(Redirect::to("/dashboard/login").into_response()),
            Err(error) => Err(failure(error)),
        }
    }
}

/// A form the signed-in operator posted, its CSRF token checked, read within
/// the body-read timeout.
struct OperatorForm {
    operator: Operator,
    fields: HashMap<String, String>,
}

impl OperatorForm {
    /// A field, trimmed; empty when absent.
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(|v| v.trim()).unwrap_or_default()
    }
}

/// Reads a urlencoded form body within `STEWRD_BODY_READ_TIMEOUT_SECS`.
async fn read_form(
    request: Request,
    state: &AppState,
) -> Result<HashMap<String, String>, Response> {
    let limit = state.config.http.body_read_timeout;
    match tokio::time::timeout(
        limit,
        Form::<HashMap<String, String>>::from_request(request, state),
    )
    .await
    {
        Ok(Ok(Form(fields))) => Ok(fields),
        Ok(Err(rejection)) => Err(rejection.into_response()),
        Err(_) => Err(failure(ApiError::body_timeout(limit))),
    }
}

impl FromRequest<AppState> for OperatorForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let operator = Operator::from_request_parts(&mut parts, state).await?;
        let fields = read_form(Request::from_parts(parts, body), state).await?;
        let submitted = fields.get("csrf").map(String::as_str).unwrap_or_default();
        if !login::csrf_ok(&operator.admin_token, &operator.session, submitted) {
            return Err(with_security_headers(
                (StatusCode::FORBIDDEN, "the form expired; reload the page").into_response(),
            ));
        }
        Ok(Self { operator, fields })
    }
}

/// The `{id}` of a project page or form; an unknown form is a 404 page.
struct ProjectPath(ProjectId);

impl FromRequestParts<AppState> for ProjectPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let not_found = || failure(ApiError::not_found("project"));
        let Ok(Path(path)) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await
        else {
            return Err(not_found());
        };
        path.get("id")
            .and_then(|id| id.parse().ok())
            .map(Self)
            .ok_or_else(not_found)
    }
}

/// Renders a failure as a page (details go to the log only).
fn failure(error: impl Into<ApiError>) -> Response {
    let error: ApiError = error.into();
    let status = error.status();
    let message = error.message().to_owned();
    let mut response = page("Error", None, &notice(&message, true));
    *response.status_mut() = status;
    response
}

fn date(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}
