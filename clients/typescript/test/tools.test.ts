// 5. runTools: the stub calls the first tool offered; the handler answers it.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { FunctionToolCall } from "@stewrd/client";
import { newProject } from "./helpers.js";

test("runTools() answers the pause with the handler and runs to the end", async () => {
  const { client } = await newProject("tools");
  const { session_id, run_id } = await client.agent({
    message: "What is the weather in Paris?",
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Weather of a city",
          parameters: { type: "object", properties: { city: { type: "string" } } },
        },
      },
      { type: "function", function: { name: "unused" } },
    ],
  });

  const calls: { args: unknown; call: FunctionToolCall }[] = [];
  const final = await client.runTools(
    session_id,
    {
      get_weather: (args: unknown, call: FunctionToolCall) => {
        calls.push({ args, call });
        return { forecast: "sunny", celsius: 21 };
      },
      unused: () => assert.fail("the stub calls only the first tool"),
    },
    { maxWaitMs: 60_000 },
  );

  assert.equal(calls.length, 1);
  // The stub sends `"{}"`: the handler gets it parsed, as an object.
  assert.deepEqual(calls[0]!.args, JSON.parse(calls[0]!.call.function.arguments));
  assert.equal(typeof calls[0]!.args, "object");
  assert.equal(calls[0]!.call.function.name, "get_weather");

  assert.equal(final.status, "succeeded");
  const sent = JSON.stringify({ forecast: "sunny", celsius: 21 });
  assert.equal(final.output, `Echo: ${sent}`); // the stub echoes the last message: our output

  const steps = await client.sessions.steps(session_id, run_id);
  const toolStep = steps.data.find((s) => s.type === "tool_call");
  assert.equal(toolStep?.executor, "client");
  assert.equal(toolStep?.output, sent);
});

test("a handler that throws gives the model the error, and the run goes on", async () => {
  const { client } = await newProject("tools-error");
  const { session_id } = await client.agent({
    message: "break",
    tools: [{ type: "function", function: { name: "broken" } }],
  });
  const final = await client.runTools(session_id, {
    broken: () => {
      throw new Error("disk on fire");
    },
  });
  assert.equal(final.status, "succeeded");
  assert.equal(final.output, `Echo: ${JSON.stringify({ error: "disk on fire" })}`);
});

test("toolOutputs with an unknown call id is a 400 naming tool_outputs", async () => {
  const { client } = await newProject("tools-400");
  const { session_id } = await client.agent({
    message: "x",
    tools: [{ type: "function", function: { name: "t" } }],
  });
  await client.wait(session_id, { untilRequiresAction: true });
  await assert.rejects(client.sessions.toolOutputs(session_id, [{ tool_call_id: "call_nope", output: "x" }]), {
    status: 400,
    param: "tool_outputs",
  });
  await client.sessions.cancel(session_id);
});
