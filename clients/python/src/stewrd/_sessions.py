"""``client.sessions``: submit, read, wait for, stream, steer and inspect runs.

:class:`Sessions` and :class:`AsyncSessions` have the same methods with the
same signatures (a unit test checks it); only the async ones are awaited and
``AsyncSessions.events`` is an async iterator.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from typing import (
    Any,
    AsyncIterator,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Union,
    cast,
)

import httpx

from ._errors import APIConnectionError, ConflictError, WaitTimeoutError
from ._retry import TRANSPORT_ERRORS, backoff
from ._shared import (
    BAD_ARGUMENTS,
    REQUIRES_ACTION_POLL,
    Deadline,
    ToolHandler,
    compact,
    decisions_list,
    encode_tool_output,
    handler_for,
    is_settled,
    pending_tool_calls,
    seg,
    waits_for_tool_outputs,
)
from ._sse import Event, SSEParser, StreamState
from ._transport import AsyncTransport, Call, SyncTransport
from .types import (
    AgentOut,
    DecisionIn,
    DeliveryList,
    FileList,
    RetriedOut,
    RunStatus,
    SessionOut,
    SessionPage,
    StepList,
    ToolOutputIn,
)

#: The server sends a keep-alive comment every 15 s; a stream silent for this
#: long is taken as dropped and resumed.
SSE_READ_TIMEOUT = 45.0
#: Default ``?wait=`` of each long-poll in :meth:`Sessions.wait`.
DEFAULT_POLL = 30


def agent_call(
    message: str, idempotency_key: Optional[str], extra_body: Optional[Mapping[str, Any]], fields: Dict[str, Any]
) -> Call:
    """``POST /v1/agent``. The Idempotency-Key is made once here, per call of
    ``agent()``, and so is the same on every retry of that call: a submit whose
    answer was lost is answered with the first session, never run twice."""
    body = compact({"message": message, **fields})
    if extra_body:
        body.update(extra_body)
    key = idempotency_key or str(uuid.uuid4())
    return Call("POST", "/v1/agent", json=body, headers={"Idempotency-Key": key})


def _get_call(session_id: str, wait: Optional[int], timeout: float) -> Call:
    # A long-poll holds the request open for `wait` seconds: the read timeout
    # must outlast it.
    return Call(
        "GET",
        f"/v1/sessions/{seg(session_id)}",
        params={"wait": wait},
        timeout=timeout + (wait or 0),
    )


def _events_call(session_id: str, last_event_id: Optional[str], timeout: float) -> Call:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return Call(
        "GET",
        f"/v1/sessions/{seg(session_id)}/events",
        headers=headers,
        timeout=httpx.Timeout(timeout, read=max(timeout, SSE_READ_TIMEOUT)),
    )


def _stream_gave_up(session_id: str, exc: Optional[BaseException]) -> APIConnectionError:
    return APIConnectionError(
        f"the event stream of session {session_id} kept dropping without new events"
        + (f" ({type(exc).__name__}: {exc})" if exc else ""),
        type="connection_error",
    )


class Sessions:
    """Sessions of the calling project (``/v1/agent``, ``/v1/sessions/…``)."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def create(
        self,
        message: str,
        *,
        session_id: Optional[str] = None,
        model: Optional[str] = None,
        system: Optional[str] = None,
        webhook_url: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        tool_choice: Optional[Union[str, Mapping[str, Any]]] = None,
        max_steps: Optional[int] = None,
        max_total_tokens: Optional[int] = None,
        response_format: Optional[Mapping[str, Any]] = None,
        stream: Optional[bool] = None,
        files: Optional[Sequence[str]] = None,
        fallback_models: Optional[Sequence[str]] = None,
        max_cost_usd: Optional[float] = None,
        max_repairs: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
    ) -> AgentOut:
        """Submits a message (``POST /v1/agent``); answers at once with the
        session and run ids. Options left ``None`` are not sent (server
        defaults apply). ``session_id`` continues a session. ``extra_body``
        adds fields this version of the client does not know yet."""
        fields = dict(
            session_id=session_id, model=model, system=system, webhook_url=webhook_url,
            metadata=metadata, max_tokens=max_tokens, temperature=temperature, tools=tools,
            tool_choice=tool_choice, max_steps=max_steps, max_total_tokens=max_total_tokens,
            response_format=response_format, stream=stream, files=files,
            fallback_models=fallback_models, max_cost_usd=max_cost_usd, max_repairs=max_repairs,
        )  # fmt: skip
        return cast(AgentOut, self._t.json(agent_call(message, idempotency_key, extra_body, fields)))

    def get(self, session_id: str, *, wait: Optional[int] = None) -> SessionOut:
        """``GET /v1/sessions/{id}``; ``wait`` (0-60 s) long-polls until the
        session is final or waits for the client."""
        return cast(SessionOut, self._t.json(_get_call(session_id, wait, self._t.timeout)))

    def list(
        self, *, status: Optional[RunStatus] = None, limit: Optional[int] = None, after: Optional[str] = None
    ) -> SessionPage:
        """``GET /v1/sessions``: newest first; pass ``next_cursor`` as ``after``."""
        params = {"status": status, "limit": limit, "after": after}
        return cast(SessionPage, self._t.json(Call("GET", "/v1/sessions", params=params)))

    def cancel(self, session_id: str) -> SessionOut:
        """Stops the queued, running or waiting run (409 if already final)."""
        return cast(SessionOut, self._t.json(Call("POST", f"/v1/sessions/{seg(session_id)}/cancel")))

    def steps(self, session_id: str, run_id: str) -> StepList:
        """A run's committed steps: model calls and tool calls."""
        path = f"/v1/sessions/{seg(session_id)}/runs/{seg(run_id)}/steps"
        return cast(StepList, self._t.json(Call("GET", path)))

    def submit_tool_outputs(self, session_id: str, tool_outputs: Sequence[ToolOutputIn]) -> SessionOut:
        """Answers every pending client tool call in one request; the run goes on."""
        call = Call("POST", f"/v1/sessions/{seg(session_id)}/tool_outputs", json={"tool_outputs": list(tool_outputs)})
        return cast(SessionOut, self._t.json(call))

    def approve(self, session_id: str, decisions: Sequence[DecisionIn]) -> SessionOut:
        """Decides every call of an ``approve_tool_calls`` pause in one request
        (build decisions with :func:`stewrd.approval`)."""
        call = Call("POST", f"/v1/sessions/{seg(session_id)}/approvals", json={"decisions": decisions_list(decisions)})
        return cast(SessionOut, self._t.json(call))

    def deliveries(self, session_id: str) -> DeliveryList:
        """Webhook delivery attempts of the session, oldest first."""
        return cast(DeliveryList, self._t.json(Call("GET", f"/v1/sessions/{seg(session_id)}/deliveries")))

    def retry_delivery(self, session_id: str) -> RetriedOut:
        """Sends the session's latest webhook event again (same webhook-id)."""
        return cast(RetriedOut, self._t.json(Call("POST", f"/v1/sessions/{seg(session_id)}/deliveries/retry")))

    def files(self, session_id: str, *, limit: Optional[int] = None, after: Optional[str] = None) -> FileList:
        """The session's files: inputs attached to its messages, and artifacts."""
        call = Call("GET", f"/v1/sessions/{seg(session_id)}/files", params={"limit": limit, "after": after})
        return cast(FileList, self._t.json(call))

    def wait(
        self,
        session_id: str,
        timeout: Optional[float] = None,
        *,
        return_on_requires_action: bool = True,
        poll: int = DEFAULT_POLL,
    ) -> SessionOut:
        """Long-polls until the session is final (``succeeded``, ``failed``,
        ``cancelled``) and returns it.

        By default it also returns when the run waits for the client
        (``requires_action``: tool outputs or approvals), since nothing changes
        until the client acts. Raises :class:`WaitTimeoutError` after
        ``timeout`` seconds (the run goes on; wait again to keep waiting).
        """
        deadline = Deadline(timeout)
        while True:
            session = self.get(session_id, wait=deadline.long_poll_seconds(poll))
            if is_settled(session, return_on_requires_action):
                return session
            if deadline.expired():
                raise WaitTimeoutError(
                    f"session {session_id} is still {session['status']} after {timeout} s",
                    code="wait_timeout",
                )
            if session["status"] == "requires_action":
                time.sleep(deadline.pause(REQUIRES_ACTION_POLL))

    def events(self, session_id: str, last_event_id: Optional[str] = None) -> Iterator[Event]:
        """Iterates over the session's server-sent events until its last run is final.

        A dropped connection is resumed with ``Last-Event-ID`` (the last id
        yielded), and an event is never yielded twice. Pass ``last_event_id``
        to resume a stream read earlier. ``run.delta`` events carry the text of
        runs submitted with ``stream=True``; on ``run.reset`` drop that step's
        text so far.
        """
        state = StreamState(last_event_id=last_event_id)
        failures = 0
        while True:
            parser = SSEParser()
            state.connection_opened()
            error: Optional[BaseException] = None
            response = self._t.send(_events_call(session_id, state.last_event_id, self._t.timeout), stream=True)
            try:
                for line in response.iter_lines():
                    event = parser.feed(line)
                    if event is not None and state.accept(event):
                        yield event
            except TRANSPORT_ERRORS as exc:
                error = exc
            finally:
                response.close()
            if state.done(clean_end=error is None):
                return
            failures = 0 if state.fresh else failures + 1
            if failures > self._t.max_retries:
                raise _stream_gave_up(session_id, error)
            time.sleep(parser.retry_ms / 1000 if parser.retry_ms is not None else backoff(failures))

    def run_tools(
        self, session_id: str, handlers: Mapping[str, ToolHandler], *, timeout: Optional[float] = None
    ) -> SessionOut:
        """Runs the session to its end, answering its client tool calls locally.

        Each time the run pauses for ``submit_tool_outputs``, every call is
        given to ``handlers[name]`` with its parsed arguments (a dict); the
        return value (text as is, anything else as JSON) is posted as the
        output. Returns the final session, or the session as it is when the run
        waits for an approval instead (``required_action.type ==
        "approve_tool_calls"``), which a person must decide.

        A tool with no handler raises :class:`ValueError`, and an exception in
        a handler propagates: in both cases nothing is posted and the run keeps
        waiting (answer it with :meth:`submit_tool_outputs`, or cancel it).
        Arguments that are not a JSON object are answered with an error for
        the model, without calling the handler.
        """
        deadline = Deadline(timeout)
        while True:
            session = self.wait(session_id, deadline.remaining())
            action = waits_for_tool_outputs(session)
            if action is None:
                return session
            outputs: List[ToolOutputIn] = []
            for call_id, name, arguments in pending_tool_calls(action):
                handler = handler_for(handlers, name)
                output = BAD_ARGUMENTS if arguments is None else encode_tool_output(handler(arguments))
                outputs.append({"tool_call_id": call_id, "output": output})
            try:
                self.submit_tool_outputs(session_id, outputs)
            except ConflictError:
                pass  # no longer waiting (answered elsewhere, cancelled, expired): look again


