//! The browser tool, as a worker makes it: each action is asked of `stewrd
//! browser-host` (the browsers never run here, beside the master keys), the
//! state the host gives back is sealed and saved under the run's lease before
//! the step commits, and a run whose browser is gone (another worker's
//! claim, a host restarted) gets a new one with that state.
//!
//! A crash costs at most one step: an action that only reads (navigate,
//! snapshot, screenshot) cut off is made again; one that acts (click, type,
//! select, press, back) is marked sent before it leaves (`Toolbox::prepare`),
//! and, cut off by a crash of the worker or of the host, gives the model
//! "the outcome of this action is unknown" instead of being made twice.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::Value;
use stewrd_shared::{
    db::{browser as store, run::ClaimedRun, step::Lease},
    domain::{
        agent::{Builtin, ToolCall, error_output},
        browser::{Action, ActionReply, ActionRequest, HostRefusal, OpenRequest},
        id::RunId,
        model::Outcome,
    },
    runtime::config::BrowserAccess,
    secrets::crypto::SecretField,
};

use super::{Answer, artifact};
use crate::Worker;

/// Attempts of a request the host did not answer (as an unavailable
/// provider's calls are retried, with backoff).
const ATTEMPTS: i32 = 4;
/// How long a run that found every browser taken waits before it asks again.
const BUSY_WAIT: Duration = Duration::from_secs(1);
/// Past the host's own action deadline: its answer, not ours, says why.
const SLACK: Duration = Duration::from_secs(15);

/// The host's client, when one is configured.
pub(crate) struct Browsers {
    client: reqwest::Client,
    access: BrowserAccess,
}

impl Browsers {
    pub(crate) fn new(access: BrowserAccess) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self { client, access })
    }

    /// `/v1/browsers` on the host, then `tail` (`/{run}`, `/{run}/actions`).
    fn url(&self, tail: &str) -> String {
        let base = self.access.url.as_str().trim_end_matches('/');
        format!("{base}/v1/browsers{tail}")
    }

    /// Closes `run`'s browser (none open is no error).
    async fn close(&self, run: RunId) -> Result<reqwest::Response, reqwest::Error> {
        self.request(reqwest::Method::DELETE, self.url(&format!("/{run}")))
            .timeout(Duration::from_secs(10))
            .send()
            .await
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(self.access.token.expose_secret())
    }
}

/// Why a run's browser could not be opened.
enum Unopened {
    /// Every browser of the host is taken: the step waits and is tried later.
    Busy,
    /// No host, or one that does not answer: the run fails (`browser_unavailable`).
    Unavailable(String),
}

/// Whether the run asks for the browser.
pub(crate) fn asked_for(run: &ClaimedRun) -> bool {
    run.request
        .agent
        .tools
        .builtins
        .iter()
        .any(|b| matches!(b, Builtin::Browser { .. }))
}

/// Opens the run's browser, waiting (its claim kept, nothing of the step
/// sent) while every browser of the host is taken; the error is why the run
/// fails (`browser_unavailable`).
pub(crate) async fn open_when_free(worker: &Worker, run: &ClaimedRun) -> Result<(), String> {
    let mut waited = false;
    // Read once: only this run's own actions change it.
    let state = saved_state(worker, run).await;
    loop {
        match open(worker, run, state.as_ref()).await {
            Ok(()) => return Ok(()),
            Err(Unopened::Unavailable(why)) => return Err(why),
            Err(Unopened::Busy) => {
                if !waited {
                    tracing::info!("every browser of the host is in use; the step waits for one");
                    waited = true;
                }
                tokio::time::sleep(BUSY_WAIT).await;
            }
        }
    }
}

