//! Settling deliveries: every ack and nack of a channel goes through its
//! ledger, so that the messages one batched claim took are acked with one
//! frame.
//!
//! RabbitMQ spends as much CPU on an ack as on the rest of a message's way:
//! 10,000 queued runs released to one worker cost it 0.05–0.07 ms a run while
//! they started, all of it acks, and one worker's starts topped out at 7,500 a
//! second; acked 128 at a time, RabbitMQ's share fell to nothing and 9,300
//! started a second (`bench slow`, BENCHMARKS.md "Cost per job, part 8").
//!
//! A `multiple` ack settles every unsettled delivery of the channel up to its
//! tag, so it is sent only when the ledger holds no other delivery below the
//! batch's highest (one still being claimed may yet be nacked). Two claims run
//! at once and the later batch often ends first: it waits a moment for the
//! earlier one to settle, and past that is acked one by one. Settling a tag
//! twice is a protocol error that closes the channel, so the frames go out in
//! the order the ledger decided them: the ledger's turn is held until they are
//! written, and a later `multiple` ack cannot overtake an earlier single one.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures_util::future::join_all;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
    types::DeliveryTag,
};
use tokio::{sync::Notify, time::Instant};

/// How long a batch's ack waits for an earlier delivery to be settled before
/// it goes one by one: about one claim statement in a burst. The runs have
/// started already; only the broker's bookkeeping waits.
const PATIENCE: Duration = Duration::from_millis(20);

/// The deliveries of one channel taken from its consumer and not settled yet.
#[derive(Clone, Default)]
pub(crate) struct Ledger(Arc<Inner>);

#[derive(Default)]
struct Inner {
    unsettled: Mutex<BTreeSet<DeliveryTag>>,
    /// Held from a decision until its frames are written.
    turn: tokio::sync::Mutex<()>,
    /// Told after every settlement, for a batch waiting on an earlier one.
    settled: Notify,
}

/// A delivery taken from the consumer, settled through its channel's ledger.
pub(crate) struct Message {
    pub(crate) delivery: Delivery,
    ledger: Ledger,
}

/// How a set of deliveries is acked.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// One frame: every unsettled delivery up to this tag is in the set.
    UpTo(DeliveryTag),
    /// One frame for each of these: an unsettled delivery outside the set
    /// lies below. A tag settled already is left out: settled twice, it
    /// would close the channel.
    OneByOne(Vec<DeliveryTag>),
}

impl Ledger {
    /// Notes deliveries as taken. The consume loop calls this in delivery
    /// order before any of them reaches a task, so a delivery not noted yet has
    /// a higher tag than every one noted.
    pub(crate) fn take<T>(&self, taken: Vec<(Delivery, T)>) -> Vec<(Message, T)> {
        let mut unsettled = self.unsettled();
        taken
            .into_iter()
            .map(|(delivery, held)| {
                unsettled.insert(delivery.delivery_tag);
                let ledger = self.clone();
                (Message { delivery, ledger }, held)
            })
            .collect()
    }

    fn unsettled(&self) -> std::sync::MutexGuard<'_, BTreeSet<DeliveryTag>> {
        self.0
            .unsettled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the ledger's turn once no other message below `tags`' highest is
    /// unsettled, or once `PATIENCE` is over.
    async fn turn_for(&self, tags: &[DeliveryTag]) -> tokio::sync::MutexGuard<'_, ()> {
        let patience = Instant::now() + PATIENCE;
        loop {
            let turn = self.0.turn.lock().await;
            if !other_below(&self.unsettled(), tags) || Instant::now() >= patience {
                return turn;
            }
            let settled = self.0.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            drop(turn);
            let _ = tokio::time::timeout_at(patience, settled).await;
        }
    }
}

/// Whether a message outside `tags` lies unsettled below their highest: the
/// batch's own tags are all in the set and at or below it, so another one is
/// there when more than `tags.len()` are. Only a wait hangs on it; `plan`
/// checks again before a `multiple` ack.
fn other_below(unsettled: &BTreeSet<DeliveryTag>, tags: &[DeliveryTag]) -> bool {
    let Some(&highest) = tags.iter().max() else {
        return false;
    };
    unsettled.range(..=highest).rev().nth(tags.len()).is_some()
}

/// Takes `tags` out of the unsettled set and says how to ack them.
fn plan(unsettled: &mut BTreeSet<DeliveryTag>, tags: &[DeliveryTag]) -> Plan {
    let ours: Vec<DeliveryTag> = tags
        .iter()
        .copied()
        .filter(|tag| unsettled.remove(tag))
        .collect();
    match ours.iter().max() {
        // Every tag left at or below the highest is another message's.
        Some(&highest)
            if ours.len() == tags.len() && unsettled.range(..=highest).next().is_none() =>
        {
            Plan::UpTo(highest)
        }
        _ => Plan::OneByOne(ours),
    }
}

