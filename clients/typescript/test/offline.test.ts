// Offline tests, with a scripted fetch, of the SSE parser, the resuming iterator and
// the submit retry on 409: line endings split across chunks, comments, a server that
// replays events the client already has, cut and silent connections.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Stewrd, type StewrdEvent } from "@stewrd/client";

const enc = new TextEncoder();

/** A body that sends `pieces` and then either ends or fails (a cut connection). */
function body(pieces: string[], fail = false): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < pieces.length) return controller.enqueue(enc.encode(pieces[i++]));
      if (fail) controller.error(new TypeError("terminated"));
      else controller.close();
    },
  });
}

const session = (status: string) => JSON.stringify({ id: "s", status });
const delta = (text: string) => JSON.stringify({ run_id: "r", step: 0, text });

test("events(): CRLF split across chunks, comments, multi-line data, a cut, a replay", async () => {
  const seenLastIds: (string | null)[] = [];
  const connections = [
    // First connection: CRLF endings split between chunks, a heartbeat comment, then a
    // cut in the middle of the third event.
    body(
      [
        `event: session.running\r\nid: 100\r\ndata: ${session("running")}\r`,
        `\n\r\n: heartbeat\r\n\r\nevent: run.delta\nid: 101\ndata: ${delta("Hel")}\n\n`,
        `event: run.delta\nid: 102\ndata: {"run_id":"r","st`,
      ],
      true,
    ),
    // Second connection: the server sends 101 again, which must not be yielded twice.
    body([
      `id: 101\nevent: run.delta\ndata: ${delta("Hel")}\n\n`,
      `id: 102\nevent: run.delta\ndata: ${delta("lo")}\n\n`,
      `id: 103\nevent: session.succeeded\ndata: ${session("succeeded")}\n\n`,
    ]),
  ];
  const fakeFetch: typeof fetch = async (_input, init) => {
    seenLastIds.push(new Headers(init?.headers).get("last-event-id"));
    const next = connections.shift();
    assert.ok(next, "no more connections expected");
    return new Response(next, { headers: { "content-type": "text/event-stream" } });
  };
  const client = new Stewrd({ baseUrl: "http://stewrd.test", apiKey: "k", fetch: fakeFetch });
  const events: StewrdEvent[] = [];
  for await (const e of client.events("s")) events.push(e);

  assert.deepEqual(
    events.map((e) => `${e.id} ${e.event}`),
    ["100 session.running", "101 run.delta", "102 run.delta", "103 session.succeeded"],
  );
  const text = events.map((e) => (e.event === "run.delta" ? e.data.text : "")).join("");
  assert.equal(text, "Hello");
  assert.deepEqual(seenLastIds, [null, "101"]);
});

test("events(): resumes from lastEventId and gives up after repeated failures", async () => {
  let calls = 0;
  const fakeFetch: typeof fetch = async () => {
    calls++;
    throw new TypeError("connect ECONNREFUSED");
  };
  const client = new Stewrd({ baseUrl: "http://stewrd.test", apiKey: "k", fetch: fakeFetch, maxRetries: 1 });
  await assert.rejects(
    (async () => {
      for await (const _ of client.events("s", { lastEventId: "5" })) void _;
    })(),
    { type: "connection_error" },
  );
  assert.equal(calls, 2, "the transport's retries are used, then the error is thrown");
});

test("events(): a silent connection is dropped after idleTimeoutMs and resumed", async () => {
  let call = 0;
  const fakeFetch: typeof fetch = async (_input, init) => {
    call++;
    if (call === 1) {
      // Sends one event, then nothing at all (a dead peer), until aborted.
      const signal = init?.signal;
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(enc.encode(`event: session.running\nid: 7\ndata: ${session("running")}\n\n`));
          signal?.addEventListener("abort", () => controller.error(signal.reason));
        },
      });
      return new Response(stream);
    }
    assert.equal(new Headers(init?.headers).get("last-event-id"), "7");
    return new Response(body([`event: session.failed\nid: 8\ndata: ${session("failed")}\n\n`]));
  };
  const client = new Stewrd({ baseUrl: "http://stewrd.test", apiKey: "k", fetch: fakeFetch });
  const events: string[] = [];
  for await (const e of client.events("s", { idleTimeoutMs: 200 })) events.push(e.event);
  assert.deepEqual(events, ["session.running", "session.failed"]);
});

test("events(): an event cut off by a clean close is never yielded, but replayed whole", async () => {
  const lastIds: (string | null)[] = [];
  const connections = [
    body([`event: session.running\nid: 1\ndata: ${session("running")}\n\nevent: run.delta\nid: 2\ndata: {"run_id":"r","step":0,"text":"Hel`]),
    body([
      `event: run.delta\nid: 2\ndata: ${delta("Hello")}\n\n`,
      `event: session.succeeded\nid: 3\ndata: ${session("succeeded")}\n\n`,
    ]),
  ];
  const fakeFetch: typeof fetch = async (_input, init) => {
    lastIds.push(new Headers(init?.headers).get("last-event-id"));
    return new Response(connections.shift());
  };
  const client = new Stewrd({ baseUrl: "http://stewrd.test", apiKey: "k", fetch: fakeFetch });
  const events: StewrdEvent[] = [];
  for await (const e of client.events("s")) events.push(e);
  assert.deepEqual(
    events.map((e) => (e.event === "run.delta" ? e.data.text : e.event)),
    ["session.running", "Hello", "session.succeeded"],
  );
  assert.deepEqual(lastIds, [null, "1"]);
});

test("agent(): 409 idempotency_key_in_use is retried with the same key; other 409s are not", async () => {
  const keys: (string | null)[] = [];
  const answers = [
    Response.json(
      { error: { type: "conflict_error", code: "idempotency_key_in_use", message: "retry shortly", param: null } },
      { status: 409 },
    ),
    Response.json({ session_id: "s", run_id: "r", status: "queued", created_at: "2026-01-01T00:00:00Z" }, { status: 202 }),
    Response.json(
      { error: { type: "conflict_error", code: "session_busy", message: "busy", param: null } },
      { status: 409 },
    ),
  ];
  const fakeFetch: typeof fetch = async (_input, init) => {
    keys.push(new Headers(init?.headers).get("idempotency-key"));
    return answers.shift()!;
  };
  const client = new Stewrd({ baseUrl: "http://stewrd.test", apiKey: "k", fetch: fakeFetch });
  assert.equal((await client.agent({ message: "m" })).session_id, "s");
  assert.equal(keys.length, 2);
  assert.equal(keys[0], keys[1]);
  await assert.rejects(client.agent({ message: "m", session_id: "s" }), { status: 409, code: "session_busy" });
  assert.equal(keys.length, 3);
});
