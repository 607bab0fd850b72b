//! The consumer loop: the one place that decides ack, nack and dead-letter.
//!
//! A delivery is acked right after its run is claimed in Postgres, not after the
//! provider answers: from then on the lease (kept alive by the heartbeat, taken
//! back by the reaper) protects the run, so no delivery is held for the length of
//! a provider call and RabbitMQ's `consumer_timeout` never matters.

// The per-job path: a silent truncation here would corrupt every job.
#![warn(clippy::cast_possible_truncation)]

use std::{collections::HashMap, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures_util::{FutureExt, StreamExt};
use lapin::{
    Consumer,
    message::Delivery,
    options::{BasicConsumeOptions, BasicQosOptions},
    types::{AMQPValue, FieldTable},
};
use stewrd_shared::{
    db::{
        DbError,
        run::{
            Batch, Claim, ClaimedRun, claim_batch, claim_next, claim_room, claim_unreadable,
            fail_unclaimed_run,
        },
    },
    domain::{
        id::{ProjectId, RunId},
        model::FailureCode,
    },
    queue::{self, JobMessage},
    runtime::{
        arrivals::Arrivals,
        metrics as names,
        retry::{backoff, pause},
    },
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, Span, field::Empty};

use crate::{
    Worker,
    acks::{Ledger, Message, ack_all},
    db::Patience,
    run,
};

/// How long a worker waits before returning a message it could not claim, so a
/// failing message does not spin through its delivery limit in milliseconds.
const NACK_DELAY: Duration = Duration::from_secs(1);
/// Most messages claimed in one statement.
const MAX_CLAIM_BATCH: usize = 128;
/// Claim statements one consumer has in flight at once (see `consume_connection`).
/// Two, not one: a burst of queued messages starts sooner (10,000 one-second
/// calls: 4,201–4,545 in flight at most against 3,737–4,223 with one), and at a
/// moderate rate the claim hold makes the batches either way.
const CLAIMS_IN_FLIGHT: usize = 2;
/// A batch this large is claimed without waiting for more.
const HOLD_UNTIL: usize = 16;
/// Why a run whose row cannot be read is failed.
const UNREADABLE: &str = "the run's stored data cannot be read, so no worker can process it";
/// How long handing runs back may take at the end of a drain.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker cancelled the consumer")]
    Cancelled,
}

/// Consumes until `shutdown`, reconnecting whenever the broker goes away, then
/// drains in-flight runs for up to `grace` and hands back the rest.
pub(crate) async fn consume(worker: Arc<Worker>, shutdown: CancellationToken, grace: Duration) {
    let permits = Arc::new(Semaphore::new(worker.config.worker.concurrency));
    let jobs = TaskTracker::new();
    let hand_back = CancellationToken::new();
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        match consume_connection(&worker, &permits, &jobs, &shutdown, &hand_back).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "worker lost the broker; reconnecting");
                pause(&shutdown, backoff(failures)).await;
            }
        }
    }
    drain(jobs, hand_back, grace).await;
}

/// One broker connection's life: returns `Ok` on shutdown, `Err` when it is lost.
async fn consume_connection(
    worker: &Arc<Worker>,
    permits: &Arc<Semaphore>,
    jobs: &TaskTracker,
    shutdown: &CancellationToken,
    hand_back: &CancellationToken,
) -> Result<(), ConsumeError> {
    let connection = worker.config.broker.connect("stewrd-worker").await?;
    queue::declare_topology(&connection, &worker.topology).await?;
    let channel = connection.create_channel().await?;
    let prefetch = u16::try_from(worker.config.worker.concurrency).unwrap_or(u16::MAX);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            worker.topology.jobs_queue().into(),
            format!("stewrd-worker-{}", worker.id).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %worker.topology.jobs_queue(), prefetch, "consuming");
    let claimers = Arc::new(Semaphore::new(CLAIMS_IN_FLIGHT));
    let ledger = Ledger::default();
    let hold = worker.config.worker.claim_hold;
    let mut arrivals = Arrivals::default();
    loop {
        // While the claims in flight run, deliveries and freed places gather
        // for the next one: under load a claim takes many messages at once,
        // and while messages flow one alone waits at most the claim hold for
        // company.
        let claimer = tokio::select! {
            claimer = claimers.clone().acquire_owned() => match claimer {
                Ok(claimer) => claimer,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        // The permit comes first: a delivery is only taken when it can start at once.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let delivery = tokio::select! {
            next = deliveries.next() => match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Err(error.into()),
                None => return Err(ConsumeError::Cancelled),
            },
            _ = shutdown.cancelled() => break,
        };
        let flowing = arrivals.flowing(hold);
        arrivals.arrived();
        let mut batch = vec![(delivery, permit)];
        let mut lost = take_at_hand(&mut deliveries, permits, &mut batch);
        if lost.is_none() && flowing {
            lost = hold_for_company(
                &mut deliveries,
                permits,
                &mut batch,
                hold,
                &mut arrivals,
                shutdown,
            )
            .await;
        }
        jobs.spawn(handle_batch(
            worker.clone(),
            ledger.take(batch),
            claimer,
            jobs.clone(),
            shutdown.clone(),
            hand_back.clone(),
        ));
        if let Some(error) = lost {
            return Err(error);
        }
    }
    // Closing returns the prefetched deliveries no job has started to the queue.
    let _ = channel.close(200, "worker stopping".into()).await;
    let _ = connection.close(200, "worker stopping".into()).await;
    Ok(())
}

