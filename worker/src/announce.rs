//! Announces status changes to long-polls, batched and outside the result
//! commits. Postgres serializes the commits of notifying transactions, so a
//! `pg_notify` inside every result commit would cost group commit for all of them;
//! one notification per batch after the fact does not. A worker dying between a
//! commit and its announcement only means a long-poll answers at its deadline.

use stewrd_shared::{
    db::{Pool, notify},
    domain::{id::SessionId, model::RunStatus},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Lines per notification (a payload must stay under 8000 bytes).
const LINES_PER_NOTIFY: usize = 120;

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct Announcer {
    tx: mpsc::UnboundedSender<String>,
}

impl Announcer {
    /// An announcer and the receiver its task drains.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Queues one status change.
    pub fn announce(&self, session_id: SessionId, status: RunStatus) {
        let _ = self.tx.send(notify::session_line(session_id, status));
    }

    /// Queues a change that is not a status: a committed step or an opened
    /// stream, for event streams.
    pub fn changed(&self, session_id: SessionId) {
        let _ = self.tx.send(notify::changed_line(session_id));
    }
}

/// Sends queued announcements until `shutdown`, then flushes what is left.
pub(crate) async fn run(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            line = rx.recv() => line,
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        let mut lines = vec![first];
        while lines.len() < LINES_PER_NOTIFY {
            match rx.try_recv() {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        let payload = lines.join("\n");
        let sent = match pool.get().await {
            Ok(client) => notify::send_session_lines(&client, &payload)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = sent {
            // Waiters still answer at their deadline with the stored status.
            tracing::debug!(%error, lines = lines.len(), "status announcement lost");
        }
    }
}
