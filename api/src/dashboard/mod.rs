//! `/dashboard`: the operator's web page. Projects with their sessions by status; a
//! project page with LLM Configuration (provider, write-only key, model), webhook,
//! rate limit, API keys and recent sessions; a session page with its messages and
//! delivery log. Every change goes through the same functions as the admin API.

mod html;
mod login;

use std::collections::HashMap;

use axum::{
    Form, Router,
    extract::{FromRequestParts, Path, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use secrecy::{ExposeSecret, SecretString};
use stewrd_shared::{
    crypto::SecretField,
    db::{
        DbError,
        api_key::{insert_api_key, list_api_keys, revoke_api_key},
        project::{
            create_project_with_key, get_project, list_projects, project_name,
            rotate_webhook_secret, set_rate_limit, set_webhook_url,
        },
        session::{get_session, list_sessions, session_counts, session_project},
        webhook::list_deliveries,
    },
    id::{ApiKeyId, ProjectId, SessionId},
    model::{Provider, RunStatus},
    token::generate_api_key,
    view::{Detail, SessionOut},
    webhook::generate_secret,
};
use time::OffsetDateTime;

use self::html::{csrf_field, esc, notice, page, pill, with_security_headers};
use crate::{
    auth::{AdminRefusal, Peer, check_admin_token},
    error::ApiError,
    routes::project::{PutLlmIn, remove_llm, update_llm, validated_webhook_url},
    state::AppState,
};

/// Models offered in the model field (any other name may be typed).
const POPULAR_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "o1",
    "moonshotai/kimi-k2.5",
    "openai/gpt-4o",
    "anthropic/claude-sonnet-4",
    "meta-llama/llama-3.1-70b-instruct",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(projects))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/projects", post(create_project))
        .route("/dashboard/projects/{id}", get(project))
        .route("/dashboard/projects/{id}/llm", post(save_llm))
        .route("/dashboard/projects/{id}/llm/remove", post(delete_llm))
        .route("/dashboard/projects/{id}/webhook", post(save_webhook))
        .route(
            "/dashboard/projects/{id}/webhook/secret",
            post(rotate_secret),
        )
        .route("/dashboard/projects/{id}/rate-limit", post(save_rate_limit))
        .route("/dashboard/projects/{id}/keys", post(issue_key))
        .route(
            "/dashboard/projects/{id}/keys/{key_id}/revoke",
            post(revoke_key),
        )
        .route("/dashboard/sessions/{id}", get(session))
}

/// A signed-in operator, with the CSRF token for this session's forms.
struct Operator {
    admin_token: SecretString,
    session: String,
    csrf: String,
}

impl Operator {
    /// The refusal of a form whose CSRF token is not this session's.
    fn refuses(&self, form: &HashMap<String, String>) -> Option<Response> {
        let submitted = form.get("csrf").map(String::as_str).unwrap_or_default();
        (!login::csrf_ok(&self.admin_token, &self.session, submitted)).then(|| {
            with_security_headers(
                (StatusCode::FORBIDDEN, "the form expired; reload the page").into_response(),
            )
        })
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(admin_token) = state.config.admin_token.clone() else {
            return Err(page(
                "Dashboard off",
                None,
                &notice(
                    "The dashboard is off until STEWRD_ADMIN_TOKEN is set.",
                    true,
                ),
            ));
        };
        match login::session(&parts.headers, &admin_token) {
            Some(session) => Ok(Self {
                csrf: login::csrf_token(&admin_token, &session),
                admin_token,
                session,
            }),
            None => Err(Redirect::to("/dashboard/login").into_response()),
        }
    }
}

/// Renders an internal failure as a page (details go to the log only).
fn failure(error: impl Into<ApiError>) -> Response {
    let error: ApiError = error.into();
    let status = error.status();
    let message = error.message().to_owned();
    let mut response = page("Error", None, &notice(&message, true));
    *response.status_mut() = status;
    response
}

