//! One client's event stream of one session, read from the session's event log
//! (Postgres) and, while a model call streams, from the live deltas (the
//! broker). Every event's id is its place in the log (`event_log::event_id`), so
//! a client resuming with `Last-Event-ID` gets exactly what followed, from any
//! API process: replayed text comes from the stream's checkpoint, live text
//! from the broker, and a delta is trimmed to what the client has not had.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use axum::response::sse::Event;
use serde_json::json;
use stewrd_shared::{
    db::{
        DbError, GenericClient,
        event_log::{
            self, LogKind, LoggedEvent, ResumePoint, event_id, events_after, latest_seq,
            resume_point,
        },
        session::{SessionRecord, get_session},
    },
    domain::id::{ProjectId, RunId, SessionId},
    queue::deltas::{Delta, DeltaSubscription, Received},
    view::{Detail, SessionOut, StepOut},
};

use crate::{error::ApiError, state::AppState, watch::Subscription};

/// Log rows read per query.
const BATCH: i64 = 200;
/// While live deltas wait (for text the checkpoint does not hold yet, or for
/// the log row that opened their stream), the checkpoint and the log are read
/// again this often.
const GAP_RETRY: Duration = Duration::from_millis(100);
/// Live deltas held back at most; older ones go (the checkpoint has them).
const MAX_STASH: usize = 10_000;

/// Where a client asks to start.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// With the current state, then the text so far, then live events.
    Now,
    /// Just after this position (`Last-Event-ID`).
    After { seq: i64, offset: usize },
}

impl Start {
    /// Reads `Last-Event-ID`; a value that is not one of our ids is refused.
    pub fn from_header(value: Option<&str>) -> Result<Self, ApiError> {
        let Some(value) = value else {
            return Ok(Self::Now);
        };
        event_log::parse_event_id(value)
            .map(|(seq, offset)| Self::After { seq, offset })
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_value",
                    "Last-Event-ID",
                    "`Last-Event-ID` must be the id of an event of this session",
                )
            })
    }
}

/// The stream whose deltas are being sent: the `stream` event that opened it,
/// and how many bytes of its text the client has.
#[derive(Clone, Copy, Debug)]
struct OpenStream {
    seq: i64,
    run_id: RunId,
    step: i32,
    sent: usize,
}

/// One client's position in one session's events.
pub struct Feed {
    state: AppState,
    project_id: ProjectId,
    session_id: SessionId,
    subscription: Subscription,
    deltas: DeltaSubscription,
    /// Live deltas not sendable yet.
    stash: VecDeque<Arc<Delta>>,
    /// Deltas were missed: the checkpoint must be read.
    gap: bool,
    /// The log may have new rows.
    dirty: bool,
    /// The last log row handled.
    after: i64,
    /// The last log row handled, if it ended its run (final status).
    last: Option<LoggedEvent>,
    stream: Option<OpenStream>,
    ready: VecDeque<Event>,
    done: bool,
}

