//! The test harness: every test gets its own database, queue prefix and stub
//! provider, and real `stewrd` processes talking to real Postgres and RabbitMQ.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Stub;
use tokio::net::TcpListener;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghij";
pub const DEFAULT_KEY: &str = "sk-default-test-key-0123456789";
/// A fixed test master key (32 zero-free bytes, base64).
pub const MASTER_KEYS: &str = "k1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How long any wait-for-condition in a test may take.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Lines a process wrote to stderr, shared with the reader thread.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// A `stewrd` process started by a test.
pub struct Process {
    child: Child,
    pub logs: Lines,
    /// The thread copying stderr into `logs`; finished once the pipe closes.
    stderr_reader: std::thread::JoinHandle<()>,
}

impl Process {
    /// Whether the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (graceful stop).
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Stops the process (SIGSTOP): it runs nothing, while the kernel still
    /// answers for its sockets. Killing it still works; [`Process::thaw`]
    /// resumes it.
    pub fn freeze(&mut self) {
        signal(self.child.id(), "-STOP");
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn thaw(&mut self) {
        signal(self.child.id(), "-CONT");
    }

    /// Waits for the process to exit, up to `PATIENCE`, and for its last stderr
    /// lines to reach `logs`. Async: the test's runtime (which also serves the
    /// stub provider) keeps running meanwhile.
    pub async fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                while !self.stderr_reader.is_finished() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

fn signal(pid: u32, which: &str) {
    let sent = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success());
    assert!(sent, "cannot send {which} to process {pid}");
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the fault suite counts.
#[derive(Debug)]
pub struct Tally {
    pub accepted: usize,
    pub final_runs: usize,
    pub lost: usize,
    pub duplicated_results: usize,
    pub provider_calls: u64,
}

/// Makes `DATABASE_URL` from the test's database name.
pub type DatabaseUrl = Box<dyn Fn(&str) -> String>;

/// How to start the app.
pub struct Options {
    pub workers: usize,
    pub env: Vec<(String, String)>,
    pub stub_delay: Duration,
    /// A CA (PEM) the test's HTTP client trusts, alone: for an API serving HTTPS.
    pub trust: Option<String>,
    /// `DATABASE_URL` for the test's database name, when not the plain default.
    pub database_url: Option<DatabaseUrl>,
    /// Whether the test itself connects with that `DATABASE_URL` (a standby
    /// pair's hosts) rather than the plain default (TLS options it cannot use).
    pub inspect_with_database_url: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: 1,
            env: Vec::new(),
            stub_delay: Duration::ZERO,
            trust: None,
            database_url: None,
            inspect_with_database_url: false,
        }
    }
}

impl Options {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Workers serve `/metrics` on a port the kernel picks; read it with
    /// [`TestApp::worker_metrics`].
    pub fn worker_metrics(self) -> Self {
        self.env("STEWRD_METRICS_LISTEN", "127.0.0.1:0")
    }
}

/// A running stewrd with its own database, queues and stub provider.
pub struct TestApp {
    pub name: String,
    /// Where the test itself reads the database.
    pub db_url: String,
    pub base: String,
    pub stub: Stub,
    pub http: reqwest::Client,
    pub api: Process,
    pub workers: Vec<Process>,
    pub env: HashMap<String, String>,
    /// Every response (headers and body) the test received from the API.
    pub responses: Mutex<Vec<String>>,
    /// Logs of processes replaced by a restart.
    retired_logs: String,
}

/// Where a test's files are kept on the local disk.
pub fn local_files(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join("stewrd-test-files").join(name)
}

/// A unique lowercase name for a test's database and queue prefix.
pub fn unique_name() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

pub fn database_url(name: &str) -> String {
    format!("{PG_BASE}/{name}")
}

/// The `stewrd` binary under test.
pub fn stewrd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stewrd"))
}

