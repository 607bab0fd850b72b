//! One Postgres `LISTEN` connection per process, reconnected after any loss. The
//! API uses it to wake long-polls; workers use it for cancellations and key
//! cool-downs. After each (re)connect `on_connect` runs, so a subscriber can
//! re-read whatever changed while it was not listening.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, future::BoxFuture};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::{
    db::read_only,
    runtime::{
        retry::{backoff, pause},
        tls::postgres::DatabaseTls,
    },
};

/// How often the listener asks whether its server was seen read-only.
const READ_ONLY_CHECK: Duration = Duration::from_secs(1);

/// Listens on `channels` until `shutdown`, calling `on_notify(channel, payload)`
/// for each notification.
pub async fn listen(
    config: tokio_postgres::Config,
    tls: DatabaseTls,
    channels: &[&str],
    shutdown: CancellationToken,
    on_connect: impl Fn() -> BoxFuture<'static, ()>,
    on_notify: impl Fn(&str, &str),
) {
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        let error = tokio::select! {
            result = listen_once(&config, &tls, channels, &on_connect, &on_notify) => result.err(),
            _ = shutdown.cancelled() => None,
        };
        if let Some(error) = error {
            failures += 1;
            tracing::warn!(%error, "notification listener lost Postgres; reconnecting");
            pause(&shutdown, backoff(failures)).await;
        }
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &DatabaseTls,
    channels: &[&str],
    on_connect: &impl Fn() -> BoxFuture<'static, ()>,
    on_notify: &impl Fn(&str, &str),
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.connector()).await?;
    let (notifications, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(note) = message? {
                let _ = notifications.send(note);
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    let statements: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
    let connected_at = Instant::now();
    client.batch_execute(&statements).await?;
    on_connect().await;
    let mut check = tokio::time::interval(READ_ONLY_CHECK);
    loop {
        tokio::select! {
            note = received.recv() => match note {
                Some(note) => on_notify(note.channel(), note.payload()),
                None => break,
            },
            _ = check.tick() => {
                // A demoted server still sends this connection nothing wrong, but
                // notifications are raised where the writes now go.
                if read_only::seen_since(connected_at) {
                    tracing::info!("the database server became read-only; listening on the writable one");
                    return Ok(());
                }
            }
        }
    }
    // The connection ended; report why.
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
