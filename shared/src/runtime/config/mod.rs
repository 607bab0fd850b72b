//! Settings, read once from the environment at start-up into typed, validated
//! structs. A bad value stops the process with one line naming the variable.
//! Every default lives here.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};

mod browser;
mod env;

use self::env::Env;
pub use self::{
    browser::{BrowserAccess, BrowserHostSettings},
    env::parse_duration,
};
pub use super::setting::ConfigError;
use crate::{
    domain::model::Provider,
    runtime::{broker::Broker, tls::postgres::DatabaseTls},
    secrets::crypto::MasterKeyRing,
};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured when the output is a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The provider used for projects that have no key of their own.
#[derive(Clone, Debug)]
pub struct DefaultLlm {
    /// `STEWRD_DEFAULT_PROVIDER`, default `openai`.
    pub provider: Provider,
    /// `STEWRD_DEFAULT_MODEL`, default `gpt-4o-mini`.
    pub model: String,
    /// `STEWRD_DEFAULT_API_KEY`, default none: projects without a key then fail
    /// with `no_provider_configured`.
    pub api_key: Option<SecretString>,
    /// `STEWRD_DEFAULT_KEY_TOKENS_PER_DAY`, default none: the tokens each project
    /// without a key of its own may use per UTC day on the default key.
    pub tokens_per_day: Option<i64>,
}

/// Base URLs of the OpenAI-compatible providers (tests point them at the stub).
#[derive(Clone, Debug)]
pub struct ProviderUrls {
    /// `STEWRD_OPENAI_BASE_URL`, default `https://api.openai.com/v1`.
    pub openai: String,
    /// `STEWRD_OPENROUTER_BASE_URL`, default `https://openrouter.ai/api/v1`.
    pub openrouter: String,
}

impl ProviderUrls {
    /// The base URL for `provider`, without a trailing slash.
    pub fn base_url(&self, provider: Provider) -> &str {
        match provider {
            Provider::OpenAi => &self.openai,
            Provider::OpenRouter => &self.openrouter,
        }
    }
}

