//! Result commits, coalesced: the results of runs finishing together are stored
//! in one transaction, one commit for all of them instead of one each. A run's
//! task hands its result over and waits for the commit, so nothing is reported
//! (logged, announced, counted) before it is durable, as before.
//!
//! At most [`COMMITS_IN_FLIGHT`] commits run at once; results arriving
//! meanwhile wait for the next, so under load a commit takes many and alone a
//! result waits for none. A batch that fails for another reason than an outage
//! is stored result by result, so one bad row cannot fail the others.

use std::sync::Arc;

use stewrd_shared::{
    db::{
        DbError, Pool,
        run::{Finished, ResultRow, finish_runs, store_result},
    },
    metrics as names,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Commits of results in flight at once.
const COMMITS_IN_FLIGHT: usize = 2;
/// Most results in one commit.
const MAX_RESULTS_PER_COMMIT: usize = 128;

type Answer = oneshot::Sender<Result<Finished, DbError>>;

/// The sending side: each result goes to the committer task.
pub(crate) struct Results {
    tx: mpsc::UnboundedSender<(ResultRow, Answer)>,
}

impl Results {
    /// The handle and the receiver its task drains.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<(ResultRow, Answer)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Stores `row` in the next commit; answers once that commit is done.
    pub(crate) async fn store(&self, row: ResultRow) -> Result<Finished, DbError> {
        let (answer, answered) = oneshot::channel();
        if self.tx.send((row, answer)).is_err() {
            return Err(stopped());
        }
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> DbError {
    DbError::Unavailable("the worker's result committer has stopped".into())
}

/// Commits queued results until `shutdown` (after the consumer's drain, when
/// no run is left to finish).
pub(crate) async fn run(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<(ResultRow, Answer)>,
    shutdown: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = tokio::select! {
            first = rx.recv() => first,
            _ = shutdown.cancelled() => return,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_RESULTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            commit(&pool, batch).await;
            drop(permit);
        });
    }
}

async fn commit(pool: &Pool, batch: Vec<(ResultRow, Answer)>) {
    let (rows, answers): (Vec<ResultRow>, Vec<Answer>) = batch.into_iter().unzip();
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(error) => {
            let reason = DbError::from(error).to_string();
            for answer in answers {
                let _ = answer.send(Err(DbError::Unavailable(reason.clone())));
            }
            return;
        }
    };
    if rows.len() > 1 {
        match finish_runs(&mut client, &rows).await {
            Ok(finished) => {
                metrics::counter!(names::RESULT_COMMITS).increment(1);
                for (answer, finished) in answers.into_iter().zip(finished) {
                    let _ = answer.send(Ok(finished));
                }
                return;
            }
            Err(DbError::Unavailable(reason)) => {
                for answer in answers {
                    let _ = answer.send(Err(DbError::Unavailable(reason.clone())));
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, results = rows.len(), "a result commit failed; storing its results one by one");
            }
        }
    }
    for (row, answer) in rows.iter().zip(answers) {
        let stored = store_result(&client, row).await;
        if stored.is_ok() {
            metrics::counter!(names::RESULT_COMMITS).increment(1);
        }
        let _ = answer.send(stored);
    }
}