/// Starts a migrated app with one worker.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    stewrd_shared::runtime::tls::install_crypto_provider();
    let name = unique_name();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
    let stub = Stub::start(listener, options.stub_delay, true)
        .await
        .expect("stub starts");
    let db_url = options
        .database_url
        .as_ref()
        .map_or_else(|| database_url(&name), |url| url(&name));
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", db_url.clone()),
        ("AMQP_URL", AMQP_URL.to_owned()),
        ("STEWRD_QUEUE_PREFIX", name.clone()),
        ("STEWRD_LISTEN", "127.0.0.1:0".to_owned()),
        ("STEWRD_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("STEWRD_MASTER_KEYS", MASTER_KEYS.to_owned()),
        ("STEWRD_DEFAULT_API_KEY", DEFAULT_KEY.to_owned()),
        ("STEWRD_OPENAI_BASE_URL", stub.base_url()),
        (
            "STEWRD_OPENROUTER_BASE_URL",
            format!("http://{}/api/v1", stub.address),
        ),
        ("STEWRD_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        // Files on the local disk, a folder per test (`files.rs` also runs
        // the file tests against SeaweedFS).
        (
            "STEWRD_FILE_STORE",
            format!("file://{}", local_files(&name).display()),
        ),
        // Tests run side by side with several processes each; Postgres allows 100
        // connections in all.
        ("STEWRD_DB_POOL_SIZE", "4".to_owned()),
        ("RUST_LOG", "info,stewrd_worker=debug".to_owned()),
        ("NO_COLOR", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(options.env.iter().cloned());

    let status = command_with(&env, &["migrate"])
        .stdout(Stdio::null())
        .status()
        .expect("run migrate");
    assert!(status.success(), "migrate failed");

    let (api, base) = start_api(&env);
    let workers = (0..options.workers)
        .map(|i| start_process(&env, &["worker"], &format!("worker{i}")).0)
        .collect();
    let db_url = if options.inspect_with_database_url {
        db_url
    } else {
        database_url(&name)
    };
    let app = TestApp {
        name,
        db_url,
        base,
        stub,
        http: http_client(options.trust.as_deref()),
        api,
        workers,
        env,
        responses: Mutex::default(),
        retired_logs: String::new(),
    };
    app.wait_ready().await;
    app
}

/// The test's HTTP client; with `trust`, it trusts that CA and no other.
///
/// It drops a pooled connection after 5 s idle, before the API does (after
/// `STEWRD_HEADER_READ_TIMEOUT_SECS`, 10 s): with reqwest's 90 s, a request
/// sent on a connection the API was closing at that moment failed with
/// `IncompleteMessage` (HTTP/1.1's keep-alive race, seen in CI).
pub fn http_client(trust: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(std::time::Duration::from_secs(5));
    if let Some(pem) = trust {
        let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("a PEM CA");
        builder = builder.tls_certs_only([ca]);
    }
    builder.build().expect("http client")
}

pub fn command_with(env: &HashMap<String, String>, args: &[&str]) -> Command {
    let mut command = stewrd();
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command.envs(env);
    command
}

/// Starts `stewrd api` and returns it with its base URL (read from stdout).
pub fn start_api(env: &HashMap<String, String>) -> (Process, String) {
    let (process, first_line) = start_process(env, &["api"], "api");
    let address = first_line
        .and_then(|line| line.rsplit(' ').next().map(str::to_owned))
        .unwrap_or_else(|| panic!("api did not start:\n{}", process.log_text()));
    (process, address)
}

/// Starts a process; its stderr is captured (and echoed for failing tests), and
/// the first stdout line is returned when the role is `api`.
pub fn start_process(
    env: &HashMap<String, String>,
    args: &[&str],
    role: &str,
) -> (Process, Option<String>) {
    start_process_in(None, env, args, role)
}

/// Like [`start_process`], in working directory `cwd`.
pub fn start_process_in(
    cwd: Option<&std::path::Path>,
    env: &HashMap<String, String>,
    args: &[&str],
    role: &str,
) -> (Process, Option<String>) {
    let mut command = command_with(env, args);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stewrd");
    let logs: Lines = Arc::default();
    let stderr = child.stderr.take().expect("stderr");
    let sink = logs.clone();
    let tag = role.to_owned();
    let stderr_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{tag}] {line}");
            if let Ok(mut lines) = sink.lock() {
                lines.push(line);
            }
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let tag = role.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = first_tx.send(line.clone());
            eprintln!("[{tag} stdout] {line}");
        }
        for line in lines.map_while(Result::ok) {
            eprintln!("[{tag} stdout] {line}");
        }
    });
    let first_line = (role == "api" || role.starts_with("browser"))
        .then(|| first_rx.recv_timeout(PATIENCE).ok())
        .flatten();
    (
        Process {
            child,
            logs,
            stderr_reader,
        },
        first_line,
    )
}

