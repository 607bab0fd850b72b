//! `web_fetch`, a built-in tool: a GET of the URL the model gives, redirects
//! followed one hop at a time with each hop's URL checked as a webhook's, and
//! every connection made through the guarded client (the SSRF guard applies to
//! the address actually connected to, so a name that resolves to a private
//! address is refused however it was reached). HTML is given as Markdown, text
//! as it is; a PDF, an image or any other bytes become an artifact file (an
//! image is shown to the model). At most `STEWRD_FETCH_MAX_BYTES` are read.
//! A fetch only reads: one cut off by a crash is made again.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::Value;
use stewrd_shared::{
    db::run::ClaimedRun,
    domain::{
        agent::{ToolCall, error_output},
        model::Outcome,
    },
    runtime::{outbound, ssrf},
};
use url::Url;

use super::{Answer, artifact};
use crate::Worker;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 10;
/// One request's limit (connection, answer and body).
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of one fetch when the server is unavailable (5xx, 429, a timeout).
const ATTEMPTS: i32 = 3;

/// The client every fetch of a worker shares: no redirects followed by
/// itself, no proxy, the SSRF guard on the addresses connected to.
pub(crate) fn client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    outbound::guarded(
        reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("stewrd-web-fetch/", env!("CARGO_PKG_VERSION"))),
        allow_private,
    )
}

/// A page as it came.
struct Page {
    /// The last segment of its URL's path (a file's name), if any.
    name: Option<String>,
    body: Vec<u8>,
    content_type: Option<String>,
    /// The body went on past `STEWRD_FETCH_MAX_BYTES`.
    cut: bool,
}

/// Why a fetch gave no page.
enum Failed {
    /// Final: the model gets it.
    Final(String),
    /// Worth another attempt.
    Retry(String),
}

pub(super) async fn call(
    worker: &Worker,
    run: &ClaimedRun,
    call: &ToolCall,
    arguments: Value,
) -> Answer {
    let Some(url) = arguments.get("url").and_then(Value::as_str) else {
        return Answer::failed("`url` must be an http or https URL", 0);
    };
    let schedule = &worker.config.worker.tool_retry_schedule;
    let mut attempt = 0;
    let page = loop {
        attempt += 1;
        match fetch(worker, url).await {
            Ok(page) => break page,
            Err(Failed::Final(why)) => return Answer::failed(&why, attempt),
            Err(Failed::Retry(why)) if attempt >= ATTEMPTS => {
                return Answer::failed(&format!("{why} ({attempt} attempts)"), attempt);
            }
            Err(Failed::Retry(_)) => {
                tokio::time::sleep(super::server::scheduled_wait(schedule, attempt)).await;
            }
        }
    };
    let given = given(worker, run, call, page).await;
    Answer::Output {
        text: given.output,
        outcome: Outcome::Succeeded,
        attempts: attempt,
        files: given.files,
    }
}

/// What the model gets of a page: HTML as Markdown, everything else as the
/// artifact rules say (text as is, bytes as a file).
async fn given(worker: &Worker, run: &ClaimedRun, call: &ToolCall, page: Page) -> artifact::Given {
    let max = worker.config.worker.fetch_max_bytes;
    let kind = page
        .content_type
        .as_deref()
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let html = kind == "text/html" || kind == "application/xhtml+xml";
    if page.cut && !(html || kind.starts_with("text/")) {
        return artifact::Given {
            output: error_output(&format!(
                "the page is larger than {max} bytes (STEWRD_FETCH_MAX_BYTES); not read"
            )),
            files: Vec::new(),
        };
    }
    let (body, content_type) = if html {
        let text = String::from_utf8_lossy(&page.body);
        // What a reader sees: no head, scripts or styles.
        let converter = htmd::HtmlToMarkdown::builder()
            .skip_tags(vec!["head", "script", "style", "noscript", "template"])
            .build();
        match converter.convert(&text) {
            Ok(markdown) => (markdown.into_bytes(), Some("text/markdown".to_owned())),
            Err(_) => (page.body, page.content_type),
        }
    } else {
        (page.body, page.content_type)
    };
    let mut given = artifact::given(
        worker,
        run,
        call,
        "web_fetch",
        artifact::Answer {
            body: &body,
            content_type: content_type.as_deref(),
            filename: page.name.as_deref(),
            cut: false,
        },
    )
    .await;
    if page.cut {
        given
            .output
            .push_str(&format!("\n\n[the page was cut at {max} bytes]"));
    }
    given
}

/// GETs `url`, following redirects, each hop checked; reads at most
/// `STEWRD_FETCH_MAX_BYTES` of the last.
async fn fetch(worker: &Worker, url: &str) -> Result<Page, Failed> {
    let allow_private = worker.config.webhook_allow_private;
    let mut current = checked(url, allow_private)?;
    for _ in 0..=MAX_REDIRECTS {
        let mut response = worker
            .fetcher
            .get(current.clone())
            .send()
            .await
            .map_err(|error| sent_failed(current.as_str(), &error))?;
        let status = response.status();
        if status.is_redirection() {
            let Some(location) = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
            else {
                return Err(Failed::Final(format!(
                    "{current} answered HTTP {} without a Location",
                    status.as_u16()
                )));
            };
            let next = current
                .join(location)
                .map_err(|_| Failed::Final(format!("{current} redirects to an invalid URL")))?;
            current = checked(next.as_str(), allow_private)?;
            continue;
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Failed::Retry(format!(
                "{current} answered HTTP {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(Failed::Final(format!(
                "{current} answered HTTP {}",
                status.as_u16()
            )));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .map(str::to_owned);
        let (body, cut) =
            outbound::read_at_most(&mut response, worker.config.worker.fetch_max_bytes)
                .await
                .map_err(|error| sent_failed(current.as_str(), &error))?;
        let name = current
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .filter(|name| !name.is_empty())
            .map(str::to_owned);
        return Ok(Page {
            name,
            body,
            content_type,
            cut,
        });
    }
    Err(Failed::Final(format!(
        "{url} redirects more than {MAX_REDIRECTS} times"
    )))
}

/// A URL a fetch may go to (its form, and its host when it is an address);
/// the message names the URL, never an address a name resolved to.
fn checked(url: &str, allow_private: bool) -> Result<Url, Failed> {
    ssrf::parse_webhook_url(url, allow_private)
        .map_err(|refusal| Failed::Final(format!("refused: the URL {url} {refusal}")))
}

fn sent_failed(url: &str, error: &reqwest::Error) -> Failed {
    if outbound::refusal_in(error).is_some() {
        return Failed::Final(format!(
            "refused: the URL {url} {}",
            ssrf::UrlRefusal::NotPublic
        ));
    }
    let why = format!("cannot fetch {url}: {}", outbound::describe(error));
    if error.is_timeout() || error.is_connect() {
        Failed::Retry(why)
    } else {
        Failed::Final(why)
    }
}