impl Feed {
    /// A feed for a session the caller may see. Subscribes before the first
    /// read, so no change between the two is missed. 410 when the position is
    /// past the log's retention.
    pub async fn open(
        state: AppState,
        project_id: ProjectId,
        session_id: SessionId,
        start: Start,
    ) -> Result<Self, ApiError> {
        let subscription = state.watch.subscribe(session_id);
        let deltas = state.deltas.subscribe(session_id).await;
        let mut feed = Self {
            state,
            project_id,
            session_id,
            subscription,
            deltas,
            stash: VecDeque::new(),
            gap: false,
            dirty: true,
            after: 0,
            last: None,
            stream: None,
            ready: VecDeque::new(),
            done: false,
        };
        let mut connection = feed.state.pool.get().await?;
        // One snapshot, so the current state shown and the position the feed
        // goes on from agree: with two reads, a claim between them skipped
        // `session.running` (seen with three API processes).
        let client = connection
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(DbError::from)?;
        let Some(record) = get_session(&client, project_id, session_id).await? else {
            return Err(ApiError::not_found("session"));
        };
        match start {
            Start::After { seq, offset } => {
                match resume_point(&client, session_id, seq).await? {
                    ResumePoint::Kept => {}
                    ResumePoint::Expired => {
                        return Err(ApiError::gone(
                            "events_expired",
                            "the events after this id are past their retention; GET the session instead",
                        ));
                    }
                    ResumePoint::Unknown => {
                        return Err(ApiError::invalid(
                            "invalid_value",
                            "Last-Event-ID",
                            "`Last-Event-ID` must be the id of an event of this session",
                        ));
                    }
                }
                let row = events_after(&client, session_id, seq - 1, 1).await?;
                feed.after = seq;
                feed.take_position(row.first().copied(), offset);
                feed.done = feed.ended(&record);
            }
            Start::Now => {
                let latest = latest_seq(&client, session_id).await?;
                let row = if latest > 0 {
                    events_after(&client, session_id, latest - 1, 1).await?
                } else {
                    Vec::new()
                };
                if let Some(view) = SessionOut::from_record(&record, Detail::WithoutMessages) {
                    let mut event = Event::default()
                        .event(format!("session.{}", view.status))
                        .data(serde_json::to_string(&view).unwrap_or_default());
                    if latest > 0 {
                        event = event.id(event_id(latest, 0));
                    }
                    feed.ready.push_back(event);
                    feed.done = view.status.is_final();
                }
                feed.after = latest;
                feed.take_position(row.first().copied(), 0);
                // The text so far of a step that is streaming now.
                feed.flush_stream(&client).await?;
            }
        }
        client.commit().await.map_err(DbError::from)?;
        Ok(feed)
    }

    /// Starts after `row`: inside its stream if it opened one.
    fn take_position(&mut self, row: Option<LoggedEvent>, offset: usize) {
        let Some(row) = row else { return };
        if row.kind == LogKind::Stream {
            self.stream = Some(OpenStream {
                seq: row.seq,
                run_id: row.run_id,
                step: row.step.unwrap_or(0),
                sent: offset,
            });
        }
        self.last = Some(row);
    }

    /// Whether everything was sent: the last row handled is the final status
    /// of the session's latest run.
    fn ended(&self, record: &SessionRecord) -> bool {
        let Some(last) = self.last else { return false };
        let latest = record.latest_run().map(|run| run.id);
        matches!(last.kind, LogKind::Status(status) if status.is_final())
            && latest == Some(last.run_id)
    }

