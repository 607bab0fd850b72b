//! Live text deltas over the broker: a worker streaming model calls publishes
//! their pieces to a transient topic exchange, batched: whatever is waiting when
//! the publisher gets to it goes out as one message per shard (routing key
//! `s<n>`, n from the session id), so a busy worker sends a few large messages
//! rather than one per piece, and an idle one adds no wait. Every API process
//! consumes through one exclusive queue bound to the shards of the sessions it
//! has clients for. Best effort by design: a delta lost here (broker restart, a
//! slow consumer) is found again in the stream's checkpoint in Postgres, which
//! is the truth; the broker only makes the tail fast.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ExchangeKind,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Topology;
use crate::domain::id::{RunId, SessionId};
use crate::runtime::broker::Broker;

/// Deltas waiting to be published before new ones are dropped.
const PUBLISH_BACKLOG: usize = 65_536;
/// Deltas taken per publishing round at most.
const BATCH: usize = 1_024;
/// Routing shards: an API process binds to the shards of its sessions.
const SHARDS: u8 = 16;
/// Deltas a slow client may fall behind before it reads the checkpoint instead
/// (the buffer is allocated whole per watched session: 4,096 cost 128 KiB).
const SUBSCRIBER_BACKLOG: usize = 256;
/// How long a new client waits for its binding before it goes on without the
/// live tail (a broker outage must not hold a stream).
const BIND_PATIENCE: Duration = Duration::from_secs(2);
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// One piece of a streamed model call's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub session_id: SessionId,
    /// The `stream` event that opened the stream.
    pub seq: i64,
    pub run_id: RunId,
    pub step: i32,
    /// Where `text` starts in the stream's text, in bytes.
    pub offset: usize,
    pub text: String,
}

/// The routing key of a session's deltas (from the random end of its id).
fn shard_of(session_id: SessionId) -> String {
    let last = session_id.0.as_bytes()[15];
    format!("s{}", last % SHARDS)
}