impl TestApp {
    /// Starts one more worker process.
    pub fn add_worker(&mut self) {
        let role = format!("worker{}", self.workers.len());
        let (worker, _) = start_process(&self.env, &["worker"], &role);
        self.workers.push(worker);
    }

    /// Kills worker `index` with SIGKILL and starts a fresh one in its place.
    pub fn kill_and_replace_worker(&mut self, index: usize) {
        self.workers[index].kill();
        let (worker, _) = start_process(&self.env, &["worker"], &format!("worker{index}"));
        let old = std::mem::replace(&mut self.workers[index], worker);
        self.retire(&old);
    }

    /// `kill -9`s a worker every two seconds (each in turn, replaced at once)
    /// until no run is queued or running, or `limit` has passed; returns the
    /// kills made. The fault tests' one way to crash workers.
    pub async fn kill_workers_until_done(&mut self, limit: Duration) -> usize {
        let db = self.db().await;
        let started = Instant::now();
        let mut kills = 0;
        loop {
            let open: i64 = db
                .query_one(
                    "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')",
                    &[],
                )
                .await
                .expect("count")
                .get(0);
            if open == 0 || started.elapsed() > limit {
                return kills;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.kill_and_replace_worker(kills % self.workers.len());
            kills += 1;
        }
    }

    /// Counts, for the fault suite, what happened to `run_ids`: how many are final,
    /// how many results were committed per run (from every worker's log, the
    /// killed ones included) and how many calls the provider saw. Prints the line.
    pub async fn tally(&self, run_ids: &[String]) -> Tally {
        let db = self.db().await;
        let final_runs: i64 = db
            .query_one(
                "SELECT count(*) FROM runs WHERE id::text = ANY($1)
                 AND status IN ('succeeded', 'failed', 'cancelled')",
                &[&run_ids],
            )
            .await
            .expect("count")
            .get(0);
        let logs = self.all_logs();
        let mut commits: HashMap<&str, usize> = HashMap::new();
        for line in logs
            .lines()
            .filter(|l| l.contains("run succeeded") || l.contains("run failed"))
        {
            if let Some(run_id) = line
                .split("run_id=")
                .nth(1)
                .and_then(|rest| rest.split([' ', '}', ',']).next())
            {
                *commits.entry(run_id).or_default() += 1;
            }
        }
        let duplicated_results = commits.values().filter(|n| **n > 1).count();
        let tally = Tally {
            accepted: run_ids.len(),
            final_runs: final_runs as usize,
            lost: run_ids.len() - final_runs as usize,
            duplicated_results,
            provider_calls: self.stub.state.stats().calls,
        };
        println!(
            "accepted={} final={} lost={} duplicated_results={} provider_calls={}",
            tally.accepted,
            tally.final_runs,
            tally.lost,
            tally.duplicated_results,
            tally.provider_calls
        );
        tally
    }

    /// Stops the API gracefully and starts it again with `changes` to its settings.
    pub async fn restart_api(&mut self, changes: &[(&str, &str)]) {
        for (name, value) in changes {
            self.env.insert((*name).to_owned(), (*value).to_owned());
        }
        self.api.terminate();
        self.api.wait_exit().await;
        let (api, base) = start_api(&self.env);
        let old = std::mem::replace(&mut self.api, api);
        self.retire(&old);
        self.base = base;
        self.wait_ready().await;
    }

    /// Stops each worker gracefully and starts a new one with `changes` to its settings.
    pub async fn restart_workers(&mut self, changes: &[(&str, &str)]) {
        for (name, value) in changes {
            self.env.insert((*name).to_owned(), (*value).to_owned());
        }
        for index in 0..self.workers.len() {
            self.workers[index].terminate();
            self.workers[index].wait_exit().await;
            let (worker, _) = start_process(&self.env, &["worker"], &format!("worker{index}"));
            let old = std::mem::replace(&mut self.workers[index], worker);
            self.retire(&old);
        }
    }

    /// Starts one more worker with the app's settings.
    pub fn start_worker(&mut self) {
        let index = self.workers.len();
        let (worker, _) = start_process(&self.env, &["worker"], &format!("worker{index}"));
        self.workers.push(worker);
    }

    fn retire(&mut self, process: &Process) {
        self.retired_logs.push_str(&process.log_text());
        self.retired_logs.push('\n');
    }

    /// Runs a one-off `stewrd` command with the app's settings; returns its output.
    pub fn run_command(&self, args: &[&str]) -> std::process::Output {
        command_with(&self.env, args).output().expect("command ran")
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let ready = wait_for(PATIENCE, || async {
            let response = self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .ok()?;
            (response.status() == StatusCode::OK).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "app never became ready:\n{}",
            self.api.log_text()
        );
    }

    /// Every response the test received so far, one after another: where the
    /// leak tests look for what must not be shown.
    pub fn responses_text(&self) -> String {
        self.responses
            .lock()
            .map(|r| r.join("\n"))
            .unwrap_or_default()
    }

    /// The first worker's `/metrics` URL, from the address it logs once bound
    /// (see [`Options::worker_metrics`]).
    pub async fn worker_metrics(&self) -> String {
        const LINE: &str = "worker metrics listening address=";
        let address = wait_for(PATIENCE, || async {
            let logs = self.workers.first()?.log_text();
            let rest = &logs[logs.find(LINE)? + LINE.len()..];
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .await
        .expect("the worker logs its metrics address");
        format!("http://{address}/metrics")
    }

    /// Every log line of every process so far.
    pub fn all_logs(&self) -> String {
        let mut text = self.retired_logs.clone();
        text.push_str(&self.api.log_text());
        for worker in &self.workers {
            text.push('\n');
            text.push_str(&worker.log_text());
        }
        text
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_at(&self.base, method, path, token, body).await
    }

    /// Cancels `session` (`POST /v1/sessions/{id}/cancel`); the answer's status.
    pub async fn cancel(&self, key: &str, session: &str) -> StatusCode {
        self.call(
            Method::POST,
            &format!("/v1/sessions/{session}/cancel"),
            Some(key),
            None,
        )
        .await
        .0
    }

    /// [`TestApp::call`] to the API process at `base` (one of several).
    pub async fn call_at(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, text) = self
            .call_raw_at(base, method, path, token, body.map(|b| b.to_string()))
            .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request with a raw body; returns status, headers and the body text.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        self.call_raw_at(&self.base, method, path, token, body)
            .await
    }

    async fn call_raw_at(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if let Ok(mut responses) = self.responses.lock() {
            responses.push(format!("{status} {headers:?} {text}"));
        }
        (status, headers, text)
    }

    /// Creates a project through the admin API; returns its id and API key.
    pub async fn create_project(&self, name: &str) -> (String, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/admin/projects",
                Some(ADMIN_TOKEN),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["project"]["id"].as_str().expect("id").to_owned(),
            body["api_key"].as_str().expect("key").to_owned(),
        )
    }

    /// Submits a message; asserts the 202 and returns its body.
    pub async fn submit(&self, key: &str, body: Value) -> Value {
        let (status, answer) = self
            .call(Method::POST, "/v1/agent", Some(key), Some(body))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        answer
    }

    /// Long-polls a session until it is final; panics after `PATIENCE`.
    pub async fn wait_final(&self, key: &str, session_id: &str) -> Value {
        self.wait_final_within(key, session_id, PATIENCE).await
    }

    /// Long-polls a session until it is final; panics after `patience`.
    pub async fn wait_final_within(
        &self,
        key: &str,
        session_id: &str,
        patience: Duration,
    ) -> Value {
        let deadline = Instant::now() + patience;
        loop {
            let (status, session) = self
                .call(
                    Method::GET,
                    &format!("/v1/sessions/{session_id}?wait=10"),
                    Some(key),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{session}");
            let final_status = ["succeeded", "failed", "cancelled"]
                .contains(&session["status"].as_str().unwrap_or_default());
            if final_status {
                return session;
            }
            assert!(
                Instant::now() < deadline,
                "session never finished: {session}"
            );
        }
    }

    /// A pool on the test's database, for calling stewrd's own queries directly.
    pub fn pool(&self) -> stewrd_shared::db::Pool {
        let url = self.db_url.clone();
        let config = stewrd_shared::runtime::config::Config::from_lookup(|name| {
            (name == "DATABASE_URL").then(|| url.clone())
        })
        .expect("config");
        stewrd_shared::db::create_pool(&config)
    }

    /// A direct connection to the test's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect_db(&self.db_url).await
    }

    /// Messages ready in the test's job queue.
    pub async fn ready_messages(&self) -> u32 {
        let connection = broker().await;
        let channel = connection.create_channel().await.expect("channel");
        let queue = channel
            .queue_declare(
                format!("{}.jobs", self.name).as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("the jobs queue exists");
        let _ = connection.close(200, "done".into()).await;
        queue.message_count()
    }

    /// Drops every message waiting in the test's job queue (a broker losing them).
    pub async fn purge_jobs(&self) {
        let connection = broker().await;
        let channel = connection.create_channel().await.expect("channel");
        channel
            .queue_purge(
                format!("{}.jobs", self.name).as_str().into(),
                lapin::options::QueuePurgeOptions::default(),
            )
            .await
            .expect("purge");
        let _ = connection.close(200, "done".into()).await;
    }

    /// Publishes a raw message to the test's job queue (as a duplicate would arrive).
    pub async fn publish_job(&self, body: &[u8]) {
        let connection = broker().await;
        let channel = connection.create_channel().await.expect("channel");
        channel
            .basic_publish(
                "".into(),
                format!("{}.jobs", self.name).as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        let _ = connection.close(200, "done".into()).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.api.kill();
        for worker in &mut self.workers {
            worker.kill();
        }
        cleanup(&self.name);
    }
}

/// A connection to the shared RabbitMQ, for inspecting or disturbing a test's queues.
async fn broker() -> lapin::Connection {
    lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("amqp")
}

pub async fn connect_db(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// Drops a test's database, queues and files (on a thread of its own: Drop
/// cannot await).
pub fn cleanup(name: &str) {
    let _ = std::fs::remove_dir_all(local_files(name));
    let name = name.to_owned();
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&database_url("postgres"), tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
            if let Ok(connection) =
                lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
            {
                if let Ok(channel) = connection.create_channel().await {
                    for queue in [format!("{name}.jobs"), format!("{name}.jobs.dead")] {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), Default::default())
                            .await;
                    }
                    let _ = channel
                        .exchange_delete(
                            format!("{name}.dead-letter").as_str().into(),
                            Default::default(),
                        )
                        .await;
                }
                let _ = connection.close(200, "cleanup".into()).await;
            }
        });
    })
    .join();
}

/// Waits until exactly `count` runs of the test's database have succeeded;
/// `false` after [`PATIENCE`].
pub async fn wait_succeeded(db: &tokio_postgres::Client, count: i64) -> bool {
    wait_for(PATIENCE, || async {
        let row = db
            .query_one("SELECT count(*) FROM runs WHERE status = 'succeeded'", &[])
            .await
            .ok()?;
        (row.get::<_, i64>(0) == count).then_some(())
    })
    .await
    .is_some()
}

/// Polls `check` until it returns `Some`, or `None` after `patience`.
pub async fn wait_for<T, F, Fut>(patience: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs in to the dashboard with the admin token; returns the session
/// cookie (`name=value`) and a client that does not follow redirects.
pub async fn operator_cookie(app: &TestApp) -> (reqwest::Client, String) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed_in = browser
        .post(format!("{}/dashboard/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    (browser, cookie)
}
