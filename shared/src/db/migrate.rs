//! `stewrd migrate`: creates the database if it is missing, applies pending
//! migrations in order, then the stored functions that changed, under an
//! advisory lock so several processes may run it at once.
//!
//! Two kinds of SQL, as Flyway has versioned and repeatable migrations:
//! - versioned migrations (`migrations/NNNN_verb_noun.sql`) hold tables and
//!   data; they are only ever added, never edited: each is recorded with its
//!   checksum, and one edited after it was applied stops every command at
//!   start with a line naming it;
//! - each stored function and trigger body lives once, in
//!   `migrations/functions/<name>.sql` (`CREATE OR REPLACE`), applied after
//!   the versioned migrations whenever its checksum changed, all in one
//!   transaction. A body changes for every process at once: a change of
//!   contract gets a new name, and a changed signature a versioned migration
//!   that drops the old one.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, error::SqlState};

use super::DbError;
use crate::runtime::tls::postgres::DatabaseTls;

/// `(name, its file's text)` of a stored function.
macro_rules! function {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../migrations/functions/", $name, ".sql")),
        )
    };
}

/// Every versioned migration, in order. The name is recorded in `schema_migrations`.
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
    (
        "0017_add_step_waits",
        include_str!("../../../migrations/0017_add_step_waits.sql"),
    ),
    (
        "0018_add_free_places",
        include_str!("../../../migrations/0018_add_free_places.sql"),
    ),
    (
        "0019_add_files",
        include_str!("../../../migrations/0019_add_files.sql"),
    ),
    (
        "0020_add_mcp_servers",
        include_str!("../../../migrations/0020_add_mcp_servers.sql"),
    ),
    (
        "0021_add_approvals",
        include_str!("../../../migrations/0021_add_approvals.sql"),
    ),
    (
        "0022_add_builtin_tools",
        include_str!("../../../migrations/0022_add_builtin_tools.sql"),
    ),
    (
        "0023_add_budget_reservations",
        include_str!("../../../migrations/0023_add_budget_reservations.sql"),
    ),
    (
        "0024_add_output_contracts",
        include_str!("../../../migrations/0024_add_output_contracts.sql"),
    ),
    (
        "0025_add_money_budgets",
        include_str!("../../../migrations/0025_add_money_budgets.sql"),
    ),
    (
        "0026_add_claim_cursor",
        include_str!("../../../migrations/0026_add_claim_cursor.sql"),
    ),
    (
        "0027_add_browser_states",
        include_str!("../../../migrations/0027_add_browser_states.sql"),
    ),
    (
        "0028_newest_first_queued_index",
        include_str!("../../../migrations/0028_newest_first_queued_index.sql"),
    ),
];

/// Every stored function, by name: its body's only definition. Applied in
/// this order (function bodies are checked when created, so a SQL function
/// comes after what it calls).
const FUNCTIONS: &[(&str, &str)] = &[
    function!("stewrd_api_key_changed"),
    function!("stewrd_project_changed"),
    function!("stewrd_log_event"),
    function!("stewrd_log_run_change"),
    function!("stewrd_open_stream"),
    function!("stewrd_count_usage"),
    function!("stewrd_budget_used"),
    function!("stewrd_exhausted_budget"),
    function!("stewrd_list_prices"),
    function!("stewrd_prices"),
    function!("stewrd_price"),
    function!("stewrd_call_cost"),
    function!("stewrd_reserve_call"),
    function!("stewrd_settle_reservation"),
    function!("stewrd_mark_free_place"),
    function!("stewrd_free_place"),
    function!("stewrd_waiting_projects"),
    function!("stewrd_claim_next"),
    function!("stewrd_claim_room"),
    function!("stewrd_take_batch"),
    function!("stewrd_claim_fair_batch"),
    function!("stewrd_claim_batch"),
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
    /// Names of the stored functions (re)defined now.
    pub functions: Vec<&'static str>,
}

/// Why the schema cannot be brought up to date, or used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// An applied migration's file differs from what was applied.
    #[error(
        "migration {0} was edited after it was applied: migrations are never edited; \
         restore it and put the change in a new migration"
    )]
    Edited(&'static str),
}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

/// The SHA-256 of a file's text, in hex.
fn checksum(sql: &str) -> String {
    crate::domain::text::hex(&Sha256::digest(sql.as_bytes()))
}

/// What a command needs migrated before it can run: pending migrations and
/// stored functions out of date. An edited migration is an error.
pub async fn pending_migrations(
    client: &tokio_postgres::Client,
) -> Result<Vec<&'static str>, SchemaError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(MIGRATIONS.iter().map(|(name, _)| *name).collect());
    }
    let applied = applied_migrations(client).await?;
    let mut pending = unapplied(&applied)?;
    pending.extend(stale_functions(client).await?);
    Ok(pending)
}

/// Brings the database named in `config` up to date.
pub async fn migrate(
    config: &tokio_postgres::Config,
    tls: &DatabaseTls,
) -> Result<MigrateReport, SchemaError> {
    let mut report = MigrateReport::default();
    let client = match open(config, tls).await {
        Ok(client) => client,
        Err(DbError::Query(error)) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            report.created_database = create_database(config, tls).await?;
            open(config, tls).await?
        }
        Err(error) => return Err(error.into()),
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

/// Applied migrations and their checksums (`None`: applied before checksums
/// were recorded).
async fn applied_migrations(
    client: &tokio_postgres::Client,
) -> Result<Vec<(String, Option<String>)>, SchemaError> {
    let has_checksums: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                            WHERE table_name = 'schema_migrations' AND column_name = 'checksum')",
            &[],
        )
        .await?
        .try_get(0)?;
    let sql = if has_checksums {
        "SELECT name, checksum FROM schema_migrations"
    } else {
        "SELECT name, NULL::text AS checksum FROM schema_migrations"
    };
    Ok(client
        .query(sql, &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?)
}