/// How a worker runs jobs.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// `STEWRD_WORKER_CONCURRENCY`, default 256: runs in flight per worker process
    /// (and the AMQP prefetch).
    pub concurrency: usize,
    /// `STEWRD_LEASE_SECS`, default 30: how long a claim holds a run without a
    /// heartbeat. A dead worker's runs are taken back after at most this long.
    pub lease: Duration,
    /// `STEWRD_PROVIDER_TIMEOUT_SECS`, default 2700 (45 min): one provider call,
    /// long enough for slow reasoning models.
    pub provider_timeout: Duration,
    /// `STEWRD_RUN_DEADLINE_SECS`, default 10800 (3 h): a run still not final this
    /// long after it was submitted fails with `provider_timeout`.
    pub run_deadline: Duration,
    /// `STEWRD_MAX_ATTEMPTS`, default 5: claims of one run (crashes and retries
    /// included) before it fails for good.
    pub max_attempts: u32,
    /// `STEWRD_SHUTDOWN_GRACE_SECS`, default 30: how long a stopping worker lets
    /// in-flight runs finish before handing them back to the queue, and a
    /// stopping API lets open requests (long-polls, event streams) finish.
    pub shutdown_grace: Duration,
    /// `STEWRD_PROVIDER_CONNECT_TIMEOUT_SECS`, default 10.
    pub provider_connect_timeout: Duration,
    /// `STEWRD_CLAIM_HOLD_MS`, default 5 (0 never; at most 1000): how long a
    /// claim of fewer than 16 messages waits for more to share it while
    /// messages are flowing (a message after a quiet spell is claimed at
    /// once), trading a few milliseconds before a run starts for fewer
    /// statements at a moderate rate (BENCHMARKS.md, issue 32 parts 5, 6, 11).
    /// Short, since the API's publish hold already sends messages in bursts
    /// (part 12): this one gathers what comes apart, from several APIs.
    pub claim_hold: Duration,
    /// `STEWRD_RESULT_HOLD_MS`, default 20 (0 never; at most 1000): how long a
    /// result commit of fewer than 16 results waits for more to share it while
    /// results are flowing (a result after a quiet spell commits at once),
    /// trading a few milliseconds before a final status shows for fewer
    /// commits at a moderate rate (BENCHMARKS.md, issue 32 part 11).
    pub result_hold: Duration,
    /// `STEWRD_PROVIDER_PROXY`, default none: provider calls ignore proxy
    /// environment variables unless this names an HTTP proxy, which every
    /// call is tunnelled through (CONNECT).
    pub provider_proxy: Option<SecretString>,
    /// `STEWRD_RETRY_BASE_MS`, default 1000: the first retry's backoff ceiling;
    /// it doubles per attempt (full jitter) up to `STEWRD_RETRY_MAX_SECS`.
    pub retry_base: Duration,
    /// `STEWRD_RETRY_MAX_SECS`, default 60.
    pub retry_max: Duration,
    /// `STEWRD_DEFAULT_RATE_LIMIT_RPM`, default none: requests per minute for
    /// projects without their own limit.
    pub default_rate_limit_rpm: Option<u32>,
    /// `STEWRD_RATE_LIMIT_BURST`, default 5: calls a project may make at once
    /// before its rate applies.
    pub rate_limit_burst: u32,
    /// `STEWRD_REQUIRES_ACTION_TIMEOUT_SECS`, default 3600: how long a run waits
    /// for the client's tool outputs before it fails (`requires_action_expired`).
    pub requires_action_timeout: Duration,
    /// `STEWRD_TOOL_RETRY_SCHEDULE`, default `1s,5s,30s`: waits between the
    /// attempts of a server tool call (4 attempts in all; the last wait repeats).
    pub tool_retry_schedule: Vec<Duration>,
    /// `STEWRD_MCP_CONNECT_SECS`, default 30: how long a run's first step
    /// keeps trying to list an MCP server's tools before the run fails
    /// (`mcp_server_unavailable`); also `GET …/mcp_servers/{name}/tools`'s limit.
    pub mcp_connect: Duration,
    /// `STEWRD_FETCH_MAX_BYTES`, default 5242880 (5 MiB): the most of a page
    /// `web_fetch` reads.
    pub fetch_max_bytes: usize,
    /// `STEWRD_TOOL_CONCURRENCY`, default 256: server tool calls in flight at
    /// once in one worker process, all runs together (each run also makes at
    /// most `agent::MAX_TOOL_CALLS_IN_FLIGHT` at once), so one answer asking
    /// for many calls cannot take the descriptors Postgres and RabbitMQ need.
    pub tool_concurrency: usize,
    /// `STEWRD_EVENT_RETENTION_SECS`, default 86400: how long after a run ends
    /// its events (and streamed text) can be replayed with `Last-Event-ID`.
    pub event_retention: Duration,
    /// `STEWRD_BACKLOG_SAMPLE_SECS`, default 15: how often the gauges that need a
    /// count in Postgres (outbox due, webhook backlog, paused runs) are refreshed.
    pub backlog_sample_every: Duration,
    /// `STEWRD_FAULT_PANIC_ON_INPUT`, default none. Fault injection for tests
    /// only: a run whose message is exactly this makes the worker's task panic
    /// (with the decrypted key in the panic text), to prove a panic strands no
    /// run and prints no secret. Never set it in production.
    pub panic_on_input: Option<String>,
}

/// How the API treats its HTTP clients.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// `STEWRD_HEADER_READ_TIMEOUT_SECS`, default 10: time a client has to send
    /// a request's headers (and to start its next request on a kept-alive
    /// connection); slower clients are cut off.
    pub header_read_timeout: Duration,
    /// `STEWRD_BODY_READ_TIMEOUT_SECS`, default 30: time a client has to send a
    /// request's body; slower ones get 408.
    pub body_read_timeout: Duration,
    /// `STEWRD_MAX_CONNECTIONS`, default 16384: open connections per API
    /// process (each long-poll or event stream holds one); more wait to be
    /// accepted. Keep it below the process's file-descriptor limit.
    pub max_connections: usize,
}

/// How webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// `STEWRD_WEBHOOK_SCHEDULE`, default `5s,30s,2m,10m,30m,1h,3h`: waits between
    /// attempts; the last repeats until the window ends.
    pub schedule: Vec<Duration>,
    /// `STEWRD_WEBHOOK_WINDOW_SECS`, default 86400: how long an event is retried.
    pub window: Duration,
    /// `STEWRD_WEBHOOK_TIMEOUT_SECS`, default 15: one delivery attempt.
    pub timeout: Duration,
}

