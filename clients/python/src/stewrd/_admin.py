"""``client.admin``: the operator's calls (``/v1/admin/…``), authenticated with
the admin token instead of a project key.

Grouped as ``client.admin.projects`` (every per-project setting, by project id)
and ``client.admin.prices``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, cast

from ._project import llm_body, usage_params
from ._shared import compact, seg
from ._transport import AsyncTransport, Call, SyncTransport
from .types import (
    CreatedKeyOut,
    CreatedProjectOut,
    McpServerIn,
    McpServersOut,
    McpToolsOut,
    PriceIn,
    PricesOut,
    ProjectList,
    ProjectOut,
    Provider,
    ServerTool,
    ToolsOut,
    UsageOut,
)


def _p(project_id: str, rest: str = "") -> str:
    return f"/v1/admin/projects/{seg(project_id)}{rest}"


def _admin(method: str, path: str, **kwargs: Any) -> Call:
    return Call(method, path, auth="admin", **kwargs)


def _limits_body(
    requests_per_minute: Optional[int],
    max_concurrent_runs: Optional[int],
    max_queued_runs: Optional[int],
    tokens_per_day: Optional[int],
    tokens_per_month: Optional[int],
    usd_per_day: Optional[float],
    usd_per_month: Optional[float],
) -> Dict[str, Any]:
    # Every limit is set at once: one left None is "no limit", as the API says.
    return compact(
        {
            "requests_per_minute": requests_per_minute,
            "max_concurrent_runs": max_concurrent_runs,
            "max_queued_runs": max_queued_runs,
            "tokens_per_day": tokens_per_day,
            "tokens_per_month": tokens_per_month,
            "usd_per_day": usd_per_day,
            "usd_per_month": usd_per_month,
        }
    )


class AdminProjects:
    """Every project, as the operator sees it."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def list(self) -> ProjectList:
        """Every project, newest first."""
        return cast(ProjectList, self._t.json(_admin("GET", "/v1/admin/projects")))

    def create(self, name: str) -> CreatedProjectOut:
        """Creates a project and its first API key (``api_key``, shown this once)."""
        return cast(CreatedProjectOut, self._t.json(_admin("POST", "/v1/admin/projects", json={"name": name})))

    def get(self, project_id: str) -> ProjectOut:
        """One project."""
        return cast(ProjectOut, self._t.json(_admin("GET", _p(project_id))))

    def get_llm(self, project_id: str) -> ProjectOut:
        """The project's provider configuration (the project view)."""
        return cast(ProjectOut, self._t.json(_admin("GET", _p(project_id, "/llm"))))

    def set_llm(
        self,
        project_id: str,
        provider: Provider,
        model: str,
        *,
        api_key: Optional[str] = None,
        fallback_models: Optional[Sequence[str]] = None,
    ) -> ProjectOut:
        """Sets the project's provider, model and (write-only) key."""
        body = llm_body(provider, model, api_key, fallback_models)
        return cast(ProjectOut, self._t.json(_admin("PUT", _p(project_id, "/llm"), json=body)))

    def delete_llm(self, project_id: str) -> ProjectOut:
        """Forgets the project's provider configuration."""
        return cast(ProjectOut, self._t.json(_admin("DELETE", _p(project_id, "/llm"))))

    def set_limits(
        self,
        project_id: str,
        *,
        requests_per_minute: Optional[int] = None,
        max_concurrent_runs: Optional[int] = None,
        max_queued_runs: Optional[int] = None,
        tokens_per_day: Optional[int] = None,
        tokens_per_month: Optional[int] = None,
        usd_per_day: Optional[float] = None,
        usd_per_month: Optional[float] = None,
    ) -> ProjectOut:
        """Sets every limit at once; one left ``None`` is no limit."""
        body = _limits_body(
            requests_per_minute, max_concurrent_runs, max_queued_runs,
            tokens_per_day, tokens_per_month, usd_per_day, usd_per_month,
        )  # fmt: skip
        return cast(ProjectOut, self._t.json(_admin("PUT", _p(project_id, "/limits"), json=body)))

    def set_rate_limit(self, project_id: str, requests_per_minute: Optional[int]) -> ProjectOut:
        """Sets the project's requests-per-minute (``None``: the default)."""
        body = {"requests_per_minute": requests_per_minute}
        return cast(ProjectOut, self._t.json(_admin("PUT", _p(project_id, "/rate-limit"), json=body)))

    def create_api_key(self, project_id: str) -> CreatedKeyOut:
        """Issues another API key (``api_key``, shown this once)."""
        return cast(CreatedKeyOut, self._t.json(_admin("POST", _p(project_id, "/api-keys"))))

    def revoke_api_key(self, project_id: str, key_id: str) -> None:
        """Revokes an API key (by its id, not the secret)."""
        self._t.json(_admin("DELETE", _p(project_id, f"/api-keys/{seg(key_id)}")))

    def usage(
        self,
        project_id: str,
        *,
        from_: Optional[str] = None,
        to: Optional[str] = None,
        group_by: Optional[str] = None,
    ) -> UsageOut:
        """The project's usage by UTC day (default) or by model."""
        call = _admin("GET", _p(project_id, "/usage"), params=usage_params(from_, to, group_by))
        return cast(UsageOut, self._t.json(call))

    def tools(self, project_id: str) -> ToolsOut:
        """The project's server tools."""
        return cast(ToolsOut, self._t.json(_admin("GET", _p(project_id, "/tools"))))

    def set_tools(self, project_id: str, tools: Sequence[ServerTool]) -> ToolsOut:
        """Replaces the project's server tools."""
        call = _admin("PUT", _p(project_id, "/tools"), json={"tools": list(tools)})
        return cast(ToolsOut, self._t.json(call))

    def mcp_servers(self, project_id: str) -> McpServersOut:
        """The project's MCP servers."""
        return cast(McpServersOut, self._t.json(_admin("GET", _p(project_id, "/mcp_servers"))))

    def set_mcp_servers(self, project_id: str, servers: Sequence[McpServerIn]) -> McpServersOut:
        """Replaces the project's MCP servers."""
        call = _admin("PUT", _p(project_id, "/mcp_servers"), json={"servers": list(servers)})
        return cast(McpServersOut, self._t.json(call))

    def mcp_server_tools(self, project_id: str, name: str) -> McpToolsOut:
        """Connects to one of the project's MCP servers now and lists its tools."""
        call = _admin("GET", _p(project_id, f"/mcp_servers/{seg(name)}/tools"))
        return cast(McpToolsOut, self._t.json(call))


