// 7. Errors: the contract's error body becomes a StewrdError with its fields.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Stewrd, StewrdError, type AgentParams } from "@stewrd/client";
import { newProject, SERVER_URL } from "./helpers.js";

test("a 400 carries status, type, code and param", async () => {
  const { client } = await newProject("errors");
  const err = await client.agent({ message: "hi", temperature: 5 }).catch((e: unknown) => e);
  assert.ok(err instanceof StewrdError);
  assert.equal(err.status, 400);
  assert.equal(err.type, "invalid_request_error");
  assert.equal(err.code, "invalid_value");
  assert.equal(err.param, "temperature");
  assert.ok(err.requestId, "the server's request id is kept");

  // Unknown fields are an error too (the types forbid them; a cast gets one through).
  const unknown = { message: "hi", bogus: 1 } as unknown as AgentParams;
  await assert.rejects(client.agent(unknown), { status: 400, code: "unknown_field", param: "bogus" });
});

test("a bad key is a 401 authentication_error; a missing session a 404", async () => {
  const bad = new Stewrd({ baseUrl: SERVER_URL, apiKey: "sk-stw_not-a-key" });
  await assert.rejects(bad.project.get(), (err: unknown) => {
    assert.ok(err instanceof StewrdError);
    assert.equal(err.status, 401);
    assert.equal(err.type, "authentication_error");
    assert.equal(err.code, "invalid_api_key");
    return true;
  });
  const { client } = await newProject("errors-404");
  await assert.rejects(client.sessions.get("01a24b16-0000-7000-8000-000000000000"), { status: 404 });
});

test("a revoked key stops working at once", async () => {
  const admin = new Stewrd({ baseUrl: SERVER_URL, adminToken: process.env.STEWRD_TEST_ADMIN_TOKEN ?? "dev-admin-token" });
  const { projectId } = await newProject("revoke");
  const key = await admin.admin.createApiKey(projectId);
  const client = new Stewrd({ baseUrl: SERVER_URL, apiKey: key.api_key });
  assert.equal((await client.project.get()).id, projectId);
  await admin.admin.revokeApiKey(projectId, key.id);
  await assert.rejects(client.project.get(), { status: 401 });
});

test("calls without the needed token fail before sending anything", async () => {
  const client = new Stewrd({ baseUrl: SERVER_URL, fetch: () => assert.fail("nothing is sent") });
  await assert.rejects(client.project.get(), { type: "client_error", code: "missing_api_key" });
  await assert.rejects(client.admin.listProjects(), { type: "client_error", code: "missing_admin_token" });
});
