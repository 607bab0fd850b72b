//! Cancellation of in-flight runs: the API's cancel commits `cancelled` and
//! notifies; the worker holding the run aborts its provider call (dropping the
//! connection) within moments.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use stewrd_shared::domain::id::RunId;
use tokio_util::sync::CancellationToken;

/// The runs in flight in this process, by id.
#[derive(Clone, Default)]
pub struct Cancellations {
    running: Arc<Mutex<HashMap<RunId, CancellationToken>>>,
}

/// A run's registration; unregisters on drop.
pub struct Registration {
    run_id: RunId,
    pub token: CancellationToken,
    running: Arc<Mutex<HashMap<RunId, CancellationToken>>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.run_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Cancellations {
    /// Registers a run this process is about to work on.
    pub fn register(&self, run_id: RunId) -> Registration {
        let token = CancellationToken::new();
        lock(&self.running).insert(run_id, token.clone());
        Registration {
            run_id,
            token,
            running: self.running.clone(),
        }
    }

    /// The runs in flight here now: the ones whose leases the heartbeat keeps.
    pub fn running(&self) -> Vec<RunId> {
        lock(&self.running).keys().copied().collect()
    }

    /// Cancels the run if this process holds it.
    pub fn cancel(&self, run_id: RunId) {
        if let Some(token) = lock(&self.running).get(&run_id) {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_reaches_a_registered_run_and_the_registration_cleans_up() {
        let cancellations = Cancellations::default();
        let id = RunId::new();
        let registration = cancellations.register(id);
        cancellations.cancel(RunId::new());
        assert!(!registration.token.is_cancelled());
        assert_eq!(cancellations.running(), [id]);
        cancellations.cancel(id);
        assert!(registration.token.is_cancelled());
        drop(registration);
        assert!(lock(&cancellations.running).is_empty());
    }
}
