//! The outbox relay: publishes due outbox rows to RabbitMQ with publisher confirms.
//! Any number of relays may run (the API and every worker run one); they never
//! take the same row. A row is only considered published on a clean broker ack;
//! a nack, a returned (unroutable) message or a broken connection makes it due
//! again shortly, so a broker outage delays jobs and never loses one.
//!
//! The API also hands freshly committed runs to its relay's fast lane, which
//! publishes them at once (while submits flow, after a short hold for company:
//! [`Relay::hold_fast_lane`]): their outbox rows were written due a few seconds
//! later ([`UNCLAIMED_REPUBLISH`]), so on the normal path the claim deletes them
//! before the relay ever looks (one less write per job, one hop less of
//! latency). A fast publish that fails makes its row due immediately, and the
//! slow path takes over.

// The per-job path: a silent truncation here would corrupt every job.
#![warn(clippy::cast_possible_truncation)]

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{FutureExt, future::join_all};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{DbError, Pool, outbox, place},
    domain::id::RunId,
    queue::{self, JobMessage, Topology},
    runtime::{
        arrivals::Arrivals,
        broker::Broker,
        retry::{backoff, pause},
    },
};

/// Rows taken per round; a full round is followed at once by the next.
const BATCH: i64 = 500;
/// How often an idle relay looks for rows that fell due (retries, republishes)
/// without being woken.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// A run not claimed this long after its message was published is published
/// again (its message is presumed lost); the wait doubles with each publish.
pub const REPUBLISH_AFTER: Duration = Duration::from_secs(300);
/// When the outbox row of a run the API publishes itself falls due: if that
/// publish never happened (the process died between commit and publish), the
/// relay of any process publishes the run this soon; if it did, the claim has
/// long deleted the row, and only a run still waiting in a backlog gets one
/// more message, which its claim absorbs. A row the slow path takes is due
/// again as soon, until the broker confirms its message ([`outbox::take_due`]).
pub const UNCLAIMED_REPUBLISH: Duration = Duration::from_secs(5);
/// How long after its confirm a fast-lane message's outbox row is given the
/// republish window ([`outbox::settle`]): long enough that the claim has
/// deleted almost every row (one statement then touches only a backlog's), short
/// enough to come before [`UNCLAIMED_REPUBLISH`].
const SETTLE_AFTER: Duration = Duration::from_secs(2);
/// How often, at most, confirmed fast-lane rows are settled: in one statement
/// for all that came of age meanwhile, instead of one a relay round (0.4 a job
/// at 500 jobs/s, where each round publishes one or two). A row is settled
/// within `SETTLE_AFTER + SETTLE_EVERY` of its confirm, plus a fast-lane hold
/// or an idle wait before the next round: still before [`UNCLAIMED_REPUBLISH`]
/// with the default hold; with the longest (1 s) a row of a run still waiting
/// may fall due first, and its run gets a second message, which its claim
/// absorbs.
const SETTLE_EVERY: Duration = Duration::from_secs(1);
/// When a failed publish is tried again.
const PUBLISH_RETRY: Duration = Duration::from_secs(1);
/// Messages the fast lane holds before submits fall back to the outbox alone.
const FAST_LANE_CAPACITY: usize = 16_384;
/// A fast-lane round with this many messages at hand publishes at once.
const HOLD_UNTIL: usize = 16;

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("broker: {0}")]
    Broker(String),
}

/// A relay bound to one database and broker.
pub struct Relay {
    pool: Pool,
    broker: Broker,
    topology: Topology,
    wake: Arc<Notify>,
    broker_up: Arc<AtomicBool>,
    republish_after: Duration,
    fast_tx: mpsc::Sender<outbox::DueMessage>,
    fast_rx: mpsc::Receiver<outbox::DueMessage>,
    /// Fast-lane runs confirmed by the broker, by when, waiting to be settled.
    settling: VecDeque<(Instant, Vec<crate::domain::id::RunId>)>,
    /// Rows the slow path took and the broker confirmed, likewise.
    settling_taken: VecDeque<(Instant, Vec<outbox::Taken>)>,
    /// When rows were last settled.
    settled_at: Instant,
    /// How long a fast-lane round waits for company while submits flow.
    fast_hold: Duration,
    /// When the fast lane's last message came.
    arrivals: Arrivals,
}