/// Adds the deliveries the broker has sent already to `batch`, a permit each,
/// so the lot is claimed in one statement. Returns the consumer's end if it
/// came meanwhile (the batch taken so far is still handled).
fn take_at_hand(
    deliveries: &mut Consumer,
    permits: &Arc<Semaphore>,
    batch: &mut Vec<(Delivery, OwnedSemaphorePermit)>,
) -> Option<ConsumeError> {
    while batch.len() < MAX_CLAIM_BATCH {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            return None;
        };
        match deliveries.next().now_or_never() {
            Some(Some(Ok(delivery))) => batch.push((delivery, permit)),
            Some(Some(Err(error))) => return Some(error.into()),
            Some(None) => return Some(ConsumeError::Cancelled),
            None => return None, // nothing more at hand
        }
    }
    None
}

/// Waits up to `hold` for more deliveries to share `batch`'s claim, while it
/// holds fewer than [`HOLD_UNTIL`] and a concurrency permit is free: at a
/// moderate rate messages come one at a time, and each alone would pay a claim
/// statement, a result statement and their Postgres wake-ups of its own. Only
/// while messages flow (see [`Arrivals`]): a message after a quiet spell has
/// no company coming, and is claimed at once.
async fn hold_for_company(
    deliveries: &mut Consumer,
    permits: &Arc<Semaphore>,
    batch: &mut Vec<(Delivery, OwnedSemaphorePermit)>,
    hold: Duration,
    arrivals: &mut Arrivals,
    shutdown: &CancellationToken,
) -> Option<ConsumeError> {
    let deadline = tokio::time::Instant::now() + hold;
    while batch.len() < HOLD_UNTIL {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            return None;
        };
        tokio::select! {
            next = deliveries.next() => match next {
                Some(Ok(delivery)) => {
                    arrivals.arrived();
                    batch.push((delivery, permit));
                }
                Some(Err(error)) => return Some(error.into()),
                None => return Some(ConsumeError::Cancelled),
            },
            _ = tokio::time::sleep_until(deadline) => return None,
            _ = shutdown.cancelled() => return None,
        }
        if let Some(lost) = take_at_hand(deliveries, permits, batch) {
            return Some(lost);
        }
    }
    None
}

async fn drain(jobs: TaskTracker, hand_back: CancellationToken, grace: Duration) {
    jobs.close();
    if jobs.is_empty() {
        return;
    }
    tracing::info!(
        in_flight = jobs.len(),
        grace_secs = grace.as_secs(),
        "draining"
    );
    if tokio::time::timeout(grace, jobs.wait()).await.is_err() {
        tracing::warn!(
            remaining = jobs.len(),
            "grace period over; handing runs back"
        );
        hand_back.cancel();
        if tokio::time::timeout(HAND_BACK_TIMEOUT, jobs.wait())
            .await
            .is_err()
        {
            tracing::error!(
                remaining = jobs.len(),
                "could not hand every run back; their leases will expire and the reaper will requeue them"
            );
        }
    }
}

/// A message and the permit it holds until its run is done.
type Taken = (Message, OwnedSemaphorePermit);