    /// The next event, waiting for one if need be; `None` once the session's
    /// latest run is final and its events are sent (or Postgres is gone: the
    /// client reconnects).
    pub async fn next(mut self) -> Option<(Event, Self)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((event, self));
            }
            if self.done {
                return None;
            }
            if self.dirty || self.gap {
                let caught_up = async {
                    let client = self.state.pool.get().await?;
                    if self.gap {
                        self.gap = false;
                        self.flush_stream(&client).await?;
                    }
                    self.dirty = false;
                    self.fill(&client).await
                };
                if let Err(error) = caught_up.await {
                    tracing::debug!(%error, "event stream ends: the database is unavailable");
                    return None;
                }
                self.retry_stash();
                continue;
            }
            let waiting = !self.stash.is_empty();
            tokio::select! {
                () = self.subscription.changed() => self.dirty = true,
                received = self.deltas.recv() => match received {
                    Received::Delta(delta) => self.apply(delta, false),
                    Received::Missed => self.gap = true,
                },
                () = tokio::time::sleep(GAP_RETRY), if waiting => {
                    self.gap = true;
                    self.dirty = true;
                }
            }
        }
    }

    /// A live delta: sent if it continues the open stream, held back if it
    /// is ahead (of the text sent, or of the log), dropped if its stream is over.
    fn apply(&mut self, delta: Arc<Delta>, again: bool) {
        match self.stream {
            Some(stream) if stream.seq == delta.seq => {
                if delta.offset > stream.sent {
                    self.hold(delta);
                } else {
                    self.send_text(&delta.text, delta.offset);
                }
            }
            _ if delta.seq > self.after => {
                // Its stream's row is not read yet (the broker beat the log).
                self.dirty |= !again;
                self.hold(delta);
            }
            _ => {}
        }
    }

    fn hold(&mut self, delta: Arc<Delta>) {
        if self.stash.len() >= MAX_STASH {
            self.stash.pop_front();
        }
        self.stash.push_back(delta);
    }

    fn retry_stash(&mut self) {
        let held = std::mem::take(&mut self.stash);
        for delta in held {
            self.apply(delta, true);
        }
    }

    /// Reads the log after the position into `ready` (all of it: a full
    /// batch marks the log dirty again).
    async fn fill(&mut self, client: &impl GenericClient) -> Result<(), DbError> {
        let rows = events_after(client, self.session_id, self.after, BATCH).await?;
        if rows.is_empty() {
            return Ok(());
        }
        self.dirty = rows.len() >= usize::try_from(BATCH).unwrap_or(usize::MAX);
        let Some(record) = get_session(client, self.project_id, self.session_id).await? else {
            self.done = true;
            return Ok(());
        };
        for row in rows {
            // A stream's text is whole before whatever the log says next.
            self.flush_stream(client).await?;
            self.stream = None;
            match row.kind {
                LogKind::Stream => {}
                LogKind::Status(status) => {
                    if let Some(view) = SessionOut::at_status(&record, row.run_id, status) {
                        self.push(row.seq, &format!("session.{status}"), &view);
                    }
                }
                LogKind::Step => {
                    let step = record
                        .runs
                        .iter()
                        .find(|run| run.id == row.run_id)
                        .map(|run| StepOut::of_run(run, &record.steps))
                        .and_then(|steps| steps.into_iter().find(|s| Some(s.index) == row.step));
                    self.push(
                        row.seq,
                        "run.step",
                        &json!({"run_id": row.run_id, "step": step}),
                    );
                }
                LogKind::Reset => self.push(
                    row.seq,
                    "run.reset",
                    &json!({"run_id": row.run_id, "step": row.step}),
                ),
            }
            self.after = row.seq;
            self.take_position(Some(row), 0);
            self.flush_stream(client).await?;
        }
        self.done = self.ended(&record);
        Ok(())
    }

    fn push(&mut self, seq: i64, name: &str, data: &impl serde::Serialize) {
        self.ready.push_back(
            Event::default()
                .event(name)
                .id(event_id(seq, 0))
                .data(serde_json::to_string(data).unwrap_or_default()),
        );
    }

    /// Sends what the open stream's checkpoint holds beyond what was sent.
    async fn flush_stream(
        &mut self,
        client: &impl stewrd_shared::db::GenericClient,
    ) -> Result<(), DbError> {
        let Some(stream) = self.stream else {
            return Ok(());
        };
        let texts = event_log::stream_texts(client, self.session_id, &[stream.seq]).await?;
        if let Some(text) = texts.get(&stream.seq) {
            self.send_text(text, 0);
        }
        Ok(())
    }

    /// Sends the part of `text` (which starts at byte `from` of the open
    /// stream) that the client has not had yet.
    fn send_text(&mut self, text: &str, from: usize) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let end = from + text.len();
        if end <= stream.sent || from > stream.sent {
            return;
        }
        // A forged `Last-Event-ID` can put `sent` inside a character: start at
        // that character, or the stream would stall there for good.
        let mut start = stream.sent - from;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let new = &text[start..];
        let data = json!({"run_id": stream.run_id, "step": stream.step, "text": new});
        stream.sent = end;
        let event = Event::default()
            .event("run.delta")
            .id(event_id(stream.seq, end))
            .data(data.to_string());
        self.ready.push_back(event);
    }
}