/// Hands committed runs to the relay for an immediate publish.
#[derive(Clone)]
pub struct FastLane {
    tx: mpsc::Sender<outbox::DueMessage>,
    broker_up: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl FastLane {
    /// Whether a new run should be written for the fast lane (due only after the
    /// republish window) or for the relay's slow path (due now).
    pub fn open(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }

    /// Queues a committed run for publishing; `false` when the lane is full or
    /// closed, and the caller must make the row due instead.
    pub fn publish(&self, message: outbox::DueMessage) -> bool {
        let queued = self.tx.try_send(message).is_ok();
        self.wake.notify_one();
        queued
    }
}

impl Relay {
    /// A relay for `topology` on `broker`.
    pub fn new(pool: Pool, broker: Broker, topology: Topology) -> Self {
        let (fast_tx, fast_rx) = mpsc::channel(FAST_LANE_CAPACITY);
        Self {
            fast_tx,
            fast_rx,
            settling: VecDeque::new(),
            settling_taken: VecDeque::new(),
            settled_at: Instant::now(),
            fast_hold: Duration::ZERO,
            arrivals: Arrivals::default(),
            pool,
            broker,
            topology,
            wake: Arc::new(Notify::new()),
            broker_up: Arc::new(AtomicBool::new(false)),
            republish_after: REPUBLISH_AFTER,
        }
    }

    /// Makes a fast-lane round of fewer than [`HOLD_UNTIL`] messages wait up
    /// to `hold` for more while submits flow ([`Arrivals`]): the broker then
    /// takes a run's message in a frame, a log write and a confirm shared with
    /// others, and the worker gets them in one delivery burst, at the cost of
    /// up to `hold` before a run starts. A submit after a quiet spell is
    /// published at once. The submit's answer never waits for this: the run
    /// is durable before it is handed over.
    pub fn hold_fast_lane(mut self, hold: Duration) -> Self {
        self.fast_hold = hold;
        self
    }

    /// Call `notify_one` on this after committing an outbox row to publish it now.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The fast lane into this relay.
    pub fn fast_lane(&self) -> FastLane {
        FastLane {
            tx: self.fast_tx.clone(),
            broker_up: self.broker_up.clone(),
            wake: self.wake.clone(),
        }
    }

    /// True while the relay holds a live broker channel (for readiness checks).
    pub fn broker_up(&self) -> Arc<AtomicBool> {
        self.broker_up.clone()
    }

