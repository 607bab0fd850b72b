//! The dashboard's forms: signing in and out, and every change to a project.
//! Each change is an operator action of `stewrd_shared::ops` (through the same
//! API-side functions as the admin API where the API adds to it), after which
//! the page shows what happened.

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use stewrd_shared::{
    db::{
        session::session_project,
        sign_out::sign_out,
        wait::{Answers, Decision},
    },
    domain::id::{ProjectId, SessionId},
    ops::{self, Given, LIMIT_NAMES, LimitsInput, ProjectName},
};

use super::{
    OperatorForm, ProjectPath, dashboard_off, failure,
    html::{esc, notice, page, with_security_headers},
    login,
    pages::{login_form, project_page, projects_page, shown_once},
};
use crate::{
    auth::{AdminRefusal, Peer, check_admin_token},
    error::ApiError,
    routes::{
        admin::revoke_key_of,
        approvals,
        project::{PutLlmIn, checked_webhook_url, remove_llm, update_llm},
        steps::resume_run,
    },
    state::AppState,
};

/// The dashboard's sign-in form (described for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form in the OpenAPI document only")]
pub(crate) struct SignInForm {
    /// The admin token (`STEWRD_ADMIN_TOKEN`).
    token: String,
}

#[utoipa::path(
    post,
    path = "/dashboard/login",
    tag = "admin",
    summary = "Sign in to the dashboard with the admin token",
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: the session cookie is set and the browser sent to /dashboard"),
        (status = 401, description = "Not the admin token (the sign-in page again)", content_type = "text/html", body = String),
        (status = 429, description = "Too many wrong admin tokens from this address: a wrong token waits the Retry-After seconds; the right one is always taken", content_type = "text/html", body = String, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    Peer(peer): Peer,
    request: axum::extract::Request,
) -> Response {
    let Some(admin_token) = &state.config.admin_token else {
        return dashboard_off();
    };
    let form = match super::read_form(request, &state).await {
        Ok(form) => form,
        Err(refusal) => return refusal,
    };
    let presented = form.get("token").map(String::as_str).unwrap_or_default();
    let (status, message, retry_after) = match check_admin_token(&state, peer, presented) {
        Ok(()) => {
            let session = login::new_session(admin_token);
            return redirect_setting_cookie(&state, "/dashboard", Some(&session));
        }
        Err(AdminRefusal::Wait(wait)) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many wrong tokens from this address: try again in {seconds} s."),
                Some(seconds),
            )
        }
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            "That is not the admin token.".to_owned(),
            None,
        ),
    };
    let mut response = page("Sign in", None, &login_form(Some(&message)));
    *response.status_mut() = status;
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

/// A redirect that signs the browser in (with a session) or out (`None`).
fn redirect_setting_cookie(state: &AppState, to: &str, session: Option<&str>) -> Response {
    // Behind a TLS-terminating proxy only the public URL says the browser uses HTTPS.
    let secure = state.config.public_url.starts_with("https://");
    let mut response = Redirect::to(to).into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&login::set_cookie(session, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    with_security_headers(response)
}

/// Ends the session for good: the cookie is recorded as signed out (a copy of
/// it would otherwise work until it expires), then cleared in the browser.
pub(super) async fn logout(State(state): State<AppState>, form: OperatorForm) -> Response {
    let session = &form.operator.session;
    let expires_at = login::expires_at(session).unwrap_or_else(time::OffsetDateTime::now_utc);
    let recorded = async {
        let client = state.pool.get().await?;
        sign_out(&client, session, expires_at).await
    };
    if let Err(error) = recorded.await {
        return failure(error);
    }
    redirect_setting_cookie(&state, "/dashboard/login", None)
}

pub(super) async fn create_project(State(state): State<AppState>, form: OperatorForm) -> Response {
    let created = async {
        let name = ProjectName::parse(form.field("name"))?;
        ops::create_project(&state.pool, &state.master_keys, &name).await
    };
    let banner = match created.await {
        Ok((project, key)) => shown_once(
            &format!(
                "Project <b>{}</b> created. Its API key is shown this once",
                esc(&project.name)
            ),
            &key.secret,
            Some("new-api-key"),
        ),
        Err(ops::OpsError::Db(error)) => return failure(error),
        Err(error) => notice(&error.to_string(), true),
    };
    projects_page(&state, &form.operator, &banner).await
}

/// Shows the project with the change's outcome above it.
async fn after_change(
    state: &AppState,
    form: &OperatorForm,
    id: ProjectId,
    outcome: Result<String, ApiError>,
) -> Response {
    let banner = match outcome {
        Ok(banner) => banner,
        Err(error) if error.status().is_server_error() => return failure(error),
        Err(error) => notice(error.message(), true),
    };
    project_page(state, &form.operator, id, &banner).await
}

pub(super) async fn save_llm(
    State(state): State<AppState>,
    ProjectPath(id): ProjectPath,
    form: OperatorForm,
) -> Response {
    let api_key = Some(form.field("api_key")).filter(|k| !k.is_empty());
    let body = PutLlmIn::new(form.field("provider"), form.field("model"), api_key);
    let outcome = update_llm(&state, id, body).await;
    let outcome = outcome.map(|_| notice("LLM configuration saved.", false));
    after_change(&state, &form, id, outcome).await
}

pub(super) async fn delete_llm(
    State(state): State<AppState>,
    ProjectPath(id): ProjectPath,
    form: OperatorForm,
) -> Response {
    let outcome = remove_llm(&state, id)
        .await
        .map(|_| notice("LLM configuration removed: the default applies.", false));
    after_change(&state, &form, id, outcome).await
}

pub(super) async fn save_webhook(
    State(state): State<AppState>,
    ProjectPath(id): ProjectPath,
    form: OperatorForm,
) -> Response {
    let outcome = async {
        let url = match form.field("url") {
            "" => None,
            text => Some(checked_webhook_url(&state, "url", text).await?),
        };
        let client = state.pool.get().await?;
        ops::set_webhook_url(&client, id, url.as_ref()).await?;
        Ok(notice("Webhook URL saved.", false))
    };
    after_change(&state, &form, id, outcome.await).await
}

pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    ProjectPath(id): ProjectPath,
    form: OperatorForm,
) -> Response {
    let outcome = async {
        let client = state.pool.get().await?;
        let secret = ops::rotate_webhook_secret(&client, &state.master_keys, id).await?;
        Ok(shown_once("New signing secret", &secret, None))
    };
    after_change(&state, &form, id, outcome.await).await
}

