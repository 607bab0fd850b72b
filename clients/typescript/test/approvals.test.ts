// Approvals: a server tool that needs a person's yes pauses the run; runTools'
// onApproval (or sessions.approvals) decides. The tool's call is signed like a webhook.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { requiredAction, verifyWebhook, type ApprovalToolCall } from "@stewrd/client";
import { newProject } from "./helpers.js";

interface ToolCallBody {
  type: string;
  data: { name: string; arguments: unknown; session_id: string };
}

test("an approved server tool call is made once, signed; a denied one tells the model why", async () => {
  const { client } = await newProject("approvals");
  const { secret } = await client.project.newWebhookSecret();
  const calls: ToolCallBody[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    try {
      calls.push(await verifyWebhook<ToolCallBody>(secret, req.headers, Buffer.concat(chunks)));
      res.writeHead(200, { "content-type": "application/json" }).end('{"deployed":true}');
    } catch {
      res.writeHead(401).end();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    const { port } = server.address() as AddressInfo;
    const tools = await client.project.putTools([
      {
        name: "deploy",
        description: "Deploys the app",
        parameters: { type: "object", properties: {} },
        url: `http://127.0.0.1:${port}/tools/deploy`,
        require_approval: "always",
      },
    ]);
    assert.equal(tools.tools[0]?.name, "deploy");

    // Approved through runTools' onApproval.
    const asked: ApprovalToolCall[] = [];
    const first = await client.agent({ message: "deploy it" });
    const approved = await client.runTools(
      first.session_id,
      {},
      {
        onApproval: (pending) => {
          asked.push(...pending);
          return pending.map((c) => ({ tool_call_id: c.id, approve: true, arguments_sha256: c.arguments_sha256 }));
        },
      },
    );
    assert.equal(approved.status, "succeeded");
    assert.equal(asked.length, 1);
    assert.equal(asked[0]?.name, "deploy");
    assert.match(asked[0]?.arguments_sha256 ?? "", /^[0-9a-f]{64}$/);
    assert.equal(calls.length, 1, "the tool was called once");
    assert.equal(calls[0]?.type, "tool.call");
    assert.equal(calls[0]?.data.session_id, first.session_id);
    assert.equal(approved.output, 'Echo: {"deployed":true}');
    const steps = await client.sessions.steps(first.session_id, first.run_id);
    const step = steps.data.find((s) => s.type === "tool_call");
    assert.equal(step?.approval?.decision, "approved");
    assert.match(step?.approval?.by ?? "", /^api_key:/);

    // Denied by hand, with a reason; a stale hash is refused first.
    const second = await client.agent({ message: "deploy again" });
    const paused = await client.wait(second.session_id, { untilRequiresAction: true });
    const action = requiredAction(paused);
    assert.equal(action?.type, "approve_tool_calls");
    if (action?.type !== "approve_tool_calls") return;
    const call = action.tool_calls[0]!;
    await assert.rejects(
      client.sessions.approvals(second.session_id, [
        { tool_call_id: call.id, approve: true, arguments_sha256: "0".repeat(64) },
      ]),
      { status: 409, code: "approval_stale" },
    );
    await client.sessions.approvals(second.session_id, [
      { tool_call_id: call.id, approve: false, reason: "change freeze" },
    ]);
    const denied = await client.wait(second.session_id);
    assert.equal(denied.status, "succeeded");
    assert.match(denied.output ?? "", /denied: change freeze/);
    assert.equal(calls.length, 1, "a denied call is never made");
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