/// Where a file store is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file://<dir>`: a directory on the local disk.
    Local(std::path::PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    /// Reads `file://<dir>` or `s3://bucket[/prefix]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(dir) = text.strip_prefix("file://") {
            if dir.is_empty() {
                return Err("a file:// store needs a directory".into());
            }
            return Ok(Self::Local(dir.into()));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("an s3:// store needs a bucket".into());
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        Err("must be file:///dir or s3://bucket/prefix".into())
    }
}

/// Files: where their sealed bytes live, and how much a project may keep.
#[derive(Clone, Debug)]
pub struct FileSettings {
    /// `STEWRD_FILE_STORE`: `file:///abs/dir` or `s3://bucket/prefix`; `stewrd
    /// dev` defaults to `file://.stewrd/files`; none elsewhere: files are off.
    pub store: Option<StoreUrl>,
    /// `STEWRD_S3_ENDPOINT`, default AWS: an S3-compatible server (path-style).
    pub s3_endpoint: Option<String>,
    /// `STEWRD_S3_REGION`, default `AWS_DEFAULT_REGION` or `us-east-1`.
    pub s3_region: Option<String>,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, default none (the
    /// store's other credential sources, as `object_store` reads them).
    pub s3_credentials: Option<(String, SecretString)>,
    /// `STEWRD_FILE_MAX_BYTES`, default 33554432 (32 MiB): one file.
    pub max_bytes: u64,
    /// `STEWRD_FILE_QUOTA_BYTES`, default 1073741824 (1 GiB): a project's files together.
    pub quota_bytes: u64,
    /// `STEWRD_FILE_ABANDON_SECS`, default 3600: an upload not finished this
    /// long after it began was cut off, and housekeeping removes its bytes.
    pub abandon_after: Duration,
}

/// Every setting of every command.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`, less the TLS options tokio-postgres does not know.
    pub database: tokio_postgres::Config,
    /// `DATABASE_URL`'s `sslmode` and `sslrootcert`, or `STEWRD_DATABASE_CA_FILE`.
    pub database_tls: DatabaseTls,
    /// `STEWRD_DB_POOL_SIZE`, default 16 connections per process.
    pub db_pool_size: usize,
    /// `AMQP_URL` (one node or several) and `STEWRD_AMQP_CA_FILE`.
    pub broker: Broker,
    /// `STEWRD_LISTEN`, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// How the API bounds slow and numerous clients.
    pub http: HttpSettings,
    /// `STEWRD_TLS_CERT` and `STEWRD_TLS_KEY`: the API serves HTTPS when set.
    pub listen_tls: Option<Arc<rustls::ServerConfig>>,
    /// `STEWRD_METRICS_LISTEN`, default none: where a worker serves `/metrics`
    /// (the API serves it on its own address).
    pub metrics_listen: Option<SocketAddr>,
    /// `STEWRD_MASTER_KEYS`: encrypts stored secrets; required by the commands that
    /// read or write them (see [`Config::master_keys`]).
    master_keys: Option<Arc<MasterKeyRing>>,
    /// `STEWRD_ADMIN_TOKEN`; none turns the admin API off.
    pub admin_token: Option<SecretString>,
    /// `STEWRD_METRICS_TOKEN`, default none: when set, `/metrics` (API and
    /// worker) answers only requests bearing it; when unset, `/metrics` is open,
    /// so bind it where only the monitoring system reaches it.
    pub metrics_token: Option<SecretString>,
    /// `STEWRD_DEFAULT_*`.
    pub default_llm: DefaultLlm,
    /// `STEWRD_*_BASE_URL`.
    pub providers: ProviderUrls,
    /// `STEWRD_QUEUE_PREFIX`, default `stewrd`: prefix of every exchange and queue.
    pub queue_prefix: String,
    /// `STEWRD_PUBLISH_HOLD_MS`, default 20 (0 never; at most 1000): how long
    /// the API holds a run's message (a new run's, or a resumed one's) for
    /// others to share its publish
    /// while submits are flowing (a submit after a quiet spell is published
    /// at once). The submit's answer never waits for it; the run starts up to
    /// this much later, and the broker takes fewer, larger batches
    /// (BENCHMARKS.md, issue 32 part 12).
    pub publish_hold: Duration,
    /// Worker tuning.
    pub worker: WorkerSettings,
    /// `STEWRD_WEBHOOK_ALLOW_PRIVATE`, default false.
    pub webhook_allow_private: bool,
    /// Webhook delivery.
    pub webhook: WebhookSettings,
    /// `STEWRD_FILE_*`, `STEWRD_S3_*`.
    pub files: FileSettings,
    /// Where a worker's runs get browsers (`STEWRD_BROWSER_HOST_URL` and
    /// `STEWRD_BROWSER_HOST_TOKEN`); none: runs asking for `browser` fail
    /// with `browser_unavailable`.
    pub browser: Option<BrowserAccess>,
    /// `STEWRD_PUBLIC_URL`, default `http://` (or `https://`) + `STEWRD_LISTEN`: how clients reach
    /// the API (links in webhook payloads).
    pub public_url: String,
    /// `STEWRD_LOG_FORMAT`, default `pretty`.
    pub log_format: LogFormat,
}