/// Handles the deliveries taken together: one claim for all where the batch
/// allows it (see `claim_batch`), else each on its own.
async fn handle_batch(
    worker: Arc<Worker>,
    batch: Vec<Taken>,
    claimer: OwnedSemaphorePermit,
    jobs: TaskTracker,
    shutdown: CancellationToken,
    hand_back: CancellationToken,
) {
    let mut claimer = Some(claimer);
    let mut messages = Vec::with_capacity(batch.len());
    for (message, permit) in batch {
        match read_message(&message).await {
            Some(Wake::Run(run_id)) => messages.push((message, permit, run_id)),
            Some(room @ Wake::Room(_)) => {
                // A free place: claimed on its own, under the project's lock.
                let handled = handle(
                    worker.clone(),
                    (message, permit),
                    room,
                    claimer.take(),
                    jobs.clone(),
                    shutdown.clone(),
                    hand_back.clone(),
                );
                jobs.spawn(handled);
            }
            None => {}
        }
    }
    if messages.len() > 1 {
        let hints: Vec<RunId> = messages.iter().map(|(_, _, run_id)| *run_id).collect();
        let batch = claim_many(&worker, &hints, &shutdown).await;
        drop(claimer.take());
        match batch {
            Ok(Batch::Claimed { runs, unreadable }) => {
                start_claimed(&worker, messages, runs, &jobs, &hand_back).await;
                fail_unreadable(&worker, unreadable).await;
                return;
            }
            Ok(Batch::OneByOne) => {}
            Err(error) => tracing::warn!(%error, "a batched claim failed; claiming one by one"),
        }
    }
    // Claims after a batch that could not be set-based run side by side,
    // except copies of one message, one after the other: claimed at once, the
    // second would only find its run locked by the first.
    let mut copies: HashMap<RunId, Vec<Taken>> = HashMap::new();
    for (message, permit, run_id) in messages {
        copies.entry(run_id).or_default().push((message, permit));
    }
    for (run_id, taken) in copies {
        // A message alone holds its claim's turn.
        let claimer = claimer.take();
        let (worker, shutdown, hand_back) = (worker.clone(), shutdown.clone(), hand_back.clone());
        let tracker = jobs.clone();
        jobs.spawn(async move {
            let mut claimer = claimer;
            for copy in taken {
                let handled = handle(
                    worker.clone(),
                    copy,
                    Wake::Run(run_id),
                    claimer.take(),
                    tracker.clone(),
                    shutdown.clone(),
                    hand_back.clone(),
                );
                handled.await;
            }
        });
    }
}

/// What a job message wakes a worker for.
#[derive(Clone, Copy, Debug)]
enum Wake {
    /// A run was queued: this one, or whichever is fairest next.
    Run(RunId),
    /// A capped project may have a free place.
    Room(ProjectId),
}

/// What a job message wakes for; an unreadable message is dead-lettered.
async fn read_message(message: &Message) -> Option<Wake> {
    match JobMessage::from_bytes(&message.delivery.data) {
        Ok(JobMessage::Run { run_id }) => Some(Wake::Run(run_id)),
        Ok(JobMessage::Room { project_id }) => Some(Wake::Room(project_id)),
        Err(error) => {
            tracing::warn!(%error, "unreadable job message; dead-lettering it");
            message.nack(false).await;
            None
        }
    }
}

