//! Whether work is flowing. The API's publish hold and the worker's claim
//! hold and result hold wait for company only while it is: at a moderate rate
//! a publish, a claim or a commit then carries many jobs, and a lone submit,
//! message or result after a quiet spell goes at once, since no company is
//! coming (BENCHMARKS.md, issue 32 parts 11 and 12).

use std::time::{Duration, Instant};

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
