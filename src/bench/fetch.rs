//! `stewrd bench fetch`: runs that ask for `web_fetch` (the stub calls it with
//! the URL of the message, then answers), against a page of ~20 KiB of HTML
//! served on loopback: pages fetched and turned into Markdown per second end
//! to end, CPU per page by process, and the page's own server rate as the
//! raw limit of the same run (a plain client GETting it as fast as it can).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, http::header, routing::get};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{
    Options,
    fleet::{Fleet, cpu_ms},
    load::{Request, closed_loop},
    report::Report,
    scenarios::{cpu_snapshot, http_client, wait_finished},
};

/// An article-like page: headings, paragraphs with links and emphasis, a list.
fn page() -> String {
    let mut html = String::from(
        "<!doctype html><html><head><title>Bench</title><style>p{}</style></head><body><h1>Bench</h1>",
    );
    for i in 0..60 {
        html.push_str(&format!(
            "<h2>Section {i}</h2><p>Some <b>bold</b> and <i>italic</i> text with a \
             <a href=\"/s/{i}\">link</a>, long enough to be a paragraph of a real page, \
             and then some more words to fill it out.</p><ul><li>one</li><li>two</li></ul>"
        ));
    }
    html.push_str("</body></html>");
    html
}

/// Serves the page at `/page`; returns its URL.
async fn start_site() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let body = Arc::new(page());
    let app = Router::new().route(
        "/page",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    (*body).clone(),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}/page"))
}

pub(super) async fn fetch(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let runs = options.jobs.unwrap_or(3_000);
    let clients = options.clients.unwrap_or(32);
    let workers = options.workers.unwrap_or(1);
    eprintln!("fetch: {runs} runs fetching a page each, {clients} clients, {workers} worker(s)");
    let site = start_site().await?;
    let allow_private = [("STEWRD_WEBHOOK_ALLOW_PRIVATE", "true".to_owned())];
    let fleet = Fleet::start(workers, Duration::ZERO, &allow_private).await?;
    let http = http_client();
    let key = fleet.project(&http).await?;
    let submit: Request = {
        let (http, url, key, site) = (
            http.clone(),
            format!("{}/v1/agent", fleet.api_base),
            key.clone(),
            site.clone(),
        );
        Arc::new(move |i| {
            let request = http.post(&url).bearer_auth(&key).json(&json!({
                "message": format!("read {site} for job {i}"),
                "tools": [{"type": "web_fetch"}]
            }));
            Box::pin(async move {
                let response = request.send().await.ok()?;
                (response.status().as_u16() == 202).then_some(())?;
                response.json::<Value>().await.ok()
            })
        })
    };
    let before = cpu_snapshot(&fleet);
    let started = Instant::now();
    let submitted = closed_loop(runs, clients, false, submit, "submitting").await;
    wait_finished(&fleet, submitted.ok, "finishing").await?;
    let elapsed = started.elapsed();
    let after = cpu_snapshot(&fleet);
    let db = fleet.db().await?;
    let fetched: i64 = db
        .query_one(
            "SELECT count(*) FROM run_steps WHERE name = 'web_fetch' AND status = 'succeeded'
               AND output LIKE '# Bench%'",
            &[],
        )
        .await?
        .get(0);
    report.add(
        "fetch_pages_as_markdown",
        fetched as f64,
        "pages",
        "one per run",
    );
    report.add(
        "fetch_pages_per_s_through_stewrd",
        fetched as f64 / elapsed.as_secs_f64(),
        "pages/s",
        "",
    );
    for ((name, before), (_, after)) in before.0.iter().zip(&after.0) {
        report.add(
            format!("fetch_cpu_ms_per_page_{name}"),
            (after - before) / fetched.max(1) as f64,
            "ms",
            "",
        );
    }
    fleet.stop().await;
    // The raw limit: the same page GETted directly, as many times, at once.
    let direct: Request = {
        let (http, site) = (http.clone(), site.clone());
        Arc::new(move |_| {
            let request = http.get(&site);
            Box::pin(async move {
                let body = request.send().await.ok()?.text().await.ok()?;
                Some(Value::from(body.len()))
            })
        })
    };
    let before = cpu_ms(std::process::id());
    let raw = closed_loop(runs, clients, false, direct, "fetching directly").await;
    report.add(
        "fetch_pages_per_s_direct",
        raw.ok as f64 / raw.elapsed.as_secs_f64(),
        "pages/s",
        "",
    );
    report.add(
        "fetch_direct_cpu_ms_per_page_client_and_site",
        (cpu_ms(std::process::id()) - before) / raw.ok.max(1) as f64,
        "ms",
        "",
    );
    Ok(())
}