/// After a batched claim: each run claimed starts under the permit of a
/// message (its own, or, for a run claimed in another's place because another
/// project was served first, one whose run was not claimed), then every
/// message is acked, in one frame where the ledger allows: the claim stands,
/// and a message whose run it did not take is a spare.
async fn start_claimed(
    worker: &Arc<Worker>,
    messages: Vec<(Message, OwnedSemaphorePermit, RunId)>,
    runs: Vec<ClaimedRun>,
    jobs: &TaskTracker,
    hand_back: &CancellationToken,
) {
    if runs.len() < messages.len() {
        // A message whose run another claim held may have given it a new one.
        worker.relay_wake.notify_one();
    }
    let mut runs: HashMap<RunId, ClaimedRun> = runs.into_iter().map(|run| (run.id, run)).collect();
    let mut unmatched = Vec::new();
    let mut matched = Vec::with_capacity(messages.len());
    for (message, permit, run_id) in messages {
        match runs.remove(&run_id) {
            Some(run) => matched.push((message, permit, run_id, run)),
            None => unmatched.push((message, permit, run_id)),
        }
    }
    let mut diverted = runs.into_values();
    let mut spares = Vec::new();
    for (message, permit, run_id) in unmatched {
        match diverted.next() {
            Some(run) => matched.push((message, permit, run_id, run)),
            None => {
                metrics::counter!(names::EMPTY_CLAIMS).increment(1);
                spares.push(message);
            }
        }
    }
    let mut settled = Vec::with_capacity(matched.len());
    for (message, permit, run_id, run) in matched {
        metrics::counter!(names::CLAIMS, "statement" => "batch").increment(1);
        let span = run_span(
            Wake::Run(run_id),
            header_text(&message.delivery, "x-request-id").as_deref(),
        );
        let woken = Wake::Run(run_id);
        jobs.spawn(work(worker.clone(), run, woken, permit, hand_back.clone()).instrument(span));
        settled.push(message);
    }
    // After the starts: the ack may wait a moment for an earlier batch's.
    ack_all(&settled.iter().chain(&spares).collect::<Vec<_>>()).await;
}

/// Fails the runs a batch claimed but could not read: no worker could process them.
async fn fail_unreadable(worker: &Worker, unreadable: Vec<RunId>) {
    for poisoned in unreadable {
        if let Err(error) = fail_poisoned(worker, poisoned).await {
            // Its lease runs out, the reaper requeues it and a claim meets it again.
            tracing::warn!(%error, %poisoned, "could not fail an unreadable run");
        }
    }
}

/// Fails a run this worker claimed but whose row cannot be read.
async fn fail_poisoned(worker: &Worker, poisoned: RunId) -> Result<(), DbError> {
    tracing::error!(%poisoned, "a run's stored data cannot be read; failing it");
    worker
        .db(|client| async move {
            fail_unclaimed_run(
                &client,
                poisoned,
                Some(worker.id),
                FailureCode::DeliveryLimitExceeded,
                UNREADABLE,
            )
            .await
        })
        .await?;
    worker.webhook_wake.notify_one();
    Ok(())
}

fn run_span(woken_by: Wake, request_id: Option<&str>) -> Span {
    tracing::info_span!(
        "run",
        run_id = Empty,
        session_id = Empty,
        attempt = Empty,
        // The message names a run, but a claim takes whichever is fairest next.
        woken_by = ?woken_by,
        request_id = request_id.unwrap_or("-"),
    )
}

/// Handles one delivery on its own: claim, ack, and the run started in a task
/// of its own.
async fn handle(
    worker: Arc<Worker>,
    (message, permit): Taken,
    wake: Wake,
    claimer: Option<OwnedSemaphorePermit>,
    jobs: TaskTracker,
    shutdown: CancellationToken,
    hand_back: CancellationToken,
) {
    let span = run_span(
        wake,
        header_text(&message.delivery, "x-request-id").as_deref(),
    );
    async move {
        let claimed = match claim(&worker, wake, &shutdown).await {
            Ok(claimed) => claimed_or_failed(&worker, claimed, wake).await,
            Err(error) => claim_around_poison(&worker, wake, error).await,
        };
        drop(claimer);
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                // Give it back; past the delivery limit the queue dead-letters it.
                tracing::warn!(%error, "cannot claim the run; returning its message");
                tokio::time::sleep(NACK_DELAY).await;
                message.nack(true).await;
                return;
            }
        };
        match claimed {
            Some(run) => {
                metrics::counter!(names::CLAIMS, "statement" => "single").increment(1);
                // Its own task: the caller may have more claims to make.
                let span = Span::current();
                jobs.spawn(work(worker, run, wake, permit, hand_back).instrument(span));
            }
            None => {
                drop(permit);
                metrics::counter!(names::EMPTY_CLAIMS).increment(1);
                tracing::debug!(
                    "nothing to do: no run is due, or every waiting project is at its cap"
                );
            }
        }
        // After the start (it may wait a moment for an earlier message's ack).
        // The claim stands; if the ack fails, a redelivery finds the lease.
        message.ack().await;
    }
    .instrument(span)
    .await;
}

