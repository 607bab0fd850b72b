// 8. Webhooks: verifyWebhook against signatures made here, and against a real delivery.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { signWebhook, verifyWebhook, WebhookVerificationError, type WebhookEvent } from "@stewrd/client";
import { newProject } from "./helpers.js";

// The Standard Webhooks specification's own example: this secret, id, timestamp and
// body give exactly this signature.
const SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS = 1614265330;
const SPEC_BODY = '{"test": 2432232314}';
const SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const specHeaders = {
  "webhook-id": SPEC_ID,
  "webhook-timestamp": String(SPEC_TS),
  "webhook-signature": SPEC_SIG,
};
const atSpecTime = { now: new Date(SPEC_TS * 1000) };

test("verifyWebhook accepts the specification's example and our own signatures", async () => {
  assert.deepEqual(await verifyWebhook(SPEC_SECRET, specHeaders, SPEC_BODY, atSpecTime), { test: 2432232314 });
  assert.deepEqual(await signWebhook(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY), specHeaders);
  // Several signatures (a rotated secret): one match is enough; Headers work too.
  const headers = new Headers({
    ...specHeaders,
    "webhook-signature": `v1,${Buffer.alloc(32).toString("base64")} v2,xyz ${SPEC_SIG}`,
  });
  assert.ok(await verifyWebhook(SPEC_SECRET, headers, new TextEncoder().encode(SPEC_BODY), atSpecTime));
});

test("verifyWebhook rejects a tampered body, another secret, and an old or future timestamp", async () => {
  const reject = (p: Promise<unknown>) => assert.rejects(p, WebhookVerificationError);
  await reject(verifyWebhook(SPEC_SECRET, specHeaders, '{"test": 2432232315}', atSpecTime));
  await reject(verifyWebhook("whsec_" + Buffer.alloc(24, 1).toString("base64"), specHeaders, SPEC_BODY, atSpecTime));
  await reject(verifyWebhook(SPEC_SECRET, { ...specHeaders, "webhook-id": "msg_other" }, SPEC_BODY, atSpecTime));
  await reject(verifyWebhook(SPEC_SECRET, { ...specHeaders, "webhook-signature": "" }, SPEC_BODY, atSpecTime));
  await reject(verifyWebhook(SPEC_SECRET, specHeaders, SPEC_BODY, { now: new Date((SPEC_TS + 301) * 1000) }));
  await reject(verifyWebhook(SPEC_SECRET, specHeaders, SPEC_BODY, { now: new Date((SPEC_TS - 301) * 1000) }));
  // Within five minutes is fine.
  assert.ok(await verifyWebhook(SPEC_SECRET, specHeaders, SPEC_BODY, { now: new Date((SPEC_TS + 299) * 1000) }));
  // Fresh, correctly signed, but for another body: still rejected.
  const now = Math.floor(Date.now() / 1000);
  const signed = await signWebhook(SPEC_SECRET, "msg_1", now, "a");
  await reject(verifyWebhook(SPEC_SECRET, signed, "b"));
  assert.equal(await verifyWebhook<string>(SPEC_SECRET, signed, '"a"').catch(() => "rejected"), "rejected");
});

interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

test("a real delivery verifies with the project's secret; retryDelivery sends it again", async () => {
  const deliveries: Delivery[] = [];
  const arrived: (() => void)[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    deliveries.push({ headers: req.headers, body: Buffer.concat(chunks) });
    res.writeHead(204).end();
    arrived.shift()?.();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const nextDelivery = (count: number) =>
    new Promise<void>((resolve, reject) => {
      if (deliveries.length >= count) return resolve();
      const timer = setTimeout(() => reject(new Error("no webhook delivery within 30 s")), 30_000);
      arrived.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  try {
    const { client } = await newProject("webhooks");
    const { secret } = await client.project.newWebhookSecret();
    assert.match(secret, /^whsec_/);
    const { port } = server.address() as AddressInfo;
    const project = await client.project.putWebhook(`http://127.0.0.1:${port}/hook`);
    assert.equal(project.webhook.has_secret, true);

    const { session_id } = await client.agent({ message: "notify me" });
    await nextDelivery(1);
    const first = deliveries[0]!;
    const event = await verifyWebhook<WebhookEvent>(secret, first.headers, first.body);
    assert.equal(event.type, "session.succeeded");
    assert.equal(event.data.id, session_id);
    assert.equal(event.data.output, "Echo: notify me");
    await assert.rejects(
      verifyWebhook(secret, first.headers, Buffer.concat([first.body, Buffer.from(" ")])),
      WebhookVerificationError,
    );

    const attempts = await waitFor(async () => {
      const list = await client.sessions.deliveries(session_id);
      return list.data.length > 0 ? list.data : null;
    });
    assert.equal(attempts[0]?.status_code, 204);
    assert.equal(attempts[0]?.event_id, first.headers["webhook-id"]);

    const retried = await client.sessions.retryDelivery(session_id);
    assert.equal(retried.event_id, first.headers["webhook-id"]);
    await nextDelivery(2);
    const second = deliveries[1]!;
    assert.equal(second.headers["webhook-id"], first.headers["webhook-id"], "the same event, the same id");
    await verifyWebhook(secret, second.headers, second.body);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

async function waitFor<T>(probe: () => Promise<T | null>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 200));
  }
}
