"""Server-sent events: parsing, and the bookkeeping that makes reconnection
invisible to the caller.

The parsing follows the HTML standard's event-stream rules (fields ``event``,
``data``, ``id``, ``retry``; comments; an event is dispatched at a blank line, and
an event cut off by the end of the stream is dropped), fed line by line so the
sync and async iterators share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, List, Optional, Set

#: Session statuses after which a run does nothing more.
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Event:
    """One event of a session's stream.

    Attributes:
        id: the event's id (a whole number as text, increasing within the
            session); ``None`` only for a current-state event of a session that
            has no logged event yet.
        event: the type: ``session.<status>``, ``run.delta``, ``run.step`` or
            ``run.reset``.
        data: the event's JSON data, parsed (a dict for every stewrd event).
    """

    id: Optional[str]
    event: str
    data: Any

    @property
    def status(self) -> Optional[str]:
        """For a ``session.<status>`` event, the status; else ``None``."""
        if self.event.startswith("session."):
            return self.event[len("session.") :]
        return None


@dataclass
class SSEParser:
    """Turns lines of an event stream into :class:`Event` objects."""

    _event: str = ""
    _data: List[str] = field(default_factory=list)
    _id: Optional[str] = None
    #: The server's ``retry:`` advice in milliseconds, if it gave one.
    retry_ms: Optional[int] = None

    def feed(self, line: str) -> Optional[Event]:
        """Takes one line (without its line ending); returns an event when the
        line completes one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        return None

    def reset(self) -> None:
        """Drops a partly read event (the connection was cut inside it)."""
        self._event, self._data, self._id = "", [], None

    def _dispatch(self) -> Optional[Event]:
        event, data, id_ = self._event, self._data, self._id
        self.reset()
        if not data:
            return None
        text = "\n".join(data)
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return Event(id=id_, event=event or "message", data=parsed)


def _as_int(event_id: Optional[str]) -> Optional[int]:
    if event_id is not None and event_id.isdigit():
        return int(event_id)
    return None


@dataclass
class StreamState:
    """What a reconnecting reader must remember across connections.

    ``accept`` decides whether an event is new (ids are whole numbers that only
    grow within a session, so anything at or below the last id yielded is a
    replay); ``done`` decides,
    when a connection ends, whether the stream is over or should be resumed.
    """

    last_event_id: Optional[str] = None
    _seen: Set[str] = field(default_factory=set)
    #: The status of the latest ``session.*`` event yielded.
    last_status: Optional[str] = None
    #: Events yielded on the current connection.
    fresh: int = 0

    def connection_opened(self) -> None:
        self.fresh = 0

    def accept(self, event: Event) -> bool:
        if event.id is not None:
            number, last = _as_int(event.id), _as_int(self.last_event_id)
            if number is not None and last is not None:
                if number <= last:
                    return False
            elif event.id in self._seen:  # ids that are not numbers: remembered
                return False
            else:
                self._seen.add(event.id)
            self.last_event_id = event.id
        if event.status is not None:
            self.last_status = event.status
        self.fresh += 1
        return True

    def done(self, clean_end: bool) -> bool:
        """Whether the stream is over once a connection has ended.

        The server ends the stream itself (a clean end) once the session's last
        run is final. A clean end is trusted when a final status was the last
        status seen, or when the connection brought nothing new (resuming after
        the final event gives an empty stream); anything else (a cut, or a clean
        close by some proxy mid-run) is resumed from ``last_event_id``.
        """
        if not clean_end:
            return False
        return self.last_status in FINAL_STATUSES or self.fresh == 0
