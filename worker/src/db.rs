//! How the worker reaches Postgres: one statement on a pooled connection, and
//! one policy for riding out an outage (the claim, the result commit and the
//! dead-letter verdict each wait for Postgres to come back, with backoff).

use std::time::{Duration, Instant};

use stewrd_shared::{
    db::{Client, DbError},
    runtime::retry::{backoff, pause},
};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// How long an operation waits for an unavailable Postgres.
#[derive(Clone, Copy)]
pub(crate) enum Patience<'a> {
    /// Until the worker stops (this token is cancelled).
    UntilStopped(&'a CancellationToken),
    /// This long at most.
    For(Duration),
}

/// Both helpers box the pool's checkout (1.6 KiB: deadpool's `get` holds its
/// timeouts and a connection's creation inline) and the operation. A run's
/// task is as large as its largest state and holds that size for its whole
/// life, the provider call included, so a statement's future inline in a step
/// would make every call in flight pay for it; on the heap it costs one
/// allocation per statement, for as long as the statement runs.
impl Worker {
    /// Runs `operation` on a pooled connection (returned to the pool after).
    pub(crate) async fn db<T, F>(&self, operation: impl FnOnce(Client) -> F) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, DbError>>,
    {
        let client = Box::pin(self.pool.get()).await?;
        Box::pin(operation(client)).await
    }

    /// Runs `operation` on a pooled connection until it succeeds or fails for
    /// another reason than Postgres being unavailable, waiting out an outage as
    /// `patience` allows.
    pub(crate) async fn db_patiently<T, F>(
        &self,
        patience: Patience<'_>,
        what: &str,
        mut operation: impl FnMut(Client) -> F,
    ) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, DbError>>,
    {
        let mut outage = Outage::new(patience, what);
        loop {
            let result = match Box::pin(self.pool.get()).await {
                Ok(client) => Box::pin(operation(client)).await,
                Err(error) => Err(error.into()),
            };
            if !outage.wait_to_retry(&result).await {
                return result;
            }
        }
    }
}

/// The one policy for riding out an outage: whether to try again after a
/// result, and the backoff before it.
pub(crate) struct Outage<'a> {
    patience: Patience<'a>,
    what: &'a str,
    started: Instant,
    failures: u32,
}

impl<'a> Outage<'a> {
    pub(crate) fn new(patience: Patience<'a>, what: &'a str) -> Self {
        Self {
            patience,
            what,
            started: Instant::now(),
            failures: 0,
        }
    }

    /// After `result`: `true` (once the backoff has passed) when Postgres was
    /// unavailable and patience allows another try.
    pub(crate) async fn wait_to_retry<T>(&mut self, result: &Result<T, DbError>) -> bool {
        let Err(DbError::Unavailable(reason)) = result else {
            return false;
        };
        let (waiting, stop) = match self.patience {
            Patience::UntilStopped(token) => (!token.is_cancelled(), token.clone()),
            Patience::For(limit) => (self.started.elapsed() < limit, CancellationToken::new()),
        };
        if !waiting {
            return false;
        }
        self.failures += 1;
        if self.failures == 1 {
            tracing::warn!(%reason, "database unavailable; waiting to {}", self.what);
        }
        pause(&stop, backoff(self.failures)).await;
        true
    }
}
