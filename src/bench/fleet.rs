//! A throwaway stewrd for one benchmark: its own database and queue prefix, the
//! real `stewrd api` and `stewrd worker` binaries as child processes, and the stub
//! provider in this process. Never touches real data; cleaned up at the end.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use stewrd_shared::{
    queue::Topology, runtime::config::DEFAULT_DATABASE_URL, secrets::crypto::MasterKeyRing,
};

use crate::stub::Stub;

/// A running benchmark deployment.
pub struct Fleet {
    pub name: String,
    pub database_url: String,
    pub amqp_url: String,
    pub api_base: String,
    pub admin_token: String,
    pub stub: Stub,
    env: Vec<(String, String)>,
    pub api: Child,
    pub workers: Vec<Child>,
}

/// A fresh unique name for the database and queue prefix.
fn bench_name() -> String {
    format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The `application_name` of the bench's workers' Postgres connections: a
/// bench can tell them from the API's in `pg_stat_activity`.
pub const WORKER_APPLICATION_NAME: &str = "stewrd-bench-worker";

/// `url` (a URL or `key=value` settings) naming its connections `name`.
fn with_application_name(url: &str, name: &str) -> anyhow::Result<String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut url = url::Url::parse(url).context("DATABASE_URL: not a URL")?;
        url.query_pairs_mut().append_pair("application_name", name);
        Ok(url.to_string())
    } else {
        Ok(format!("{url} application_name={name}"))
    }
}

/// `DATABASE_URL` with its database replaced by `name`.
fn database_url_for(name: &str) -> anyhow::Result<String> {
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    if base.starts_with("postgres://") || base.starts_with("postgresql://") {
        let mut url = url::Url::parse(&base).context("DATABASE_URL: not a URL")?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    } else {
        Ok(format!("{base} dbname={name}"))
    }
}

