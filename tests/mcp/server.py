"""MCP server fixture for stewrd's integration tests.

A real MCP server, built on the official MCP Python SDK (PyPI `mcp`, 2.x, where
FastMCP is called `MCPServer`), speaking Streamable HTTP. The Rust tests start it
as a subprocess, point stewrd's MCP client at it, and then ask it over plain HTTP
what it received and what it ran. scripts/test installs the SDK into
target/mcp/venv and exports that interpreter as STEWRD_TEST_MCP_PYTHON.

Usage:

    python server.py --port PORT [--json] [--page-size N] [--exit-on-stdin-eof]

    --port PORT          listen on 127.0.0.1:PORT (0: pick a free port; the
                         READY line says which)
    --json               answer POSTs with plain JSON (application/json) instead
                         of an SSE stream (the SDK's default)
    --page-size N        answer tools/list N tools at a time, with `nextCursor`,
                         so that a client has to follow cursors (default: all
                         tools on one page, no cursor)
    --exit-on-stdin-eof  exit when stdin closes (start it with a piped stdin, so
                         that it dies with the test process even if the test is
                         killed before it can stop it)

Once it accepts connections it prints `READY <port>` on stdout (and nothing else
there, ever). SIGTERM or SIGINT stop it (exit status 0) in well under a
second: it ends every session first, which closes open streams and cancels
running tools.

Routes (everything on 127.0.0.1:PORT):

    POST/GET/DELETE /mcp   the MCP endpoint (Streamable HTTP, stateful sessions
                           with Mcp-Session-Id; an unknown session id gets 404)
    GET  /log    every inbound JSON-RPC message, oldest first:
                 [{"method", "id" (null for a notification), "session"
                   (Mcp-Session-Id header), "idempotency_key" (Idempotency-Key
                   header), "protocol_version" (MCP-Protocol-Version header),
                   "meta" (params._meta), "params" (notifications only, else
                   null), "headers" (every HTTP header, lower-case names)}]
    GET  /calls  every tool execution, in the order they started:
                 {"tool", "arguments", "idempotency_key" (Idempotency-Key
                  header), "meta_key" (params._meta["io.stewrd/idempotency_key"]),
                  "session", "request_id", "at" (Unix time, seconds)} when
                 one starts, and
                 {"tool", "cancelled": true, "request_id", "session"} when one
                 was cancelled (notifications/cancelled for its request id,
                 or its session ended under it); the cancelled call's POST
                 is answered with JSON-RPC error -32800 "Request cancelled"
    GET  /notes  the notes add_note has taken: ["text", ...]
    POST /expire forget every MCP session (as a server restart or the idle
                 timeout would): a later request with an old Mcp-Session-Id
                 gets 404 and the client has to initialize again. A call
                 running in an expired session is cancelled (recorded as
                 such in /calls); its POST ends without an answer (SSE: the
                 stream just ends) or with HTTP 500 (--json).
                 -> {"expired": ["<session id>", ...]}
    POST /hide?tool=NAME  remove the tool: no longer listed, and calling it
                 gives a result with isError true ("Unknown tool: NAME").
                 -> {"hidden": "NAME", "tools": [names still listed]}, or 404
                 {"error": ...} for a tool that is not there

Tools:

    lookup(key) -> "value-of-<key>"               readOnlyHint
    ping() -> "pong"                              readOnlyHint; not in /calls
    set_flag(key, value) -> "<key>=<value>"       idempotentHint (readOnlyHint false)
    add_note(text) -> "noted <n>"                 no hints: a side effect that
                                                  must never run twice
    slow(seconds=0.5) -> "slept <seconds>"        no hints; sleeps in 50 ms steps;
                                                  seconds is a float: 3 -> "slept 3.0"
    slow_lookup(seconds=0.5) -> "slept <seconds>" readOnlyHint; same
    picture() -> a 1x1 PNG image content
    fail(reason="boom") -> result with isError true, text
                "Error executing tool fail: <reason>" (the SDK's prefix)
    whoami() -> JSON text {"authorization": ..., "x-team": ...}: the values of
                those HTTP headers on the tools/call request (null if absent)

Tools returning text also return structuredContent {"result": "<text>"} and
declare an outputSchema (the SDK does so for a `-> str` tool).
"""

from __future__ import annotations

import argparse
import json
import signal
import struct
import time
import sys
import threading
import zlib
from typing import Any