class AdminPrices:
    """Model prices per million tokens (list prices and the operator's)."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def get(self) -> PricesOut:
        """Every price in force."""
        return cast(PricesOut, self._t.json(_admin("GET", "/v1/admin/prices")))

    def set(self, prices: Sequence[PriceIn]) -> PricesOut:
        """Merges prices by provider and model; answers every price in force."""
        call = _admin("PUT", "/v1/admin/prices", json={"prices": list(prices)})
        return cast(PricesOut, self._t.json(call))


class Admin:
    """The operator's calls: ``projects`` and ``prices``."""

    def __init__(self, transport: SyncTransport) -> None:
        self.projects = AdminProjects(transport)
        self.prices = AdminPrices(transport)


class AsyncAdminProjects:
    """The async twin of :class:`AdminProjects`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def list(self) -> ProjectList:
        """See :meth:`AdminProjects.list`."""
        return cast(ProjectList, await self._t.json(_admin("GET", "/v1/admin/projects")))

    async def create(self, name: str) -> CreatedProjectOut:
        """See :meth:`AdminProjects.create`."""
        call = _admin("POST", "/v1/admin/projects", json={"name": name})
        return cast(CreatedProjectOut, await self._t.json(call))

    async def get(self, project_id: str) -> ProjectOut:
        """See :meth:`AdminProjects.get`."""
        return cast(ProjectOut, await self._t.json(_admin("GET", _p(project_id))))

    async def get_llm(self, project_id: str) -> ProjectOut:
        """See :meth:`AdminProjects.get_llm`."""
        return cast(ProjectOut, await self._t.json(_admin("GET", _p(project_id, "/llm"))))

    async def set_llm(
        self,
        project_id: str,
        provider: Provider,
        model: str,
        *,
        api_key: Optional[str] = None,
        fallback_models: Optional[Sequence[str]] = None,
    ) -> ProjectOut:
        """See :meth:`AdminProjects.set_llm`."""
        body = llm_body(provider, model, api_key, fallback_models)
        return cast(ProjectOut, await self._t.json(_admin("PUT", _p(project_id, "/llm"), json=body)))

    async def delete_llm(self, project_id: str) -> ProjectOut:
        """See :meth:`AdminProjects.delete_llm`."""
        return cast(ProjectOut, await self._t.json(_admin("DELETE", _p(project_id, "/llm"))))

    async def set_limits(
        self,
        project_id: str,
        *,
        requests_per_minute: Optional[int] = None,
        max_concurrent_runs: Optional[int] = None,
        max_queued_runs: Optional[int] = None,
        tokens_per_day: Optional[int] = None,
        tokens_per_month: Optional[int] = None,
        usd_per_day: Optional[float] = None,
        usd_per_month: Optional[float] = None,
    ) -> ProjectOut:
        """See :meth:`AdminProjects.set_limits`."""
        body = _limits_body(
            requests_per_minute, max_concurrent_runs, max_queued_runs,
            tokens_per_day, tokens_per_month, usd_per_day, usd_per_month,
        )  # fmt: skip
        return cast(ProjectOut, await self._t.json(_admin("PUT", _p(project_id, "/limits"), json=body)))

    async def set_rate_limit(self, project_id: str, requests_per_minute: Optional[int]) -> ProjectOut:
        """See :meth:`AdminProjects.set_rate_limit`."""
        body = {"requests_per_minute": requests_per_minute}
        return cast(ProjectOut, await self._t.json(_admin("PUT", _p(project_id, "/rate-limit"), json=body)))

    async def create_api_key(self, project_id: str) -> CreatedKeyOut:
        """See :meth:`AdminProjects.create_api_key`."""
        return cast(CreatedKeyOut, await self._t.json(_admin("POST", _p(project_id, "/api-keys"))))

    async def revoke_api_key(self, project_id: str, key_id: str) -> None:
        """See :meth:`AdminProjects.revoke_api_key`."""
        await self._t.json(_admin("DELETE", _p(project_id, f"/api-keys/{seg(key_id)}")))

    async def usage(
        self,
        project_id: str,
        *,
        from_: Optional[str] = None,
        to: Optional[str] = None,
        group_by: Optional[str] = None,
    ) -> UsageOut:
        """See :meth:`AdminProjects.usage`."""
        call = _admin("GET", _p(project_id, "/usage"), params=usage_params(from_, to, group_by))
        return cast(UsageOut, await self._t.json(call))

    async def tools(self, project_id: str) -> ToolsOut:
        """See :meth:`AdminProjects.tools`."""
        return cast(ToolsOut, await self._t.json(_admin("GET", _p(project_id, "/tools"))))

    async def set_tools(self, project_id: str, tools: Sequence[ServerTool]) -> ToolsOut:
        """See :meth:`AdminProjects.set_tools`."""
        call = _admin("PUT", _p(project_id, "/tools"), json={"tools": list(tools)})
        return cast(ToolsOut, await self._t.json(call))

    async def mcp_servers(self, project_id: str) -> McpServersOut:
        """See :meth:`AdminProjects.mcp_servers`."""
        return cast(McpServersOut, await self._t.json(_admin("GET", _p(project_id, "/mcp_servers"))))

    async def set_mcp_servers(self, project_id: str, servers: Sequence[McpServerIn]) -> McpServersOut:
        """See :meth:`AdminProjects.set_mcp_servers`."""
        call = _admin("PUT", _p(project_id, "/mcp_servers"), json={"servers": list(servers)})
        return cast(McpServersOut, await self._t.json(call))

    async def mcp_server_tools(self, project_id: str, name: str) -> McpToolsOut:
        """See :meth:`AdminProjects.mcp_server_tools`."""
        call = _admin("GET", _p(project_id, f"/mcp_servers/{seg(name)}/tools"))
        return cast(McpToolsOut, await self._t.json(call))


class AsyncAdminPrices:
    """The async twin of :class:`AdminPrices`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def get(self) -> PricesOut:
        """See :meth:`AdminPrices.get`."""
        return cast(PricesOut, await self._t.json(_admin("GET", "/v1/admin/prices")))

    async def set(self, prices: Sequence[PriceIn]) -> PricesOut:
        """See :meth:`AdminPrices.set`."""
        call = _admin("PUT", "/v1/admin/prices", json={"prices": list(prices)})
        return cast(PricesOut, await self._t.json(call))


class AsyncAdmin:
    """The async twin of :class:`Admin`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self.projects = AsyncAdminProjects(transport)
        self.prices = AsyncAdminPrices(transport)
