//! A streamed model call's text on its way out. The call opens a stream in
//! the session's event log (a `run.reset` first if this step streamed before),
//! then each piece goes to the broker for the live tail and, every second or
//! 16 KiB, into the stream's checkpoint; the whole text is checkpointed before
//! the step commits, and what was written so far when the call ends any other
//! way (failure, cancel, hand-back), so replays and late joiners read it from
//! Postgres.

use std::time::{Duration, Instant};

use stewrd_shared::{
    db::{Pool, event_log, run::ClaimedRun, step::Lease},
    domain::id::{RunId, SessionId},
    queue::deltas::{Delta, DeltaPublisher},
};
use tokio::task::JoinHandle;

use super::Verdict;
use crate::Worker;

/// A checkpoint is written once this much time or text has passed. Each one
/// rewrites the stream's text so far; at 250 ms, a thousand streams cost
/// Postgres more CPU than anything else (`bench stream`), and only late
/// joiners and resumes ever wait on a checkpoint (the live tail comes from the
/// broker), so a second is the trade.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const CHECKPOINT_BYTES: usize = 16 * 1024;

/// One streamed model call's text.
pub(super) struct StreamSink {
    pool: Pool,
    deltas: DeltaPublisher,
    session_id: SessionId,
    run_id: RunId,
    seq: i64,
    step: i32,
    text: String,
    checkpointed: usize,
    checkpointed_at: Instant,
    writing: Option<JoinHandle<()>>,
    finished: bool,
}

impl StreamSink {
    /// Opens the stream for step `step` (under the run's lease).
    pub(super) async fn open(
        worker: &Worker,
        run: &ClaimedRun,
        step: i32,
    ) -> Result<Self, Verdict> {
        let lease = Lease {
            run_id: run.id,
            worker: worker.id,
            attempt: run.lease.attempt,
        };
        let opened = worker
            .db(|client| async move { event_log::open_stream(&client, lease).await })
            .await;
        let seq = match opened {
            Ok(Some(seq)) => seq,
            Ok(None) => return Err(Verdict::LeaseLost),
            Err(error) => {
                tracing::warn!(%error, "cannot open the stream; the run goes back to the queue");
                return Err(Verdict::HandBack);
            }
        };
        worker.announcer.changed(run.session_id);
        Ok(Self {
            pool: worker.pool.clone(),
            deltas: worker.deltas.clone(),
            session_id: run.session_id,
            run_id: run.id,
            seq,
            step,
            text: String::new(),
            checkpointed: 0,
            checkpointed_at: Instant::now(),
            writing: None,
            finished: false,
        })
    }

    /// One piece of text, as the provider sent it.
    pub(super) fn push(&mut self, piece: &str) {
        let offset = self.text.len();
        self.text.push_str(piece);
        self.deltas.send(Delta {
            session_id: self.session_id,
            seq: self.seq,
            run_id: self.run_id,
            step: self.step,
            offset,
            text: piece.to_owned(),
        });
        let due = self.text.len() - self.checkpointed >= CHECKPOINT_BYTES
            || self.checkpointed_at.elapsed() >= CHECKPOINT_EVERY;
        let idle = self.writing.as_ref().is_none_or(JoinHandle::is_finished);
        if due && idle {
            self.checkpointed = self.text.len();
            self.checkpointed_at = Instant::now();
            let write = checkpoint(
                self.pool.clone(),
                self.session_id,
                self.seq,
                self.text.clone(),
            );
            self.writing = Some(tokio::spawn(async move {
                write.await;
            }));
        }
    }

    /// Checkpoints the whole text, before the step is committed (a few tries:
    /// replays read the step's text from here).
    pub(super) async fn finish(mut self) {
        self.finished = true;
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
        let text = std::mem::take(&mut self.text);
        for pause in [100, 500, 1000, 2000, 0] {
            if checkpoint(self.pool.clone(), self.session_id, self.seq, text.clone()).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

impl Drop for StreamSink {
    /// The call ended without `finish` (cancelled, handed back): keep what
    /// was written so far.
    fn drop(&mut self) {
        if !self.finished && !self.text.is_empty() {
            let write = checkpoint(
                self.pool.clone(),
                self.session_id,
                self.seq,
                std::mem::take(&mut self.text),
            );
            tokio::spawn(async move {
                write.await;
            });
        }
    }
}

/// Writes a checkpoint; false when it could not be.
async fn checkpoint(pool: Pool, session_id: SessionId, seq: i64, text: String) -> bool {
    // Boxed, as in `Worker::db`: inline, the checkout would enlarge every run.
    let written = match Box::pin(pool.get()).await {
        Ok(client) => event_log::checkpoint(&client, session_id, seq, &text).await,
        Err(error) => Err(error.into()),
    };
    if let Err(error) = &written {
        tracing::debug!(%error, "stream checkpoint not written");
    }
    written.is_ok()
}