import anyio
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, ListToolsResult, PaginatedRequestParams, ToolAnnotations

IDEMPOTENCY_META_KEY = "io.stewrd/idempotency_key"

LOG: list[dict[str, Any]] = []  # every inbound JSON-RPC message
CALLS: list[dict[str, Any]] = []  # every tool execution (start, cancellation)
NOTES: list[str] = []  # what add_note took
PAGE_SIZE = 0  # tools per tools/list page; 0: all on one page


async def record(ctx: Any, call_next: Any) -> Any:
    """Server middleware: sees every request and notification, initialize and
    notifications/cancelled included, before the SDK handles it."""
    headers = dict(getattr(ctx.request, "headers", None) or {})
    params = dict(ctx.params or {})
    notification = ctx.method.startswith("notifications/")
    LOG.append(
        {
            "method": ctx.method,
            "id": ctx.request_id,
            "session": headers.get("mcp-session-id"),
            "idempotency_key": headers.get("idempotency-key"),
            "protocol_version": headers.get("mcp-protocol-version"),
            "meta": params.get("_meta"),
            "params": params if notification else None,
            "headers": headers,
        }
    )
    return await call_next(ctx)


mcp = MCPServer("stewrd-test-mcp", version="1", middleware=[record], log_level="WARNING")


def started(ctx: Context, tool: str, arguments: dict[str, Any]) -> None:
    """Records that a tool began to run, with what the request carried."""
    headers = ctx.headers or {}
    meta = (ctx.request_context.params or {}).get("_meta") or {}
    CALLS.append(
        {
            "tool": tool,
            "arguments": arguments,
            "idempotency_key": headers.get("idempotency-key"),
            "meta_key": meta.get(IDEMPOTENCY_META_KEY),
            "session": headers.get("mcp-session-id"),
            "request_id": ctx.request_context.request_id,
            "at": time.time(),
        }
    )


async def sleep_for(ctx: Context, tool: str, seconds: float) -> str:
    """Sleeps in short steps; records a cancellation (the SDK cancels the tool's
    task when notifications/cancelled names its request) and lets it through."""
    started(ctx, tool, {"seconds": seconds})
    try:
        deadline = anyio.current_time() + seconds
        while (left := deadline - anyio.current_time()) > 0:
            await anyio.sleep(min(0.05, left))
    except anyio.get_cancelled_exc_class():
        CALLS.append(
            {
                "tool": tool,
                "cancelled": True,
                "request_id": ctx.request_context.request_id,
                "session": (ctx.headers or {}).get("mcp-session-id"),
            }
        )
        raise
    return f"slept {seconds}"


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
async def lookup(key: str, ctx: Context) -> str:
    """Read-only lookup: returns value-of-<key>."""
    started(ctx, "lookup", {"key": key})
    return f"value-of-{key}"


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
async def ping() -> str:
    """Read-only, answers at once, records nothing: "pong" (for `stewrd bench mcp`)."""
    return "pong"


@mcp.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True))
async def set_flag(key: str, value: str, ctx: Context) -> str:
    """Idempotent write: returns <key>=<value>."""
    started(ctx, "set_flag", {"key": key, "value": value})
    return f"{key}={value}"


@mcp.tool()
async def add_note(text: str, ctx: Context) -> str:
    """Not idempotent: appends a note, returns noted <number of notes so far>."""
    started(ctx, "add_note", {"text": text})
    NOTES.append(text)
    return f"noted {len(NOTES)}"


@mcp.tool()
async def slow(ctx: Context, seconds: float = 0.5) -> str:
    """Sleeps for the given seconds, returns slept <seconds>."""
    return await sleep_for(ctx, "slow", seconds)


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
async def slow_lookup(ctx: Context, seconds: float = 0.5) -> str:
    """Read-only; sleeps for the given seconds, returns slept <seconds>."""
    return await sleep_for(ctx, "slow_lookup", seconds)