class AsyncSessions:
    """The async twin of :class:`Sessions`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(
        self,
        message: str,
        *,
        session_id: Optional[str] = None,
        model: Optional[str] = None,
        system: Optional[str] = None,
        webhook_url: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        tool_choice: Optional[Union[str, Mapping[str, Any]]] = None,
        max_steps: Optional[int] = None,
        max_total_tokens: Optional[int] = None,
        response_format: Optional[Mapping[str, Any]] = None,
        stream: Optional[bool] = None,
        files: Optional[Sequence[str]] = None,
        fallback_models: Optional[Sequence[str]] = None,
        max_cost_usd: Optional[float] = None,
        max_repairs: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
    ) -> AgentOut:
        """See :meth:`Sessions.create`."""
        fields = dict(
            session_id=session_id, model=model, system=system, webhook_url=webhook_url,
            metadata=metadata, max_tokens=max_tokens, temperature=temperature, tools=tools,
            tool_choice=tool_choice, max_steps=max_steps, max_total_tokens=max_total_tokens,
            response_format=response_format, stream=stream, files=files,
            fallback_models=fallback_models, max_cost_usd=max_cost_usd, max_repairs=max_repairs,
        )  # fmt: skip
        return cast(AgentOut, await self._t.json(agent_call(message, idempotency_key, extra_body, fields)))

    async def get(self, session_id: str, *, wait: Optional[int] = None) -> SessionOut:
        """See :meth:`Sessions.get`."""
        return cast(SessionOut, await self._t.json(_get_call(session_id, wait, self._t.timeout)))

    async def list(
        self, *, status: Optional[RunStatus] = None, limit: Optional[int] = None, after: Optional[str] = None
    ) -> SessionPage:
        """See :meth:`Sessions.list`."""
        params = {"status": status, "limit": limit, "after": after}
        return cast(SessionPage, await self._t.json(Call("GET", "/v1/sessions", params=params)))

    async def cancel(self, session_id: str) -> SessionOut:
        """See :meth:`Sessions.cancel`."""
        return cast(SessionOut, await self._t.json(Call("POST", f"/v1/sessions/{seg(session_id)}/cancel")))

    async def steps(self, session_id: str, run_id: str) -> StepList:
        """See :meth:`Sessions.steps`."""
        path = f"/v1/sessions/{seg(session_id)}/runs/{seg(run_id)}/steps"
        return cast(StepList, await self._t.json(Call("GET", path)))

    async def submit_tool_outputs(self, session_id: str, tool_outputs: Sequence[ToolOutputIn]) -> SessionOut:
        """See :meth:`Sessions.submit_tool_outputs`."""
        call = Call("POST", f"/v1/sessions/{seg(session_id)}/tool_outputs", json={"tool_outputs": list(tool_outputs)})
        return cast(SessionOut, await self._t.json(call))

    async def approve(self, session_id: str, decisions: Sequence[DecisionIn]) -> SessionOut:
        """See :meth:`Sessions.approve`."""
        call = Call("POST", f"/v1/sessions/{seg(session_id)}/approvals", json={"decisions": decisions_list(decisions)})
        return cast(SessionOut, await self._t.json(call))

    async def deliveries(self, session_id: str) -> DeliveryList:
        """See :meth:`Sessions.deliveries`."""
        return cast(DeliveryList, await self._t.json(Call("GET", f"/v1/sessions/{seg(session_id)}/deliveries")))

    async def retry_delivery(self, session_id: str) -> RetriedOut:
        """See :meth:`Sessions.retry_delivery`."""
        call = Call("POST", f"/v1/sessions/{seg(session_id)}/deliveries/retry")
        return cast(RetriedOut, await self._t.json(call))

    async def files(self, session_id: str, *, limit: Optional[int] = None, after: Optional[str] = None) -> FileList:
        """See :meth:`Sessions.files`."""
        call = Call("GET", f"/v1/sessions/{seg(session_id)}/files", params={"limit": limit, "after": after})
        return cast(FileList, await self._t.json(call))

    async def wait(
        self,
        session_id: str,
        timeout: Optional[float] = None,
        *,
        return_on_requires_action: bool = True,
        poll: int = DEFAULT_POLL,
    ) -> SessionOut:
        """See :meth:`Sessions.wait`."""
        deadline = Deadline(timeout)
        while True:
            session = await self.get(session_id, wait=deadline.long_poll_seconds(poll))
            if is_settled(session, return_on_requires_action):
                return session
            if deadline.expired():
                raise WaitTimeoutError(
                    f"session {session_id} is still {session['status']} after {timeout} s",
                    code="wait_timeout",
                )
            if session["status"] == "requires_action":
                await asyncio.sleep(deadline.pause(REQUIRES_ACTION_POLL))

    async def events(self, session_id: str, last_event_id: Optional[str] = None) -> AsyncIterator[Event]:
        """See :meth:`Sessions.events` (an async iterator here)."""
        state = StreamState(last_event_id=last_event_id)
        failures = 0
        while True:
            parser = SSEParser()
            state.connection_opened()
            error: Optional[BaseException] = None
            call = _events_call(session_id, state.last_event_id, self._t.timeout)
            response = await self._t.send(call, stream=True)
            try:
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    if event is not None and state.accept(event):
                        yield event
            except TRANSPORT_ERRORS as exc:
                error = exc
            finally:
                await response.aclose()
            if state.done(clean_end=error is None):
                return
            failures = 0 if state.fresh else failures + 1
            if failures > self._t.max_retries:
                raise _stream_gave_up(session_id, error)
            await asyncio.sleep(parser.retry_ms / 1000 if parser.retry_ms is not None else backoff(failures))

    async def run_tools(
        self, session_id: str, handlers: Mapping[str, ToolHandler], *, timeout: Optional[float] = None
    ) -> SessionOut:
        """See :meth:`Sessions.run_tools`; a handler may also be ``async``."""
        deadline = Deadline(timeout)
        while True:
            session = await self.wait(session_id, deadline.remaining())
            action = waits_for_tool_outputs(session)
            if action is None:
                return session
            outputs: List[ToolOutputIn] = []
            for call_id, name, arguments in pending_tool_calls(action):
                handler = handler_for(handlers, name)
                if arguments is None:
                    output = BAD_ARGUMENTS
                else:
                    result = handler(arguments)
                    if inspect.isawaitable(result):
                        result = await result
                    output = encode_tool_output(result)
                outputs.append({"tool_call_id": call_id, "output": output})
            try:
                await self.submit_tool_outputs(session_id, outputs)
            except ConflictError:
                pass
