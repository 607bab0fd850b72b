//! Webhooks: Standard Webhooks signatures, durable retries on a schedule, the
//! delivery log, and the SSRF guard.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;

use crate::{
    helpers::{Options, PATIENCE, TestApp, spawn_app, spawn_app_with, wait_for},
    receiver::{Answer, Receiver},
};

/// A schedule of a few hundred milliseconds, so retries happen within a test.
fn quick_schedule() -> Options {
    Options::default().env("STEWRD_WEBHOOK_SCHEDULE", "200ms,300ms")
}

/// Sets the project's webhook URL and returns a signing secret we know (a fresh
/// one: the first is never shown).
async fn configure(app: &TestApp, key: &str, url: &str) -> String {
    let (status, project) = app
        .call(
            Method::PUT,
            "/v1/project/webhook",
            Some(key),
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    assert_eq!(project["webhook"]["url"], url);
    assert_eq!(project["webhook"]["has_secret"], true);
    let (status, secret) = app
        .call(Method::POST, "/v1/project/webhook/secret", Some(key), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{secret}");
    let secret = secret["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    secret
}

async fn event_statuses(app: &TestApp) -> Vec<String> {
    let db = app.db().await;
    db.query("SELECT status FROM webhook_events ORDER BY created_at", &[])
        .await
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn wait_events(app: &TestApp, expected: &[&str]) {
    let settled = wait_for(PATIENCE, || async {
        (event_statuses(app).await == expected).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "events are {:?}, not {expected:?}",
        event_statuses(app).await
    );
}

#[tokio::test]
async fn every_final_run_sends_one_signed_event_of_its_kind() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let receiver = Receiver::start().await;
    let secret = configure(&app, &key, &receiver.url()).await;

    let ok = app
        .submit(
            &key,
            json!({"message": "hello", "metadata": {"order": "42"}}),
        )
        .await;
    let ok_id = ok["session_id"].as_str().expect("id").to_owned();
    app.wait_final(&key, &ok_id).await;
    app.stub
        .state
        .push([Reply::error(400, "invalid_request_error", "bad")]);
    let bad = app.submit(&key, json!({"message": "fail"})).await;
    app.wait_final(&key, bad["session_id"].as_str().expect("id"))
        .await;
    app.stub
        .state
        .push([Reply::default().delayed(Duration::from_secs(30))]);
    let slow = app.submit(&key, json!({"message": "cancel me"})).await;
    let slow_id = slow["session_id"].as_str().expect("id");
    wait_for(PATIENCE, || async {
        (app.stub.state.stats().in_flight == 1).then_some(())
    })
    .await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{slow_id}/cancel"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_events(&app, &["delivered", "delivered", "delivered"]).await;

    let received = receiver.received();
    assert_eq!(received.len(), 3, "exactly one delivery per final run");
    let kinds: Vec<_> = received.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(
        kinds,
        [
            json!("session.succeeded"),
            json!("session.failed"),
            json!("session.cancelled")
        ]
    );
    for request in &received {
        assert!(
            request.verifies_with(&secret),
            "bad signature: {:?}",
            request.headers
        );
        assert!(request.header("webhook-id").starts_with("msg_"));
        assert_eq!(request.header("content-type"), "application/json");
        // Signed with the new secret and, during the 24 h overlap, the first one too.
        assert_eq!(request.header("webhook-signature").split(' ').count(), 2);
    }
    let first = received[0].json();
    assert_eq!(first["data"]["id"], ok_id.as_str());
    assert_eq!(first["data"]["status"], "succeeded");
    assert_eq!(first["data"]["output"], "Echo: hello");
    assert_eq!(first["data"]["metadata"], json!({"order": "42"}));
    assert!(
        first["data"].get("messages").is_none(),
        "no message history in webhooks"
    );
    assert!(
        first["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        received[1].json()["data"]["error"]["code"],
        "provider_bad_request"
    );
    assert_eq!(received[2].json()["data"]["status"], "cancelled");

    // A run's own webhook_url wins over the project's.
    let own = Receiver::start().await;
    let routed = app
        .submit(&key, json!({"message": "mine", "webhook_url": own.url()}))
        .await;
    app.wait_final(&key, routed["session_id"].as_str().expect("id"))
        .await;
    wait_events(&app, &["delivered"; 4]).await;
    assert_eq!(own.received().len(), 1);
    assert!(own.received()[0].verifies_with(&secret));
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_on_the_third_attempt() {
    let app = spawn_app_with(quick_schedule()).await;
    let (_, key) = app.create_project("acme").await;
    let receiver = Receiver::start().await;
    let secret = configure(&app, &key, &receiver.url()).await;
    receiver.script([Answer::status(500), Answer::status(503)]);
    let accepted = app.submit(&key, json!({"message": "persist"})).await;
    let session_id = accepted["session_id"].as_str().expect("id");
    app.wait_final(&key, session_id).await;
    wait_events(&app, &["delivered"]).await;

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let ids: Vec<_> = received
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "retries must keep the webhook-id: {ids:?}"
    );
    assert!(
        received.iter().all(|r| r.body == received[0].body),
        "every retry sends the same body"
    );
    assert!(received.iter().all(|r| r.verifies_with(&secret)));

    let (status, log) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session_id}/deliveries"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let attempts = log["data"].as_array().expect("data");
    assert_eq!(attempts.len(), 3, "{log}");
    let codes: Vec<_> = attempts.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(503), json!(200)]);
    assert!(attempts[0]["next_attempt_at"].is_string());
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("500"))
    );
    assert_eq!(attempts[2]["next_attempt_at"], Value::Null);
    assert_eq!(attempts[2]["error"], Value::Null);
    assert_eq!(attempts[0]["event_id"], ids[0].as_str());
    assert_eq!(attempts[0]["url"], receiver.url());
    assert!(attempts[0]["duration_ms"].is_number());

    // Sending the latest event again: same id, one more delivery.
    let (status, retried) = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{session_id}/deliveries/retry"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    wait_for(PATIENCE, || async {
        (receiver.received().len() == 4).then_some(())
    })
    .await;
    assert_eq!(receiver.received()[3].header("webhook-id"), ids[0]);
}

