// 1. Submit and wait: the long poll returns the final session with the stub's answer.
import assert from "node:assert/strict";
import { test } from "node:test";
import { newProject } from "./helpers.js";

test("agent() then wait() returns the final output", async () => {
  const { client } = await newProject("submit");
  const message = "What is the answer to everything?";
  const submitted = await client.agent({ message, metadata: { from: "ts-test" } });
  assert.equal(submitted.status, "queued");
  assert.match(submitted.session_id, /^[0-9a-f-]{36}$/);

  const session = await client.wait(submitted.session_id, { maxWaitMs: 60_000 });
  assert.equal(session.status, "succeeded");
  assert.equal(session.output, `Echo: ${message}`);
  assert.deepEqual(session.metadata, { from: "ts-test" });
  assert.equal(session.runs?.[0]?.id, submitted.run_id);

  // The same session lists, and its run's steps show the one model call.
  const page = await client.sessions.list({ limit: 10 });
  assert.deepEqual(
    page.data.map((s) => s.id),
    [submitted.session_id],
  );
  const steps = await client.sessions.steps(submitted.session_id, submitted.run_id);
  assert.equal(steps.data[0]?.type, "model_call");
  assert.equal(steps.data[0]?.content, `Echo: ${message}`);
});

test("a second message continues the session; cancel of a final session is 409", async () => {
  const { client } = await newProject("continue");
  const first = await client.agent({ message: "first" });
  await client.wait(first.session_id);
  const second = await client.agent({ message: "second", session_id: first.session_id });
  assert.equal(second.session_id, first.session_id);
  const session = await client.wait(first.session_id);
  assert.equal(session.output, "Echo: second");
  assert.equal(session.runs?.length, 2);
  await assert.rejects(client.sessions.cancel(first.session_id), { status: 409 });
});

test("wait() with untilRequiresAction returns the paused session, cancel ends it", async () => {
  const { client } = await newProject("pause");
  const { session_id } = await client.agent({
    message: "pause please",
    tools: [{ type: "function", function: { name: "never_answered" } }],
  });
  const paused = await client.wait(session_id, { untilRequiresAction: true, maxWaitMs: 30_000 });
  assert.equal(paused.status, "requires_action");
  const cancelled = await client.sessions.cancel(session_id);
  assert.equal(cancelled.status, "cancelled");
  assert.equal((await client.wait(session_id)).status, "cancelled");
});
