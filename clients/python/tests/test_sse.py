"""SSE parsing and the reconnect bookkeeping, without a server: a mock
transport cuts streams and replays overlapping events on purpose."""

from __future__ import annotations

from typing import Iterator, List

import httpx
import pytest

import stewrd
from stewrd._sse import SSEParser, StreamState


def parse(text: str) -> List[stewrd.Event]:
    parser = SSEParser()
    events = []
    for line in text.split("\n"):
        event = parser.feed(line)
        if event is not None:
            events.append(event)
    return events


def test_parser_fields() -> None:
    events = parse(
        ": keep-alive\n"
        'event: run.delta\nid: 10\ndata: {"text":\n'
        'data: "a b"}\n\n'
        "data:plain\n\n"
        "retry: 250\n"
        'event: session.succeeded\nid: 11\ndata: {"status": "succeeded"}\n\n'
        'event: cut\nid: 12\ndata: {"never": "dispatched"}'
    )
    assert [(e.id, e.event) for e in events] == [("10", "run.delta"), (None, "message"), ("11", "session.succeeded")]
    assert events[0].data == {"text": "a b"}
    assert events[1].data == "plain"
    assert events[2].status == "succeeded" and events[0].status is None


def test_state_dedupes_by_id() -> None:
    state = StreamState()
    first = stewrd.Event("10", "run.delta", {})
    assert state.accept(first) and not state.accept(first)
    assert not state.accept(stewrd.Event("9", "run.delta", {}))
    assert state.accept(stewrd.Event("11", "session.succeeded", {}))
    assert state.last_event_id == "11" and state.done(clean_end=True)


def event(id_: int, kind: str, data: str) -> bytes:
    return f"event: {kind}\nid: {id_}\ndata: {data}\n\n".encode()


class Cut(httpx.SyncByteStream):
    """A body that stops with a read error after some chunks."""

    def __init__(self, chunks: List[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.ReadError("connection reset")


def test_events_reconnects_and_never_repeats_an_event() -> None:
    seen_headers: List[str] = []
    delta = lambda i, t: event(i, "run.delta", '{"text": "%s"}' % t)  # noqa: E731

    def handler(request: httpx.Request) -> httpx.Response:
        seen_headers.append(request.headers.get("last-event-id", ""))
        n = len(seen_headers)
        if n == 1:  # cut in the middle of the third event
            body = Cut([delta(1, "a"), delta(2, "b"), delta(3, "c")[:10]])
            return httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"})
        if n == 2:  # a server that replays too much: 1 and 2 again, then a clean close mid-run
            chunks = delta(1, "a") + delta(2, "b") + delta(3, "c")
            return httpx.Response(200, content=chunks, headers={"content-type": "text/event-stream"})
        final = event(4, "session.succeeded", '{"status": "succeeded"}')
        return httpx.Response(200, content=delta(3, "c") + final, headers={"content-type": "text/event-stream"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with stewrd.Client("http://stewrd.test", "k", http_client=http) as client:
        got = list(client.events("s"))
    assert [e.id for e in got] == ["1", "2", "3", "4"]
    assert "".join(e.data["text"] for e in got if e.event == "run.delta") == "abc"
    assert seen_headers == ["", "2", "3"]


def test_events_gives_up_when_reconnecting_brings_nothing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Cut([]), headers={"content-type": "text/event-stream"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with stewrd.Client("http://stewrd.test", "k", http_client=http, max_retries=1) as client:
        with pytest.raises(stewrd.APIConnectionError):
            list(client.events("s"))


def test_events_errors_are_raised() -> None:
    gone = {"error": {"type": "gone_error", "code": "events_expired", "message": "x", "param": None}}
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(410, json=gone)))
    with stewrd.Client("http://stewrd.test", "k", http_client=http) as client:
        with pytest.raises(stewrd.GoneError) as raised:
            list(client.events("s", last_event_id="1000000000"))
    assert raised.value.code == "events_expired"