/// Makes sure the run's browser is open on the host, restoring its saved
/// state into a new one.
async fn open(worker: &Worker, run: &ClaimedRun, state: Option<&Value>) -> Result<(), Unopened> {
    let Some(browsers) = &worker.browsers else {
        return Err(Unopened::Unavailable(
            "the run asks for the browser and this server has no browser host \
             (STEWRD_BROWSER_HOST_URL)"
                .into(),
        ));
    };
    let body = OpenRequest {
        state: state.cloned(),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = browsers
            .request(reqwest::Method::PUT, browsers.url(&format!("/{}", run.id)))
            .timeout(Duration::from_secs(60))
            .json(&body)
            .send()
            .await;
        let why = match sent {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) => {
                let status = answer.status();
                let refusal = answer.json::<HostRefusal>().await.ok();
                match refusal {
                    Some(r) if r.error == "busy" => return Err(Unopened::Busy),
                    Some(r) => format!(
                        "the browser host answered {}: {}",
                        status.as_u16(),
                        r.message
                    ),
                    None => format!("the browser host answered {}", status.as_u16()),
                }
            }
            Err(error) => format!("the browser host did not answer ({})", kind_of(&error)),
        };
        if attempt >= ATTEMPTS {
            return Err(Unopened::Unavailable(format!("{why}, {attempt} attempts")));
        }
        tracing::warn!(attempt, "{why}; trying again");
        tokio::time::sleep(backoff(worker, attempt)).await;
    }
}

/// One action of the browser tool.
pub(super) async fn call(
    worker: &Worker,
    run: &ClaimedRun,
    call: &ToolCall,
    arguments: Value,
) -> Answer {
    let Some(browsers) = &worker.browsers else {
        return Answer::failed("this server has no browser host", 0);
    };
    let Some(action) = Action::from_name(&call.name) else {
        return Answer::failed(&format!("there is no browser action `{}`", call.name), 0);
    };
    let request = ActionRequest { action, arguments };
    // Attempts of the action itself; opening a browser again (the host had
    // none for the run: nothing was made) is bounded apart.
    let (mut attempt, mut reopened) = (0, 0);
    let mut last_why = "the browser host did not answer".to_owned();
    loop {
        attempt += 1;
        let sent = browsers
            .request(
                reqwest::Method::POST,
                browsers.url(&format!("/{}/actions", run.id)),
            )
            .timeout(worker.config.worker.lease.max(Duration::from_secs(30)) + SLACK)
            .json(&request)
            .send()
            .await;
        let reply = match sent {
            Ok(answer) if answer.status() == StatusCode::NOT_FOUND => {
                // No browser there (the host restarted or closed it, or this
                // claim is another worker's): nothing was made; open one
                // (with the run's state) and ask again.
                attempt -= 1;
                reopened += 1;
                if reopened > ATTEMPTS {
                    return Answer::failed(&last_why, attempt);
                }
                match open_when_free(worker, run).await {
                    Ok(()) => continue,
                    Err(why) => return Answer::failed(&why, attempt),
                }
            }
            Ok(answer) if answer.status().is_success() => answer.json::<ActionReply>().await.ok(),
            Ok(_) | Err(_) => None,
        };
        let lost = reply.as_ref().is_none_or(|r| r.lost);
        if lost && !action.only_reads() {
            return unknown("the browser or its host stopped during the action", attempt);
        }
        if lost {
            if let Some(reply) = reply {
                last_why = reply.text;
            }
            if attempt >= ATTEMPTS {
                return Answer::failed(&format!("{last_why} ({attempt} attempts)"), attempt);
            }
            tokio::time::sleep(backoff(worker, attempt)).await;
            continue;
        }
        let Some(reply) = reply else {
            return Answer::failed(&last_why, attempt);
        };
        return answered(worker, run, call, reply, attempt).await;
    }
}

/// What the model gets of a host's answer; its state saved first.
async fn answered(
    worker: &Worker,
    run: &ClaimedRun,
    call: &ToolCall,
    reply: ActionReply,
    attempts: i32,
) -> Answer {
    if let Some(state) = &reply.state {
        save_state(worker, run, state).await;
    }
    if reply.failed {
        return Answer::failed(&reply.text, attempts);
    }
    let Some(png) = reply.png.as_deref() else {
        return Answer::Output {
            text: reply.text,
            outcome: Outcome::Succeeded,
            attempts,
            files: Vec::new(),
        };
    };
    let Ok(png) = STANDARD.decode(png) else {
        return Answer::failed("the screenshot could not be read", attempts);
    };
    match artifact::keep(worker, run, call, 0, "screenshot.png", png).await {
        Ok(file) => Answer::Output {
            text: artifact::described(&file),
            outcome: Outcome::Succeeded,
            attempts,
            files: vec![file.id],
        },
        Err(why) => Answer::failed(
            &format!("the screenshot could not be kept: {why}"),
            attempts,
        ),
    }
}

