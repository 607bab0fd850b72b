//! Whether work is flowing, and a batch gathered from a channel while it is.
//! The API's publish hold and the worker's claim hold and result hold wait
//! for company only while work flows: at a moderate rate a publish, a claim or
//! a commit then carries many jobs, and a lone submit, message or result after
//! a quiet spell goes at once, since no company is coming (BENCHMARKS.md,
//! issue 32 parts 11 and 12).

use std::{
    future::Future,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// When the last piece of work arrived.
#[derive(Debug, Default)]
pub struct Arrivals {
    last: Option<Instant>,
}

impl Arrivals {
    /// Whether the previous arrival came less than `hold` before now: at that
    /// rate, the next is likely within a hold. Measured between arrivals, not
    /// from the end of a hold: arrivals further apart than a hold never wait
    /// (from the end of a hold, each would restart the clock and wait its
    /// whole hold alone).
    pub fn flowing(&self, hold: Duration) -> bool {
        self.last.is_some_and(|at| at.elapsed() < hold)
    }

    /// Notes an arrival now.
    pub fn arrived(&mut self) {
        self.last = Some(Instant::now());
    }

    /// The batch that `first`, just taken from `inbox`, starts: what is
    /// queued already, up to `max`; and, while work flows, what arrives
    /// within `hold`, until `until` are at hand (or `shutdown`).
    pub async fn gather<T>(
        &mut self,
        inbox: &mut impl Inbox<T>,
        first: T,
        (max, until): (usize, usize),
        hold: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<T> {
        let flowing = self.flowing(hold);
        self.arrived();
        let mut batch = vec![first];
        take_at_hand(inbox, &mut batch, max);
        if !flowing {
            return batch;
        }
        let deadline = tokio::time::Instant::now() + hold;
        while batch.len() < until {
            tokio::select! {
                next = inbox.take() => match next {
                    Some(next) => {
                        self.arrived();
                        batch.push(next);
                        take_at_hand(inbox, &mut batch, max);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.cancelled() => break,
            }
        }
        batch
    }
}

/// Adds what `inbox` holds already to `batch`, up to `max`.
fn take_at_hand<T>(inbox: &mut impl Inbox<T>, batch: &mut Vec<T>, max: usize) {
    while batch.len() < max {
        match inbox.try_take() {
            Some(next) => batch.push(next),
            None => break,
        }
    }
}

/// A channel a batch is gathered from: tokio's bounded and unbounded
/// receivers alike.
pub trait Inbox<T> {
    /// The next item if one is queued.
    fn try_take(&mut self) -> Option<T>;
    /// The next item, once one comes; `None` once every sender is gone.
    fn take(&mut self) -> impl Future<Output = Option<T>>;
}

impl<T> Inbox<T> for mpsc::Receiver<T> {
    fn try_take(&mut self) -> Option<T> {
        self.try_recv().ok()
    }

    fn take(&mut self) -> impl Future<Output = Option<T>> {
        self.recv()
    }
}

impl<T> Inbox<T> for mpsc::UnboundedReceiver<T> {
    fn try_take(&mut self) -> Option<T> {
        self.try_recv().ok()
    }

    fn take(&mut self) -> impl Future<Output = Option<T>> {
        self.recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_flows_only_after_an_arrival_within_the_hold() {
        let mut arrivals = Arrivals::default();
        assert!(
            !arrivals.flowing(Duration::from_secs(60)),
            "nothing arrived yet"
        );
        arrivals.arrived();
        assert!(arrivals.flowing(Duration::from_secs(60)));
        assert!(!arrivals.flowing(Duration::ZERO), "a zero hold never waits");
        arrivals.last = Instant::now().checked_sub(Duration::from_secs(2));
        assert!(!arrivals.flowing(Duration::from_secs(1)), "a quiet spell");
    }
}
