//! The client libraries: their types come from the server's own OpenAPI
//! document (`clients/openapi.json` is `stewrd openapi`, byte for byte; each
//! client's suite regenerates its types from it and fails on a difference),
//! and each runs its test suite against a real `stewrd dev` (the binary under
//! test, a database of its own).

use std::{collections::HashMap, path::Path, process::Command};

use crate::helpers::{
    PATIENCE, cleanup, database_url, start_process_in, stewrd, unique_name, wait_for,
};

const ADMIN_TOKEN: &str = "clients-admin-token";

#[test]
fn the_clients_openapi_document_is_the_server_s() {
    let printed = stewrd().arg("openapi").output().expect("stewrd openapi");
    assert!(printed.status.success(), "{printed:?}");
    let committed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/openapi.json"))
            .expect("clients/openapi.json");
    assert!(
        printed.stdout == committed,
        "clients/openapi.json differs from the server's document: run \
         `cargo run -q -- openapi > clients/openapi.json`, then regenerate the clients' types \
         (clients/python/generate.sh, npm run generate in clients/typescript)"
    );
}

#[tokio::test]
#[ignore = "slow: the Python client's suite against stewrd dev; run by scripts/test --all"]
async fn the_python_client_passes_its_suite_against_stewrd_dev() {
    run_suite("python").await;
}

#[tokio::test]
#[ignore = "slow: the TypeScript client's suite against stewrd dev; run by scripts/test --all"]
async fn the_typescript_client_passes_its_suite_against_stewrd_dev() {
    run_suite("typescript").await;
}

/// Starts `stewrd dev` (its stub provider answering) in a scratch directory
/// and runs `clients/<language>/test.sh` against it.
async fn run_suite(language: &str) {
    let name = unique_name();
    let env: HashMap<String, String> = [
        ("DATABASE_URL", database_url(&name)),
        ("STEWRD_QUEUE_PREFIX", name.clone()),
        ("STEWRD_LISTEN", "127.0.0.1:0".to_owned()),
        ("STEWRD_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let scratch = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let (mut dev, first_line) = start_process_in(Some(&scratch), &env, &["dev"], "api");
    let base = first_line
        .and_then(|line| line.rsplit(' ').next().map(str::to_owned))
        .expect("dev printed its address");
    stewrd_shared::runtime::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    wait_for(PATIENCE, || async {
        let ready = http.get(format!("{base}/readyz")).send().await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await
    .expect("stewrd dev is ready");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = root.join("clients").join(language).join("test.sh");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(&suite)
            .env("STEWRD_TEST_URL", &base)
            .env("STEWRD_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
    })
    .await
    .expect("joined")
    .expect("the suite runs");
    dev.terminate();
    cleanup(&name);
    let _ = std::fs::remove_dir_all(&scratch);
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{output}");
    assert!(
        run.status.success(),
        "clients/{language}'s suite failed:\n{output}"
    );
}
