"""HTTP plumbing shared by every call: authentication, retries, error mapping.

:class:`SyncTransport` and :class:`AsyncTransport` are the only places that
talk to httpx; the resource classes describe each call as a :class:`Call` and
hand it here. The retry loop is written twice (one blocking, one awaiting) but
every decision in it comes from :mod:`stewrd._retry`, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Literal, Mapping, Optional, Union

import httpx

from ._errors import APIConnectionError, error_from_response
from ._retry import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_DELAY,
    RETRY_STATUSES,
    TRANSPORT_ERRORS,
    backoff,
    delay_for_status,
    repeatable_after_transport_error,
)
from ._version import __version__

#: Which credential a call needs: the project's API key, the operator's admin
#: token, or none (health checks).
Auth = Literal["project", "admin", "none"]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 60.0

FilesFactory = Callable[[], Dict[str, Any]]


class CannotResend(Exception):
    """A request body (a one-shot stream) cannot be sent a second time."""


@dataclass
class Call:
    """One API call, described independently of sync or async execution."""

    method: str
    path: str
    auth: Auth = "project"
    params: Optional[Mapping[str, Any]] = None
    json: Any = None
    #: Builds the multipart ``files`` (and rewinds streams) for each attempt.
    files: Optional[FilesFactory] = None
    data: Optional[Mapping[str, Any]] = None
    headers: Dict[str, str] = field(default_factory=dict)
    #: Seconds; overrides the client's timeout (long-polls need more).
    timeout: Optional[Union[float, httpx.Timeout]] = None
    #: Whether a 429/503 is retried (not for readiness, where 503 is the answer).
    retry_unavailable: bool = True


class _TransportBase:
    """Settings and request building common to both transports."""

    def __init__(
        self,
        base_url: Optional[str],
        api_key: Optional[str],
        admin_token: Optional[str],
        timeout: float,
        max_retries: int,
        max_retry_delay: float,
    ) -> None:
        self.base_url = (base_url or os.environ.get("STEWRD_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("STEWRD_API_KEY")
        self.admin_token = admin_token if admin_token is not None else os.environ.get("STEWRD_ADMIN_TOKEN")
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.max_retry_delay = max_retry_delay

    def _auth_header(self, auth: Auth) -> Dict[str, str]:
        if auth == "none":
            return {}
        token = self.api_key if auth == "project" else self.admin_token
        if not token:
            what = "api_key (or STEWRD_API_KEY)" if auth == "project" else ("admin_token (or STEWRD_ADMIN_TOKEN)")
            raise ValueError(f"this call needs the client's {what}")
        return {"Authorization": f"Bearer {token}"}

    def _build(self, http: Union[httpx.Client, httpx.AsyncClient], call: Call) -> httpx.Request:
        headers = {"User-Agent": f"stewrd-python/{__version__}", **self._auth_header(call.auth)}
        headers.update(call.headers)
        params = {k: v for k, v in (call.params or {}).items() if v is not None}
        kwargs: Dict[str, Any] = {}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.files is not None:
            kwargs["files"] = call.files()
            if call.data:
                kwargs["data"] = dict(call.data)
        # The full URL is built here rather than by httpx's base_url, so that a
        # caller-supplied http_client needs no base_url of its own.
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=params or None,
            headers=headers,
            timeout=call.timeout if call.timeout is not None else self.timeout,
            **kwargs,
        )

    def _status_retry_delay(self, call: Call, response: httpx.Response, attempt: int) -> Optional[float]:
        if not call.retry_unavailable or response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        return delay_for_status(attempt, response.headers, self.max_retry_delay)

    def _transport_retry_delay(self, call: Call, attempt: int) -> Optional[float]:
        if attempt >= self.max_retries or not repeatable_after_transport_error(call.method, call.path):
            return None
        return backoff(attempt)


def _connection_error(call: Call, exc: Exception) -> APIConnectionError:
    return APIConnectionError(
        f"{call.method} {call.path}: no answer ({type(exc).__name__}: {exc})",
        type="connection_error",
    )


class SyncTransport(_TransportBase):
    """Blocking transport over :class:`httpx.Client`."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        admin_token: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        super().__init__(base_url, api_key, admin_token, timeout, max_retries, max_retry_delay)
        self._owns_http = http_client is None
        self.http = http_client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """Sends ``call`` with retries; returns a 2xx response or raises.

        With ``stream=True`` the body is not read: the caller must close the
        response (``with transport.send(call, stream=True) as r: ...``).
        """
        attempt = 0
        last_error: Optional[Exception] = None
        while True:
            try:
                request = self._build(self.http, call)
            except CannotResend:
                assert last_error is not None
                raise last_error from None
            try:
                response = self.http.send(request, stream=stream)
            except TRANSPORT_ERRORS as exc:
                delay = self._transport_retry_delay(call, attempt)
                if delay is None:
                    raise _connection_error(call, exc) from exc
                last_error = _connection_error(call, exc)
                time.sleep(delay)
                attempt += 1
                continue
            if response.status_code < 300:
                return response
            try:
                body = response.read()
            except TRANSPORT_ERRORS:
                body = b""
            finally:
                response.close()
            error = error_from_response(response.status_code, body, response.headers)
            delay = self._status_retry_delay(call, response, attempt)
            if delay is None:
                raise error
            last_error = error
            time.sleep(delay)
            attempt += 1

    def json(self, call: Call) -> Any:
        """Sends ``call``; returns the decoded JSON body (``None`` for 204)."""
        response = self.send(call)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


class AsyncTransport(_TransportBase):
    """Awaiting transport over :class:`httpx.AsyncClient` (asyncio)."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        admin_token: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        super().__init__(base_url, api_key, admin_token, timeout, max_retries, max_retry_delay)
        self._owns_http = http_client is None
        self.http = http_client or httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """As :meth:`SyncTransport.send`, awaiting; close a streamed response
        with ``await response.aclose()``."""
        attempt = 0
        last_error: Optional[Exception] = None
        while True:
            try:
                request = self._build(self.http, call)
            except CannotResend:
                assert last_error is not None
                raise last_error from None
            try:
                response = await self.http.send(request, stream=stream)
            except TRANSPORT_ERRORS as exc:
                delay = self._transport_retry_delay(call, attempt)
                if delay is None:
                    raise _connection_error(call, exc) from exc
                last_error = _connection_error(call, exc)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if response.status_code < 300:
                return response
            try:
                body = await response.aread()
            except TRANSPORT_ERRORS:
                body = b""
            finally:
                await response.aclose()
            error = error_from_response(response.status_code, body, response.headers)
            delay = self._status_retry_delay(call, response, attempt)
            if delay is None:
                raise error
            last_error = error
            await asyncio.sleep(delay)
            attempt += 1

    async def json(self, call: Call) -> Any:
        response = await self.send(call)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()
