//! `stewrd bench <scenario>`: drives the real API over HTTP against real Postgres
//! and RabbitMQ (its own database and queue prefix), with the stub provider in this
//! process, and prints a table plus one `BENCH name=value unit` line per figure.

mod agent;
mod backlog;
mod browser;
mod fetch;
mod files;
mod fleet;
mod limits;
mod load;
mod mcp;
mod report;
mod scenarios;
mod stream;

use clap::ValueEnum;

use self::{
    report::Report,
    scenarios::{budget, latency, limits, longpoll, slow, throughput},
};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Jobs per second end to end with an instant provider, and CPU per job.
    Throughput,
    /// Throughput without a budget, with a token budget and with a budget in
    /// dollars on the project (every call reserved and settled): what the
    /// reservation costs per job.
    Budget,
    /// Thousands of slow provider calls in flight in one worker: memory per call.
    Slow,
    /// Submit and poll latency at a constant arrival rate (open loop), and CPU per
    /// job at 500/s against saturation beside pgbench's own ratio for a job's commits.
    Latency,
    /// Long-poll clients held by one API process.
    Longpoll,
    /// Agent runs of five model calls and four server tool calls: steps per
    /// second, CPU and Postgres commits per step.
    Agent,
    /// A thousand streamed answers watched at once: delta latency and rate,
    /// CPU per thousand deltas, API memory per open stream.
    Stream,
    /// Files uploaded and downloaded through stewrd against the same store used
    /// directly (MB/s, CPU per MiB), and the API's memory per upload while
    /// fifty of the largest arrive at once.
    Files,
    /// MCP tool calls through stewrd against the official Python SDK's server,
    /// and the same server called directly: calls per second, CPU per call,
    /// `initialize` requests per 1,000 calls.
    Mcp,
    /// Runs asking for `web_fetch` against a page on loopback: pages fetched
    /// and given as Markdown per second, CPU per page, the page's raw rate.
    Fetch,
    /// What a job costs while one worker drains 10k, 100k and 1M queued runs
    /// (one project, then 1,000): CPU per job by process, Postgres buffers per
    /// job (`--seconds N`: the first two depths only).
    Backlog,
    /// Browser actions against a page on loopback through a browser host,
    /// with 1 to 12 browsers at once: actions per second, p50/p99 per action,
    /// CPU per action, memory per browser, browsers held before p50 doubles.
    Browser,
    /// The raw limits of Postgres and RabbitMQ on this machine.
    Limits,
    /// Everything above, in one report.
    All,
}

/// Knobs; each scenario has sensible defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub jobs: Option<u64>,
    pub clients: Option<usize>,
    pub workers: Option<usize>,
    pub seconds: Option<u64>,
    pub call_spread_ms: Option<u64>,
}

/// Runs a scenario and prints its report.
pub async fn run(scenario: Scenario, options: Options) -> anyhow::Result<()> {
    let mut report = Report::default();
    let all = scenario == Scenario::All;
    if all || scenario == Scenario::Limits {
        limits(&mut report).await?;
    }
    if all || scenario == Scenario::Throughput {
        throughput(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Budget {
        budget(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Latency {
        latency(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Slow {
        for delay_ms in [1_000, 5_000] {
            slow(&options, delay_ms, &mut report).await?;
        }
    }
    if all || scenario == Scenario::Longpoll {
        longpoll(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Agent {
        agent::agent(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Stream {
        stream::stream(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Files {
        files::files(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Fetch {
        fetch::fetch(&options, &mut report).await?;
    }
    if all || scenario == Scenario::Mcp {
        mcp::mcp(&options, &mut report).await?;
    }
    // Not in `all`: it needs Chromium.
    if scenario == Scenario::Browser {
        browser::browser(&options, &mut report).await?;
    }
    // Not in `all`: seeding a million runs takes minutes.
    if scenario == Scenario::Backlog {
        backlog::backlog(&options, &mut report).await?;
    }
    report.print();
    Ok(())
}
