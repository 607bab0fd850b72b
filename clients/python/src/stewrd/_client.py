"""The entry points: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Calls are grouped by what they act on:

* ``client.sessions`` — submit (``create``, also ``client.agent``), get, list,
  wait, events, cancel, steps, tool outputs, approvals, deliveries, files;
* ``client.project`` — the calling project's LLM, webhook, tools, MCP servers, usage;
* ``client.files`` — upload, list, get, download, content, delete;
* ``client.admin.projects`` / ``client.admin.prices`` — the operator's calls;
* ``client.health()``, ``client.ready()``, ``client.metrics()`` — operations.

The most used session calls are also on the client itself: ``agent``, ``wait``,
``events``, ``run_tools`` and ``approve``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Dict, Optional, Type, cast

import httpx

from ._admin import Admin, AsyncAdmin
from ._files import AsyncFiles, Files
from ._project import AsyncProject, Project
from ._retry import DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_DELAY
from ._sessions import AsyncSessions, Sessions
from ._transport import DEFAULT_TIMEOUT, AsyncTransport, Call, SyncTransport


def _health(path: str) -> Call:
    # Readiness must answer now: no retry of its 503 (that is the answer).
    return Call("GET", path, auth="none", retry_unavailable=False)


class Client:
    """A blocking client of one stewrd server.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8080`` (default: the
            ``STEWRD_URL`` environment variable, else that address).
        api_key: the project's ``sk-stw_…`` key for project calls (default:
            ``STEWRD_API_KEY``).
        admin_token: the operator's token for ``client.admin`` calls (default:
            ``STEWRD_ADMIN_TOKEN``).
        timeout: seconds per request (long-polls add their wait to it).
        max_retries: retries of a call after 429/503, or after a connection
            error where repeating is safe (reads and submits).
        max_retry_delay: the longest ``Retry-After`` the client sleeps
            through; a longer one raises the 429/503 at once.
        http_client: an ``httpx.Client`` to use (proxies, TLS settings, tests).
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        admin_token: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        self._transport = SyncTransport(
            base_url, api_key, admin_token, timeout, max_retries, max_retry_delay, http_client
        )
        self.sessions = Sessions(self._transport)
        self.project = Project(self._transport)
        self.files = Files(self._transport)
        self.admin = Admin(self._transport)
        # Shortcuts for the calls most programs make.
        self.agent = self.sessions.create
        self.wait = self.sessions.wait
        self.events = self.sessions.events
        self.run_tools = self.sessions.run_tools
        self.approve = self.sessions.approve

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def health(self) -> Dict[str, Any]:
        """``GET /healthz``: the process is up."""
        return cast(Dict[str, Any], self._transport.json(_health("/healthz")))

    def ready(self) -> Dict[str, Any]:
        """``GET /readyz``: Postgres and RabbitMQ reachable (raises
        :class:`ServiceUnavailableError` when not)."""
        return cast(Dict[str, Any], self._transport.json(_health("/readyz")))

    def metrics(self, token: Optional[str] = None) -> str:
        """``GET /metrics`` (Prometheus text); ``token`` if the server sets
        ``STEWRD_METRICS_TOKEN``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self._transport.send(Call("GET", "/metrics", auth="none", headers=headers)).text

    def close(self) -> None:
        """Closes the connection pool (not a caller-supplied ``http_client``)."""
        self._transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same groups and methods, awaited
    (``events`` is an async iterator). Use ``async with AsyncClient(...)``."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        admin_token: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._transport = AsyncTransport(
            base_url, api_key, admin_token, timeout, max_retries, max_retry_delay, http_client
        )
        self.sessions = AsyncSessions(self._transport)
        self.project = AsyncProject(self._transport)
        self.files = AsyncFiles(self._transport)
        self.admin = AsyncAdmin(self._transport)
        self.agent = self.sessions.create
        self.wait = self.sessions.wait
        self.events = self.sessions.events
        self.run_tools = self.sessions.run_tools
        self.approve = self.sessions.approve

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    async def health(self) -> Dict[str, Any]:
        """See :meth:`Client.health`."""
        return cast(Dict[str, Any], await self._transport.json(_health("/healthz")))

    async def ready(self) -> Dict[str, Any]:
        """See :meth:`Client.ready`."""
        return cast(Dict[str, Any], await self._transport.json(_health("/readyz")))

    async def metrics(self, token: Optional[str] = None) -> str:
        """See :meth:`Client.metrics`."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self._transport.send(Call("GET", "/metrics", auth="none", headers=headers))
        return response.text

    async def close(self) -> None:
        """See :meth:`Client.close`."""
        await self._transport.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()