    /// Publishes until `shutdown`, reconnecting to the broker as needed.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut link: Option<(Connection, Channel)> = None;
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let connected = link
                .as_ref()
                .is_some_and(|(_, channel)| channel.status().connected());
            self.broker_up.store(connected, Ordering::Relaxed);
            let channel = match &link {
                Some((_, channel)) if channel.status().connected() => channel.clone(),
                _ => match self.open_channel().await {
                    Ok(opened) => {
                        self.broker_up.store(true, Ordering::Relaxed);
                        let channel = opened.1.clone();
                        link = Some(opened);
                        channel
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(%error, "relay cannot reach the broker; retrying");
                        pause(&shutdown, backoff(failures)).await;
                        continue;
                    }
                },
            };
            let round = match self.fast_rx.try_recv() {
                Ok(first) => self.publish_fast(&channel, first, &shutdown).await,
                Err(_) => self.publish_due(&channel).await,
            };
            if let Err(error) = self.settle().await {
                // Those rows keep the short window: a duplicate message at worst.
                tracing::debug!(%error, "cannot settle published rows");
            }
            match round {
                Ok(published) => {
                    failures = 0;
                    if (published as i64) < BATCH && self.fast_rx.is_empty() {
                        tokio::select! {
                            _ = self.wake.notified() => {}
                            _ = tokio::time::sleep(IDLE_POLL) => {}
                            _ = shutdown.cancelled() => {}
                        }
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, "relay round failed; retrying");
                    if matches!(error, RelayError::Broker(_)) {
                        link = None;
                    }
                    pause(&shutdown, backoff(failures)).await;
                }
            }
        }
    }

    async fn open_channel(&self) -> lapin::Result<(Connection, Channel)> {
        let connection = self.broker.connect("stewrd-relay").await?;
        queue::declare_topology(&connection, &self.topology).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok((connection, channel))
    }

    /// A fast-lane round: this message and whatever else is waiting.
    async fn publish_fast(
        &mut self,
        channel: &Channel,
        first: outbox::DueMessage,
        shutdown: &CancellationToken,
    ) -> Result<usize, RelayError> {
        let max = usize::try_from(BATCH).unwrap_or(1);
        let due = self
            .arrivals
            .gather(
                &mut self.fast_rx,
                first,
                (max, HOLD_UNTIL),
                self.fast_hold,
                shutdown,
            )
            .await;
        // Each message taken woke the relay; that wake-up is spent. Left
        // stored, it would run a slow-path round (two statements) after every
        // fast one. A message queued after this point wakes it again.
        let _ = self.wake.notified().now_or_never();
        let (failed, broker_error) = publish_runs(channel, &self.topology, &due).await;
        let confirmed: Vec<_> = due
            .iter()
            .map(|message| message.run_id)
            .filter(|run_id| !failed.contains(run_id))
            .collect();
        if !confirmed.is_empty() {
            self.settling.push_back((Instant::now(), confirmed));
        }
        if !failed.is_empty() {
            // Their rows wait for the republish window: make them due now instead.
            let client = self.pool.get().await.map_err(DbError::from)?;
            outbox::retry_after(&client, &failed, Duration::ZERO).await?;
        }
        match broker_error {
            Some(error) => Err(RelayError::Broker(error)),
            None => Ok(due.len()),
        }
    }

    /// Settles the rows confirmed at least [`SETTLE_AFTER`] ago, the fast
    /// lane's and the slow path's, in a statement each, at most every
    /// [`SETTLE_EVERY`].
    async fn settle(&mut self) -> Result<(), DbError> {
        if self.settled_at.elapsed() < SETTLE_EVERY {
            return Ok(());
        }
        let run_ids = come_of_age(&mut self.settling);
        let taken = come_of_age(&mut self.settling_taken);
        if run_ids.is_empty() && taken.is_empty() {
            return Ok(());
        }
        self.settled_at = Instant::now();
        let client = self.pool.get().await?;
        if !run_ids.is_empty() {
            let settled = outbox::settle(&client, &run_ids, self.republish_after).await?;
            tracing::debug!(confirmed = run_ids.len(), settled, "settled published rows");
        }
        if !taken.is_empty() {
            let settled = outbox::settle_taken(&client, &taken, self.republish_after).await?;
            tracing::debug!(confirmed = taken.len(), settled, "settled republished rows");
        }
        Ok(())
    }

    /// A slow-path round: take due rows and due free-place marks, publish them
    /// all, wait for all confirms at once.
    async fn publish_due(&mut self, channel: &Channel) -> Result<usize, RelayError> {
        let client = self.pool.get().await.map_err(DbError::from)?;
        let taken = outbox::take_due(&client, BATCH, UNCLAIMED_REPUBLISH).await?;
        let rooms = place::take_due(&client, BATCH).await?;
        if taken.is_empty() && rooms.is_empty() {
            return Ok(0);
        }
        let due: Vec<_> = taken.iter().map(|t| t.message.clone()).collect();
        let (failed, mut broker_error) = publish_runs(channel, &self.topology, &due).await;
        let confirmed: Vec<_> = taken
            .into_iter()
            .filter(|t| !failed.contains(&t.message.run_id))
            .collect();
        if !confirmed.is_empty() {
            self.settling_taken.push_back((Instant::now(), confirmed));
        }
        if !failed.is_empty() {
            outbox::retry_after(&client, &failed, PUBLISH_RETRY).await?;
        }
        let messages: Vec<_> = rooms
            .iter()
            .map(|&project_id| (JobMessage::Room { project_id }, None))
            .collect();
        let (failed, error) = publish_all(channel, &self.topology, &messages).await;
        if !failed.is_empty() {
            let projects: Vec<_> = failed.iter().map(|&i| rooms[i]).collect();
            place::retry_after(&client, &projects, PUBLISH_RETRY).await?;
        }
        broker_error = broker_error.or(error);
        match broker_error {
            Some(error) => Err(RelayError::Broker(error)),
            None => {
                tracing::debug!(
                    published = due.len(),
                    rooms = rooms.len(),
                    "relay published"
                );
                Ok(due.len().max(rooms.len()))
            }
        }
    }
}

