// 3 and 4. The retry policy, through a proxy that fails requests on purpose.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Stewrd, StewrdError } from "@stewrd/client";
import { newProject, startHttpProxy } from "./helpers.js";

const unavailable = JSON.stringify({
  error: { type: "service_unavailable_error", code: "not_ready", message: "try later", param: null },
});

test("a submit is retried after a 503 and a lost answer, with one Idempotency-Key and one session", async () => {
  const { client, apiKey } = await newProject("submit-retry");
  let agentPosts = 0;
  const proxy = await startHttpProxy((req) => {
    if (req.method !== "POST" || req.path !== "/v1/agent") return { kind: "forward" };
    agentPosts++;
    if (agentPosts === 1) {
      return { kind: "respond", status: 503, headers: { "retry-after": "0" }, body: unavailable };
    }
    // The second reaches the server, which stores the run; its answer is lost.
    if (agentPosts === 2) return { kind: "forward-then-drop" };
    return { kind: "forward" };
  });
  try {
    const viaProxy = new Stewrd({ baseUrl: proxy.url, apiKey, maxRetries: 3 });
    const submitted = await viaProxy.agent({ message: "exactly once" });

    const posts = proxy.requests.filter((r) => r.path === "/v1/agent");
    assert.equal(posts.length, 3);
    const keys = posts.map((r) => r.headers["idempotency-key"]);
    assert.ok(typeof keys[0] === "string" && keys[0].length >= 16, "the client sent a key");
    assert.deepEqual(keys, [keys[0], keys[0], keys[0]], "the same key on every attempt");

    const sessions = await client.sessions.list({ limit: 100 });
    assert.deepEqual(
      sessions.data.map((s) => s.id),
      [submitted.session_id],
      "exactly one session was created",
    );
    assert.equal((await client.wait(submitted.session_id)).output, "Echo: exactly once");
  } finally {
    await proxy.close();
  }
});

test("a POST other than a submit is never repeated after a network error", async () => {
  const { apiKey } = await newProject("no-retry");
  const proxy = await startHttpProxy((req) =>
    req.method === "POST" ? { kind: "forward-then-drop" } : { kind: "forward" },
  );
  try {
    const viaProxy = new Stewrd({ baseUrl: proxy.url, apiKey, maxRetries: 3 });
    await assert.rejects(viaProxy.project.newWebhookSecret(), (err: unknown) => {
      assert.ok(err instanceof StewrdError);
      assert.equal(err.status, 0);
      assert.equal(err.type, "connection_error");
      return true;
    });
    assert.equal(proxy.requests.length, 1, "sent once only");
  } finally {
    await proxy.close();
  }
});

test("a GET is retried after a dropped connection", async () => {
  const { apiKey } = await newProject("get-retry");
  const proxy = await startHttpProxy((_req, index) =>
    index === 0 ? { kind: "forward-then-drop" } : { kind: "forward" },
  );
  try {
    const viaProxy = new Stewrd({ baseUrl: proxy.url, apiKey });
    const project = await viaProxy.project.get();
    assert.ok(project.id);
    assert.equal(proxy.requests.length, 2);
  } finally {
    await proxy.close();
  }
});

test("429 with Retry-After: 1 is waited out before the retry", async () => {
  const { apiKey } = await newProject("retry-after");
  const proxy = await startHttpProxy((_req, index) =>
    index === 0
      ? {
          kind: "respond",
          status: 429,
          headers: { "retry-after": "1" },
          body: JSON.stringify({
            error: { type: "rate_limit_error", code: "too_many_queued_runs", message: "slow down", param: null },
          }),
        }
      : { kind: "forward" },
  );
  try {
    const viaProxy = new Stewrd({ baseUrl: proxy.url, apiKey });
    const submitted = await viaProxy.agent({ message: "after a while" });
    assert.ok(submitted.session_id);
    assert.equal(proxy.requests.length, 2);
    // Measured by the proxy: from the 429's answer to the retry's arrival.
    const waited = proxy.requests[1]!.at - proxy.respondedAt.get(0)!;
    assert.ok(waited >= 950, `retried after ${waited.toFixed(0)} ms`);
    assert.ok(waited < 5000, `retried after ${waited.toFixed(0)} ms`);
    assert.equal(proxy.requests[0]!.headers["idempotency-key"], proxy.requests[1]!.headers["idempotency-key"]);
  } finally {
    await proxy.close();
  }
});

test("a Retry-After beyond maxRetryAfterMs is thrown at once, with retryAfter", async () => {
  const { apiKey } = await newProject("retry-after-long");
  const proxy = await startHttpProxy(() => ({
    kind: "respond",
    status: 429,
    headers: { "retry-after": "3600" },
    body: JSON.stringify({
      error: { type: "rate_limit_error", code: "token_budget_exhausted", message: "budget", param: null },
    }),
  }));
  try {
    const viaProxy = new Stewrd({ baseUrl: proxy.url, apiKey, maxRetryAfterMs: 10_000 });
    await assert.rejects(viaProxy.agent({ message: "x" }), {
      status: 429,
      code: "token_budget_exhausted",
      retryAfter: 3600,
    });
    assert.equal(proxy.requests.length, 1);
  } finally {
    await proxy.close();
  }
});
