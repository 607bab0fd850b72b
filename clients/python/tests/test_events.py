"""``events()``: an SSE stream cut mid-run is resumed with Last-Event-ID, and no
event is yielded twice.

To have a live stream to cut, the run first pauses for a client tool (the stub
calls the first tool offered); the stream is opened while it waits, then the
tool output is posted, and the stub streams its answer (``Echo: <output>``)
word by word as ``run.delta`` events. A TCP proxy lets a few deltas through
and then resets the connection in the middle of the next event.
"""

from __future__ import annotations

import threading
from typing import List, Optional

import stewrd

from conftest import ProjectInfo
from proxies import CuttingProxy

WORDS = " ".join(f"word{i}" for i in range(30))
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
DELTA = b"event: run.delta"


def cut_inside_text(marker: bytes):
    """Cuts the first connection in the middle of the delta event whose text
    holds ``marker``. (Cutting at the n-th delta would be flaky: how the server
    splits text into deltas depends on timing.)"""

    def rule(index: int, seen: bytes) -> Optional[int]:
        if index != 0:
            return None
        start = 0
        while True:
            line_at = seen.find(b'"text":"', start)
            if line_at < 0:
                return None
            end = seen.find(b"\n", line_at)
            if end < 0:
                return None  # the line is not all here yet
            at = seen.find(marker, line_at, end)
            if at >= 0:
                return at
            start = end

    return rule


def last_complete_event_id(stream: bytes) -> Optional[str]:
    """The id of the last whole event in raw SSE bytes."""
    last = None
    for block in stream.replace(b"\r\n", b"\n").split(b"\n\n")[:-1]:
        for line in block.split(b"\n"):
            if line.startswith(b"id:"):
                last = line[3:].strip().decode()
    return last


def start_paused_stream_run(client: stewrd.Client) -> dict:
    run = client.agent(f"Please repeat after me: {WORDS}", stream=True, tools=[TOOL])
    paused = client.wait(run["session_id"], timeout=60)
    assert paused["status"] == "requires_action", paused
    return paused


def answer(client: stewrd.Client, paused: dict) -> None:
    calls = paused["required_action"]["tool_calls"]
    client.sessions.submit_tool_outputs(paused["id"], [{"tool_call_id": c["id"], "output": WORDS} for c in calls])


def check(events: List[stewrd.Event], final: dict, proxy: CuttingProxy) -> None:
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), f"an event was yielded twice: {ids}"
    assert ids == sorted(ids, key=int), "events out of order"
    text = "".join(e.data["text"] for e in events if e.event == "run.delta")
    assert final["status"] == "succeeded"
    assert final["output"] == f"Echo: {WORDS}"
    assert text == final["output"]
    assert events[-1].event == "session.succeeded"
    assert proxy.cuts == 1 and proxy.connections >= 2
    # The reconnection resumed just after the last event seen before the cut.
    assert DELTA in proxy.forwarded[0], "the cut came before any text"
    assert proxy.request_header(0, "last-event-id") is None
    assert proxy.request_header(1, "last-event-id") == last_complete_event_id(proxy.forwarded[0])


def test_events_resume_after_a_cut(client: stewrd.Client, project: ProjectInfo) -> None:
    paused = start_paused_stream_run(client)
    with CuttingProxy(project.url, cut_inside_text(b"word12 ")) as proxy, project.client(proxy.url) as via_proxy:
        events: List[stewrd.Event] = []
        for event in via_proxy.events(paused["id"]):
            events.append(event)
            if len(events) == 1:
                assert event.event == "session.requires_action"
                answer(client, paused)
        final = client.sessions.get(paused["id"])
        check(events, final, proxy)


async def test_events_resume_after_a_cut_async(client: stewrd.Client, project: ProjectInfo) -> None:
    paused = start_paused_stream_run(client)
    with CuttingProxy(project.url, cut_inside_text(b"word12 ")) as proxy:
        async with project.async_client(proxy.url) as via_proxy:
            events: List[stewrd.Event] = []
            async for event in via_proxy.events(paused["id"]):
                events.append(event)
                if len(events) == 1:
                    # Posted from another thread: this loop must keep reading.
                    threading.Thread(target=answer, args=(client, paused)).start()
        final = client.sessions.get(paused["id"])
        check(events, final, proxy)


def test_events_resume_from_a_given_id(client: stewrd.Client) -> None:
    paused = start_paused_stream_run(client)
    live: List[stewrd.Event] = []
    for event in client.events(paused["id"]):
        live.append(event)
        if len(live) == 1:
            answer(client, paused)
    # After the run, the stream starts with the current (final) state only...
    assert [e.event for e in client.events(paused["id"])] == ["session.succeeded"]
    # ...and a resumed one replays exactly what followed the given event.
    # (From the event before the first delta: how many deltas there are, and
    # how the text is split, depends on timing.)
    k = next(i for i, e in enumerate(live) if e.event == "run.delta") - 1
    replay = list(client.events(paused["id"], last_event_id=live[k].id))

    def text(events: List[stewrd.Event]) -> str:
        return "".join(e.data["text"] for e in events if e.event == "run.delta")

    def others(events: List[stewrd.Event]) -> List[Optional[str]]:
        return [e.id for e in events if e.event != "run.delta"]

    assert text(replay) == text(live[k + 1 :])
    assert others(replay) == others(live[k + 1 :])
    assert replay[-1].event == "session.succeeded"
