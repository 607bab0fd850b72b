"""The client covers every operation of clients/openapi.json, and the sync and
async clients have the same methods with the same signatures.

No server needed: requests go to an httpx.MockTransport that records them.
When the OpenAPI document gains an operation, this test fails until the client
(and the CALLS table below) has it.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import re
from pathlib import Path
from typing import Any, Callable, List, Set, Tuple

import httpx
import pytest

import stewrd
from stewrd import _admin, _files, _project, _sessions

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.json"
#: Operations that are not API calls: the dashboard's HTML sign-in form.
NOT_CLIENT_CALLS = {("POST", "/dashboard/login")}

S, R, F, P, K = "sess-1", "run-1", "file_" + "0" * 32, "proj-1", "key-1"

CALLS: List[Callable[[stewrd.Client], Any]] = [
    lambda c: c.health(),
    lambda c: c.ready(),
    lambda c: c.metrics(),
    lambda c: c.agent("hi"),
    lambda c: c.sessions.get(S, wait=1),
    lambda c: c.sessions.list(status="succeeded", limit=5),
    lambda c: c.sessions.cancel(S),
    lambda c: c.sessions.steps(S, R),
    lambda c: c.sessions.submit_tool_outputs(S, [{"tool_call_id": "c", "output": "o"}]),
    lambda c: c.sessions.approve(S, [{"tool_call_id": "c", "approve": False}]),
    lambda c: c.sessions.deliveries(S),
    lambda c: c.sessions.retry_delivery(S),
    lambda c: list(c.sessions.events(S)),
    lambda c: c.sessions.files(S, limit=1),
    lambda c: c.project.get(),
    lambda c: c.project.set_llm("openai", "gpt-4o-mini", api_key="sk-x"),
    lambda c: c.project.delete_llm(),
    lambda c: c.project.set_webhook(None),
    lambda c: c.project.new_webhook_secret(),
    lambda c: c.project.tools(),
    lambda c: c.project.set_tools([]),
    lambda c: c.project.mcp_servers(),
    lambda c: c.project.set_mcp_servers([]),
    lambda c: c.project.mcp_server_tools("gh"),
    lambda c: c.project.usage(group_by="model"),
    lambda c: c.files.upload(io.BytesIO(b"x"), filename="x.txt"),
    lambda c: c.files.list(purpose="input"),
    lambda c: c.files.get(F),
    lambda c: c.files.content(F),
    lambda c: c.files.delete(F),
    lambda c: c.admin.projects.list(),
    lambda c: c.admin.projects.create("p"),
    lambda c: c.admin.projects.get(P),
    lambda c: c.admin.projects.get_llm(P),
    lambda c: c.admin.projects.set_llm(P, "openrouter", "m"),
    lambda c: c.admin.projects.delete_llm(P),
    lambda c: c.admin.projects.set_limits(P, max_queued_runs=3),
    lambda c: c.admin.projects.set_rate_limit(P, 60),
    lambda c: c.admin.projects.create_api_key(P),
    lambda c: c.admin.projects.revoke_api_key(P, K),
    lambda c: c.admin.projects.usage(P, from_="2026-01-01"),
    lambda c: c.admin.projects.tools(P),
    lambda c: c.admin.projects.set_tools(P, []),
    lambda c: c.admin.projects.mcp_servers(P),
    lambda c: c.admin.projects.set_mcp_servers(P, []),
    lambda c: c.admin.projects.mcp_server_tools(P, "gh"),
    lambda c: c.admin.prices.get(),
    lambda c: c.admin.prices.set([]),
]


def respond(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/events"):
        body = 'event: session.succeeded\nid: 1000000000\ndata: {"status": "succeeded"}\n\n'
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    if path.endswith("/content"):
        return httpx.Response(200, content=b"bytes")
    if path == "/metrics":
        return httpx.Response(200, text="# metrics\n")
    if request.method == "DELETE" and "/api-keys/" in path:
        return httpx.Response(204)
    return httpx.Response(200, json={"status": "succeeded"})


def operations() -> Set[Tuple[str, str]]:
    document = json.loads(OPENAPI.read_text())
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }


def template_of(method: str, path: str, templates: Set[Tuple[str, str]]) -> Tuple[str, str]:
    for m, template in templates:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if m == method and re.match(pattern, path):
            return m, template
    raise AssertionError(f"{method} {path} is not an operation of openapi.json")


def test_every_operation_is_covered() -> None:
    sent: List[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return respond(request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = stewrd.Client("http://stewrd.test", "sk-stw_k", admin_token="adm", http_client=http)
    for call in CALLS:
        call(client)
    wanted = operations() - NOT_CLIENT_CALLS
    covered = {template_of(r.method, r.url.path, wanted) for r in sent}
    assert wanted - covered == set(), "operations with no client method"
    # Admin calls use the admin token, project calls the key.
    for r in sent:
        auth = r.headers.get("authorization")
        if r.url.path.startswith("/v1/admin/"):
            assert auth == "Bearer adm"
        elif r.url.path.startswith("/v1/"):
            assert auth == "Bearer sk-stw_k"
        else:
            assert auth is None


def test_query_parameters_are_sent_as_queries() -> None:
    sent: List[httpx.Request] = []
    http = httpx.Client(transport=httpx.MockTransport(lambda r: (sent.append(r), respond(r))[1]))
    client = stewrd.Client("http://stewrd.test/base", "k", http_client=http)
    client.files.list(purpose="artifact", session_id="s", limit=2, after="file_x")
    client.project.usage(from_="2026-01-01", to="2026-01-31")
    client.sessions.get("a/b", wait=5)
    assert str(sent[0].url) == "http://stewrd.test/base/v1/files?purpose=artifact&session_id=s&limit=2&after=file_x"
    assert str(sent[1].url) == "http://stewrd.test/base/v1/project/usage?from=2026-01-01&to=2026-01-31"
    assert sent[2].url.raw_path == b"/base/v1/sessions/a%2Fb?wait=5"


def test_agent_sends_only_the_options_given() -> None:
    sent: List[httpx.Request] = []
    http = httpx.Client(transport=httpx.MockTransport(lambda r: (sent.append(r), respond(r))[1]))
    client = stewrd.Client("http://stewrd.test", "k", http_client=http)
    client.agent("hello", stream=True, max_steps=3, metadata={"a": "b"})
    assert json.loads(sent[0].content) == {"message": "hello", "stream": True, "max_steps": 3, "metadata": {"a": "b"}}
    assert re.fullmatch(r"[0-9a-f-]{36}", sent[0].headers["idempotency-key"])


def test_agent_options_match_the_openapi_request_body() -> None:
    document = json.loads(OPENAPI.read_text())
    fields = set(document["components"]["schemas"]["CreateAgentIn"]["properties"])
    params = set(inspect.signature(stewrd.Client("http://x", "k").agent).parameters)
    assert params - {"idempotency_key", "extra_body"} == fields


PAIRS = [
    (_sessions.Sessions, _sessions.AsyncSessions),
    (_project.Project, _project.AsyncProject),
    (_files.Files, _files.AsyncFiles),
    (_admin.AdminProjects, _admin.AsyncAdminProjects),
    (_admin.AdminPrices, _admin.AsyncAdminPrices),
    (stewrd.Client, stewrd.AsyncClient),
]


@pytest.mark.parametrize("sync_cls, async_cls", PAIRS, ids=lambda c: c.__name__)
def test_sync_and_async_have_the_same_methods(sync_cls: type, async_cls: type) -> None:
    def public(cls: type) -> dict:
        return {
            name: member for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")
        }

    sync_methods, async_methods = public(sync_cls), public(async_cls)
    assert set(sync_methods) == set(async_methods)
    for name, method in sync_methods.items():
        twin = async_methods[name]
        assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name
        assert list(inspect.signature(method).parameters) == list(inspect.signature(twin).parameters), name


def test_async_client_covers_the_same_operations() -> None:
    sent: List[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return respond(request)

    async def main() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with stewrd.AsyncClient("http://stewrd.test", "k", admin_token="a", http_client=http) as c:
            await c.agent("hi")
            assert [e.event async for e in c.events(S)] == ["session.succeeded"]
            assert await c.files.content(F) == b"bytes"
            await c.admin.projects.revoke_api_key(P, K)
            await c.wait(S)

    asyncio.run(main())
    assert [r.method + " " + r.url.path for r in sent] == [
        "POST /v1/agent",
        f"GET /v1/sessions/{S}/events",
        f"GET /v1/files/{F}/content",
        f"DELETE /v1/admin/projects/{P}/api-keys/{K}",
        f"GET /v1/sessions/{S}",
    ]
