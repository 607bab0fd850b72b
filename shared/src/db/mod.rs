//! Postgres access: the pool, error classification, migrations, and one module
//! per table with its SQL beside the code that uses it.

pub mod action;
pub mod api_key;
pub mod cooldown;
pub mod event_log;
pub mod idempotency;
pub mod limits;
pub mod migrate;
pub mod outbox;
pub mod project;
pub mod ratelimit;
pub mod run;
pub mod session;
pub mod step;
pub mod usage;
pub mod webhook;

use std::time::Duration;

pub use deadpool_postgres::{Client, GenericClient, Pool, PoolError};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

use crate::config::Config;

/// How long a request waits for a pooled connection, or a new connection for
/// Postgres, before the caller is told the database is unavailable.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// A database failure, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Postgres cannot be reached right now: answer 503, retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement failed.
    #[error("database error")]
    Query(#[source] tokio_postgres::Error),
    /// A stored value is not one this version of stewrd knows.
    #[error("unexpected value in column {column}")]
    Corrupt {
        /// The column holding it.
        column: &'static str,
    },
}

impl DbError {
    /// The SQLSTATE, for statements that reached the server.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Query(error) => error.code(),
            Self::Unavailable(_) | Self::Corrupt { .. } => None,
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

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        let connection_lost = error.is_closed()
            || match error.code() {
                // Not from the server at all: an I/O or protocol failure.
                None => true,
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
    let mut pg = config.database.clone();
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(POOL_TIMEOUT);
    }
    let manager = Manager::from_config(
        pg,
        config.database_tls.connector(),
        ManagerConfig {
            // A connection the server dropped is noticed as closed; no round trip needed.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.db_pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
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