fn project_id(text: &str) -> Option<ProjectId> {
    text.parse().ok()
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

async fn login_page() -> Response {
    page("Sign in", None, &login_form(None))
}

fn login_form(error: Option<&str>) -> String {
    format!(
        r#"{}<div class="card" style="max-width:420px;margin:60px auto">
<h1>Sign in</h1><form method="post" action="/dashboard/login">
<label for="token">Admin token</label><input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<p><button type="submit">Sign in</button></p></form>
<p class="muted">The token is <code>STEWRD_ADMIN_TOKEN</code>.</p></div>"#,
        error.map(|e| notice(e, true)).unwrap_or_default()
    )
}

async fn login(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(admin_token) = &state.config.admin_token else {
        return page(
            "Dashboard off",
            None,
            &notice(
                "The dashboard is off until STEWRD_ADMIN_TOKEN is set.",
                true,
            ),
        );
    };
    let presented = form.get("token").map(String::as_str).unwrap_or_default();
    let mut retry_after: Option<u64> = None;
    let (status, message) = match check_admin_token(&state, peer, presented) {
        Ok(()) => {
            let session = login::new_session(admin_token);
            return redirect_setting_cookie(&state, "/dashboard", Some(&session));
        }
        Err(AdminRefusal::Wait(wait)) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            retry_after = Some(seconds);
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many wrong tokens from this address: try again in {seconds} s."),
            )
        }
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            "That is not the admin token.".to_owned(),
        ),
    };
    let mut response = page("Sign in", None, &login_form(Some(&message)));
    *response.status_mut() = status;
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.into());
    }
    response
}

