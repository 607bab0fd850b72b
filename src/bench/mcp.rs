//! `stewrd bench mcp`: MCP tool calls through stewrd against the official
//! Python SDK's server (`tests/mcp/server.py`, its `ping` tool answering at
//! once), and the same server called directly by stewrd's MCP client from
//! this process in the same run: the ratio of the two rates is the figure.
//! Through stewrd a call is a step of an agent run (five model calls, four
//! MCP calls), so it carries its share of model calls and commits. Also: CPU
//! per call by process, and `initialize` requests per 1,000 calls.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use stewrd_shared::mcp::{Endpoint, McpClient};

use super::{
    Options,
    fleet::{Fleet, cpu_ms},
    load::{Request, closed_loop},
    report::Report,
    scenarios::{cpu_snapshot, http_client, submit, wait_finished},
};

/// Model calls per run; all but the last call the MCP tool.
const MODEL_CALLS: u64 = 5;
const TOOL_CALLS: u64 = MODEL_CALLS - 1;

/// The fixture server, killed when dropped.
struct McpServer {
    child: Child,
    port: u16,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpServer {
    /// Starts `tests/mcp/server.py` with the interpreter `scripts/test`
    /// installs (`STEWRD_TEST_MCP_PYTHON`, else `target/mcp/venv`).
    fn start() -> anyhow::Result<Self> {
        let root = env!("CARGO_MANIFEST_DIR");
        let python = std::env::var("STEWRD_TEST_MCP_PYTHON")
            .unwrap_or_else(|_| format!("{root}/target/mcp/venv/bin/python"));
        let mut child = Command::new(&python)
            .arg(format!("{root}/tests/mcp/server.py"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("cannot start {python} (scripts/test installs the MCP SDK there)")
            })?;
        let mut ready = String::new();
        let stdout = child.stdout.take().context("the server's stdout")?;
        BufReader::new(stdout).read_line(&mut ready)?;
        let Some(port) = ready
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
        else {
            let _ = child.kill();
            bail!("the MCP server did not start: {ready:?}");
        };
        Ok(Self { child, port })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn cpu_ms(&self) -> f64 {
        cpu_ms(self.child.id())
    }

    /// How many messages of `method` the server has received.
    async fn received(&self, method: &str) -> anyhow::Result<usize> {
        let log: Vec<Value> = http_client()
            .get(format!("http://127.0.0.1:{}/log", self.port))
            .send()
            .await?
            .json()
            .await?;
        Ok(log.iter().filter(|m| m["method"] == method).count())
    }
}

pub(super) async fn mcp(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let runs = options.jobs.unwrap_or(500);
    let clients = options.clients.unwrap_or(32);
    let workers = options.workers.unwrap_or(1);
    let calls = runs * TOOL_CALLS;
    eprintln!(
        "mcp: {runs} runs of {MODEL_CALLS} model calls and {TOOL_CALLS} MCP calls, {clients} clients, {workers} worker(s); then {calls} direct calls"
    );
    let server = McpServer::start()?;
    let allow_private = [("STEWRD_WEBHOOK_ALLOW_PRIVATE", "true".to_owned())];
    let fleet = Fleet::start(workers, Duration::ZERO, &allow_private).await?;
    fleet
        .stub
        .state
        .set_tool_rounds(usize::try_from(TOOL_CALLS)?);
    let http = http_client();
    let key = fleet.project(&http).await?;
    let set = http
        .put(format!("{}/v1/project/mcp_servers", fleet.api_base))
        .bearer_auth(&key)
        .json(&json!({"servers": [{"name": "bench", "url": server.url(), "allowed_tools": ["ping"]}]}))
        .send()
        .await?;
    anyhow::ensure!(set.status().is_success(), "cannot connect the MCP server");

    // Through stewrd.
    let before = cpu_snapshot(&fleet);
    let server_before = server.cpu_ms();
    let started = Instant::now();
    let submitted = closed_loop(
        runs,
        clients,
        false,
        submit(&http, &fleet.api_base, &key),
        "submitting",
    )
    .await;
    wait_finished(&fleet, submitted.ok, "finishing").await?;
    let elapsed = started.elapsed();
    let after = cpu_snapshot(&fleet);
    let server_after = server.cpu_ms();
    let made = server.received("tools/call").await?;
    let initializes = server.received("initialize").await?;
    let db = fleet.db().await?;
    let succeeded: i64 = db
        .query_one("SELECT count(*) FROM runs WHERE status = 'succeeded'", &[])
        .await?
        .get(0);
    let through = made as f64 / elapsed.as_secs_f64();
    report.add("mcp_runs_succeeded", succeeded as f64, "runs", "all");
    report.add(
        "mcp_calls_through_stewrd",
        made as f64,
        "calls",
        "4 per run",
    );
    report.add("mcp_calls_per_s_through_stewrd", through, "calls/s", "");
    report.add(
        "mcp_initializes_per_1000_calls",
        initializes as f64 * 1000.0 / made.max(1) as f64,
        "initializes",
        "<= 1 per worker",
    );
    for ((name, before), (_, after)) in before.0.iter().zip(&after.0) {
        report.add(
            format!("mcp_cpu_ms_per_call_{name}"),
            (after - before) / made.max(1) as f64,
            "ms",
            "",
        );
    }
    report.add(
        "mcp_cpu_ms_per_call_mcp_server",
        (server_after - server_before) / made.max(1) as f64,
        "ms",
        "",
    );
    fleet.stop().await;

    // The same server, called directly by the same number of clients.
    let client = Arc::new(McpClient::new(Duration::from_secs(5), 1 << 20, true)?);
    let endpoint = Arc::new(Endpoint::new(&server.url(), []));
    let call: Request = {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        Arc::new(move |i| {
            let (client, endpoint) = (client.clone(), endpoint.clone());
            Box::pin(async move {
                client
                    .call_tool(
                        &endpoint,
                        "ping",
                        json!({}),
                        &format!("direct:{i}"),
                        Duration::from_secs(30),
                    )
                    .await
                    .ok()
            })
        })
    };
    let bench_before = cpu_ms(std::process::id());
    let server_before = server.cpu_ms();
    let direct = closed_loop(calls, clients, false, call, "calling directly").await;
    let direct_rate = direct.ok as f64 / direct.elapsed.as_secs_f64();
    report.add("mcp_calls_per_s_direct", direct_rate, "calls/s", "");
    report.add("mcp_direct_errors", direct.errors as f64, "calls", "0");
    report.add(
        "mcp_through_stewrd_over_direct",
        through / direct_rate.max(f64::MIN_POSITIVE),
        "ratio",
        "",
    );
    report.add(
        "mcp_direct_cpu_ms_per_call_mcp_server",
        (server.cpu_ms() - server_before) / direct.ok.max(1) as f64,
        "ms",
        "",
    );
    report.add(
        "mcp_direct_cpu_ms_per_call_client",
        (cpu_ms(std::process::id()) - bench_before) / direct.ok.max(1) as f64,
        "ms",
        "",
    );
    Ok(())
}