/// Processes a claimed run to its end, in the caller's span.
///
/// An `async` block, not an `async fn`: an `async fn` moves its arguments into
/// a second place in its state, and the run (760 bytes) would be held twice by
/// every task for its whole life.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn work(
    worker: Arc<Worker>,
    run: ClaimedRun,
    woken_by: Wake,
    permit: OwnedSemaphorePermit,
    hand_back: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        // Held until the run is done: it is the run's place in the worker.
        let _permit = permit;
        work_on(&worker, &run, woken_by, &hand_back).await;
    }
}

async fn work_on(worker: &Worker, run: &ClaimedRun, woken_by: Wake, hand_back: &CancellationToken) {
    Span::current().record("run_id", tracing::field::display(run.id));
    let relay_has_work = match woken_by {
        // The message's own run was given a new message.
        Wake::Run(run_id) => run.id != run_id,
        // The project's mark is due again, for its next free place.
        Wake::Room(_) => true,
    };
    if relay_has_work {
        worker.relay_wake.notify_one();
    }
    // A panic must not strand the run: its lease would be kept by nobody
    // and the session would stay busy until the lease ran out.
    let processed = AssertUnwindSafe(run::process(worker, run, hand_back))
        .catch_unwind()
        .await;
    if processed.is_err() {
        run::recover_from_panic(worker, run).await;
    }
}

/// Claims the next run (messages are wake-ups: see `claim_next`), waiting out
/// a Postgres outage (the message stays unacked meanwhile, and with every
/// permit busy the consumer takes no more).
async fn claim(
    worker: &Worker,
    wake: Wake,
    shutdown: &CancellationToken,
) -> Result<Claim, DbError> {
    let lease = worker.config.worker.lease;
    worker
        .db_patiently(
            Patience::UntilStopped(shutdown),
            "claim a run",
            |client| async move {
                match wake {
                    Wake::Run(hint) => claim_next(&client, worker.id, lease, Some(hint)).await,
                    Wake::Room(project) => claim_room(&client, worker.id, lease, project).await,
                }
            },
        )
        .await
}

/// Claims the runs of several messages at once, waiting out an outage as
/// [`claim`] does.
async fn claim_many(
    worker: &Worker,
    hints: &[RunId],
    shutdown: &CancellationToken,
) -> Result<Batch, DbError> {
    let lease = worker.config.worker.lease;
    worker
        .db_patiently(
            Patience::UntilStopped(shutdown),
            "claim runs",
            |client| async move { claim_batch(&client, worker.id, lease, hints).await },
        )
        .await
}

/// The run a claim gave. A run it claimed but cannot read is failed (no worker
/// could process it), and the message claims again, in separate statements
/// (see `claim_unreadable`), so such a run is named and failed instead of
/// failing every claim behind it; at most three in a row.
async fn claimed_or_failed(
    worker: &Worker,
    mut claimed: Claim,
    wake: Wake,
) -> Result<Option<ClaimedRun>, DbError> {
    let lease = worker.config.worker.lease;
    for _ in 0..3 {
        match claimed {
            Claim::Nothing => return Ok(None),
            Claim::Claimed(run) => return Ok(Some(*run)),
            Claim::Poisoned(poisoned) => fail_poisoned(worker, poisoned).await?,
        }
        let Wake::Run(hint) = wake else {
            // The mark stays due: the next room message claims the next run.
            worker.relay_wake.notify_one();
            return Ok(None);
        };
        claimed =
            worker
                .db(|client| async move {
                    claim_unreadable(&client, worker.id, lease, Some(hint)).await
                })
                .await?;
    }
    Ok(None)
}

/// After a claim failed for another reason than an outage (a row the claim
/// statement itself cannot read): claims and reads in separate statements.
///
/// A room's claim reads its run in a statement of its own already, so its
/// failure is returned, and its message with it: acked, the free place would
/// wait for the relay to republish its mark (5 s at first, up to 5 minutes
/// once it has been published a few times).
async fn claim_around_poison(
    worker: &Worker,
    wake: Wake,
    error: DbError,
) -> Result<Option<ClaimedRun>, DbError> {
    let Wake::Run(hint) = wake else {
        return Err(error);
    };
    tracing::warn!(%error, "a claim failed; claiming again step by step");
    let lease = worker.config.worker.lease;
    let claimed = worker
        .db(|client| async move { claim_unreadable(&client, worker.id, lease, Some(hint)).await })
        .await?;
    claimed_or_failed(worker, claimed, wake).await
}

fn header_text(delivery: &Delivery, name: &str) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}
