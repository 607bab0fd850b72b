//! Postgres access: the pool, error classification, migrations, and one module
//! per table with its SQL beside the code that uses it.

pub mod api_key;
pub mod browser;
pub mod coalesce;
pub mod cooldown;
pub mod event_log;
pub mod file;
pub mod idempotency;
pub mod limits;
pub mod listen;
pub mod mcp;
pub mod migrate;
pub mod notify;
pub mod outbox;
pub mod place;
pub mod price;
pub mod project;
pub mod ratelimit;
pub mod run;
pub mod session;
pub mod sign_out;
pub mod step;
pub mod usage;
pub mod wait;
pub mod webhook;

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

pub use deadpool_postgres::{Client, GenericClient, Pool, PoolError};
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Metrics, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;

use crate::runtime::config::Config;

/// How long a request waits for a pooled connection, or a new connection for
/// Postgres, before the caller is told the database is unavailable.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// A database failure, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Postgres cannot be reached right now: answer 503, retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement failed. Shown with its SQLSTATE (a lock timeout, a
    /// deadlock, a missing function) and not the server's message, which can
    /// quote the statement's values: a log line that shows only this error
    /// says which failure it was without them.
    #[error("database error ({})", sqlstate(.0))]
    Query(#[source] tokio_postgres::Error),
    /// A stored value is not one this version of stewrd knows.
    #[error("unexpected value in column {column}")]
    Corrupt {
        /// The column holding it.
        column: &'static str,
    },
}

/// A failed statement's SQLSTATE, and the constraint and table it names
/// (names, never values), or where it failed without one.
fn sqlstate(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        // tokio-postgres's own words here name a kind, a column's index or
        // name, never a value (those are in its cause, not shown).
        return error.code().map_or_else(
            || format!("in the client: {error}"),
            |code| format!("SQLSTATE {}", code.code()),
        );
    };
    let mut text = format!("SQLSTATE {}", db.code().code());
    if let Some(constraint) = db.constraint() {
        text.push_str(&format!(", constraint {constraint}"));
    }
    if let Some(table) = db.table() {
        text.push_str(&format!(", table {table}"));
    }
    text
}

impl DbError {
    /// The SQLSTATE, for statements that reached the server.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Query(error) => error.code(),
            Self::Unavailable(_) | Self::Corrupt { .. } => None,
        }
    }

    /// Whether the statement failed for the values it carried (out of range,
    /// too long for an index, a byte the encoding refuses): the same write
    /// fails the same way every time, so trying it again never helps.
    pub fn is_data(&self) -> bool {
        match self {
            Self::Query(error) => match error.code() {
                // 22: data exception; 54: a program limit (index row size).
                Some(code) => ["22", "54"]
                    .iter()
                    .any(|class| code.code().starts_with(class)),
                None => is_data_error(error),
            },
            Self::Unavailable(_) | Self::Corrupt { .. } => false,
        }
    }

    /// The server's words for a failed statement (never its detail, which can
    /// quote the values), for a run's error message.
    pub fn server_message(&self) -> String {
        match self {
            Self::Query(error) => error
                .as_db_error()
                .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
            other => other.to_string(),
        }
    }

    /// Whether this is a unique violation of `constraint`.
    pub fn violates(&self, constraint: &str) -> bool {
        match self {
            Self::Query(error) => error.as_db_error().is_some_and(|db| {
                db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
            }),
            Self::Unavailable(_) | Self::Corrupt { .. } => false,
        }
    }
}

