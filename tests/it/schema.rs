//! The schema as `stewrd migrate` makes it: versioned migrations recorded with
//! their checksums (an edited one is refused), and stored functions applied
//! from `migrations/functions/` whenever they change, so a database upgraded
//! from any earlier main ends exactly like a fresh one.

use std::process::Output;

use crate::helpers::{cleanup, connect_db, database_url, stewrd, unique_name};

/// Runs `stewrd <command>` on the database, expecting it to stop at once; one
/// that starts instead is killed after a while, so the test fails, not hangs.
fn refused(name: &str, command: &str) -> Output {
    let mut child = stewrd()
        .arg(command)
        .env("DATABASE_URL", database_url(name))
        .env("STEWRD_MASTER_KEYS", crate::helpers::MASTER_KEYS)
        .env("STEWRD_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawned");
    let deadline = std::time::Instant::now() + crate::helpers::PATIENCE;
    while child.try_wait().expect("status").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`stewrd {command}` started on a database it should refuse");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn migrate(name: &str) -> Output {
    stewrd()
        .arg("migrate")
        .env("DATABASE_URL", database_url(name))
        .output()
        .expect("migrate ran")
}

/// Every stored function's definition, every trigger and every index.
async fn schema_of(name: &str) -> Vec<(String, String)> {
    let db = connect_db(&database_url(name)).await;
    let mut schema = Vec::new();
    for query in [
        "SELECT proname::text, pg_get_functiondef(oid) FROM pg_proc
         WHERE proname LIKE 'stewrd\\_%' ORDER BY proname",
        "SELECT tgname::text, pg_get_triggerdef(oid) FROM pg_trigger
         WHERE NOT tgisinternal ORDER BY tgname",
        "SELECT indexname::text, indexdef FROM pg_indexes
         WHERE schemaname = 'public' ORDER BY indexname",
    ] {
        for row in db.query(query, &[]).await.expect("the catalog") {
            schema.push((row.get(0), row.get(1)));
        }
    }
    schema
}

/// The migrations of main before stored functions, as it applied them:
/// `migrations/` up to 0010 (unchanged since) and 0011–0015 as they were.
fn migrations_before_functions() -> Vec<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut names: Vec<String> = std::fs::read_dir(format!("{root}/migrations"))
        .expect("migrations")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".sql") && name.as_str() < "0011")
        .collect();
    names.sort();
    let mut migrations: Vec<(String, String)> = names
        .into_iter()
        .map(|name| {
            let sql = std::fs::read_to_string(format!("{root}/migrations/{name}")).expect("sql");
            (name, sql)
        })
        .collect();
    let old = format!("{root}/tests/it/fixtures/migrations_before_functions");
    let mut fixtures: Vec<String> = std::fs::read_dir(&old)
        .expect("fixtures")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    fixtures.sort();
    for name in fixtures {
        let sql = std::fs::read_to_string(format!("{old}/{name}")).expect("sql");
        migrations.push((name, sql));
    }
    migrations
}

#[tokio::test]
async fn a_database_migrated_by_an_earlier_main_ends_exactly_like_a_fresh_one() {
    let (fresh, upgraded) = (unique_name(), unique_name());
    let output = migrate(&fresh);
    assert!(output.status.success(), "{output:?}");
    // As main applied its migrations before stored functions existed.
    let admin = connect_db(&database_url("postgres")).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {upgraded}"))
        .await
        .expect("database");
    let db = connect_db(&database_url(&upgraded)).await;
    db.batch_execute(
        "CREATE TABLE schema_migrations (name text PRIMARY KEY,
                                         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .expect("table");
    let old = migrations_before_functions();
    assert_eq!(old.len(), 15);
    for (file, sql) in &old {
        db.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = file.trim_end_matches(".sql");
        db.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[&name])
            .await
            .expect("recorded");
    }
    drop(db);
    let output = migrate(&upgraded);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("stewrd_claim_next"), "{printed}");
    let (a, b) = (schema_of(&fresh).await, schema_of(&upgraded).await);
    assert!(
        a.iter()
            .filter(|(name, _)| name.starts_with("stewrd_"))
            .count()
            >= 11,
        "{a:?}"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert_eq!(a.len(), b.len());
    // Up to date: nothing is applied twice.
    let again = migrate(&upgraded);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "database is up to date"
    );
    cleanup(&fresh);
    cleanup(&upgraded);
}

#[tokio::test]
async fn an_edited_migration_stops_every_command_and_a_changed_function_is_applied_again() {
    let name = unique_name();
    assert!(migrate(&name).status.success());
    let db = connect_db(&database_url(&name)).await;
    // A stored function that drifted (or whose file changed) is defined
    // again from its file by the next migrate, and commands wait for it.
    db.batch_execute(
        "CREATE OR REPLACE FUNCTION stewrd_mark_free_place(p_project uuid) RETURNS void
         LANGUAGE sql AS $$ SELECT $$;
         UPDATE schema_functions SET checksum = 'an older body'
         WHERE name = 'stewrd_mark_free_place'",
    )
    .await
    .expect("drift");
    let api = refused(&name, "api");
    assert!(!api.status.success());
    assert!(
        String::from_utf8_lossy(&api.stderr).contains("stewrd migrate"),
        "{api:?}"
    );
    let output = migrate(&name);
    assert!(output.status.success(), "{output:?}");
    let body: String = db
        .query_one(
            "SELECT pg_get_functiondef('stewrd_mark_free_place'::regproc)",
            &[],
        )
        .await
        .expect("defined")
        .get(0);
    assert!(body.contains("free_place_generation"), "{body}");
    // An applied migration whose file changed: every command stops, naming it.
    db.execute(
        "UPDATE schema_migrations SET checksum = 'edited' WHERE name = '0008_add_agent_runs'",
        &[],
    )
    .await
    .expect("edit");
    for command in ["migrate", "api"] {
        let output = refused(&name, command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let args = [command];
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr.contains("0008_add_agent_runs") && stderr.contains("edited"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    drop(db);
    cleanup(&name);
}