/// Takes the batches confirmed at least [`SETTLE_AFTER`] ago, oldest first.
fn come_of_age<T>(settling: &mut VecDeque<(Instant, Vec<T>)>) -> Vec<T> {
    let mut ready = Vec::new();
    while let Some((confirmed_at, _)) = settling.front() {
        if confirmed_at.elapsed() < SETTLE_AFTER {
            break;
        }
        if let Some((_, batch)) = settling.pop_front() {
            ready.extend(batch);
        }
    }
    ready
}

/// Publishes the messages of runs (see [`publish_all`]); returns the run ids
/// not cleanly confirmed.
async fn publish_runs(
    channel: &Channel,
    topology: &Topology,
    due: &[outbox::DueMessage],
) -> (Vec<RunId>, Option<String>) {
    let messages: Vec<_> = due
        .iter()
        .map(|message| {
            let body = JobMessage::Run {
                run_id: message.run_id,
            };
            (body, message.request_id.as_deref())
        })
        .collect();
    let (failed, error) = publish_all(channel, topology, &messages).await;
    (failed.iter().map(|&i| due[i].run_id).collect(), error)
}

/// Publishes every message (with the id of the request behind it, if any) and
/// waits for all their confirms at once. Returns the positions of those not
/// cleanly confirmed, and the broker error if any.
async fn publish_all(
    channel: &Channel,
    topology: &Topology,
    messages: &[(JobMessage, Option<&str>)],
) -> (Vec<usize>, Option<String>) {
    let routing_key = topology.jobs_queue();
    let mut pending = Vec::with_capacity(messages.len());
    let mut failed = Vec::new();
    let mut broker_error = None;
    for (position, (message, request_id)) in messages.iter().enumerate() {
        let body = message.to_bytes();
        let published = channel
            .basic_publish(
                "".into(),
                routing_key.as_str().into(),
                // Mandatory: a message no queue takes comes back instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                properties(message, *request_id),
            )
            .await;
        match published {
            Ok(confirm) => pending.push((position, confirm)),
            Err(error) => {
                failed.push(position);
                broker_error = Some(error.to_string());
            }
        }
    }
    let confirmed = join_all(
        pending
            .into_iter()
            .map(|(position, confirm)| async move { (position, confirm.await) }),
    )
    .await;
    for (position, confirmation) in confirmed {
        match confirmation {
            Ok(Confirmation::Ack(None)) => {}
            Ok(Confirmation::Ack(Some(_))) => {
                failed.push(position);
                broker_error = Some("message returned as unroutable".to_owned());
            }
            Ok(other) => {
                failed.push(position);
                broker_error = Some(format!("publish not confirmed: {other:?}"));
            }
            Err(error) => {
                failed.push(position);
                broker_error = Some(error.to_string());
            }
        }
    }
    (failed, broker_error)
}

fn properties(message: &JobMessage, request_id: Option<&str>) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(request_id) = request_id {
        headers.insert(
            "x-request-id".into(),
            AMQPValue::LongString(LongString::from(request_id)),
        );
    }
    BasicProperties::default()
        .with_delivery_mode(2) // persistent
        .with_content_type("application/json".into())
        .with_message_id(message.id().as_str().into())
        .with_headers(headers)
}