def png_1x1() -> bytes:
    """A valid 1x1 PNG: one opaque red pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


@mcp.tool()
async def picture(ctx: Context) -> Image:
    """Returns a 1x1 PNG image."""
    started(ctx, "picture", {})
    return Image(data=png_1x1(), format="png")


@mcp.tool()
async def fail(ctx: Context, reason: str = "boom") -> str:
    """Always fails: a result with isError true, text "Error executing tool fail: <reason>"."""
    started(ctx, "fail", {"reason": reason})
    raise ToolError(reason)


@mcp.tool()
async def whoami(ctx: Context) -> str:
    """Returns the Authorization and X-Team HTTP headers of this call, as JSON."""
    started(ctx, "whoami", {})
    headers = ctx.headers or {}
    return json.dumps({"authorization": headers.get("authorization"), "x-team": headers.get("x-team")})


async def list_tools(ctx: Any, params: PaginatedRequestParams) -> ListToolsResult:
    """tools/list, PAGE_SIZE tools a page when --page-size is given. The cursor
    is the index of the page's first tool, as a decimal string."""
    tools = await mcp.list_tools()
    if PAGE_SIZE <= 0:
        return ListToolsResult(tools=tools)
    start = 0
    if params.cursor is not None:
        if not params.cursor.isdigit() or int(params.cursor) > len(tools):
            raise MCPError(code=INVALID_PARAMS, message=f"invalid cursor {params.cursor!r}")
        start = int(params.cursor)
    end = start + PAGE_SIZE
    return ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)


# Replaces MCPServer's own tools/list handler (which has no pagination).
mcp._lowlevel_server.add_request_handler("tools/list", PaginatedRequestParams, list_tools)


@mcp.custom_route("/log", methods=["GET"])
async def get_log(_: Request) -> JSONResponse:
    return JSONResponse(LOG)


@mcp.custom_route("/calls", methods=["GET"])
async def get_calls(_: Request) -> JSONResponse:
    return JSONResponse(CALLS)


@mcp.custom_route("/notes", methods=["GET"])
async def get_notes(_: Request) -> JSONResponse:
    return JSONResponse(NOTES)


async def expire_sessions() -> list[str]:
    """Ends every MCP session; returns their ids.

    The SDK's StreamableHTTPSessionManager (mcp 2.3.0) keeps its sessions in
    `_server_instances` (session id -> transport); `_discard_session` is what it
    does itself when a session ends (client DELETE, idle timeout): forget the id
    (from then on it answers 404), then terminate the transport, which closes the
    session's open streams and ends its server task, cancelling running tools.
    Both are private: if an SDK upgrade breaks this, restart the process instead.
    """
    manager = mcp.session_manager
    sessions = list(manager._server_instances.items())
    for session_id, transport in sessions:
        await manager._discard_session(session_id, transport)
    return [session_id for session_id, _ in sessions]


@mcp.custom_route("/expire", methods=["POST"])
async def expire(_: Request) -> JSONResponse:
    return JSONResponse({"expired": await expire_sessions()})


@mcp.custom_route("/hide", methods=["POST"])
async def hide(request: Request) -> JSONResponse:
    name = request.query_params.get("tool", "")
    try:
        mcp.remove_tool(name)
    except ToolError as e:
        return JSONResponse({"error": str(e)}, status_code=404)
    return JSONResponse({"hidden": name, "tools": [t.name for t in await mcp.list_tools()]})


class Server(uvicorn.Server):
    """uvicorn, announcing on stdout the port it listens on once it does."""

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            port = self.servers[0].sockets[0].getsockname()[1]
            print(f"READY {port}", flush=True)

    async def shutdown(self, sockets: Any = None) -> None:
        # End the sessions first, so that open streams (a GET stream, a POST
        # waiting on a slow tool) close now rather than hold the exit up.
        await expire_sessions()
        await super().shutdown(sockets=sockets)


def main() -> None:
    global PAGE_SIZE
    parser = argparse.ArgumentParser(description="MCP server fixture for stewrd's tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--json", action="store_true", help="plain JSON answers instead of SSE")
    parser.add_argument("--page-size", type=int, default=0, help="tools per tools/list page")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()
    PAGE_SIZE = args.page_size

    app = mcp.streamable_http_app(host="127.0.0.1", json_response=args.json)
    server = Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
    )

    if args.exit_on_stdin_eof:

        def watch_stdin() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            server.should_exit = True

        threading.Thread(target=watch_stdin, daemon=True).start()

    # uvicorn catches SIGTERM/SIGINT, shuts down, then raises the signal again
    # with the handler that was there before: make that a clean exit.
    def exit_cleanly(signum: int, frame: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, exit_cleanly)
    signal.signal(signal.SIGINT, exit_cleanly)
    server.run()


if __name__ == "__main__":
    main()