/// Whether tokio-postgres refused a value or a column on the client side. Its
/// error kinds are private; their messages are what it exposes (each checked
/// by `claims::a_value_the_client_cannot_convert_is_not_an_outage`).
fn is_data_error(error: &tokio_postgres::Error) -> bool {
    const DATA_ERRORS: [&str; 5] = [
        "error deserializing column",
        "error serializing parameter",
        "invalid column",
        "expected ",
        "query returned an unexpected number of rows",
    ];
    let message = error.to_string();
    DATA_ERRORS.iter().any(|prefix| message.starts_with(prefix))
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            // The server was demoted (a failover) or is a standby: nothing written
            // here can succeed, so the pool stops using it and a new connection
            // finds the writable host (`target_session_attrs=read-write`).
            read_only::seen();
            return Self::Unavailable(
                "the database server is read-only (a failover?); reconnecting".into(),
            );
        }
        let connection_lost = error.is_closed()
            || match error.code() {
                // Not from the server: an I/O or protocol failure, unless the
                // client refused the data (a value that does not convert, a
                // column that is not there), which no reconnect mends.
                None => !is_data_error(&error),
                Some(code) => {
                    code.code().starts_with("08")
                        || [
                            SqlState::ADMIN_SHUTDOWN,
                            SqlState::CRASH_SHUTDOWN,
                            SqlState::CANNOT_CONNECT_NOW,
                            SqlState::TOO_MANY_CONNECTIONS,
                        ]
                        .contains(code)
                }
            };
        if connection_lost {
            // The causes say why: refused, TLS certificate rejected, timed out…
            let mut reason = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                reason = format!("{reason}: {cause}");
                source = cause.source();
            }
            Self::Unavailable(reason)
        } else {
            Self::Query(error)
        }
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => error.into(),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Reads a text column holding one of an enum's spellings.
pub(crate) fn parse_column<T>(
    row: &tokio_postgres::Row,
    column: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, DbError> {
    let text: &str = row.try_get(column)?;
    parse(text).ok_or(DbError::Corrupt { column })
}

/// Reads a nullable text column holding one of an enum's spellings.
pub(crate) fn parse_optional_column<T>(
    row: &tokio_postgres::Row,
    column: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, DbError> {
    let text: Option<&str> = row.try_get(column)?;
    text.map(|text| parse(text).ok_or(DbError::Corrupt { column }))
        .transpose()
}

/// Builds the connection pool; connections are made on first use.
pub fn create_pool(config: &Config) -> Pool {
    let pg = config.database.clone();
    // Making a connection may try every host, each for up to its connect timeout.
    let hosts = u32::try_from(pg.get_hosts().len().max(1)).unwrap_or(u32::MAX);
    let per_host = pg.get_connect_timeout().copied().unwrap_or(POOL_TIMEOUT);
    let create_timeout = per_host.saturating_mul(hosts) + POOL_TIMEOUT;
    let manager = Manager::from_config(
        pg,
        config.database_tls.connector(),
        ManagerConfig {
            // A connection the server dropped is noticed as closed; no round trip needed.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .pre_recycle(Hook::sync_fn(|_, metrics| read_only::check(metrics)))
        .max_size(config.db_pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(create_timeout))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .expect("a pool with a runtime and timeouts always builds")
}

/// Builds the pool and checks that Postgres answers, so a command fails at start-up
/// rather than at its first request.
pub async fn connect(config: &Config) -> Result<Pool, DbError> {
    let pool = create_pool(config);
    pool.get().await?.simple_query("SELECT 1").await?;
    Ok(pool)
}

/// Dropping pooled connections to a server that became read-only.
///
/// A pooled connection stays open when its server is demoted, so without this
/// every write through it would fail until the pool happened to close it. The
/// error that shows it carries no handle on its connection, so instead every
/// connection made before the last such error is dropped when next taken from
/// the pool: they all went to the server that is read-only now (one database
/// per process), and the new ones are made to the writable host.
pub mod read_only {
    use super::{AtomicU64, HookError, Instant, Metrics, OnceLock, Ordering};

    /// Process start, so an instant fits in an atomic as nanoseconds since.
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    /// When a read-only error was last seen (nanoseconds after `EPOCH`); 0: never.
    static SEEN_AT: AtomicU64 = AtomicU64::new(0);

    fn since_epoch(instant: Instant) -> u64 {
        let epoch = *EPOCH.get_or_init(Instant::now);
        u64::try_from(instant.saturating_duration_since(epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    pub(super) fn seen() {
        SEEN_AT.fetch_max(since_epoch(Instant::now()), Ordering::Relaxed);
    }

    /// Whether a read-only error was seen at or after `instant`.
    pub fn seen_since(instant: Instant) -> bool {
        let seen_at = SEEN_AT.load(Ordering::Relaxed);
        seen_at != 0 && since_epoch(instant) <= seen_at
    }

    pub(super) fn check(metrics: &Metrics) -> Result<(), HookError> {
        if seen_since(metrics.created) {
            return Err(HookError::message(
                "made before its server became read-only",
            ));
        }
        Ok(())
    }
}
