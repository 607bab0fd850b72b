"""Submit a message and long-poll its session to the end (sync and async)."""

from __future__ import annotations

import stewrd

from conftest import ProjectInfo


def test_submit_and_wait(client: stewrd.Client) -> None:
    run = client.agent("How are the tides today?", metadata={"ticket": "T-1"})
    assert run["status"] == "queued"
    session = client.wait(run["session_id"], timeout=60)
    assert session["status"] == "succeeded"
    assert session["output"] == "Echo: How are the tides today?"
    assert session["metadata"] == {"ticket": "T-1"}
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    listed = client.sessions.list()
    assert [s["id"] for s in listed["data"]] == [run["session_id"]]


def test_continue_a_session(client: stewrd.Client) -> None:
    first = client.agent("one")
    client.wait(first["session_id"], timeout=60)
    second = client.agent("two", session_id=first["session_id"])
    assert second["session_id"] == first["session_id"]
    session = client.wait(second["session_id"], timeout=60)
    assert session["output"] == "Echo: two"
    assert len(session["runs"]) == 2
    steps = client.sessions.steps(session["id"], session["runs"][1]["id"])
    assert steps["data"][0]["type"] == "model_call"


def test_wait_times_out_while_waiting_for_the_client(client: stewrd.Client) -> None:
    tool = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}
    run = client.agent("call it", tools=[tool])
    paused = client.wait(run["session_id"], timeout=60)
    assert paused["status"] == "requires_action"
    try:
        client.wait(run["session_id"], timeout=1.5, return_on_requires_action=False)
    except stewrd.WaitTimeoutError as exc:
        assert exc.code == "wait_timeout"
    else:
        raise AssertionError("wait() returned although the session never became final")
    cancelled = client.sessions.cancel(run["session_id"])
    assert cancelled["status"] == "cancelled"


async def test_submit_and_wait_async(project: ProjectInfo) -> None:
    async with project.async_client() as client:
        run = await client.agent("async hello")
        session = await client.wait(run["session_id"], timeout=60)
        assert session["status"] == "succeeded"
        assert session["output"] == "Echo: async hello"
        got = await client.sessions.get(run["session_id"])
        assert got["output"] == "Echo: async hello"
