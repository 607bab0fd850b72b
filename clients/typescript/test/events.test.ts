// 2. events(): a proxy cuts the SSE connection in the middle of the streamed text; the
// iterator reconnects with Last-Event-ID and the text still joins to the output.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Stewrd, requiredAction, type StewrdEvent } from "@stewrd/client";
import { newProject, startTcpProxy, words } from "./helpers.js";

test("events() resumes after a cut connection and yields each event once", async () => {
  const { client, apiKey } = await newProject("events");
  const text = words(30);
  // A client tool makes the run pause, so the stream can be opened before the streamed
  // answer is written (the stub writes a whole answer in a few milliseconds).
  const { session_id } = await client.agent({
    message: text,
    stream: true,
    tools: [{ type: "function", function: { name: "lookup" } }],
  });
  const paused = await client.wait(session_id, { untilRequiresAction: true, maxWaitMs: 30_000 });
  const action = requiredAction(paused);
  assert.equal(action?.type, "submit_tool_outputs");

  // Cut the first connection inside the first run.delta event, in the middle of its
  // text, so that a parser yielding a half event would show up as wrong text.
  const proxy = await startTcpProxy((bytes) => {
    const delta = bytes.indexOf("run.delta");
    if (delta === -1) return null;
    const textAt = bytes.indexOf('"text":"', delta);
    return textAt === -1 ? delta + 5 : textAt + 12;
  });
  try {
    const viaProxy = new Stewrd({ baseUrl: proxy.url, apiKey });
    const seen: StewrdEvent[] = [];
    for await (const event of viaProxy.events(session_id, { idleTimeoutMs: 20_000 })) {
      seen.push(event);
      if (event.event === "session.requires_action" && action) {
        await client.sessions.toolOutputs(
          session_id,
          action.tool_calls.map((c) => ({ tool_call_id: c.id, output: text })),
        );
      }
    }

    const final = await client.wait(session_id);
    assert.equal(final.status, "succeeded");
    assert.ok(final.output && final.output.length > 200, "the answer is the long streamed text");

    // Deltas joined per step (a run.reset drops that step's text so far) = the output.
    const byStep = new Map<number, string>();
    for (const e of seen) {
      if (e.event === "run.reset") byStep.delete(e.data.step);
      if (e.event === "run.delta") byStep.set(e.data.step, (byStep.get(e.data.step) ?? "") + e.data.text);
    }
    assert.equal([...byStep.values()].join(""), final.output);

    const ids = seen.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `an event came twice: ${ids.join(" ")}`);
    assert.equal(seen.at(-1)?.event, "session.succeeded");
    assert.ok(proxy.connections() >= 2, `the proxy saw ${proxy.connections()} connection(s)`);

    // The reconnect asked to resume after the last event the first connection yielded.
    const cutIndex = seen.findIndex((e) => e.event === "run.delta") - 1;
    const resumeId = seen[cutIndex]?.id;
    assert.ok(resumeId);
    assert.match(proxy.clientBytes[1] ?? "", new RegExp(`last-event-id: ${resumeId}\\r\\n`, "i"));
  } finally {
    await proxy.close();
  }
});

test("events() on a finished session yields its final state and ends; lastEventId resumes", async () => {
  const { client } = await newProject("events-final");
  const { session_id } = await client.agent({ message: "done already" });
  await client.wait(session_id);
  const events: StewrdEvent[] = [];
  for await (const event of client.events(session_id)) events.push(event);
  assert.equal(events.length, 1);
  assert.equal(events[0]?.event, "session.succeeded");
  // Resuming after the final event brings nothing and ends too.
  const after: StewrdEvent[] = [];
  for await (const event of client.events(session_id, { lastEventId: events[0]!.id })) after.push(event);
  assert.deepEqual(after, []);
});
