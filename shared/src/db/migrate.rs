//! `stewrd migrate`: creates the database if it is missing and applies pending
//! migrations in order, under an advisory lock so several processes may run it at
//! once. Migrations are only ever added, never edited.

use tokio_postgres::{Client, error::SqlState};

use super::DbError;
use crate::runtime::tls::postgres::DatabaseTls;

/// Every migration, in order. The name is recorded in `schema_migrations`.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_create_core",
        include_str!("../../../migrations/0001_create_core.sql"),
    ),
    (
        "0002_add_provider_key",
        include_str!("../../../migrations/0002_add_provider_key.sql"),
    ),
    (
        "0003_add_rate_limits_and_cooldowns",
        include_str!("../../../migrations/0003_add_rate_limits_and_cooldowns.sql"),
    ),
    (
        "0004_add_webhooks",
        include_str!("../../../migrations/0004_add_webhooks.sql"),
    ),
    (
        "0005_add_idempotency_keys",
        include_str!("../../../migrations/0005_add_idempotency_keys.sql"),
    ),
    (
        "0006_drop_hot_project_foreign_keys",
        include_str!("../../../migrations/0006_drop_hot_project_foreign_keys.sql"),
    ),
    (
        "0007_trim_the_job_path",
        include_str!("../../../migrations/0007_trim_the_job_path.sql"),
    ),
    (
        "0008_add_agent_runs",
        include_str!("../../../migrations/0008_add_agent_runs.sql"),
    ),
    (
        "0009_add_session_events",
        include_str!("../../../migrations/0009_add_session_events.sql"),
    ),
    (
        "0010_add_tenant_controls",
        include_str!("../../../migrations/0010_add_tenant_controls.sql"),
    ),
    (
        "0011_fix_claims",
        include_str!("../../../migrations/0011_fix_claims.sql"),
    ),
    (
        "0012_add_batched_claims",
        include_str!("../../../migrations/0012_add_batched_claims.sql"),
    ),
    (
        "0013_trim_the_event_log",
        include_str!("../../../migrations/0013_trim_the_event_log.sql"),
    ),
    (
        "0014_mark_woken_places",
        include_str!("../../../migrations/0014_mark_woken_places.sql"),
    ),
    (
        "0015_keep_capped_wake_ups",
        include_str!("../../../migrations/0015_keep_capped_wake_ups.sql"),
    ),
    (
        "0016_add_dashboard_sign_outs",
        include_str!("../../../migrations/0016_add_dashboard_sign_outs.sql"),
    ),
];

/// Any fixed number: the advisory lock that serializes concurrent migrators.
const MIGRATION_LOCK: i64 = 0x57E3_0001;

/// What a migration run did.
#[derive(Debug, Default)]
pub struct MigrateReport {
    /// Whether the database had to be created.
    pub created_database: bool,
    /// Names of the migrations applied now (empty when up to date).
    pub applied: Vec<&'static str>,
}

/// Migrations not yet applied to the database behind `client` (all of them when
/// the database was never migrated).
pub async fn pending_migrations(
    client: &impl super::GenericClient,
) -> Result<Vec<&'static str>, DbError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    let applied: Vec<String> = if exists {
        client
            .query("SELECT name FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !applied.iter().any(|done| done == name))
        .collect())
}

/// Brings the database named in `config` up to date.
pub async fn migrate(
    config: &tokio_postgres::Config,
    tls: &DatabaseTls,
) -> Result<MigrateReport, DbError> {
    let mut report = MigrateReport::default();
    let client = match open(config, tls).await {
        Ok(client) => client,
        Err(DbError::Query(error)) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            report.created_database = create_database(config, tls).await?;
            open(config, tls).await?
        }
        Err(error) => return Err(error),
    };
    client
        .query_one("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply_pending(&client, &mut report).await;
    // The lock also goes with the connection; unlocking early just frees others sooner.
    let _ = client
        .query_one("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result.map(|()| report)
}

async fn apply_pending(client: &Client, report: &mut MigrateReport) -> Result<(), DbError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 name text PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: Vec<String> = client
        .query("SELECT name FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for (name, sql) in MIGRATIONS {
        if applied.iter().any(|done| done == name) {
            continue;
        }
        client.batch_execute("BEGIN").await?;
        let step = async {
            client.batch_execute(sql).await?;
            client
                .execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name])
                .await?;
            client.batch_execute("COMMIT").await
        };
        if let Err(error) = step.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(error.into());
        }
        tracing::info!(migration = name, "applied migration");
        report.applied.push(name);
    }
    Ok(())
}

/// Creates the database; another process creating it at the same moment is fine.
async fn create_database(
    config: &tokio_postgres::Config,
    tls: &DatabaseTls,
) -> Result<bool, DbError> {
    let name = config.get_dbname().unwrap_or("stewrd");
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let client = open(&maintenance, tls).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => {
            tracing::info!(database = name, "created database");
            Ok(true)
        }
        // Lost the race to a concurrent migrator: the database exists, which is all we want.
        Err(error)
            if error.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || error.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

async fn open(config: &tokio_postgres::Config, tls: &DatabaseTls) -> Result<Client, DbError> {
    let (client, connection) = config.connect(tls.connector()).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "migration connection closed");
        }
    });
    Ok(client)
}