/// `DATABASE_URL`'s default.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/stewrd";
/// How long a TCP connect to one Postgres host may take unless `DATABASE_URL`
/// sets `connect_timeout`. It applies to each host in turn, so it must be short:
/// a failed primary that drops packets (rather than refusing) costs this much
/// before the standby is tried, on every new connection.
pub const DATABASE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `AMQP_URL`'s default.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let database_url = env.string("DATABASE_URL", DEFAULT_DATABASE_URL);
        let (mut database, database_tls) = crate::runtime::tls::postgres::parse(
            &database_url,
            env.get("STEWRD_DATABASE_CA_FILE").as_deref(),
        )?;
        if database.get_dbname().is_none() {
            return Err(ConfigError::new("DATABASE_URL", "names no database"));
        }
        if database.get_connect_timeout().is_none() {
            database.connect_timeout(DATABASE_CONNECT_TIMEOUT);
        }
        let amqp_url = env.string("AMQP_URL", DEFAULT_AMQP_URL);
        let broker = Broker::at(&amqp_url)
            .map_err(|e| ConfigError::new("AMQP_URL", e.to_string()))?
            .with_ca_file(env.get("STEWRD_AMQP_CA_FILE").as_deref())
            .map_err(|e| ConfigError::new("STEWRD_AMQP_CA_FILE", e.to_string()))?;
        let queue_prefix = env.string("STEWRD_QUEUE_PREFIX", "stewrd");
        if queue_prefix.is_empty()
            || queue_prefix.len() > 100
            || !queue_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ConfigError::new(
                "STEWRD_QUEUE_PREFIX",
                "must be 1-100 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
            ));
        }
        let listen = env.parse("STEWRD_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let listen_tls = match (env.get("STEWRD_TLS_CERT"), env.get("STEWRD_TLS_KEY")) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                Some(crate::runtime::tls::server::server_config(&cert, &key)?)
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "STEWRD_TLS_KEY",
                    "must be set with STEWRD_TLS_CERT",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "STEWRD_TLS_CERT",
                    "must be set with STEWRD_TLS_KEY",
                ));
            }
        };
        let scheme = if listen_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let public_url = env.base_url("STEWRD_PUBLIC_URL", &format!("{scheme}://{listen}"))?;
        Ok(Self {
            public_url,
            database,
            database_tls,
            db_pool_size: env.parse_min("STEWRD_DB_POOL_SIZE", 16, 1)?,
            broker,
            listen,
            http: HttpSettings {
                header_read_timeout: env.seconds("STEWRD_HEADER_READ_TIMEOUT_SECS", 10)?,
                body_read_timeout: env.seconds("STEWRD_BODY_READ_TIMEOUT_SECS", 30)?,
                max_connections: env.parse_min("STEWRD_MAX_CONNECTIONS", 16_384, 1)?,
            },
            listen_tls,
            metrics_listen: match env.get("STEWRD_METRICS_LISTEN") {
                None => None,
                Some(_) => Some(env.parse("STEWRD_METRICS_LISTEN", listen)?),
            },
            master_keys: match env.get("STEWRD_MASTER_KEYS") {
                None => None,
                Some(text) => {
                    Some(Arc::new(MasterKeyRing::parse(&text).map_err(|why| {
                        ConfigError::new("STEWRD_MASTER_KEYS", why.to_string())
                    })?))
                }
            },
            admin_token: env.secret("STEWRD_ADMIN_TOKEN"),
            metrics_token: env.secret("STEWRD_METRICS_TOKEN"),
            default_llm: DefaultLlm {
                provider: env.provider("STEWRD_DEFAULT_PROVIDER")?,
                model: env.string("STEWRD_DEFAULT_MODEL", "gpt-4o-mini"),
                api_key: env.secret("STEWRD_DEFAULT_API_KEY"),
                tokens_per_day: match env.get("STEWRD_DEFAULT_KEY_TOKENS_PER_DAY") {
                    None => None,
                    Some(_) => Some(env.parse_min("STEWRD_DEFAULT_KEY_TOKENS_PER_DAY", 1, 1)?),
                },
            },
            providers: ProviderUrls {
                openai: env.base_url("STEWRD_OPENAI_BASE_URL", "https://api.openai.com/v1")?,
                openrouter: env
                    .base_url("STEWRD_OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")?,
            },
            queue_prefix,
            publish_hold: Duration::from_millis(env.parse_max(
                "STEWRD_PUBLISH_HOLD_MS",
                20,
                1_000,
            )?),
            worker: WorkerSettings {
                concurrency: env.parse_min("STEWRD_WORKER_CONCURRENCY", 256, 1)?,
                lease: env.seconds("STEWRD_LEASE_SECS", 30)?,
                provider_timeout: env.seconds("STEWRD_PROVIDER_TIMEOUT_SECS", 2700)?,
                run_deadline: env.seconds("STEWRD_RUN_DEADLINE_SECS", 10_800)?,
                max_attempts: env.parse_min("STEWRD_MAX_ATTEMPTS", 5, 1)?,
                shutdown_grace: Duration::from_secs(env.parse("STEWRD_SHUTDOWN_GRACE_SECS", 30)?),
                provider_connect_timeout: env
                    .seconds("STEWRD_PROVIDER_CONNECT_TIMEOUT_SECS", 10)?,
                claim_hold: Duration::from_millis(env.parse_max(
                    "STEWRD_CLAIM_HOLD_MS",
                    5,
                    1_000,
                )?),
                result_hold: Duration::from_millis(env.parse_max(
                    "STEWRD_RESULT_HOLD_MS",
                    20,
                    1_000,
                )?),
                provider_proxy: env.proxy_url("STEWRD_PROVIDER_PROXY")?,
                retry_base: Duration::from_millis(env.parse_min(
                    "STEWRD_RETRY_BASE_MS",
                    1000,
                    1,
                )?),
                retry_max: env.seconds("STEWRD_RETRY_MAX_SECS", 60)?,
                default_rate_limit_rpm: match env.get("STEWRD_DEFAULT_RATE_LIMIT_RPM") {
                    None => None,
                    Some(_) => Some(env.parse_min("STEWRD_DEFAULT_RATE_LIMIT_RPM", 1, 1)?),
                },
                rate_limit_burst: env.parse_min("STEWRD_RATE_LIMIT_BURST", 5, 1)?,
                requires_action_timeout: env
                    .seconds("STEWRD_REQUIRES_ACTION_TIMEOUT_SECS", 3600)?,
                tool_retry_schedule: env.schedule("STEWRD_TOOL_RETRY_SCHEDULE", "1s,5s,30s")?,
                mcp_connect: env.seconds("STEWRD_MCP_CONNECT_SECS", 30)?,
                fetch_max_bytes: env.parse_min("STEWRD_FETCH_MAX_BYTES", 5 << 20, 1)?,
                tool_concurrency: env.parse_min("STEWRD_TOOL_CONCURRENCY", 256, 1)?,
                backlog_sample_every: env.seconds("STEWRD_BACKLOG_SAMPLE_SECS", 15)?,
                event_retention: env.seconds("STEWRD_EVENT_RETENTION_SECS", 86_400)?,
                panic_on_input: env.get("STEWRD_FAULT_PANIC_ON_INPUT"),
            },
            webhook_allow_private: env.parse("STEWRD_WEBHOOK_ALLOW_PRIVATE", false)?,
            webhook: WebhookSettings {
                schedule: env.schedule("STEWRD_WEBHOOK_SCHEDULE", "5s,30s,2m,10m,30m,1h,3h")?,
                window: env.seconds("STEWRD_WEBHOOK_WINDOW_SECS", 86_400)?,
                timeout: env.seconds("STEWRD_WEBHOOK_TIMEOUT_SECS", 15)?,
            },
            browser: BrowserAccess::from_env(&env)?,
            files: FileSettings {
                store: env
                    .get("STEWRD_FILE_STORE")
                    .map(|text| {
                        StoreUrl::parse(&text)
                            .map_err(|why| ConfigError::new("STEWRD_FILE_STORE", why))
                    })
                    .transpose()?,
                s3_endpoint: env.get("STEWRD_S3_ENDPOINT"),
                s3_region: env.get("STEWRD_S3_REGION"),
                s3_credentials: env
                    .get("AWS_ACCESS_KEY_ID")
                    .zip(env.secret("AWS_SECRET_ACCESS_KEY")),
                max_bytes: env.parse_min("STEWRD_FILE_MAX_BYTES", 32 << 20, 1)?,
                quota_bytes: env.parse_min("STEWRD_FILE_QUOTA_BYTES", 1 << 30, 1)?,
                abandon_after: env.seconds("STEWRD_FILE_ABANDON_SECS", 3600)?,
            },
            log_format: match env.string("STEWRD_LOG_FORMAT", "pretty").as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "STEWRD_LOG_FORMAT",
                        "must be pretty or json",
                    ));
                }
            },
        })
    }
}

