"""``run_tools`` (client tools answered by local functions) and approvals
(server tools that wait for a person's yes).

The stub model calls the first tool offered, once, with ``{"url": …}`` when the
tool takes a ``url`` and the message holds one (else ``{}``), then echoes the
tool's output: ``Echo: <output>``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

import stewrd

from conftest import ProjectInfo, Received

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Looks a page up",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}}},
    },
}


def test_run_tools_answers_client_tool_calls(client: stewrd.Client) -> None:
    calls: List[Dict[str, Any]] = []

    def lookup(args: Dict[str, Any]) -> Dict[str, Any]:
        calls.append(args)
        return {"title": "Docs", "words": 3}

    run = client.agent("Summarize https://example.com/docs please", tools=[LOOKUP])
    session = client.run_tools(run["session_id"], {"lookup": lookup}, timeout=60)
    assert calls == [{"url": "https://example.com/docs"}]
    assert session["status"] == "succeeded"
    assert session["output"] == 'Echo: {"title": "Docs", "words": 3}'
    tool_messages = [m for m in session["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ['{"title": "Docs", "words": 3}']
    steps = client.sessions.steps(run["session_id"], run["run_id"])["data"]
    assert [s.get("executor") for s in steps if s["type"] == "tool_call"] == ["client"]


async def test_run_tools_async_with_an_async_handler(project: ProjectInfo) -> None:
    seen: List[Dict[str, Any]] = []

    async def lookup(args: Dict[str, Any]) -> str:
        seen.append(args)
        return "three results"

    async with project.async_client() as client:
        run = await client.agent("find https://example.org/x", tools=[LOOKUP])
        session = await client.run_tools(run["session_id"], {"lookup": lookup}, timeout=60)
    assert seen == [{"url": "https://example.org/x"}]
    assert session["output"] == "Echo: three results"


def test_run_tools_without_a_handler_raises_and_leaves_the_run_waiting(client: stewrd.Client) -> None:
    run = client.agent("call something", tools=[LOOKUP])
    with pytest.raises(ValueError, match="lookup"):
        client.run_tools(run["session_id"], {"other": lambda args: "x"}, timeout=60)
    assert client.sessions.get(run["session_id"])["status"] == "requires_action"
    client.sessions.cancel(run["session_id"])


def test_tool_outputs_errors(client: stewrd.Client) -> None:
    run = client.agent("call it", tools=[LOOKUP])
    client.wait(run["session_id"], timeout=60)
    with pytest.raises(stewrd.BadRequestError) as raised:
        client.sessions.submit_tool_outputs(run["session_id"], [{"tool_call_id": "call_nope", "output": "x"}])
    assert raised.value.param == "tool_outputs"
    client.sessions.cancel(run["session_id"])
    with pytest.raises(stewrd.ConflictError):
        client.sessions.submit_tool_outputs(run["session_id"], [{"tool_call_id": "call_nope", "output": "x"}])


def weather_tool(url: str) -> Dict[str, Any]:
    return {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "url": url,
        "require_approval": "always",
    }


def test_approvals(client: stewrd.Client, receiver_factory: Any) -> None:
    tool_server = receiver_factory(lambda got: (200, "text/plain", b"sunny, 21 C"))
    secret = client.project.new_webhook_secret()["secret"]
    assert client.project.set_tools([weather_tool(tool_server.url + "/weather")])["tools"][0]["name"] == "weather"

    run = client.agent("What is the weather in Paris?")
    paused = client.wait(run["session_id"], timeout=60)
    action = paused["required_action"]
    assert paused["status"] == "requires_action" and action["type"] == "approve_tool_calls"
    assert tool_server.received == []  # nothing is called before the decision
    # run_tools cannot decide for a person: it hands the paused session back.
    assert client.run_tools(run["session_id"], {}, timeout=30)["status"] == "requires_action"

    session = client.approve(run["session_id"], [stewrd.approval(c) for c in action["tool_calls"]])
    assert session["status"] in ("queued", "running", "succeeded")
    final = client.wait(run["session_id"], timeout=60)
    assert final["output"] == "Echo: sunny, 21 C"
    step = [s for s in client.sessions.steps(run["session_id"], run["run_id"])["data"] if s["type"] == "tool_call"][0]
    assert step["approval"]["decision"] == "approved"

    # The tool call was signed like a webhook, with the project's secret.
    call: Received = tool_server.received[0]
    body = stewrd.verify_webhook(secret, call.headers, call.body)
    assert body["type"] == "tool.call" and body["data"]["name"] == "weather"

    # Deciding again: the session no longer waits.
    with pytest.raises(stewrd.ConflictError) as raised:
        client.approve(run["session_id"], [stewrd.approval(c) for c in action["tool_calls"]])
    assert raised.value.code == "session_not_waiting"


def test_a_denial_reaches_the_model(client: stewrd.Client, receiver_factory: Any) -> None:
    tool_server = receiver_factory()
    client.project.set_tools([weather_tool(tool_server.url)])
    run = client.agent("weather?")
    paused = client.wait(run["session_id"], timeout=60)
    calls = paused["required_action"]["tool_calls"]
    client.approve(run["session_id"], [stewrd.approval(c, approve=False, reason="not now") for c in calls])
    final = client.wait(run["session_id"], timeout=60)
    assert tool_server.received == []
    assert json.loads(final["output"][len("Echo: ") :]) == {"error": "denied: not now"}


def test_a_stale_approval_is_refused(client: stewrd.Client, receiver_factory: Any) -> None:
    client.project.set_tools([weather_tool(receiver_factory().url)])
    run = client.agent("weather?")
    call = client.wait(run["session_id"], timeout=60)["required_action"]["tool_calls"][0]
    stale = {"tool_call_id": call["id"], "approve": True, "arguments_sha256": "0" * 64}
    with pytest.raises(stewrd.ConflictError) as raised:
        client.approve(run["session_id"], [stale])
    assert raised.value.code == "approval_stale"
    client.sessions.cancel(run["session_id"])


def test_approval_decision_shape() -> None:
    call = {"id": "call_1", "name": "t", "executor": "server", "arguments": "{}", "arguments_sha256": "ab" * 32}
    assert stewrd.approval(call) == {"tool_call_id": "call_1", "approve": True, "arguments_sha256": "ab" * 32}
    assert stewrd.approval(call, approve=False, reason="no") == {
        "tool_call_id": "call_1",
        "approve": False,
        "reason": "no",
    }