/// The run's state as its last browser left it, opened for the host.
async fn saved_state(worker: &Worker, run: &ClaimedRun) -> Option<Value> {
    let run_id = run.id;
    let sealed = worker
        .db(|client| async move { store::saved_state(&client, run_id).await })
        .await
        .ok()
        .flatten()?;
    let opened = worker
        .master_keys
        .decrypt(&sealed, run.project_id, SecretField::BrowserState)
        .ok()?;
    serde_json::from_slice(&opened).ok()
}

/// Seals and saves the browser's state under the run's lease (a state that
/// cannot be saved leaves the last one: the next browser is a step behind).
async fn save_state(worker: &Worker, run: &ClaimedRun, state: &Value) {
    let plain = serde_json::to_vec(state).unwrap_or_default();
    let sealed = worker
        .master_keys
        .encrypt(&plain, run.project_id, SecretField::BrowserState);
    let lease = Lease {
        run_id: run.id,
        worker: worker.id,
        attempt: run.lease.attempt,
    };
    let saved = worker
        .db(|client| {
            let sealed = &sealed;
            async move { store::save_state(&client, lease, sealed).await }
        })
        .await;
    if let Err(error) = saved {
        tracing::warn!(%error, "cannot save the browser's state");
    }
}

/// Closes the run's browser and forgets its state: the run is final.
pub(crate) async fn ended(worker: &Worker, run: &ClaimedRun) {
    if !asked_for(run) {
        return;
    }
    if let Some(browsers) = &worker.browsers
        && browsers.close(run.id).await.is_err()
    {
        tracing::warn!("cannot close the run's browser; the host closes it when idle");
    }
    let run_id = run.id;
    let _ = worker
        .db(|client| async move { store::forget_state(&client, run_id).await })
        .await;
}

/// Closes the host's browsers whose runs have ended: a worker that died
/// between a run's final commit and its browser's close left them holding a
/// session (every worker sweeps, now and then; closing twice is harmless).
pub(crate) async fn sweep(worker: &Worker) {
    let Some(browsers) = &worker.browsers else {
        return;
    };
    let listed = browsers
        .request(reqwest::Method::GET, browsers.url(""))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let Ok(listed) = listed else {
        return;
    };
    let Ok(listed) = listed.json::<Value>().await else {
        return;
    };
    let runs: Vec<RunId> = listed["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["run_id"].as_str()?.parse().ok())
        .collect();
    if runs.is_empty() {
        return;
    }
    let ended = worker
        .db(|client| {
            let runs = &runs;
            async move { store::ended_runs(&client, runs).await }
        })
        .await
        .unwrap_or_default();
    for run in ended {
        let _ = browsers.close(run).await;
        tracing::info!(run_id = %run, "closed the browser of a run that had ended");
    }
}

/// The answer for an action that may have happened and is not made again.
pub(super) fn unknown(why: &str, attempts: i32) -> Answer {
    Answer::Output {
        text: error_output(&format!(
            "the outcome of this action is unknown: {why}; it is not made again \
             (take a snapshot to see the page)"
        )),
        outcome: Outcome::Failed,
        attempts,
        files: Vec::new(),
    }
}

/// A wait before attempt `attempt + 1`: doubling from `STEWRD_RETRY_BASE_MS`
/// up to `STEWRD_RETRY_MAX_SECS`, full jitter (as provider retries).
fn backoff(worker: &Worker, attempt: i32) -> Duration {
    let settings = &worker.config.worker;
    let ceiling = settings
        .retry_base
        .saturating_mul(1 << attempt.clamp(0, 16))
        .min(settings.retry_max);
    ceiling.mul_f64(rand::random::<f64>())
}

/// What kind of failure a request met, without its URL.
fn kind_of(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the connection failed"
    }
}