/// The shortest `STEWRD_ADMIN_TOKEN` the API accepts outside `stewrd dev`.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

impl Config {
    /// Refuses a short admin token: it guards every project's settings and keys,
    /// so it must not be guessable (`stewrd dev`, local only, skips this).
    pub fn check_admin_token_strength(&self) -> Result<(), ConfigError> {
        match &self.admin_token {
            Some(token) if token.expose_secret().chars().count() < MIN_ADMIN_TOKEN_CHARS => {
                Err(ConfigError::new(
                    "STEWRD_ADMIN_TOKEN",
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN_CHARS} characters; make one with: openssl rand -hex 32"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The master keys, or the error that stops a command needing them.
    pub fn master_keys(&self) -> Result<Arc<MasterKeyRing>, ConfigError> {
        self.master_keys.clone().ok_or_else(|| {
            ConfigError::new(
                "STEWRD_MASTER_KEYS",
                "not set; generate one with: echo \"k1:$(head -c 32 /dev/urandom | base64)\"",
            )
        })
    }

    /// Uses `ring` as the master keys (`stewrd dev`'s local key file).
    pub fn set_master_keys(&mut self, ring: MasterKeyRing) {
        self.master_keys = Some(Arc::new(ring));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_webhook_schedule_is_a_list_of_durations() {
        let custom = config(&[("STEWRD_WEBHOOK_SCHEDULE", "100ms, 2s")]).expect("valid");
        assert_eq!(
            custom.webhook.schedule,
            [Duration::from_millis(100), Duration::from_secs(2)]
        );
        let default = config_default();
        assert_eq!(default.webhook.schedule.len(), 7);
        assert_eq!(default.webhook.schedule[0], Duration::from_secs(5));
        let err = config(&[("STEWRD_WEBHOOK_SCHEDULE", "soon")]).err();
        assert_eq!(err.map(|e| e.name), Some("STEWRD_WEBHOOK_SCHEDULE"));
    }

    fn config_default() -> Config {
        config(&[]).expect("defaults are valid")
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.database.get_dbname(), Some("stewrd"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.queue_prefix, "stewrd");
        assert_eq!(config.worker.concurrency, 256);
        assert_eq!(config.default_llm.model, "gpt-4o-mini");
        assert!(config.admin_token.is_none());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("STEWRD_WORKER_CONCURRENCY", "0")]).err();
        assert_eq!(err.map(|e| e.name), Some("STEWRD_WORKER_CONCURRENCY"));
        let err = config(&[("STEWRD_QUEUE_PREFIX", "a b")]).err();
        assert_eq!(err.map(|e| e.name), Some("STEWRD_QUEUE_PREFIX"));
        let err = config(&[("STEWRD_CLAIM_HOLD_MS", "1001")]).err();
        assert_eq!(err.map(|e| e.name), Some("STEWRD_CLAIM_HOLD_MS"));
        let hold = config(&[("STEWRD_CLAIM_HOLD_MS", "0")]).map(|c| c.worker.claim_hold);
        assert_eq!(hold.ok(), Some(Duration::ZERO));
        let err = config(&[("STEWRD_RESULT_HOLD_MS", "1001")]).err();
        assert_eq!(err.map(|e| e.name), Some("STEWRD_RESULT_HOLD_MS"));
        let hold = config(&[("STEWRD_RESULT_HOLD_MS", "0")]).map(|c| c.worker.result_hold);
        assert_eq!(hold.ok(), Some(Duration::ZERO));
        let err = config(&[("STEWRD_PUBLISH_HOLD_MS", "1001")]).err();
        assert_eq!(err.map(|e| e.name), Some("STEWRD_PUBLISH_HOLD_MS"));
        let hold = config(&[("STEWRD_PUBLISH_HOLD_MS", "0")]).map(|c| c.publish_hold);
        assert_eq!(hold.ok(), Some(Duration::ZERO));
        let err = config(&[("STEWRD_DEFAULT_PROVIDER", "anthropic")]).err();
        assert_eq!(err.map(|e| e.name), Some("STEWRD_DEFAULT_PROVIDER"));
        let err = config(&[("DATABASE_URL", "mysql:// nope")]).err();
        assert_eq!(err.map(|e| e.name), Some("DATABASE_URL"));
    }

    #[test]
    fn a_provider_proxy_is_an_http_url_whose_password_no_error_or_debug_shows() {
        for bad in ["socks5://user:hunter2@proxy:1080", "hunter2", "http://"] {
            let err = config(&[("STEWRD_PROVIDER_PROXY", bad)]).err().expect(bad);
            assert_eq!(err.name, "STEWRD_PROVIDER_PROXY");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let good = "http://user:hunter2@proxy.internal:3128";
        let worker = config(&[("STEWRD_PROVIDER_PROXY", good)])
            .expect("valid")
            .worker;
        let proxy = worker.provider_proxy.as_ref().expect("a proxy");
        assert_eq!(proxy.expose_secret(), good);
        assert!(!format!("{worker:?}").contains("hunter2"));
    }

    #[test]
    fn master_keys_are_required_only_when_asked_for_and_validated_when_set() {
        let unset = config(&[]).expect("valid without master keys");
        let err = unset.master_keys().err().map(|e| e.name);
        assert_eq!(err, Some("STEWRD_MASTER_KEYS"));
        let err = config(&[("STEWRD_MASTER_KEYS", "k1:c2hvcnQ=")]).err();
        let err = err.expect("a short key is refused");
        assert_eq!(err.name, "STEWRD_MASTER_KEYS");
        assert!(!err.to_string().contains("c2hvcnQ="), "{err}");
        let entry = MasterKeyRing::generate_entry("k1");
        let text = secrecy::ExposeSecret::expose_secret(&entry).to_owned();
        let set = config(&[("STEWRD_MASTER_KEYS", &text)]).expect("valid");
        assert_eq!(
            set.master_keys()
                .map(|k| k.active_id().to_owned())
                .ok()
                .as_deref(),
            Some("k1")
        );
    }

    #[test]
    fn a_short_admin_token_is_refused_and_a_long_one_is_not() {
        let short = config(&[("STEWRD_ADMIN_TOKEN", "dev-admin-token")]).expect("parses");
        let error = short.check_admin_token_strength().expect_err("refused");
        assert_eq!(error.name, "STEWRD_ADMIN_TOKEN");
        assert!(!error.to_string().contains("dev-admin-token"));
        let long = config(&[("STEWRD_ADMIN_TOKEN", &"t".repeat(32))]).expect("parses");
        assert!(long.check_admin_token_strength().is_ok());
        assert!(
            config(&[])
                .expect("parses")
                .check_admin_token_strength()
                .is_ok()
        );
    }

    #[test]
    fn a_config_error_never_repeats_a_secret_value() {
        let err = config(&[("STEWRD_LOG_FORMAT", "sk-secret-value")]).err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(!text.contains("sk-secret-value"), "{text}");
    }
}
