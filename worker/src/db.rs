//! How the worker reaches Postgres: one statement on a pooled connection, and
//! one policy for riding out an outage (the claim, the result commit and the
//! dead-letter verdict each wait for Postgres to come back, with backoff).

use std::time::{Duration, Instant};

use stewrd_shared::{
    db::{Client, DbError},
    retry::{backoff, pause},
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

impl Worker {
    /// Runs `operation` on a pooled connection (returned to the pool after).
    pub(crate) async fn db<T, F>(&self, operation: impl FnOnce(Client) -> F) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, DbError>>,
    {
        let client = self.pool.get().await?;
        operation(client).await
    }

    /// Runs `operation` until it succeeds or fails for another reason than
    /// Postgres being unavailable, waiting out an outage as `patience` allows.
    pub(crate) async fn db_patiently<T, F>(
        &self,
        patience: Patience<'_>,
        what: &str,
        mut operation: impl FnMut(Client) -> F,
    ) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, DbError>>,
    {
        let started = Instant::now();
        let never = CancellationToken::new();
        let stop = match patience {
            Patience::UntilStopped(token) => token,
            Patience::For(_) => &never,
        };
        let mut failures = 0;
        loop {
            let result = match self.pool.get().await {
                Ok(client) => operation(client).await,
                Err(error) => Err(error.into()),
            };
            let waiting = match patience {
                Patience::UntilStopped(token) => !token.is_cancelled(),
                Patience::For(limit) => started.elapsed() < limit,
            };
            match result {
                Err(DbError::Unavailable(reason)) if waiting => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(%reason, "database unavailable; waiting to {what}");
                    }
                    pause(stop, backoff(failures)).await;
                }
                other => return other,
            }
        }
    }
}