/// Connects to `url` as stewrd would, TLS settings included.
async fn open(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (config, tls) = stewrd_shared::runtime::tls::postgres::parse(url, None)?;
    let (client, connection) = config.connect(tls.connector()).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn log_path(name: &str, role: &str) -> PathBuf {
    std::env::temp_dir().join(format!("stewrd-{name}-{role}.log"))
}

impl Fleet {
    /// Migrates a fresh database, starts the stub, the API and `workers` workers.
    pub async fn start(
        workers: usize,
        stub_delay: Duration,
        extra_env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let name = bench_name();
        let database_url = database_url_for(&name)?;
        let amqp_url = std::env::var("AMQP_URL")
            .unwrap_or_else(|_| stewrd_shared::runtime::config::DEFAULT_AMQP_URL.to_owned());
        let listener = crate::listen::listener(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let stub = Stub::start(listener, stub_delay, false).await?;
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let master = MasterKeyRing::generate_entry("bench");
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.clone()),
            ("AMQP_URL".into(), amqp_url.clone()),
            ("STEWRD_QUEUE_PREFIX".into(), name.clone()),
            ("STEWRD_LISTEN".into(), "127.0.0.1:0".into()),
            ("STEWRD_ADMIN_TOKEN".into(), admin_token.clone()),
            (
                "STEWRD_MASTER_KEYS".into(),
                master.expose_secret().to_owned(),
            ),
            ("STEWRD_DEFAULT_API_KEY".into(), "sk-bench".into()),
            ("STEWRD_OPENAI_BASE_URL".into(), stub.base_url()),
            ("STEWRD_LOG_FORMAT".into(), "pretty".into()),
            ("RUST_LOG".into(), "warn".into()),
        ];
        for (key, value) in extra_env {
            env.push(((*key).to_owned(), value.clone()));
        }
        let migrate = Command::new(std::env::current_exe()?)
            .arg("migrate")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .status()?;
        if !migrate.success() {
            bail!("cannot migrate the benchmark database (check DATABASE_URL)");
        }
        let (api, api_base) = spawn_api(&env, &name)?;
        let mut fleet = Self {
            name,
            database_url,
            amqp_url,
            api_base,
            admin_token,
            stub,
            env,
            api,
            workers: Vec::new(),
        };
        for _ in 0..workers {
            fleet.add_worker()?;
        }
        fleet.wait_ready().await?;
        fleet.warn_without_autovacuum().await?;
        Ok(fleet)
    }

    /// Starts one more worker, its connections named [`WORKER_APPLICATION_NAME`].
    pub fn add_worker(&mut self) -> anyhow::Result<()> {
        let role = format!("worker{}", self.workers.len());
        let mut env = self.env.clone();
        // Set after the shared one, so the worker's wins.
        env.push((
            "DATABASE_URL".into(),
            with_application_name(&self.database_url, WORKER_APPLICATION_NAME)?,
        ));
        let child = spawn(&env, &["worker"], &self.name, &role, Stdio::null())?;
        self.workers.push(child);
        Ok(())
    }

    /// Stops every worker (SIGKILL: a benchmark has nothing to drain).
    pub fn stop_workers(&mut self) {
        for mut worker in self.workers.drain(..) {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = http.get(format!("{}/readyz", self.api_base)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the benchmark API never became ready; see {}",
            log_path(&self.name, "api").display()
        )
    }

    /// Says so when the server does not vacuum by itself (some CI images turn
    /// autovacuum off): dead rows then pile up, and every figure of cost per
    /// job grows with the jobs run before it (measured: Postgres 0.94 ms a job
    /// with it off, 0.79 with it on, for 50,000 jobs of `bench throughput`).
    async fn warn_without_autovacuum(&self) -> anyhow::Result<()> {
        let setting: String = self
            .db()
            .await?
            .query_one("SHOW autovacuum", &[])
            .await?
            .get(0);
        if setting != "on" {
            eprintln!(
                "warning: autovacuum is {setting} on this Postgres: dead rows are never \
                 vacuumed, and the cost per job grows with the jobs run (turn it on for \
                 figures a production server would give)"
            );
        }
        Ok(())
    }

    /// The settings the fleet's processes run with.
    pub fn config(&self) -> anyhow::Result<stewrd_shared::runtime::config::Config> {
        let env: std::collections::HashMap<_, _> = self.env.iter().cloned().collect();
        Ok(stewrd_shared::runtime::config::Config::from_lookup(
            |name| env.get(name).cloned().or_else(|| std::env::var(name).ok()),
        )?)
    }

    /// A connection to the benchmark database.
    pub async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        open(&self.database_url).await
    }

    /// Creates a project; returns its API key.
    pub async fn project(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        Ok(self.project_with_id(http).await?.1)
    }

    /// A new project's id and API key.
    pub async fn project_with_id(
        &self,
        http: &reqwest::Client,
    ) -> anyhow::Result<(String, String)> {
        let created: serde_json::Value = http
            .post(format!("{}/v1/admin/projects", self.api_base))
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({"name": "bench"}))
            .send()
            .await?
            .json()
            .await?;
        let id = created["project"]["id"].as_str().map(str::to_owned);
        let key = created["api_key"].as_str().map(str::to_owned);
        id.zip(key).context("project creation failed")
    }

    /// Sets a project's limits (the admin API).
    pub async fn set_limits(
        &self,
        http: &reqwest::Client,
        project: &str,
        limits: serde_json::Value,
    ) -> anyhow::Result<()> {
        let set = http
            .put(format!(
                "{}/v1/admin/projects/{project}/limits",
                self.api_base
            ))
            .bearer_auth(&self.admin_token)
            .json(&limits)
            .send()
            .await?;
        anyhow::ensure!(
            set.status().is_success(),
            "cannot set limits: {}",
            set.status()
        );
        Ok(())
    }

    /// Runs not final yet, counted through the partial indexes of queued,
    /// running and waiting runs: counting the final ones scanned the whole table
    /// every poll (31 ms at 20,000 runs, 8% of Postgres's time in a throughput
    /// run, charged to stewrd's figures).
    pub async fn open_runs(&self, db: &tokio_postgres::Client) -> anyhow::Result<i64> {
        Ok(db
            .query_one(
                "SELECT (SELECT count(*) FROM runs WHERE status = 'queued')
                      + (SELECT count(*) FROM runs WHERE status = 'running')
                      + (SELECT count(*) FROM runs WHERE status = 'requires_action')",
                &[],
            )
            .await?
            .get(0))
    }

    /// Kills everything and drops the database and queues.
    pub async fn stop(mut self) {
        self.stop_workers();
        let _ = self.api.kill();
        let _ = self.api.wait();
        if let Ok(base) = database_url_for("postgres")
            && let Ok(client) = open(&base).await
        {
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .await;
        }
        if let Ok(broker) = stewrd_shared::runtime::broker::Broker::at(&self.amqp_url)
            && let Ok(connection) = broker.connect("stewrd-bench").await
        {
            if let Ok(channel) = connection.create_channel().await {
                let topology = Topology::new(&self.name);
                for queue in topology.queues() {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await;
                }
                let _ = channel
                    .exchange_delete(
                        topology.dead_letter_exchange().as_str().into(),
                        Default::default(),
                    )
                    .await;
            }
            let _ = connection.close(200, "bench done".into()).await;
        }
        for role in std::iter::once("api".to_owned()).chain((0..8).map(|i| format!("worker{i}"))) {
            let _ = std::fs::remove_file(log_path(&self.name, &role));
        }
    }
}

