//! Writes of concurrent callers coalesced into shared commits (group commit in
//! the application): each caller hands its write over and waits for the
//! commit that holds it, so nothing is answered before it is durable.
//!
//! At most [`COMMITS_IN_FLIGHT`] commits run at once, and a second starts only
//! once the first has been in flight for the caller's `second_after` (see
//! [`Coalescer::start`]); writes arriving meanwhile wait for the next, so under
//! load a commit takes many and alone a write waits for none. While writes
//! flow, a small batch also holds for company (the caller's `hold`). A batch that
//! fails for another reason than an outage is written one by one, so one bad
//! row cannot fail the others.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{DbError, Pool};
use crate::runtime::arrivals::Arrivals;

/// Commits in flight at once, at most.
const COMMITS_IN_FLIGHT: usize = 2;
/// Most writes in one commit.
const MAX_PER_COMMIT: usize = 128;
/// A batch this large commits without holding for more.
const HOLD_UNTIL: usize = 16;

/// One kind of write that may share a commit with others of its kind.
pub trait Write: Send + Sync + 'static {
    /// The `write` label of `stewrd_commits_total`.
    const LABEL: &'static str;
    type Output: Send + 'static;
    /// Writes `items` in one transaction and commits, answering in order; all or none.
    fn many(
        client: &mut deadpool_postgres::Client,
        items: &[Self],
    ) -> impl Future<Output = Result<Vec<Self::Output>, DbError>> + Send
    where
        Self: Sized;
    /// Writes one on its own.
    fn one(
        &self,
        client: &deadpool_postgres::Client,
    ) -> impl Future<Output = Result<Self::Output, DbError>> + Send;
}

type Answer<W> = oneshot::Sender<Result<<W as Write>::Output, DbError>>;

/// The callers' side, cheap to clone.
pub struct Coalescer<W: Write> {
    tx: mpsc::UnboundedSender<(W, Answer<W>)>,
}

impl<W: Write> Clone for Coalescer<W> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<W: Write> Coalescer<W> {
    /// Starts the committing task on `pool`; it stops at `shutdown`. A second
    /// commit starts while one is in flight once that one has run for
    /// `second_after`: waiting for it makes larger batches (everything that
    /// arrives meanwhile shares the next), and the second lane keeps writes
    /// moving past a commit that hangs (a lock, a connection gone silent).
    ///
    /// While writes are flowing (see [`Arrivals`]), a batch of fewer than
    /// [`HOLD_UNTIL`] also waits up to `hold` for more: at a moderate rate
    /// writes come one at a time, and each alone would pay a commit and its
    /// Postgres wake-ups. A write after a quiet spell commits at once, and so
    /// does the second lane's batch (its commit is there to get past one that
    /// hangs).
    pub fn start(
        pool: Pool,
        second_after: Duration,
        hold: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run::<W>(pool, second_after, hold, rx, shutdown));
        Self { tx }
    }

    /// Writes `item` in the next commit; answers once that commit is done.
    pub async fn write(&self, item: W) -> Result<W::Output, DbError> {
        let (answer, answered) = oneshot::channel();
        if self.tx.send((item, answer)).is_err() {
            return Err(stopped());
        }
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> DbError {
    DbError::Unavailable("the process is stopping".into())
}

async fn run<W: Write>(
    pool: Pool,
    second_after: Duration,
    hold: Duration,
    mut rx: mpsc::UnboundedReceiver<(W, Answer<W>)>,
    shutdown: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT));
    let mut last: Option<tokio::task::JoinHandle<()>> = None;
    let mut arrivals = Arrivals::default();
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let waits = !second_after.is_zero();
        let mut second_lane = false;
        if let Some(last) = last.as_mut().filter(|last| waits && !last.is_finished()) {
            second_lane = tokio::time::timeout(second_after, last).await.is_err();
        }
        let first = tokio::select! {
            first = rx.recv() => first,
            _ = shutdown.cancelled() => return,
        };
        let Some(first) = first else { return };
        // The second lane's commit is there to get past one that hangs: it
        // takes what is at hand and goes.
        let hold = if second_lane { Duration::ZERO } else { hold };
        let batch = arrivals
            .gather(
                &mut rx,
                first,
                (MAX_PER_COMMIT, HOLD_UNTIL),
                hold,
                &shutdown,
            )
            .await;
        let pool = pool.clone();
        last = Some(tokio::spawn(async move {
            commit(&pool, batch).await;
            drop(permit);
        }));
    }
}

async fn commit<W: Write>(pool: &Pool, batch: Vec<(W, Answer<W>)>) {
    let (items, answers): (Vec<W>, Vec<Answer<W>>) = batch.into_iter().unzip();
    let unavailable = |answers: Vec<Answer<W>>, reason: String| {
        for answer in answers {
            let _ = answer.send(Err(DbError::Unavailable(reason.clone())));
        }
    };
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(error) => return unavailable(answers, DbError::from(error).to_string()),
    };
    if items.len() > 1 {
        match W::many(&mut client, &items).await {
            Ok(outputs) => {
                metrics::counter!(crate::runtime::metrics::COMMITS, "write" => W::LABEL)
                    .increment(1);
                for (answer, output) in answers.into_iter().zip(outputs) {
                    let _ = answer.send(Ok(output));
                }
                return;
            }
            Err(DbError::Unavailable(reason)) => return unavailable(answers, reason),
            Err(error) => {
                tracing::warn!(%error, writes = items.len(), "a shared commit failed; writing one by one");
            }
        }
    }
    for (item, answer) in items.iter().zip(answers) {
        let written = item.one(&client).await;
        if written.is_ok() {
            metrics::counter!(crate::runtime::metrics::COMMITS, "write" => W::LABEL).increment(1);
        }
        let _ = answer.send(written);
    }
}
