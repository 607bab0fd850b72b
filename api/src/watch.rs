//! Status-change fan-out for long-polls, fed by the process's one `LISTEN`
//! connection (`listener.rs`) however many clients wait. A waiter subscribes to
//! its session before reading it, so no change between the read and the wait is
//! missed. Subscriptions are counted in `stewrd_api_waiting_clients`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use stewrd_shared::{domain::id::SessionId, runtime::metrics as names};
use tokio::sync::watch;

type Senders = HashMap<SessionId, watch::Sender<u64>>;

/// Waiters by session.
#[derive(Clone, Default)]
pub struct SessionWatch {
    senders: Arc<Mutex<Senders>>,
}

/// A subscription to one session's changes; unsubscribes on drop.
pub struct Subscription {
    session_id: SessionId,
    receiver: watch::Receiver<u64>,
    senders: Arc<Mutex<Senders>>,
}

impl Subscription {
    /// Resolves at the next change (or at once if one came since the last call).
    pub async fn changed(&mut self) {
        if self.receiver.changed().await.is_err() {
            // The sender is never dropped while a subscription holds the entry.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!(names::WAITING_CLIENTS).decrement(1.0);
        let mut senders = lock(&self.senders);
        if let Some(sender) = senders.get(&self.session_id) {
            // This receiver is still alive here, so one means "only us".
            if sender.receiver_count() <= 1 {
                senders.remove(&self.session_id);
            }
        }
    }
}

fn lock(senders: &Mutex<Senders>) -> std::sync::MutexGuard<'_, Senders> {
    senders
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionWatch {
    /// Subscribes to `session_id`.
    pub fn subscribe(&self, session_id: SessionId) -> Subscription {
        metrics::gauge!(names::WAITING_CLIENTS).increment(1.0);
        let receiver = lock(&self.senders)
            .entry(session_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            session_id,
            receiver,
            senders: self.senders.clone(),
        }
    }

    /// Wakes the waiters of one session.
    pub fn notify(&self, session_id: SessionId) {
        if let Some(sender) = lock(&self.senders).get(&session_id) {
            sender.send_modify(|version| *version += 1);
        }
    }

    /// Wakes every waiter (after a reconnect, when changes may have been missed).
    pub fn notify_all(&self) {
        for sender in lock(&self.senders).values() {
            sender.send_modify(|version| *version += 1);
        }
    }

    /// Sessions with at least one waiter.
    pub fn watched(&self) -> usize {
        lock(&self.senders).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_is_woken_by_its_session_only() {
        let watch = SessionWatch::default();
        let mine = SessionId::new();
        let mut subscription = watch.subscribe(mine);
        watch.notify(SessionId::new());
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), subscription.changed());
        assert!(early.await.is_err(), "woken by another session");
        watch.notify(mine);
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), subscription.changed());
        assert!(woken.await.is_ok());
    }

    #[test]
    fn the_last_subscription_removes_its_entry() {
        let watch = SessionWatch::default();
        let id = SessionId::new();
        let first = watch.subscribe(id);
        let second = watch.subscribe(id);
        drop(first);
        assert_eq!(watch.watched(), 1);
        drop(second);
        assert_eq!(watch.watched(), 0);
    }
}
