"""``client.project``: the calling project's settings (``/v1/project…``)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, cast

from ._shared import compact, seg
from ._transport import AsyncTransport, Call, SyncTransport
from .types import (
    McpServerIn,
    McpServersOut,
    McpToolsOut,
    ProjectOut,
    Provider,
    ServerTool,
    ToolsOut,
    UsageOut,
    WebhookSecretOut,
)


def llm_body(provider: Provider, model: str, api_key: Optional[str], fallback_models: Optional[Sequence[str]]) -> Any:
    return compact(
        {
            "provider": provider,
            "model": model,
            "api_key": api_key,
            "fallback_models": list(fallback_models) if fallback_models is not None else None,
        }
    )


def usage_params(from_: Optional[str], to: Optional[str], group_by: Optional[str]) -> Mapping[str, Any]:
    return {"from": from_, "to": to, "group_by": group_by}


class Project:
    """The project the API key belongs to."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def get(self) -> ProjectOut:
        """``GET /v1/project``: name, LLM settings, webhook, limits."""
        return cast(ProjectOut, self._t.json(Call("GET", "/v1/project")))

    def set_llm(
        self,
        provider: Provider,
        model: str,
        *,
        api_key: Optional[str] = None,
        fallback_models: Optional[Sequence[str]] = None,
    ) -> ProjectOut:
        """Sets the provider, model and (write-only) key; ``api_key=None`` keeps
        the stored key."""
        body = llm_body(provider, model, api_key, fallback_models)
        return cast(ProjectOut, self._t.json(Call("PUT", "/v1/project/llm", json=body)))

    def delete_llm(self) -> ProjectOut:
        """Forgets the provider configuration and key; the default applies again."""
        return cast(ProjectOut, self._t.json(Call("DELETE", "/v1/project/llm")))

    def set_webhook(self, url: Optional[str]) -> ProjectOut:
        """Sets the webhook URL, or stops sending events with ``None``."""
        return cast(ProjectOut, self._t.json(Call("PUT", "/v1/project/webhook", json={"url": url})))

    def new_webhook_secret(self) -> WebhookSecretOut:
        """A new ``whsec_…`` signing secret, shown this once (the previous one
        keeps signing for 24 h)."""
        return cast(WebhookSecretOut, self._t.json(Call("POST", "/v1/project/webhook/secret")))

    def tools(self) -> ToolsOut:
        """The project's server tools."""
        return cast(ToolsOut, self._t.json(Call("GET", "/v1/project/tools")))

    def set_tools(self, tools: Sequence[ServerTool]) -> ToolsOut:
        """Replaces the project's server tools (at most 32)."""
        return cast(ToolsOut, self._t.json(Call("PUT", "/v1/project/tools", json={"tools": list(tools)})))

    def mcp_servers(self) -> McpServersOut:
        """The project's MCP servers (header values never shown)."""
        return cast(McpServersOut, self._t.json(Call("GET", "/v1/project/mcp_servers")))

    def set_mcp_servers(self, servers: Sequence[McpServerIn]) -> McpServersOut:
        """Replaces the project's MCP servers (at most 8); does not connect."""
        call = Call("PUT", "/v1/project/mcp_servers", json={"servers": list(servers)})
        return cast(McpServersOut, self._t.json(call))

    def mcp_server_tools(self, name: str) -> McpToolsOut:
        """Connects to the MCP server now and lists its tools as the model sees them."""
        return cast(McpToolsOut, self._t.json(Call("GET", f"/v1/project/mcp_servers/{seg(name)}/tools")))

    def usage(
        self, *, from_: Optional[str] = None, to: Optional[str] = None, group_by: Optional[str] = None
    ) -> UsageOut:
        """Usage by UTC day (default) or by model; dates are ``YYYY-MM-DD``."""
        call = Call("GET", "/v1/project/usage", params=usage_params(from_, to, group_by))
        return cast(UsageOut, self._t.json(call))


class AsyncProject:
    """The async twin of :class:`Project`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def get(self) -> ProjectOut:
        """See :meth:`Project.get`."""
        return cast(ProjectOut, await self._t.json(Call("GET", "/v1/project")))

    async def set_llm(
        self,
        provider: Provider,
        model: str,
        *,
        api_key: Optional[str] = None,
        fallback_models: Optional[Sequence[str]] = None,
    ) -> ProjectOut:
        """See :meth:`Project.set_llm`."""
        body = llm_body(provider, model, api_key, fallback_models)
        return cast(ProjectOut, await self._t.json(Call("PUT", "/v1/project/llm", json=body)))

    async def delete_llm(self) -> ProjectOut:
        """See :meth:`Project.delete_llm`."""
        return cast(ProjectOut, await self._t.json(Call("DELETE", "/v1/project/llm")))

    async def set_webhook(self, url: Optional[str]) -> ProjectOut:
        """See :meth:`Project.set_webhook`."""
        return cast(ProjectOut, await self._t.json(Call("PUT", "/v1/project/webhook", json={"url": url})))

    async def new_webhook_secret(self) -> WebhookSecretOut:
        """See :meth:`Project.new_webhook_secret`."""
        return cast(WebhookSecretOut, await self._t.json(Call("POST", "/v1/project/webhook/secret")))

    async def tools(self) -> ToolsOut:
        """See :meth:`Project.tools`."""
        return cast(ToolsOut, await self._t.json(Call("GET", "/v1/project/tools")))

    async def set_tools(self, tools: Sequence[ServerTool]) -> ToolsOut:
        """See :meth:`Project.set_tools`."""
        return cast(ToolsOut, await self._t.json(Call("PUT", "/v1/project/tools", json={"tools": list(tools)})))

    async def mcp_servers(self) -> McpServersOut:
        """See :meth:`Project.mcp_servers`."""
        return cast(McpServersOut, await self._t.json(Call("GET", "/v1/project/mcp_servers")))

    async def set_mcp_servers(self, servers: Sequence[McpServerIn]) -> McpServersOut:
        """See :meth:`Project.set_mcp_servers`."""
        call = Call("PUT", "/v1/project/mcp_servers", json={"servers": list(servers)})
        return cast(McpServersOut, await self._t.json(call))

    async def mcp_server_tools(self, name: str) -> McpToolsOut:
        """See :meth:`Project.mcp_server_tools`."""
        call = Call("GET", f"/v1/project/mcp_servers/{seg(name)}/tools")
        return cast(McpToolsOut, await self._t.json(call))

    async def usage(
        self, *, from_: Optional[str] = None, to: Optional[str] = None, group_by: Optional[str] = None
    ) -> UsageOut:
        """See :meth:`Project.usage`."""
        call = Call("GET", "/v1/project/usage", params=usage_params(from_, to, group_by))
        return cast(UsageOut, await self._t.json(call))