#[tokio::test]
async fn gone_stops_the_retries_and_retry_after_is_honored() {
    let app = spawn_app_with(quick_schedule()).await;
    let (_, key) = app.create_project("acme").await;
    let receiver = Receiver::start().await;
    configure(&app, &key, &receiver.url()).await;

    receiver.script([Answer::status(410)]);
    let gone = app.submit(&key, json!({"message": "gone"})).await;
    app.wait_final(&key, gone["session_id"].as_str().expect("id"))
        .await;
    wait_events(&app, &["stopped"]).await;
    assert_eq!(receiver.received().len(), 1);

    receiver.script([Answer {
        status: 429,
        headers: vec![("retry-after", "1".to_owned())],
        ..Answer::default()
    }]);
    let busy = app.submit(&key, json!({"message": "busy"})).await;
    app.wait_final(&key, busy["session_id"].as_str().expect("id"))
        .await;
    wait_events(&app, &["stopped", "delivered"]).await;
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let gap = received[2].at - received[1].at;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?} despite Retry-After: 1"
    );
}

#[tokio::test]
async fn an_event_survives_the_death_of_the_worker_sending_it() {
    let mut app = spawn_app_with(quick_schedule().env("STEWRD_WEBHOOK_TIMEOUT_SECS", "2")).await;
    let (_, key) = app.create_project("acme").await;
    let receiver = Receiver::start().await;
    let secret = configure(&app, &key, &receiver.url()).await;
    // The first attempt hangs: the worker dies with the event in flight.
    receiver.script([Answer {
        status: 200,
        delay: Duration::from_secs(60),
        ..Answer::default()
    }]);
    let accepted = app.submit(&key, json!({"message": "durable"})).await;
    app.wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    let first = wait_for(PATIENCE, || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    assert!(first.is_some(), "no first attempt");
    app.workers[0].kill();
    app.add_worker();
    wait_events(&app, &["delivered"]).await;
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    assert!(received[1].verifies_with(&secret));
}

#[tokio::test]
async fn secret_rotation_signs_with_both_secrets_for_a_while() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let receiver = Receiver::start().await;
    let old = configure(&app, &key, &receiver.url()).await;
    let (_, new) = app
        .call(Method::POST, "/v1/project/webhook/secret", Some(&key), None)
        .await;
    let new = new["secret"].as_str().expect("secret").to_owned();
    assert_ne!(old, new);
    let accepted = app.submit(&key, json!({"message": "rotating"})).await;
    app.wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    wait_events(&app, &["delivered"]).await;
    let request = &receiver.received()[0];
    assert!(request.verifies_with(&new));
    assert!(
        request.verifies_with(&old),
        "the previous secret keeps working during the overlap"
    );
    assert!(
        !request
            .verifies_with(&stewrd_shared::secrets::signature::SECRET_PREFIX.replace("_", "_AAAA"))
    );
    // The secret is never shown again.
    let (_, project) = app.call(Method::GET, "/v1/project", Some(&key), None).await;
    assert!(!project.to_string().contains(&new[6..]));
}