/// A redirect that signs the browser in (with a session) or out (`None`).
fn redirect_setting_cookie(state: &AppState, to: &str, session: Option<&str>) -> Response {
    // Behind a TLS-terminating proxy only the public URL says the browser uses HTTPS.
    let secure = state.config.public_url.starts_with("https://");
    let mut response = Redirect::to(to).into_response();
    if let Ok(value) = HeaderValue::from_str(&login::set_cookie(session, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    with_security_headers(response)
}

async fn logout(
    State(state): State<AppState>,
    operator: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = operator.refuses(&form) {
        return refused;
    }
    redirect_setting_cookie(&state, "/dashboard/login", None)
}

async fn projects(State(state): State<AppState>, operator: Operator) -> Response {
    render_projects(&state, &operator, "").await
}

async fn render_projects(state: &AppState, operator: &Operator, banner: &str) -> Response {
    let loaded = async {
        let client = state.pool.get().await?;
        Ok::<_, DbError>((
            list_projects(&client).await?,
            session_counts(&client).await?,
        ))
    };
    let (projects, counts) = match loaded.await {
        Ok(loaded) => loaded,
        Err(error) => return failure(error),
    };
    let statuses = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];
    let mut rows = String::new();
    for project in &projects {
        let count = |status: RunStatus| {
            counts
                .iter()
                .filter(|(id, s, _)| *id == project.id && *s == status)
                .map(|(_, _, n)| n)
                .sum::<i64>()
        };
        let cells: String = statuses
            .iter()
            .map(|s| format!("<td>{}</td>", count(*s)))
            .collect();
        let llm = match (project.llm.provider, project.llm.has_key) {
            (Some(provider), true) => format!(
                "{} · {}",
                provider,
                esc(project.llm.model.as_deref().unwrap_or(""))
            ),
            _ => "default".to_owned(),
        };
        rows.push_str(&format!(
            r#"<tr><td><a href="/dashboard/projects/{id}">{name}</a><div class="mono muted">{id}</div></td><td>{llm}</td>{cells}</tr>"#,
            id = project.id,
            name = esc(&project.name),
        ));
    }
    if projects.is_empty() {
        rows.push_str(r#"<tr><td colspan="7" class="muted">No projects yet.</td></tr>"#);
    }
    let body = format!(
        r#"{banner}<h1>Projects</h1>
<div class="card"><table><tr><th>Project</th><th>LLM</th><th>Queued</th><th>Running</th><th>Succeeded</th><th>Failed</th><th>Cancelled</th></tr>{rows}</table></div>
<div class="card"><h2>New project</h2><form method="post" action="/dashboard/projects" class="row">{csrf}
<div><label for="name">Name</label><input id="name" name="name" required maxlength="200"></div><button type="submit">Create</button></form></div>"#,
        csrf = csrf_field(&operator.csrf),
    );
    page("Projects", Some(&operator.csrf), &body)
}

async fn create_project(
    State(state): State<AppState>,
    operator: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = operator.refuses(&form) {
        return refused;
    }
    let name = match project_name(form.get("name").map(String::as_str).unwrap_or_default()) {
        Ok(name) => name.to_owned(),
        Err(why) => return render_projects(&state, &operator, &notice(why, true)).await,
    };
    match create_project_with_key(&state.pool, &name, &state.master_keys).await {
        Ok((project, key)) => {
            let banner = format!(
                r#"<div class="notice">Project <b>{}</b> created. Its API key is shown this once:<div class="secret" id="new-api-key">{}</div></div>"#,
                esc(&project.name),
                esc(key.secret.expose_secret())
            );
            render_projects(&state, &operator, &banner).await
        }
        Err(error) => failure(error),
    }
}

async fn project(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    match project_id(&id) {
        Some(id) => render_project(&state, &operator, id, "").await,
        None => failure(ApiError::not_found("project")),
    }
}

async fn render_project(
    state: &AppState,
    operator: &Operator,
    id: ProjectId,
    banner: &str,
) -> Response {
    let loaded = async {
        let client = state.pool.get().await?;
        let Some(project) = get_project(&client, id).await? else {
            return Ok(None);
        };
        let keys = list_api_keys(&client, id).await?;
        let sessions = list_sessions(&client, id, None, None, 25).await?;
        Ok::<_, DbError>(Some((project, keys, sessions)))
    };
    let (project, keys, sessions) = match loaded.await {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return failure(ApiError::not_found("project")),
        Err(error) => return failure(error),
    };
    let csrf = csrf_field(&operator.csrf);
    let default = &state.config.default_llm;
    let own = project.llm.has_key;
    let provider = project
        .llm
        .provider
        .filter(|_| own)
        .unwrap_or(default.provider);
    let model = project
        .llm
        .model
        .clone()
        .unwrap_or_else(|| default.model.clone());
    let key_state = if own {
        pill("set").replace(">set<", ">key set<")
    } else {
        r#"<span class="pill">no key</span>"#.to_owned()
    };
    let options: String = [("openai", "OpenAI"), ("openrouter", "OpenRouter")]
        .iter()
        .map(|(value, label)| {
            let selected = if provider.as_str() == *value {
                " selected"
            } else {
                ""
            };
            format!(r#"<option value="{value}"{selected}>{label}</option>"#)
        })
        .collect();
    let models: String = POPULAR_MODELS
        .iter()
        .map(|m| format!(r#"<option value="{m}">"#))
        .collect();
    let key_rows: String = keys
        .iter()
        .map(|key| {
            let action = match key.revoked_at {
                Some(at) => format!(r#"<span class="muted">revoked {}</span>"#, date(at)),
                None => format!(
                    r#"<form method="post" action="/dashboard/projects/{}/keys/{}/revoke">{csrf}<button class="danger" type="submit">Revoke</button></form>"#,
                    project.id, key.id
                ),
            };
            format!(r#"<tr><td class="mono">{}…</td><td>{}</td><td>{action}</td></tr>"#, esc(&key.display_prefix), date(key.created_at))
        })
        .collect();
    let session_rows: String = sessions
        .iter()
        .filter_map(|record| SessionOut::from_record(record, Detail::Summary).map(|s| (record, s)))
        .map(|(record, session)| {
            let run = record.latest_run();
            let duration = run
                .and_then(|r| Some((r.finished_at? - r.started_at?).as_seconds_f64()))
                .map(|s| format!("{s:.2} s"))
                .unwrap_or_else(|| "–".into());
            let tokens = session.usage.map(|u| u.total_tokens.to_string()).unwrap_or_else(|| "–".into());
            format!(
                r#"<tr><td><a class="mono" href="/dashboard/sessions/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{duration}</td><td>{tokens}</td><td>{}</td></tr>"#,
                pill(session.status.as_str()),
                esc(&session.model),
                date(session.created_at),
                id = session.id,
            )
        })
        .collect();
    let session_rows = if session_rows.is_empty() {
        r#"<tr><td colspan="6" class="muted">No sessions yet.</td></tr>"#.to_owned()
    } else {
        session_rows
    };
    let rate_limit = project
        .rate_limit_rpm
        .map(|n| n.to_string())
        .unwrap_or_default();
    let body = format!(
        r#"{banner}<p><a href="/dashboard">← Projects</a></p><h1>{name}</h1>
<div class="card" id="llm-configuration"><h2>LLM Configuration</h2>
<div class="grid"><div>Provider</div><div id="llm-provider">{provider_label}{default_note}</div><div>Model</div><div id="llm-model">{model}</div>
<div>API key</div><div id="llm-key">{key_state} {key_status}</div></div>
<p><button class="secondary" type="button" data-toggle="llm-edit" id="llm-edit-button">Edit</button></p>
<form id="llm-edit" class="hidden" method="post" action="/dashboard/projects/{id}/llm" autocomplete="off">{csrf}
<label for="provider">Provider</label><select id="provider" name="provider">{options}</select>
<label for="api_key">API key</label><input id="api_key" name="api_key" type="password" autocomplete="new-password" placeholder="{key_hint}">
<label for="model">Model</label><input id="model" name="model" list="models" value="{model}" required maxlength="200"><datalist id="models">{models}</datalist>
<p class="row"><button type="submit" id="llm-save">Save</button></p></form>
{remove}</div>
<div class="card"><h2>Webhook</h2><form method="post" action="/dashboard/projects/{id}/webhook" class="row">{csrf}
<div><label for="url">URL</label><input id="url" name="url" value="{webhook}" placeholder="https://example.com/hooks/stewrd"></div><button type="submit">Save</button></form>
<form method="post" action="/dashboard/projects/{id}/webhook/secret" style="margin-top:12px">{csrf}<button class="secondary" type="submit">Rotate signing secret</button>
<span class="muted">the current one keeps signing for 24 h</span></form></div>
<div class="card"><h2>Rate limit</h2><form method="post" action="/dashboard/projects/{id}/rate-limit" class="row">{csrf}
<div><label for="rpm">Requests per minute (empty: the default)</label><input id="rpm" name="requests_per_minute" type="number" min="1" value="{rate_limit}"></div><button type="submit">Save</button></form></div>
<div class="card"><h2>API keys</h2><table><tr><th>Key</th><th>Created</th><th></th></tr>{key_rows}</table>
<form method="post" action="/dashboard/projects/{id}/keys" style="margin-top:12px">{csrf}<button class="secondary" type="submit">Issue a new key</button></form></div>
<div class="card"><h2>Recent sessions</h2><table><tr><th>Session</th><th>Status</th><th>Model</th><th>Duration</th><th>Tokens</th><th>Created</th></tr>{session_rows}</table></div>"#,
        id = project.id,
        name = esc(&project.name),
        provider_label = match provider {
            Provider::OpenAi => "OpenAI",
            Provider::OpenRouter => "OpenRouter",
        },
        default_note = if own {
            ""
        } else {
            r#" <span class="muted">(the operator's default: no key of its own)</span>"#
        },
        model = esc(&model),
        key_status = pill(
            project
                .llm
                .key_status
                .map(|s| s.as_str())
                .unwrap_or("unchecked")
        ),
        key_hint = if own {
            "key set: leave empty to keep it"
        } else {
            "sk-…"
        },
        remove = if own || project.llm.provider.is_some() {
            format!(
                r#"<form method="post" action="/dashboard/projects/{}/llm/remove">{csrf}<button class="danger" type="submit">Remove configuration (use the default)</button></form>"#,
                project.id
            )
        } else {
            String::new()
        },
        webhook = esc(project.webhook_url.as_deref().unwrap_or("")),
    );
    page(&project.name, Some(&operator.csrf), &body)
}

/// Runs a change, then shows the project with its outcome.
async fn after_change(
    state: &AppState,
    operator: &Operator,
    id: ProjectId,
    outcome: Result<String, ApiError>,
) -> Response {
    let banner = match outcome {
        Ok(banner) => banner,
        Err(error) => notice(error.message(), true),
    };
    render_project(state, operator, id, &banner).await
}

macro_rules! form_action {
    ($name:ident, |$state:ident, $id:ident, $form:ident| $body:expr) => {
        async fn $name(
            State($state): State<AppState>,
            operator: Operator,
            Path(id): Path<String>,
            Form($form): Form<HashMap<String, String>>,
        ) -> Response {
            if let Some(refused) = operator.refuses(&$form) {
                return refused;
            }
            let Some($id) = project_id(&id) else {
                return failure(ApiError::not_found("project"));
            };
            let outcome: Result<String, ApiError> = async { $body }.await;
            after_change(&$state, &operator, $id, outcome).await
        }
    };
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|v| v.trim()).unwrap_or_default()
}

form_action!(save_llm, |state, id, form| {
    let api_key = Some(field(&form, "api_key")).filter(|k| !k.is_empty());
    let body = PutLlmIn::new(field(&form, "provider"), field(&form, "model"), api_key);
    update_llm(&state, id, body).await?;
    Ok(notice("LLM configuration saved.", false))
});

form_action!(delete_llm, |state, id, form| {
    let _ = &form;
    remove_llm(&state, id).await?;
    Ok(notice(
        "LLM configuration removed: the default applies.",
        false,
    ))
});

form_action!(save_webhook, |state, id, form| {
    let url = match field(&form, "url") {
        "" => None,
        text => Some(validated_webhook_url(&state, "url", text).await?),
    };
    let client = state.pool.get().await?;
    set_webhook_url(&client, id, url.as_deref()).await?;
    Ok(notice("Webhook URL saved.", false))
});

form_action!(rotate_secret, |state, id, form| {
    let _ = &form;
    let secret = generate_secret();
    let encrypted = state.master_keys.encrypt(
        secret.expose_secret().as_bytes(),
        id,
        SecretField::WebhookSecret,
    );
    let client = state.pool.get().await?;
    rotate_webhook_secret(
        &client,
        id,
        &encrypted,
        std::time::Duration::from_secs(24 * 3600),
    )
    .await?;
    Ok(format!(
        r#"<div class="notice">New signing secret, shown this once:<div class="secret">{}</div></div>"#,
        esc(secret.expose_secret())
    ))
});

form_action!(save_rate_limit, |state, id, form| {
    let rpm = match field(&form, "requests_per_minute") {
        "" => None,
        text => Some(
            text.parse::<i32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "invalid_value",
                        "requests_per_minute",
                        "requests per minute must be a whole number of at least 1",
                    )
                })?,
        ),
    };
    let client = state.pool.get().await?;
    set_rate_limit(&client, id, rpm).await?;
    Ok(notice("Rate limit saved.", false))
});

form_action!(issue_key, |state, id, form| {
    let _ = &form;
    let key = generate_api_key();
    let client = state.pool.get().await?;
    insert_api_key(&client, id, &key).await?;
    state.auth_cache.forget_project(id);
    Ok(format!(
        r#"<div class="notice">New API key, shown this once:<div class="secret">{}</div></div>"#,
        esc(key.secret.expose_secret())
    ))
});

async fn revoke_key(
    State(state): State<AppState>,
    operator: Operator,
    Path((id, key_id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = operator.refuses(&form) {
        return refused;
    }
    let Some(id) = project_id(&id) else {
        return failure(ApiError::not_found("project"));
    };
    let outcome = async {
        let key_id: ApiKeyId = key_id.parse().map_err(|_| ApiError::not_found("API key"))?;
        let client = state.pool.get().await?;
        if !revoke_api_key(&client, Some(id), key_id).await? {
            return Err(ApiError::not_found("API key"));
        }
        state.auth_cache.forget_project(id);
        Ok(notice("API key revoked.", false))
    };
    after_change(&state, &operator, id, outcome.await).await
}

async fn session(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let Ok(session_id) = id.parse::<SessionId>() else {
        return failure(ApiError::not_found("session"));
    };
    let loaded = async {
        let client = state.pool.get().await?;
        let Some(project_id) = session_project(&client, session_id).await? else {
            return Ok(None);
        };
        let Some(record) = get_session(&client, project_id, session_id).await? else {
            return Ok(None);
        };
        let deliveries = list_deliveries(&client, project_id, session_id).await?;
        Ok::<_, DbError>(Some((project_id, record, deliveries)))
    };
    let (project_id, record, deliveries) = match loaded.await {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return failure(ApiError::not_found("session")),
        Err(error) => return failure(error),
    };
    let Some(view) = SessionOut::from_record(&record, Detail::Full) else {
        return failure(ApiError::not_found("session"));
    };
    let messages: String = view
        .messages
        .iter()
        .flatten()
        .map(|m| {
            format!(
                r#"<div class="message {role}"><div class="muted">{role} · {}</div>{}</div>"#,
                date(m.created_at),
                esc(&m.content),
                role = m.role
            )
        })
        .collect();
    let runs: String = record
        .runs
        .iter()
        .map(|run| {
            format!(
                r#"<tr><td class="mono">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                run.id,
                pill(run.status.as_str()),
                run.attempts,
                run.usage
                    .map(|u| u.total_tokens.to_string())
                    .unwrap_or_else(|| "–".into()),
                esc(run.error_message.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let attempts: String = deliveries
        .iter()
        .map(|d| {
            format!(
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                date(d.attempted_at),
                d.kind,
                esc(&d.url),
                d.status_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "–".into()),
                esc(d.error.as_deref().unwrap_or("")),
                d.next_attempt_at.map(date).unwrap_or_else(|| "–".into()),
            )
        })
        .collect();
    let attempts = if attempts.is_empty() {
        r#"<tr><td colspan="6" class="muted">No webhook deliveries.</td></tr>"#.to_owned()
    } else {
        attempts
    };
    let body = format!(
        r#"<p><a href="/dashboard/projects/{project_id}">← Project</a></p><h1 class="mono">{id}</h1>
<div class="card"><div class="grid"><div>Status</div><div id="session-status">{status}</div><div>Provider</div><div>{provider} · {model}</div><div>Key</div><div>{key_source}</div></div></div>
<div class="card"><h2>Messages</h2>{messages}</div>
<div class="card"><h2>Runs</h2><table><tr><th>Run</th><th>Status</th><th>Attempts</th><th>Tokens</th><th>Error</th></tr>{runs}</table></div>
<div class="card"><h2>Webhook deliveries</h2><table><tr><th>Time</th><th>Event</th><th>URL</th><th>Status</th><th>Error</th><th>Next try</th></tr>{attempts}</table></div>"#,
        id = view.id,
        status = pill(view.status.as_str()),
        provider = view.provider,
        model = esc(&view.model),
        key_source = view.key_source,
    );
    page("Session", Some(&operator.csrf), &body)
}
