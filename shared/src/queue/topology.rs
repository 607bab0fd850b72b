//! The names of every exchange and queue, and the one function that declares
//! them, each option with its reason.

use lapin::{
    Channel, Connection, ErrorKind, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

/// Deliveries of one message before the quorum queue dead-letters it. Only a
/// message that crashes or stalls the worker before its claim is ever redelivered,
/// so a handful is plenty. (RabbitMQ 3.x has no default: unset means unlimited.)
pub const DELIVERY_LIMIT: i64 = 5;

/// Members of each quorum queue when it is first declared: three survive the
/// loss of any one node, and RabbitMQ places fewer on a smaller cluster (one on
/// one node, where nothing changes). Without it RabbitMQ 3.10 puts a member on
/// every node, which on a big cluster slows every publish for no safety gained.
pub const QUORUM_MEMBERS: i32 = 3;

/// The declare argument holding [`QUORUM_MEMBERS`].
const GROUP_SIZE: &str = "x-quorum-initial-group-size";

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

/// Declares every exchange and queue (idempotent: each process does it at start
/// and after every reconnect), on a channel of its own that it closes.
pub async fn declare_topology(connection: &Connection, topology: &Topology) -> lapin::Result<()> {
    let mut channel = connection.create_channel().await?;
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
    // Replicated, fsynced before confirming, and counts redeliveries.
    dead_args.insert("x-queue-type".into(), long_string("quorum"));
    let mut jobs_args = dead_args.clone();
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

    declare_quorum(
        connection,
        &mut channel,
        &topology.dead_letter_queue(),
        dead_args,
    )
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
    declare_quorum(connection, &mut channel, &topology.jobs_queue(), jobs_args).await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Declares a quorum queue with [`QUORUM_MEMBERS`].
///
/// A queue declared before stewrd asked for it lacks the argument, and RabbitMQ
/// refuses a declare whose arguments differ (406, closing the channel): that
/// queue is declared again as it is, with a warning, on a new channel, since it
/// works and its members can be grown with `rabbitmq-queues grow`.
async fn declare_quorum(
    connection: &Connection,
    channel: &mut Channel,
    queue: &str,
    args: FieldTable,
) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut sized = args.clone();
    sized.insert(GROUP_SIZE.into(), AMQPValue::LongInt(QUORUM_MEMBERS));
    match channel.queue_declare(queue.into(), durable, sized).await {
        Err(error) if is_group_size_mismatch(&error) => {
            tracing::warn!(
                queue,
                "the queue was declared without {GROUP_SIZE}; keeping its members as they are \
                 (grow them with `rabbitmq-queues grow` on a cluster)"
            );
            *channel = connection.create_channel().await?;
            channel.queue_declare(queue.into(), durable, args).await?;
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

fn is_group_size_mismatch(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if e.get_message().as_str().contains(GROUP_SIZE))
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