#[tokio::test]
async fn a_big_output_travels_as_a_link_and_the_body_stays_small() {
    let app = spawn_app().await;
    let (_, key) = app.create_project("acme").await;
    let receiver = Receiver::start().await;
    configure(&app, &key, &receiver.url()).await;
    let big = "word ".repeat(8_000);
    let accepted = app.submit(&key, json!({"message": big})).await;
    let session_id = accepted["session_id"].as_str().expect("id");
    let session = app.wait_final(&key, session_id).await;
    assert!(session["output"].as_str().is_some_and(|o| o.len() > 40_000));
    wait_events(&app, &["delivered"]).await;
    let request = &receiver.received()[0];
    assert!(
        request.body.len() <= 20 * 1024,
        "{} bytes",
        request.body.len()
    );
    let payload = request.json();
    assert_eq!(payload["data"]["output"], Value::Null);
    assert_eq!(payload["data"]["output_truncated"], true);
    assert!(
        payload["data"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/v1/sessions/{session_id}")))
    );
}

/// With the guard on: every listed address form is refused when set, and a URL
/// that slipped into the database anyway is refused when sent; a loopback canary
/// receives nothing.
#[tokio::test]
async fn webhooks_never_reach_private_addresses() {
    let app = spawn_app_with(Options::default().env("STEWRD_WEBHOOK_ALLOW_PRIVATE", "false")).await;
    let (_, key) = app.create_project("acme").await;
    let canary = Receiver::start().await;
    let port = canary.address.port();
    let forms = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://172.16.5.4/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://[fc00::1]/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        "http://[ff02::1]/".to_owned(),
        // IPv4 embedded in IPv6 (local-use NAT64, 6to4, IPv4-translated), site-local.
        format!("http://[64:ff9b:1::7f00:1]:{port}/"),
        format!("http://[2002:7f00:1::]:{port}/"),
        format!("http://[::ffff:0:7f00:1]:{port}/"),
        "http://[fec0::1]/".to_owned(),
        // A name that does not resolve is refused in the same words: no DNS oracle.
        format!("http://ip6-localhost:{port}/"),
        "http://no-such-host.invalid/".to_owned(),
    ];
    let mut messages = std::collections::BTreeSet::new();
    for url in &forms {
        let (status, error) = app
            .call(
                Method::PUT,
                "/v1/project/webhook",
                Some(&key),
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url} accepted: {error}");
        assert_eq!(error["error"]["param"], "url");
        messages.insert(error["error"]["message"].to_string());
        let (status, error) = app
            .call(
                Method::POST,
                "/v1/agent",
                Some(&key),
                Some(json!({"message": "x", "webhook_url": url})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url} accepted: {error}");
        assert_eq!(error["error"]["param"], "webhook_url");
    }
    assert_eq!(
        messages.len(),
        1,
        "one refusal for every cause: {messages:?}"
    );

    // At send time: URLs written straight into the database (as a DNS change
    // between check and send would make them) are refused too.
    let db = app.db().await;
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
    ] {
        db.execute("UPDATE projects SET webhook_url = $1", &[&url])
            .await
            .expect("update");
        let accepted = app.submit(&key, json!({"message": "sneak"})).await;
        app.wait_final(&key, accepted["session_id"].as_str().expect("id"))
            .await;
        let session_id = accepted["session_id"].as_str().expect("id");
        let refused = wait_for(PATIENCE, || async {
            let (_, log) = app
                .call(
                    Method::GET,
                    &format!("/v1/sessions/{session_id}/deliveries"),
                    Some(&key),
                    None,
                )
                .await;
            log["data"][0]["error"]
                .as_str()
                .filter(|e| e.contains("refused"))
                .map(str::to_owned)
        })
        .await;
        assert!(refused.is_some(), "{url} was not refused at send time");
    }
    assert!(canary.received().is_empty(), "the canary was reached");
}