/// The migrations not applied yet, in order; an applied one whose file
/// changed since is refused.
fn unapplied(applied: &[(String, Option<String>)]) -> Result<Vec<&'static str>, SchemaError> {
    let mut pending = Vec::new();
    for (name, sql) in MIGRATIONS {
        match applied.iter().find(|(done, _)| done == name) {
            None => pending.push(*name),
            Some((_, Some(sum))) if *sum != checksum(sql) => return Err(SchemaError::Edited(name)),
            Some(_) => {}
        }
    }
    Ok(pending)
}

/// The stored functions whose recorded checksum is not their file's, or that
/// are missing (a versioned migration dropped one to change its signature).
async fn stale_functions(
    client: &tokio_postgres::Client,
) -> Result<Vec<&'static str>, SchemaError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_functions') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    let recorded: Vec<(String, String, bool)> = if exists {
        client
            .query(
                "SELECT f.name, f.checksum,
                        EXISTS (SELECT 1 FROM pg_proc WHERE proname = f.name) AS defined
                 FROM schema_functions f",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?
    } else {
        Vec::new()
    };
    Ok(FUNCTIONS
        .iter()
        .filter(|(name, sql)| {
            !recorded
                .iter()
                .any(|(done, sum, defined)| done == name && *sum == checksum(sql) && *defined)
        })
        .map(|(name, _)| *name)
        .collect())
}

async fn apply_pending(client: &Client, report: &mut MigrateReport) -> Result<(), SchemaError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 name text PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());
             ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text;
             CREATE TABLE IF NOT EXISTS schema_functions (
                 name text PRIMARY KEY,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await?;
    let applied = applied_migrations(client).await?;
    let pending = unapplied(&applied)?;
    // Migrations applied before checksums were kept: their files are taken
    // as they stand now.
    for (name, sql) in MIGRATIONS {
        if applied
            .iter()
            .any(|(done, sum)| done == name && sum.is_none())
        {
            client
                .execute(
                    "UPDATE schema_migrations SET checksum = $2 WHERE name = $1",
                    &[name, &checksum(sql)],
                )
                .await?;
        }
    }
    for (name, sql) in MIGRATIONS.iter().filter(|(name, _)| pending.contains(name)) {
        in_transaction(client, async {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    &[name, &checksum(sql)],
                )
                .await?;
            Ok(())
        })
        .await?;
        tracing::info!(migration = name, "applied migration");
        report.applied.push(name);
    }
    let stale = stale_functions(client).await?;
    if stale.is_empty() {
        return Ok(());
    }
    in_transaction(client, async {
        for (name, sql) in FUNCTIONS.iter().filter(|(name, _)| stale.contains(name)) {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO schema_functions (name, checksum) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE
                         SET checksum = EXCLUDED.checksum, applied_at = now()",
                    &[name, &checksum(sql)],
                )
                .await?;
        }
        Ok(())
    })
    .await?;
    for name in stale {
        tracing::info!(function = name, "applied stored function");
        report.functions.push(name);
    }
    Ok(())
}

/// Runs `step` in a transaction on `client`, rolled back if it fails.
async fn in_transaction(
    client: &Client,
    step: impl Future<Output = Result<(), SchemaError>>,
) -> Result<(), SchemaError> {
    client.batch_execute("BEGIN").await?;
    let done = async {
        step.await?;
        client.batch_execute("COMMIT").await?;
        Ok(())
    };
    let result = done.await;
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `.sql` files of `dir` under `migrations/`, without extension, sorted.
    fn files(dir: &str) -> Vec<String> {
        let path = format!("{}/../migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(path)
            .expect("the migrations folder")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".sql").map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_and_stored_function_file_is_applied() {
        let listed: Vec<&str> = MIGRATIONS.iter().map(|(name, _)| *name).collect();
        assert_eq!(files(""), listed, "versioned migrations, in order");
        let mut functions: Vec<&str> = FUNCTIONS.iter().map(|(name, _)| *name).collect();
        functions.sort_unstable();
        assert_eq!(files("functions"), functions);
        for (name, sql) in FUNCTIONS {
            assert!(
                sql.contains(&format!("CREATE OR REPLACE FUNCTION {name}(")),
                "{name}.sql defines {name}, replaceably"
            );
        }
    }

    /// Postgres parses and plans a SQL function's body at every call unless it
    /// inlines it into the calling plan, which it does only for a set-returning
    /// function in a FROM (and a scalar one that is a bare expression): our
    /// pricing, called by every commit as a SQL function, cost 0.6 ms of
    /// Postgres CPU a call (BENCHMARKS.md, issue 32). Only the price lookups
    /// are SQL, inlined into the PL/pgSQL that calls them, whose plans are
    /// kept for a connection's life.
    #[test]
    fn only_inlined_functions_are_written_in_sql() {
        let inlined = ["stewrd_list_prices", "stewrd_prices", "stewrd_price"];
        for (name, sql) in FUNCTIONS {
            let language_sql = sql.contains("LANGUAGE sql");
            assert_eq!(
                language_sql,
                inlined.contains(name),
                "{name}: SQL only for the inlined price lookups, PL/pgSQL otherwise"
            );
            if language_sql {
                assert!(sql.contains("RETURNS TABLE"), "{name} is set-returning");
            }
        }
    }

    #[test]
    fn a_checksum_is_the_sha256_of_the_text() {
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
