//! The names of every exchange and queue, and the one function that declares
//! them, each option with its reason.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

/// Deliveries of one message before the quorum queue dead-letters it. Only a
/// message that crashes or stalls the worker before its claim is ever redelivered,
/// so a handful is plenty. (RabbitMQ 3.x has no default: unset means unlimited.)
pub const DELIVERY_LIMIT: i64 = 5;

/// The names of every exchange and queue, all under one prefix.
#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// Names under `prefix` (`STEWRD_QUEUE_PREFIX`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The work queue; published to through the default exchange.
    pub fn jobs_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// Where the work queue dead-letters messages past the delivery limit.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// The queue the dead-letter consumer reads.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.jobs.dead", self.prefix)
    }

    /// Where live text deltas go (transient, topic: routing key = session).
    pub fn deltas_exchange(&self) -> String {
        format!("{}.deltas", self.prefix)
    }

    /// Every queue, for cleanup.
    pub fn queues(&self) -> [String; 2] {
        [self.jobs_queue(), self.dead_letter_queue()]
    }
}

/// Declares every exchange and queue (idempotent: each process does it at start).
pub async fn declare_topology(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            topology.dead_letter_exchange().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;

    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long_string("quorum"));
    channel
        .queue_declare(topology.dead_letter_queue().into(), durable, dead_args)
        .await?;
    channel
        .queue_bind(
            topology.dead_letter_queue().into(),
            topology.dead_letter_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut jobs_args = FieldTable::default();
    // Replicated, fsynced before confirming, and counts redeliveries.
    jobs_args.insert("x-queue-type".into(), long_string("quorum"));
    // Poison messages stop being redelivered after this many tries...
    jobs_args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    // ...and go to the dead-letter queue, whose consumer fails their runs.
    jobs_args.insert(
        "x-dead-letter-exchange".into(),
        long_string(&topology.dead_letter_exchange()),
    );
    // Dead-lettering is at-most-once unless asked; at-least-once requires reject-publish.
    jobs_args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    jobs_args.insert("x-overflow".into(), long_string("reject-publish"));
    channel
        .queue_declare(topology.jobs_queue().into(), durable, jobs_args)
        .await?;
    Ok(())
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_the_prefix() {
        let topology = Topology::new("t_42");
        assert_eq!(topology.jobs_queue(), "t_42.jobs");
        assert!(topology.dead_letter_exchange().starts_with("t_42."));
        assert!(topology.queues().iter().all(|q| q.starts_with("t_42.")));
    }
}