/// Acks these messages, with one frame when the ledger allows it. A failed
/// ack is only logged: the claim stands, and a redelivery finds the run taken.
pub(crate) async fn ack_all(messages: &[&Message]) {
    let Some(first) = messages.first() else {
        return;
    };
    let ledger = &first.ledger;
    let tags: Vec<DeliveryTag> = messages.iter().map(|m| m.delivery.delivery_tag).collect();
    let turn = ledger.turn_for(&tags).await;
    let plan = plan(&mut ledger.unsettled(), &tags);
    match plan {
        Plan::UpTo(highest) => {
            let last = messages
                .iter()
                .find(|m| m.delivery.delivery_tag == highest)
                .unwrap_or(first);
            // Alone, too: with nothing unsettled below, it is a plain ack.
            let multiple = BasicAckOptions { multiple: true };
            if let Err(error) = last.delivery.ack(multiple).await {
                tracing::debug!(%error, "ack failed");
            }
        }
        Plan::OneByOne(ours) => {
            let acks = messages
                .iter()
                .filter(|m| ours.contains(&m.delivery.delivery_tag))
                .map(|m| m.delivery.ack(BasicAckOptions::default()));
            for acked in join_all(acks).await {
                if let Err(error) = acked {
                    tracing::debug!(%error, "ack failed");
                }
            }
        }
    }
    drop(turn);
    ledger.0.settled.notify_waiters();
}

impl Message {
    /// Acks this message alone.
    pub(crate) async fn ack(&self) {
        ack_all(&[self]).await;
    }

    /// Nacks this message: back to the queue, or to the dead letters.
    pub(crate) async fn nack(&self, requeue: bool) {
        let turn = self.ledger.0.turn.lock().await;
        if !self.ledger.unsettled().remove(&self.delivery.delivery_tag) {
            return; // settled already: a second time would close the channel
        }
        let options = BasicNackOptions {
            requeue,
            multiple: false,
        };
        if let Err(error) = self.delivery.nack(options).await {
            tracing::debug!(%error, "nack failed");
        }
        drop(turn);
        self.ledger.0.settled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tags: &[DeliveryTag]) -> BTreeSet<DeliveryTag> {
        tags.iter().copied().collect()
    }

    #[test]
    fn a_batch_with_nothing_unsettled_below_is_acked_up_to_its_highest() {
        let mut unsettled = set(&[3, 4, 5, 9]);
        assert_eq!(plan(&mut unsettled, &[5, 3, 4]), Plan::UpTo(5));
        assert_eq!(unsettled, set(&[9]));
    }

    #[test]
    fn a_batch_above_an_unsettled_delivery_is_acked_one_by_one() {
        let mut unsettled = set(&[1, 3, 4]);
        assert_eq!(plan(&mut unsettled, &[3, 4]), Plan::OneByOne(vec![3, 4]));
        // Its tags are settled all the same; the one below stays.
        assert_eq!(unsettled, set(&[1]));
        // Once that one is settled alone, the next batch goes in one frame.
        let mut unsettled = set(&[6, 7]);
        assert_eq!(plan(&mut unsettled, &[6, 7]), Plan::UpTo(7));
    }

    #[test]
    fn a_batch_between_unsettled_deliveries_is_acked_one_by_one() {
        let mut unsettled = set(&[2, 5, 6, 8]);
        assert_eq!(
            plan(&mut unsettled, &[5, 6, 8]),
            Plan::OneByOne(vec![5, 6, 8])
        );
        assert_eq!(unsettled, set(&[2]));
    }

    #[test]
    fn a_batch_waits_only_for_other_messages_below_its_highest() {
        assert!(!other_below(&set(&[4, 5, 6, 9]), &[4, 6, 5]));
        assert!(other_below(&set(&[2, 4, 5, 6]), &[4, 6, 5]));
        // A hole below the batch's highest is someone else's message.
        assert!(other_below(&set(&[4, 5, 6]), &[4, 6]));
        assert!(!other_below(&set(&[]), &[]));
    }

    #[test]
    fn a_tag_settled_already_is_never_acked_again() {
        // Settled twice, a tag closes the channel (406 unknown delivery tag).
        let mut unsettled = set(&[5]);
        assert_eq!(plan(&mut unsettled, &[4, 5]), Plan::OneByOne(vec![5]));
        let mut unsettled = set(&[4]);
        assert_eq!(plan(&mut unsettled, &[4, 5]), Plan::OneByOne(vec![4]));
        assert_eq!(plan(&mut set(&[]), &[4]), Plan::OneByOne(vec![]));
    }
}
