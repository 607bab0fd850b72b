//! What stewrd declares on RabbitMQ, checked on the machine's single node.

use lapin::{
    options::QueueDeclareOptions,
    types::{AMQPValue, FieldTable, LongString},
};
use serde_json::json;

use crate::helpers::{AMQP_URL, Options, cleanup, spawn_app_with, unique_name};

/// Removes the pre-declared queues whatever the test's outcome.
struct Queues(String);

impl Drop for Queues {
    fn drop(&mut self) {
        cleanup(&self.0);
    }
}

/// A deployment whose queues an earlier stewrd declared, before it asked for
/// three quorum members: RabbitMQ refuses a declare whose arguments differ, so
/// stewrd declares them as they are and works on, saying so once.
#[tokio::test]
async fn queues_declared_without_a_group_size_are_kept_and_used() {
    let prefix = unique_name();
    let _queues = Queues(prefix.clone());
    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let text = |t: &str| AMQPValue::LongString(LongString::from(t));
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(5));
    args.insert(
        "x-dead-letter-exchange".into(),
        text(&format!("{prefix}.dead-letter")),
    );
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(format!("{prefix}.jobs").as_str().into(), durable, args)
        .await
        .expect("declare as before");
    let _ = connection.close(200, "declared".into()).await;

    let app = spawn_app_with(Options::default().env("STEWRD_QUEUE_PREFIX", &prefix)).await;
    let (_, key) = app.create_project("acme").await;
    let accepted = app.submit(&key, json!({"message": "hello"})).await;
    let session = app
        .wait_final(&key, accepted["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(session["status"], "succeeded", "{session}");
    assert!(
        app.all_logs()
            .contains("declared without x-quorum-initial-group-size"),
        "the kept queue went unmentioned"
    );
}