pub(super) async fn save_limits(
    State(state): State<AppState>,
    ProjectPath(id): ProjectPath,
    form: OperatorForm,
) -> Response {
    let outcome = async {
        let limits = LimitsInput::parse(LIMIT_NAMES.map(|name| Given::Text(form.field(name))))?;
        let client = state.pool.get().await?;
        ops::set_limits(&client, id, &limits).await?;
        state.auth_cache.forget_project(id);
        Ok(notice("Limits saved.", false))
    };
    after_change(&state, &form, id, outcome.await).await
}

pub(super) async fn issue_key(
    State(state): State<AppState>,
    ProjectPath(id): ProjectPath,
    form: OperatorForm,
) -> Response {
    let outcome = async {
        let client = state.pool.get().await?;
        let (_, key) = ops::issue_api_key(&client, id).await?;
        Ok(shown_once("New API key", &key.secret, None))
    };
    after_change(&state, &form, id, outcome.await).await
}

pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Path((_, key_id)): Path<(String, String)>,
    ProjectPath(id): ProjectPath,
    form: OperatorForm,
) -> Response {
    let outcome = revoke_key_of(&state, id, &key_id)
        .await
        .map(|()| notice("API key revoked.", false));
    after_change(&state, &form, id, outcome).await
}

/// The operator's decision on every call a paused run waits to have approved
/// (the form lists each call with the hash of its arguments): the same
/// resumption as the API's, by `operator`.
pub(super) async fn decide_approvals(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: OperatorForm,
) -> Response {
    let Ok(session_id) = id.parse::<SessionId>() else {
        return failure(ApiError::not_found("session"));
    };
    let approve = form.field("decision") == "approve";
    let reason = Some(form.field("reason").to_owned()).filter(|r| !r.is_empty());
    let decisions: Vec<Decision> = (0..)
        .map_while(|i| {
            let call = form.fields.get(&format!("call.{i}"))?;
            Some(Decision {
                tool_call_id: call.clone(),
                approve,
                arguments_sha256: form.fields.get(&format!("sha256.{i}")).cloned(),
                reason: reason.clone(),
            })
        })
        .collect();
    let outcome = async {
        approvals::check(&decisions)?;
        let client = state.pool.get().await?;
        let project = session_project(&client, session_id)
            .await?
            .ok_or_else(|| ApiError::not_found("session"))?;
        resume_run(
            &state,
            project,
            session_id,
            Answers::Decisions(&decisions, "operator"),
        )
        .await
    };
    match outcome.await {
        Ok(_) => with_security_headers(
            Redirect::to(&format!("/dashboard/sessions/{session_id}")).into_response(),
        ),
        Err(error) if error.status().is_server_error() => failure(error),
        Err(error) => page(
            "Session",
            Some(&form.operator.csrf),
            &format!(
                r#"{}<p><a href="/dashboard/sessions/{session_id}">← Session</a></p>"#,
                notice(error.message(), true)
            ),
        ),
    }
}