async fn declare_exchange(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    // Not durable: deltas are worth nothing after a broker restart.
    channel
        .exchange_declare(
            topology.deltas_exchange().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// The worker's side: hands deltas to a task that publishes them.
#[derive(Clone)]
pub struct DeltaPublisher {
    tx: mpsc::Sender<Delta>,
}

impl DeltaPublisher {
    /// A publisher and the task that drains it until `shutdown`.
    pub fn new(
        broker: Broker,
        topology: Topology,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(PUBLISH_BACKLOG);
        (Self { tx }, publish(broker, topology, rx, shutdown))
    }

    /// Queues a delta; dropped when the backlog is full (the checkpoint has it).
    pub fn send(&self, delta: Delta) {
        let _ = self.tx.try_send(delta);
    }
}

async fn publish(
    broker: Broker,
    topology: Topology,
    mut rx: mpsc::Receiver<Delta>,
    shutdown: CancellationToken,
) {
    let exchange = topology.deltas_exchange();
    while !shutdown.is_cancelled() {
        let opened = async {
            let connection = broker.connect("stewrd-deltas").await?;
            let channel = connection.create_channel().await?;
            declare_exchange(&channel, &topology).await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        let (_connection, channel) = match opened.await {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(%error, "cannot reach the broker for deltas; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_PAUSE) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        'publishing: loop {
            let first = tokio::select! {
                delta = rx.recv() => delta,
                () = shutdown.cancelled() => return,
            };
            let Some(first) = first else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(delta) => batch.push(delta),
                    Err(_) => break,
                }
            }
            let mut shards: HashMap<String, Vec<Delta>> = HashMap::new();
            for delta in batch {
                shards
                    .entry(shard_of(delta.session_id))
                    .or_default()
                    .push(delta);
            }
            for (shard, deltas) in shards {
                let body = serde_json::to_vec(&deltas).unwrap_or_default();
                let sent = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        shard.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default().with_delivery_mode(1),
                    )
                    .await;
                if let Err(error) = sent {
                    tracing::warn!(%error, "deltas not published; reconnecting");
                    break 'publishing;
                }
            }
        }
    }
}

enum Command {
    Bind(SessionId, oneshot::Sender<()>),
    Unbind(SessionId),
}

/// The shards this queue is bound to.
type Bound = std::collections::HashSet<String>;

type Subscribers = Arc<Mutex<HashMap<SessionId, broadcast::Sender<Arc<Delta>>>>>;

/// The API's side: one consumer per process, fanning deltas out to the
/// clients of each session.
#[derive(Clone)]
pub struct DeltaHub {
    commands: mpsc::UnboundedSender<Command>,
    subscribers: Subscribers,
}

/// One client's deltas of one session; unbinds with the last.
pub struct DeltaSubscription {
    session_id: SessionId,
    rx: broadcast::Receiver<Arc<Delta>>,
    hub: DeltaHub,
}

/// What a subscription gave.
pub enum Received {
    Delta(Arc<Delta>),
    /// Some deltas were missed (a slow client): read the checkpoint.
    Missed,
}

impl DeltaSubscription {
    /// The next delta of this session.
    pub async fn recv(&mut self) -> Received {
        match self.rx.recv().await {
            Ok(delta) => Received::Delta(delta),
            Err(broadcast::error::RecvError::Lagged(_)) => Received::Missed,
            // The sender lives as long as a subscription does.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for DeltaSubscription {
    fn drop(&mut self) {
        let mut subscribers = lock(&self.hub.subscribers);
        if let Some(sender) = subscribers.get(&self.session_id)
            && sender.receiver_count() <= 1
        {
            subscribers.remove(&self.session_id);
            let _ = self.hub.commands.send(Command::Unbind(self.session_id));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DeltaHub {
    /// A hub and the task that consumes for it until `shutdown`.
    pub fn new(
        broker: Broker,
        topology: Topology,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (commands, rx) = mpsc::unbounded_channel();
        let hub = Self {
            commands,
            subscribers: Subscribers::default(),
        };
        let task = consume(broker, topology, hub.subscribers.clone(), rx, shutdown);
        (hub, task)
    }

    /// Subscribes to a session's deltas; returns once the broker routes them
    /// here (or after a short wait when it cannot: the checkpoint covers).
    pub async fn subscribe(&self, session_id: SessionId) -> DeltaSubscription {
        let (rx, first) = {
            let mut subscribers = lock(&self.subscribers);
            match subscribers.get(&session_id) {
                Some(sender) => (sender.subscribe(), false),
                None => {
                    let (sender, rx) = broadcast::channel(SUBSCRIBER_BACKLOG);
                    subscribers.insert(session_id, sender);
                    (rx, true)
                }
            }
        };
        if first {
            let (ack, bound) = oneshot::channel();
            if self.commands.send(Command::Bind(session_id, ack)).is_ok() {
                let _ = tokio::time::timeout(BIND_PATIENCE, bound).await;
            }
        }
        DeltaSubscription {
            session_id,
            rx,
            hub: self.clone(),
        }
    }
}

async fn consume(
    broker: Broker,
    topology: Topology,
    subscribers: Subscribers,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let exchange = topology.deltas_exchange();
    while !shutdown.is_cancelled() {
        let opened = open_queue(&broker, &topology, &subscribers).await;
        let (_connection, channel, queue, mut bound, mut deliveries) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(%error, "cannot reach the broker for deltas; retrying");
                // Binds wait meanwhile: answer them so clients go on.
                while let Ok(command) = commands.try_recv() {
                    if let Command::Bind(_, ack) = command {
                        let _ = ack.send(());
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_PAUSE) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let done = match command {
                        Command::Bind(session_id, ack) => {
                            let shard = shard_of(session_id);
                            let done = if bound.contains(&shard) {
                                Ok(())
                            } else {
                                let done = bind(&channel, &queue, &exchange, &shard).await;
                                bound.insert(shard);
                                done
                            };
                            let _ = ack.send(());
                            done
                        }
                        Command::Unbind(session_id) => {
                            let shard = shard_of(session_id);
                            let still_watched = lock(&subscribers)
                                .keys()
                                .any(|watched| shard_of(*watched) == shard);
                            if !still_watched && bound.remove(&shard) {
                                channel
                                    .queue_unbind(
                                        queue.as_str().into(),
                                        exchange.as_str().into(),
                                        shard.as_str().into(),
                                        FieldTable::default(),
                                    )
                                    .await
                            } else {
                                Ok(())
                            }
                        }
                    };
                    if let Err(error) = done {
                        tracing::warn!(%error, "delta binding failed; reconnecting");
                        break;
                    }
                }
                delivery = deliveries.next() => {
                    let Some(Ok(delivery)) = delivery else {
                        tracing::warn!("delta consumer lost; reconnecting");
                        break;
                    };
                    let Ok(deltas) = serde_json::from_slice::<Vec<Delta>>(&delivery.data) else {
                        continue;
                    };
                    let subscribers = lock(&subscribers);
                    for delta in deltas {
                        if let Some(sender) = subscribers.get(&delta.session_id) {
                            let _ = sender.send(Arc::new(delta));
                        }
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, shard: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            shard.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// A fresh exclusive queue, bound again to the shards of every session with
/// clients.
async fn open_queue(
    broker: &Broker,
    topology: &Topology,
    subscribers: &Subscribers,
) -> lapin::Result<(Connection, Channel, String, Bound, lapin::Consumer)> {
    let connection = broker.connect("stewrd-api-deltas").await?;
    let channel = connection.create_channel().await?;
    declare_exchange(&channel, topology).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let name = queue.name().to_string();
    let bound: Bound = lock(subscribers).keys().map(|s| shard_of(*s)).collect();
    for shard in &bound {
        bind(&channel, &name, &topology.deltas_exchange(), shard).await?;
    }
    let deliveries = channel
        .basic_consume(
            name.as_str().into(),
            "stewrd-api-deltas".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel, name, bound, deliveries))
}
