/**
 * `GET /v1/sessions/{id}/events` as an async iterator that survives dropped
 * connections: it reconnects with `Last-Event-ID` set to the last event it yielded, so
 * the server resumes exactly after it, and it skips any event it already yielded.
 * Iteration ends when the server ends the stream after the session's last run is
 * final.
 */
import { StewrdError } from "./errors.js";
import type { RequestOptions, Transport } from "./http.js";
import { fillPath } from "./http.js";
import { parseSse, type SseMessage } from "./sse.js";
import { isFinal, type Session, type StewrdEvent } from "./types.js";
import { backoffMs, sleep } from "./util.js";

export interface EventsOptions {
  /** Resume just after this event (an `id` an earlier iteration yielded). */
  lastEventId?: string;
  /** Ends the iteration; the iterator then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Connections in a row that bring no new event before giving up (default 5). */
  maxReconnects?: number;
  /**
   * Reconnect when no byte came for this long (default 45 000 ms). The server sends a
   * heartbeat comment every 15 s, so a silent connection is a dead one.
   */
  idleTimeoutMs?: number;
}

const FINAL_EVENTS = new Set(["session.succeeded", "session.failed", "session.cancelled"]);

export async function* sessionEvents(
  transport: Transport,
  sessionId: string,
  opts: EventsOptions = {},
): AsyncGenerator<StewrdEvent, void, undefined> {
  const path = fillPath("/v1/sessions/{id}/events", { id: sessionId });
  const maxReconnects = opts.maxReconnects ?? 5;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 45_000;
  let lastId: string | null = opts.lastEventId ?? null;
  let lastWasFinal = false;
  let fruitless = 0; // connections in a row that yielded nothing

  for (;;) {
    const conn = new AbortController();
    const onAbort = () => conn.abort(opts.signal?.reason);
    if (opts.signal?.aborted) throw opts.signal.reason;
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let yielded = 0;
    let dropped: unknown = null;
    let stopWatch = () => {};
    try {
      // Connection failures, 429 and 503 are retried by the transport (a GET is safe);
      // 401, 404 and 410 (replay past retention) are thrown from here.
      const res = await transport.request(
        {
          method: "GET",
          path,
          auth: "project",
          headers: { accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) },
          retryOnNetworkError: true,
          stream: true,
        },
        { signal: conn.signal } satisfies RequestOptions,
      );
      if (!res.body) throw new TypeError("the event stream has no body");
      const watched = watchIdle(res.body, idleTimeoutMs, conn);
      stopWatch = watched.stop;
      for await (const msg of parseSse(watched.body)) {
        if (!isNewer(msg.id, lastId)) continue; // already yielded before a reconnect
        if (msg.id !== null) lastId = msg.id;
        const event = toEvent(msg);
        lastWasFinal = FINAL_EVENTS.has(event.event);
        yielded++;
        fruitless = 0;
        yield event;
      }
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (err instanceof StewrdError) throw err; // an answer, or retries used up
      dropped = err; // the connection broke mid-stream (or went silent): reconnect
    } finally {
      stopWatch();
      opts.signal?.removeEventListener("abort", onAbort);
      conn.abort(); // release the connection whichever way we leave
    }

    if (dropped === null) {
      // The server closed the stream, which it does once the last run is final.
      if (lastWasFinal) return;
      if (yielded === 0 && (await sessionIsFinal(transport, sessionId, opts.signal))) return;
    }
    if (yielded === 0 && ++fruitless > maxReconnects) {
      throw new StewrdError({
        status: 0,
        type: "connection_error",
        code: "event_stream_failed",
        message: `the event stream of session ${sessionId} kept failing (${fruitless} connections without an event)`,
        cause: dropped ?? undefined,
      });
    }
    // Right away after a connection that brought events; back off after fruitless ones.
    if (fruitless > 0) await sleep(backoffMs(fruitless - 1), opts.signal);
  }
}

async function sessionIsFinal(transport: Transport, id: string, signal?: AbortSignal): Promise<boolean> {
  const session = await transport.json<Session>(
    { method: "GET", path: fillPath("/v1/sessions/{id}", { id }), auth: "project", retryOnNetworkError: true },
    signal ? { signal } : {},
  );
  return isFinal(session.status);
}

/**
 * Whether an event comes after the last one yielded. Ids are whole numbers increasing
 * within the session (as decimal strings, possibly past 2^53), so they compare by
 * length, then digit by digit. An event without an id cannot be a repeat we know of.
 */
function isNewer(id: string | null, last: string | null): boolean {
  if (id === null || last === null) return true;
  if (!/^\d+$/.test(id) || !/^\d+$/.test(last)) return id !== last;
  const a = id.replace(/^0+(?=\d)/, "");
  const b = last.replace(/^0+(?=\d)/, "");
  return a.length !== b.length ? a.length > b.length : a > b;
}

function toEvent(msg: SseMessage): StewrdEvent {
  let data: unknown = msg.data;
  try {
    data = JSON.parse(msg.data);
  } catch {
    // Not JSON: hand the text over as it came.
  }
  return { id: msg.id ?? "", event: msg.event, data } as StewrdEvent;
}

/**
 * Passes the body through, aborting `conn` when no chunk arrives for `ms`. `stop`
 * clears the timer, so that a finished stream leaves none behind to hold the process.
 */
function watchIdle(
  body: ReadableStream<Uint8Array>,
  ms: number,
  conn: AbortController,
): { body: ReadableStream<Uint8Array>; stop: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => conn.abort(new Error("event stream idle")), ms);
  };
  arm();
  const watched = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        arm();
        controller.enqueue(chunk);
      },
    }),
  );
  return { body: watched, stop: () => clearTimeout(timer) };
}
