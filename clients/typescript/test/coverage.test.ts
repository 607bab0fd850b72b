// Every operation of the OpenAPI document has a method in the client (offline: a fake
// fetch records what each method sends). Together with `npm run check-types`, this is
// how a change to the document fails CI until the client follows.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { Stewrd } from "@stewrd/client";

/** Operations a program has no use for, and why. */
const NOT_COVERED: Record<string, string> = {
  "POST /dashboard/login": "the dashboard's HTML sign-in form (a cookie for browsers), not an API call",
};

const METHODS = ["get", "put", "post", "delete", "patch"];

test("the client has a method for every operation in openapi.json", async () => {
  const doc = JSON.parse(await readFile(new URL("../../openapi.json", import.meta.url), "utf8")) as {
    paths: Record<string, Record<string, unknown>>;
  };
  const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => m in item).map((m) => `${m.toUpperCase()} ${path}`),
  );
  const templates = Object.keys(doc.paths).map((p) => ({
    template: p,
    re: new RegExp(`^${p.replace(/\{[^}]+\}/g, "[^/]+")}$`),
  }));

  const sent = new Set<string>();
  const fakeFetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const match = templates.find((t) => t.re.test(url.pathname));
    assert.ok(match, `no documented path matches ${url.pathname}`);
    sent.add(`${init?.method ?? "GET"} ${match.template}`);
    if (url.pathname.endsWith("/events")) {
      return new Response('event: session.succeeded\nid: 1\ndata: {"status":"succeeded"}\n\n', {
        headers: { "content-type": "text/event-stream" },
      });
    }
    if (url.pathname.endsWith("/content")) return new Response(new Uint8Array([1, 2, 3]));
    if (url.pathname === "/metrics") return new Response("up 1\n");
    if (init?.method === "DELETE" && url.pathname.includes("/api-keys/")) return new Response(null, { status: 204 });
    return Response.json({ status: "succeeded" });
  };
  const c = new Stewrd({ baseUrl: "http://stewrd.test", apiKey: "sk-stw_x", adminToken: "admin", fetch: fakeFetch });

  await c.agent({ message: "m" });
  await c.sessions.get("s", { wait: 1 });
  await c.sessions.list({ status: "succeeded" });
  await c.sessions.cancel("s");
  await c.sessions.steps("s", "r");
  await c.sessions.toolOutputs("s", [{ tool_call_id: "c", output: "o" }]);
  await c.sessions.approvals("s", [{ tool_call_id: "c", approve: false, reason: "no" }]);
  await c.sessions.deliveries("s");
  await c.sessions.retryDelivery("s");
  await c.sessions.files("s", { limit: 5 });
  for await (const _ of c.events("s")) void _;
  await c.project.get();
  await c.project.putLlm({ provider: "openai", model: "gpt-4o-mini" });
  await c.project.deleteLlm();
  await c.project.putWebhook(null);
  await c.project.newWebhookSecret();
  await c.project.tools();
  await c.project.putTools([]);
  await c.project.mcpServers();
  await c.project.putMcpServers([]);
  await c.project.mcpServerTools("gh");
  await c.project.usage({ group_by: "model" });
  await c.files.upload(new Uint8Array([1]));
  await c.files.list({ purpose: "input" });
  await c.files.get("f");
  await (await c.files.content("f")).body.cancel();
  await c.files.delete("f");
  await c.admin.listProjects();
  await c.admin.createProject("p");
  await c.admin.getProject("p");
  await c.admin.createApiKey("p");
  await c.admin.revokeApiKey("p", "k");
  await c.admin.putLimits("p", { max_queued_runs: 5 });
  await c.admin.putRateLimit("p", { requests_per_minute: 60 });
  await c.admin.getLlm("p");
  await c.admin.putLlm("p", { provider: "openai", model: "gpt-4o-mini" });
  await c.admin.deleteLlm("p");
  await c.admin.tools("p");
  await c.admin.putTools("p", []);
  await c.admin.mcpServers("p");
  await c.admin.putMcpServers("p", []);
  await c.admin.mcpServerTools("p", "gh");
  await c.admin.usage("p", { from: "2026-01-01" });
  await c.admin.prices();
  await c.admin.putPrices([]);
  await c.health();
  await c.ready();
  await c.metrics();

  const missing = documented.filter((op) => !sent.has(op) && !(op in NOT_COVERED));
  assert.deepEqual(missing, [], "operations without a client method");
  const extra = [...sent].filter((op) => !documented.includes(op));
  assert.deepEqual(extra, [], "client calls the document does not have");
});
