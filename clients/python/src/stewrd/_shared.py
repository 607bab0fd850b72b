"""Logic shared by the sync and async clients that does no I/O itself: request
bodies, long-poll arithmetic, tool-call decoding, upload sources.

Keeping it here means the two clients differ only in ``await`` and in how they
sleep, never in what they decide.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from pathlib import Path
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)
from urllib.parse import quote

from ._sse import FINAL_STATUSES
from ._transport import CannotResend, FilesFactory
from .types import ApprovalToolCall, DecisionIn, RequiredAction, SessionOut

#: What ``files.upload`` accepts: a path, raw bytes, or a binary stream.
FileInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
#: Where ``files.download`` writes: a path or a writable binary stream.
FileOutput = Union[str, "os.PathLike[str]", IO[bytes]]

#: Longest single long-poll the server allows (``?wait=`` is 0-60 s).
MAX_LONG_POLL = 60
#: The server answers ``?wait=`` at once while a session waits for the client;
#: a caller that chose to keep waiting through that polls this often.
REQUIRES_ACTION_POLL = 1.0


def seg(value: str) -> str:
    """One path segment, escaped (ids come from users and must not add segments)."""
    return quote(str(value), safe="")


def compact(values: Mapping[str, Any]) -> Dict[str, Any]:
    """The mapping without ``None`` values: an omitted option is left out of the
    body, so the server's default applies (it rejects unknown, not absent, fields)."""
    return {k: v for k, v in values.items() if v is not None}


def is_settled(session: SessionOut, return_on_requires_action: bool) -> bool:
    status = session["status"]
    return status in FINAL_STATUSES or (return_on_requires_action and status == "requires_action")


class Deadline:
    """A point in time a loop of long-polls must not pass (or none)."""

    def __init__(self, timeout: Optional[float]) -> None:
        self._at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> Optional[float]:
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at

    def long_poll_seconds(self, poll: int) -> int:
        """``?wait=`` for the next poll: at most ``poll`` (and 60), and no more
        than the time left, rounded up to the server's whole seconds."""
        poll = max(0, min(MAX_LONG_POLL, poll))
        left = self.remaining()
        return poll if left is None else min(poll, math.ceil(left))

    def pause(self, seconds: float) -> float:
        """``seconds``, cut to the time left."""
        left = self.remaining()
        return seconds if left is None else min(seconds, left)


# --- client tools -----------------------------------------------------------

ToolHandler = Callable[[Dict[str, Any]], Any]


def pending_tool_calls(action: RequiredAction) -> List[Tuple[str, str, Optional[Dict[str, Any]]]]:
    """``(tool_call_id, name, arguments)`` of a ``submit_tool_outputs`` pause;
    arguments are ``None`` when the model sent something that is not a JSON
    object (the model is told so instead of the handler being called)."""
    calls = []
    for call in action.get("tool_calls", []):
        function = call.get("function", {})
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            arguments = None
        calls.append((call["id"], function.get("name", ""), arguments))
    return calls


def encode_tool_output(result: Any) -> str:
    """A handler's return value as the string the API takes: text as is,
    bytes decoded, anything else as JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, (bytes, bytearray)):
        return bytes(result).decode("utf-8", "replace")
    return json.dumps(result)


BAD_ARGUMENTS = json.dumps({"error": "the arguments are not a JSON object"})


def handler_for(handlers: Mapping[str, Any], name: str) -> Any:
    try:
        return handlers[name]
    except KeyError:
        raise ValueError(
            f"the run called the tool {name!r} but run_tools has no handler for it "
            f"(handlers: {sorted(handlers)}); the session still waits for its output"
        ) from None


def waits_for_tool_outputs(session: SessionOut) -> Optional[RequiredAction]:
    action = session.get("required_action")
    if session["status"] == "requires_action" and action and action.get("type") == "submit_tool_outputs":
        return cast(RequiredAction, action)
    return None


# --- approvals --------------------------------------------------------------


def approval(call: ApprovalToolCall, *, approve: bool = True, reason: Optional[str] = None) -> DecisionIn:
    """A decision on one call of an ``approve_tool_calls`` pause.

    An approval carries the call's ``arguments_sha256``: the server makes the
    call only with exactly the arguments that were shown and approved.
    """
    decision: DecisionIn = {"tool_call_id": call["id"], "approve": approve}
    if approve:
        decision["arguments_sha256"] = call["arguments_sha256"]
    if reason is not None:
        decision["reason"] = reason
    return decision


# --- files ------------------------------------------------------------------


class _FromPosition:
    """A seekable binary stream seen from its current position on.

    httpx rewinds an upload stream to 0 and measures it (seek to the end)
    before sending; through this view both mean "from where the caller's
    stream was", so an upload sends what a ``read()`` would have read, and a
    retry sends the same bytes again.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._start = raw.tell()

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            offset += self._start
        return self._raw.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._raw.tell() - self._start


def upload_source(
    file: FileInput, filename: Optional[str], content_type: Optional[str]
) -> Tuple[FilesFactory, Optional[IO[bytes]]]:
    """The multipart ``files`` factory for an upload, and a handle to close
    afterwards (for a path the client opened itself).

    The upload starts at the stream's current position. The factory rewinds a
    seekable stream to that position for each attempt, so a 429/503 can be
    retried; a one-shot stream (a pipe) raises :class:`CannotResend` instead.
    """
    opened: Optional[IO[bytes]] = None
    stream: IO[bytes]
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        stream = opened = open(path, "rb")
        name = filename or path.name
    elif isinstance(file, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(file))
        name = filename or "file"
    elif hasattr(file, "read"):
        stream = file
        given = getattr(file, "name", None)
        name = filename or (os.path.basename(given) if isinstance(given, str) else "file")
    else:
        raise TypeError("upload takes a path, bytes or a binary stream")

    try:
        seekable = stream.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    body: Any = _FromPosition(stream) if seekable else stream
    used = False

    def factory() -> Dict[str, Any]:
        nonlocal used
        if used:
            if not seekable:
                raise CannotResend()
            body.seek(0)
        used = True
        return {"file": (name, body, content_type or "application/octet-stream")}

    return factory, opened


def resume_range(written: int) -> Dict[str, str]:
    """The ``Range`` header that continues a download cut after ``written`` bytes."""
    return {"Range": f"bytes={written}-"} if written else {}


def decisions_list(decisions: Sequence[DecisionIn]) -> List[DecisionIn]:
    if isinstance(decisions, Mapping):  # a single decision passed by mistake
        raise TypeError("decisions must be a list of decisions")
    return list(decisions)
