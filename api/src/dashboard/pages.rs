//! The dashboard's pages: sign-in, projects, a project (its LLM configuration,
//! webhook, limits, usage, keys and sessions) and a session.

use axum::{
    extract::{Path, State},
    response::Response,
};
use secrecy::{ExposeSecret, SecretString};
use stewrd_shared::{
    db::{
        DbError,
        api_key::{ApiKeyRow, list_api_keys},
        file::{FileFilter, FileRow, get_any_file, list_files, stored_bytes},
        project::{get_project, list_projects},
        session::{SessionRecord, get_session, list_sessions, session_counts, session_project},
        step::StepRow,
        usage::usage_report,
        webhook::list_deliveries,
    },
    domain::{
        approval::Verdict,
        browser::Action,
        file::FileId,
        id::{ProjectId, SessionId},
        mcp::McpServer,
        model::{Provider, RunStatus},
    },
    view::{Detail, SessionOut, StepOut},
};

use super::{
    Operator, ProjectPath, date, failure,
    html::{csrf_field, esc, notice, page, pill},
    tenant::{CHART_DAYS, limits_card, usage_card},
};
use crate::{
    error::ApiError,
    routes::{project::ProjectOut, usage::UsageQuery},
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

pub(super) async fn login_page() -> Response {
    page("Sign in", None, &login_form(None))
}

pub(super) fn login_form(error: Option<&str>) -> String {
    format!(
        r#"{}<div class="card" style="max-width:420px;margin:60px auto">
<h1>Sign in</h1><form method="post" action="/dashboard/login">
<label for="token">Admin token</label><input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<p><button type="submit">Sign in</button></p></form>
<p class="muted">The token is <code>STEWRD_ADMIN_TOKEN</code>.</p></div>"#,
        error.map(|e| notice(e, true)).unwrap_or_default()
    )
}

pub(super) async fn projects(State(state): State<AppState>, operator: Operator) -> Response {
    projects_page(&state, &operator, "").await
}

/// Every project with its sessions by status, and the new-project form.
pub(super) async fn projects_page(state: &AppState, operator: &Operator, banner: &str) -> Response {
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
    let mut rows = String::new();
    for project in projects {
        let id = project.id;
        let count = |status: RunStatus| {
            counts
                .iter()
                .filter(|(project, s, _)| *project == id && *s == status)
                .map(|(_, _, n)| n)
                .sum::<i64>()
        };
        let cells: String = RunStatus::ALL
            .iter()
            .map(|s| format!("<td>{}</td>", count(*s)))
            .collect();
        let view = ProjectOut::new(project, &state.config.default_llm);
        let llm = if view.llm.has_provider_key {
            format!("{} · {}", view.llm.provider, esc(&view.llm.model))
        } else {
            "default".to_owned()
        };
        rows.push_str(&format!(
            r#"<tr><td><a href="/dashboard/projects/{id}">{name}</a><div class="mono muted">{id}</div></td><td>{llm}</td>{cells}</tr>"#,
            name = esc(&view.name),
        ));
    }
    if rows.is_empty() {
        rows.push_str(r#"<tr><td colspan="7" class="muted">No projects yet.</td></tr>"#);
    }
    let headers: String = RunStatus::ALL
        .iter()
        .map(|s| format!("<th>{}</th>", capitalized(s.as_str())))
        .collect();
    let body = format!(
        r#"{banner}<h1>Projects</h1>
<div class="card"><table><tr><th>Project</th><th>LLM</th>{headers}</tr>{rows}</table></div>
<div class="card"><h2>New project</h2><form method="post" action="/dashboard/projects" class="row">{csrf}
<div><label for="name">Name</label><input id="name" name="name" required maxlength="200"></div><button type="submit">Create</button></form></div>"#,
        csrf = csrf_field(&operator.csrf),
    );
    page("Projects", Some(&operator.csrf), &body)
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub(super) async fn project(
    State(state): State<AppState>,
    operator: Operator,
    ProjectPath(id): ProjectPath,
) -> Response {
    project_page(&state, &operator, id, "").await
}

/// One project: LLM configuration, webhook, limits, usage, keys, recent sessions.
pub(super) async fn project_page(
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
        let chart = UsageQuery::last_days(CHART_DAYS);
        let usage = usage_report(&client, id, chart.from, chart.to, chart.group_by).await?;
        let stored = stored_bytes(&client, id).await?;
        Ok::<_, DbError>(Some((project, keys, sessions, (usage, chart.to, stored))))
    };
    let (project, keys, sessions, (usage, today, stored)) = match loaded.await {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return failure(ApiError::not_found("project")),
        Err(error) => return failure(error),
    };
    let has_choice = project.llm.provider.is_some();
    let mcp = mcp_card(&project.mcp_servers);
    let view = ProjectOut::new(project, &state.config.default_llm);
    let csrf = csrf_field(&operator.csrf);
    let body = format!(
        r#"{banner}<p><a href="/dashboard">← Projects</a></p><h1>{name}</h1>
{llm}{webhook}{mcp}{limits}{usage}{storage}{keys}{sessions}"#,
        name = esc(&view.name),
        llm = llm_card(&view, has_choice, &csrf),
        webhook = webhook_card(&view, &csrf),
        limits = limits_card(&view, &csrf),
        usage = usage_card(&usage, today, &view.limits),
        storage = storage_card(stored, state.config.files.quota_bytes),
        keys = keys_card(view.id, &keys, &csrf),
        sessions = sessions_card(&sessions),
    );
    page(&view.name, Some(&operator.csrf), &body)
}

/// The project's MCP servers: names, URLs and the names of their headers
/// (the values are secrets, never shown).
fn mcp_card(servers: &[McpServer]) -> String {
    if servers.is_empty() {
        return r#"<div class="card"><h2>MCP servers</h2><p class="muted">None connected (<code>PUT /v1/project/mcp_servers</code>).</p></div>"#.into();
    }
    let rows: String = servers
        .iter()
        .map(|server| {
            format!(
                r#"<tr><td class="mono">{name}</td><td class="mono">{url}</td><td class="mono">{headers}</td><td>{tools}</td><td>{timeout} s</td><td>{approval}</td></tr>"#,
                name = esc(&server.name),
                url = esc(&server.url),
                headers = esc(&server.headers.join(", ")),
                tools = server
                    .allowed_tools
                    .as_ref()
                    .map_or_else(|| "all".into(), |tools| esc(&tools.join(", "))),
                timeout = server.timeout_secs,
                approval = server.require_approval.as_str(),
            )
        })
        .collect();
    format!(
        r#"<div class="card"><h2>MCP servers</h2><table id="mcp-servers"><tr><th>Name</th><th>URL</th><th>Headers</th><th>Tools</th><th>Timeout</th><th>Approval</th></tr>{rows}</table></div>"#
    )
}

/// The bytes the project's files hold, against its quota.
fn storage_card(stored: i64, quota: u64) -> String {
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let share = if quota == 0 {
        0.0
    } else {
        stored as f64 / quota as f64 * 100.0
    };
    format!(
        r#"<div class="card"><h2>Files</h2><p id="storage">{used:.1} MiB of {quota:.0} MiB stored ({share:.0}%)</p></div>"#,
        used = mib(stored as f64),
        quota = mib(quota as f64),
    )
}

fn llm_card(view: &ProjectOut, has_choice: bool, csrf: &str) -> String {
    let llm = &view.llm;
    let own = llm.has_provider_key;
    let key_state = if own {
        pill("set").replace(">set<", ">key set<")
    } else {
        r#"<span class="pill">no key</span>"#.to_owned()
    };
    let options: String = [("openai", "OpenAI"), ("openrouter", "OpenRouter")]
        .iter()
        .map(|(value, label)| {
            let selected = if llm.provider.as_str() == *value {
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
    let remove = if own || has_choice {
        format!(
            r#"<form method="post" action="/dashboard/projects/{}/llm/remove">{csrf}<button class="danger" type="submit">Remove configuration (use the default)</button></form>"#,
            view.id
        )
    } else {
        String::new()
    };
    format!(
        r#"<div class="card" id="llm-configuration"><h2>LLM Configuration</h2>
<div class="grid"><div>Provider</div><div id="llm-provider">{provider_label}{default_note}</div><div>Model</div><div id="llm-model">{model}</div>
<div>API key</div><div id="llm-key">{key_state} {key_status}</div></div>
<p><button class="secondary" type="button" data-toggle="llm-edit" id="llm-edit-button">Edit</button></p>
<form id="llm-edit" class="hidden" method="post" action="/dashboard/projects/{id}/llm" autocomplete="off">{csrf}
<label for="provider">Provider</label><select id="provider" name="provider">{options}</select>
<label for="api_key">API key</label><input id="api_key" name="api_key" type="password" autocomplete="new-password" placeholder="{key_hint}">
<label for="model">Model</label><input id="model" name="model" list="models" value="{model}" required maxlength="200"><datalist id="models">{models}</datalist>
<p class="row"><button type="submit" id="llm-save">Save</button></p></form>
{remove}</div>
"#,
        id = view.id,
        provider_label = match llm.provider {
            Provider::OpenAi => "OpenAI",
            Provider::OpenRouter => "OpenRouter",
        },
        default_note = if own {
            ""
        } else {
            r#" <span class="muted">(the operator's default: no key of its own)</span>"#
        },
        model = esc(&llm.model),
        key_status = pill(llm.key_status.as_str()),
        key_hint = if own {
            "key set: leave empty to keep it"
        } else {
            "sk-…"
        },
    )
}

fn webhook_card(view: &ProjectOut, csrf: &str) -> String {
    format!(
        r#"<div class="card"><h2>Webhook</h2><form method="post" action="/dashboard/projects/{id}/webhook" class="row">{csrf}
<div><label for="url">URL</label><input id="url" name="url" value="{url}" placeholder="https://example.com/hooks/stewrd"></div><button type="submit">Save</button></form>
<form method="post" action="/dashboard/projects/{id}/webhook/secret" style="margin-top:12px">{csrf}<button class="secondary" type="submit">Rotate signing secret</button>
<span class="muted">the current one keeps signing for 24 h</span></form></div>
"#,
        id = view.id,
        url = esc(view.webhook.url.as_deref().unwrap_or("")),
    )
}

fn keys_card(id: ProjectId, keys: &[ApiKeyRow], csrf: &str) -> String {
    let rows: String = keys
        .iter()
        .map(|key| {
            let action = match key.revoked_at {
                Some(at) => format!(r#"<span class="muted">revoked {}</span>"#, date(at)),
                None => format!(
                    r#"<form method="post" action="/dashboard/projects/{id}/keys/{}/revoke">{csrf}<button class="danger" type="submit">Revoke</button></form>"#,
                    key.id
                ),
            };
            format!(
                r#"<tr><td class="mono">{}…</td><td>{}</td><td>{action}</td></tr>"#,
                esc(&key.display_prefix),
                date(key.created_at)
            )
        })
        .collect();
    format!(
        r#"<div class="card"><h2>API keys</h2><table><tr><th>Key</th><th>Created</th><th></th></tr>{rows}</table>
<form method="post" action="/dashboard/projects/{id}/keys" style="margin-top:12px">{csrf}<button class="secondary" type="submit">Issue a new key</button></form></div>
"#
    )
}

fn sessions_card(sessions: &[SessionRecord]) -> String {
    let rows: String = sessions
        .iter()
        .filter_map(|record| SessionOut::from_record(record, Detail::Summary).map(|s| (record, s)))
        .map(|(record, session)| {
            let run = record.latest_run();
            let duration = run
                .and_then(|r| Some((r.finished_at? - r.started_at?).as_seconds_f64()))
                .map(|s| format!("{s:.2} s"))
                .unwrap_or_else(|| "–".into());
            let tokens = session
                .usage
                .map(|u| u.total_tokens.to_string())
                .unwrap_or_else(|| "–".into());
            format!(
                r#"<tr><td><a class="mono" href="/dashboard/sessions/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{duration}</td><td>{tokens}</td><td>{}</td></tr>"#,
                pill(session.status.as_str()),
                esc(&session.model),
                date(session.created_at),
                id = session.id,
            )
        })
        .collect();
    let rows = if rows.is_empty() {
        r#"<tr><td colspan="6" class="muted">No sessions yet.</td></tr>"#.to_owned()
    } else {
        rows
    };
    format!(
        r#"<div class="card"><h2>Recent sessions</h2><table><tr><th>Session</th><th>Status</th><th>Model</th><th>Duration</th><th>Tokens</th><th>Created</th></tr>{rows}</table></div>"#
    )
}

/// A banner showing a new secret this once: `intro` (HTML), then the secret.
pub(super) fn shown_once(intro: &str, secret: &SecretString, id: Option<&str>) -> String {
    let id = id.map(|id| format!(r#" id="{id}""#)).unwrap_or_default();
    format!(
        r#"<div class="notice">{intro}:<div class="secret"{id}>{}</div></div>"#,
        esc(secret.expose_secret())
    )
}

pub(super) async fn session(
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
        let filter = FileFilter {
            purpose: None,
            session: Some(session_id),
        };
        let files = list_files(&client, project_id, filter, None, 100).await?;
        Ok::<_, DbError>(Some((project_id, record, (deliveries, files))))
    };
    let (project_id, record, (deliveries, files)) = match loaded.await {
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
            // A message that only calls tools shows the calls; a tool result, its call.
            let calls: String = m
                .tool_calls
                .iter()
                .flat_map(|calls| calls.as_array().into_iter().flatten())
                .map(|call| {
                    format!(
                        r#"<div class="mono">→ {}({})</div>"#,
                        esc(call["function"]["name"].as_str().unwrap_or_default()),
                        esc(call["function"]["arguments"].as_str().unwrap_or_default()),
                    )
                })
                .collect();
            let answering = m
                .tool_call_id
                .as_deref()
                .map(|id| format!(" · {}", esc(id)))
                .unwrap_or_default();
            format!(
                r#"<div class="message {role}"><div class="muted">{role}{answering} · {}</div>{}{calls}</div>"#,
                date(m.created_at),
                esc(m.content.as_deref().unwrap_or_default()),
                role = m.role
            )
        })
        .collect();
    let steps = steps_table(&record.steps);
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
{approvals}<div class="card"><h2>Messages</h2>{messages}</div>{live}
<div class="card"><h2>Runs</h2><table><tr><th>Run</th><th>Status</th><th>Attempts</th><th>Tokens</th><th>Error</th></tr>{runs}</table></div>
{steps}{files}
<div class="card"><h2>Webhook deliveries</h2><table><tr><th>Time</th><th>Event</th><th>URL</th><th>Status</th><th>Error</th><th>Next try</th></tr>{attempts}</table></div>"#,
        id = view.id,
        approvals = approvals_card(&view, &csrf_field(&operator.csrf)),
        files = files_card(&files),
        live = if view.status.is_final() {
            String::new()
        } else {
            format!(
                r#"<div class="card"><h2>Live answer</h2><div id="live" class="message assistant" data-events="/dashboard/sessions/{}/events"></div></div>"#,
                view.id
            )
        },
        status = pill(view.status.as_str()),
        provider = view.provider,
        model = esc(&view.model),
        key_source = view.key_source,
    );
    page("Session", Some(&operator.csrf), &body)
}

/// The calls a paused run waits to have approved, with one form deciding
/// them all (an approval quotes each call's `arguments_sha256`, as the API's).
fn approvals_card(view: &SessionOut, csrf: &str) -> String {
    let Some(action) = view
        .required_action
        .as_ref()
        .filter(|a| a["type"] == "approve_tool_calls")
    else {
        return String::new();
    };
    let calls = action["tool_calls"].as_array().cloned().unwrap_or_default();
    let text =
        |call: &serde_json::Value, field: &str| esc(call[field].as_str().unwrap_or_default());
    let rows: String = calls
        .iter()
        .map(|call| {
            format!(
                r#"<tr><td class="mono">{}</td><td class="mono">{}</td><td>{}</td><td class="mono">{}</td></tr>"#,
                text(call, "id"),
                text(call, "name"),
                text(call, "executor"),
                text(call, "arguments"),
            )
        })
        .collect();
    let fields: String = calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            format!(
                r#"<input type="hidden" name="call.{i}" value="{}"><input type="hidden" name="sha256.{i}" value="{}">"#,
                text(call, "id"),
                text(call, "arguments_sha256"),
            )
        })
        .collect();
    format!(
        r#"<div class="card"><h2>Waiting for approval</h2><table id="pending-approvals"><tr><th>Call</th><th>Tool</th><th>Executor</th><th>Arguments</th></tr>{rows}</table>
<form method="post" action="/dashboard/sessions/{id}/approvals" class="row" style="margin-top:12px">{csrf}{fields}
<div><label for="reason">Reason</label><input id="reason" name="reason" placeholder="given to the model with a denial"></div>
<button type="submit" name="decision" value="approve">Approve</button><button class="secondary" type="submit" name="decision" value="deny">Deny</button></form></div>
"#,
        id = view.id,
    )
}

/// The session's files (inputs of its messages, and artifacts), each with a
/// download link.
fn files_card(files: &[FileRow]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let rows: String = files
        .iter()
        .map(|file| {
            format!(
                r#"<tr><td><a href="/dashboard/files/{id}/content">{name}</a></td><td>{purpose}</td><td>{kind}</td><td>{bytes}</td><td>{at}</td></tr>"#,
                id = file.id,
                name = esc(&file.filename),
                purpose = file.purpose.as_str(),
                kind = esc(&file.content_type),
                bytes = file.bytes,
                at = date(file.created_at),
            )
        })
        .collect();
    format!(
        r#"<div class="card"><h2>Files</h2><table><tr><th>File</th><th>Purpose</th><th>Type</th><th>Bytes</th><th>Created</th></tr>{rows}</table></div>"#
    )
}

/// Longest tool output shown in the steps table.
const SHOWN_OUTPUT_CHARS: usize = 200;

/// The committed steps of the session's agent runs (nothing for plain runs).
fn steps_table(steps: &[StepRow]) -> String {
    if steps
        .iter()
        .all(|s| s.model().is_some_and(|m| m.tool_calls.is_none()))
    {
        return String::new();
    }
    let rows: String = steps
        .iter()
        .map(|row| {
            let step = StepOut::of_step(row);
            let what = step.model.or(step.name).unwrap_or_default();
            let output: String = step
                .output
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(SHOWN_OUTPUT_CHARS)
                .collect();
            format!(
                r#"<tr><td class="mono">{run}</td><td>{index}</td><td>{kind}</td><td class="mono">{what}</td><td>{executor}</td><td>{status}</td><td>{approval}</td><td>{attempts}</td><td>{tokens}</td><td>{output}{files}</td></tr>"#,
                run = row.run_id,
                index = step.index,
                kind = step.kind.as_str(),
                what = esc(&what),
                executor = match (step.executor, &step.server) {
                    (Some(executor), Some(server)) => format!("{} · {}", executor.as_str(), esc(server)),
                    (Some(executor), None) => executor.as_str().to_owned(),
                    (None, _) => "–".to_owned(),
                },
                status = pill(step.status.as_str()),
                approval = step.approval.as_ref().map_or_else(
                    || "–".to_owned(),
                    |a| format!(
                        "{} by {}{}",
                        match a.decision {
                            Verdict::Approved => "approved",
                            Verdict::Denied => "denied",
                        },
                        esc(&a.by),
                        a.reason
                            .as_deref()
                            .map(|r| format!(": {}", esc(r)))
                            .unwrap_or_default(),
                    ),
                ),
                attempts = step.attempts.unwrap_or(0),
                tokens = step
                    .usage
                    .map_or_else(|| "–".into(), |u| u.total_tokens.to_string()),
                output = esc(&output),
                files = step_files(row),
            )
        })
        .collect();
    format!(
        r#"<div class="card"><h2>Steps</h2><table><tr><th>Run</th><th>#</th><th>Type</th><th>Model or tool</th><th>Executor</th><th>Status</th><th>Approval</th><th>Attempts</th><th>Tokens</th><th>Output</th></tr>{rows}</table></div>"#
    )
}

/// The files a tool step made: a browser screenshot shown as the image it
/// is, any other file as a link.
fn step_files(row: &StepRow) -> String {
    let Some(tool) = row.tool() else {
        return String::new();
    };
    let screenshot = tool.call.name == Action::Screenshot.name();
    tool.files
        .iter()
        .map(|id| {
            if screenshot {
                format!(
                    r#"<div><a href="/dashboard/files/{id}/content"><img class="screenshot" src="/dashboard/files/{id}/content" alt="screenshot {id}" style="max-width:320px;border:1px solid #ddd"></a></div>"#
                )
            } else {
                format!(r#"<div><a class="mono" href="/dashboard/files/{id}/content">{id}</a></div>"#)
            }
        })
        .collect()
}

/// A file's bytes, for the operator (any project's).
pub(super) async fn file_content(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<FileId>() else {
        return failure(ApiError::not_found("file"));
    };
    let Some(files) = &state.files else {
        return failure(ApiError::not_found("file"));
    };
    let found = async {
        let client = state.pool.get().await?;
        get_any_file(&client, id).await
    };
    let row = match found.await {
        Ok(Some(row)) => row,
        Ok(None) => return failure(ApiError::not_found("file")),
        Err(error) => return failure(error),
    };
    crate::routes::files::download(files, &row, &headers)
        .await
        .unwrap_or_else(failure)
}