fn spawn(
    env: &[(String, String)],
    args: &[&str],
    name: &str,
    role: &str,
    stdout: Stdio,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path(name, role))?;
    // For profiling runs: `STEWRD_BENCH_WRAP_API` / `STEWRD_BENCH_WRAP_WORKER`
    // (e.g. `heaptrack -o /tmp/worker`) start that process under a tool. Its
    // pid is then the tool's: CPU and memory figures of such a run are not
    // stewrd's.
    let wrap_var = format!("STEWRD_BENCH_WRAP_{}", args[0].to_uppercase());
    let wrapper = std::env::var(wrap_var).unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut command = Command::new(tool);
            command.args(words).arg(std::env::current_exe()?);
            command
        }
        None => Command::new(std::env::current_exe()?),
    };
    Ok(command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(stdout)
        .stderr(log)
        .spawn()?)
}

fn spawn_api(env: &[(String, String)], name: &str) -> anyhow::Result<(Child, String)> {
    let mut child = spawn(env, &["api"], name, "api", Stdio::piped())?;
    let stdout = child.stdout.take().context("api stdout")?;
    // The first line naming an address (a profiler may print lines before it).
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("http://"))
        .unwrap_or_default();
    let base = first
        .trim()
        .rsplit(' ')
        .next()
        .filter(|b| b.starts_with("http://"))
        .with_context(|| {
            format!(
                "the API did not start; see {}",
                log_path(name, "api").display()
            )
        })?
        .to_owned();
    Ok((child, base))
}

/// CPU time (user + system) of a process, in milliseconds.
pub fn cpu_ms(pid: u32) -> f64 {
    let [user, system, ..] = cpu_times_ms(pid);
    user + system
}

/// A process's `utime`, `stime`, `cutime` and `cstime` in milliseconds (zeros
/// when it is gone). The last two are the children it has reaped: for Postgres,
/// the backends and autovacuum workers that exited. Without them, a process
/// gone between two snapshots took its CPU with it, and with autovacuum on its
/// workers' CPU was never counted.
fn cpu_times_ms(pid: u32) -> [f64; 4] {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return [0.0; 4];
    };
    // Fields after the parenthesized command: state is field 3; utime 14,
    // stime 15, cutime 16, cstime 17.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ms = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            * 1000.0
            / clock_ticks()
    };
    [ms(11), ms(12), ms(13), ms(14)]
}

/// Clock ticks per second, asked of `getconf` once.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Total CPU milliseconds of every process whose command name is `comm`.
pub fn cpu_ms_of(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .into_string()
                .ok()?
                .parse::<u32>()
                .ok()
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == comm)
        })
        .map(|pid| cpu_times_ms(pid).iter().sum::<f64>())
        .sum()
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}
