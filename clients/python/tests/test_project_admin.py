"""The project's settings and the operator's admin API, against the server."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

import stewrd

from conftest import ProjectInfo


def test_project_settings(client: stewrd.Client, project: ProjectInfo, receiver_factory: Any) -> None:
    shown = client.project.get()
    assert shown["id"] == project.id and shown["llm"]["provider"] == "openai"

    with_llm = client.project.set_llm("openrouter", "openai/gpt-4o-mini", api_key="sk-or-test", fallback_models=["x/y"])
    assert with_llm["llm"]["provider"] == "openrouter" and with_llm["llm"]["has_provider_key"] is True
    assert with_llm["llm"]["fallback_models"] == ["x/y"]
    assert client.project.delete_llm()["llm"]["has_provider_key"] is False

    tools = client.project.set_tools([{"name": "ping", "url": receiver_factory().url + "/ping"}])
    assert [t["name"] for t in tools["tools"]] == ["ping"] == [t["name"] for t in client.project.tools()["tools"]]
    assert client.project.set_tools([])["tools"] == []

    mcp = receiver_factory(lambda got: (500, "text/plain", b"not an MCP server"))
    servers = client.project.set_mcp_servers(
        [{"name": "docs", "url": mcp.url + "/mcp", "headers": {"Authorization": "Bearer secret-value"}}]
    )
    assert servers["servers"][0]["headers"] == ["Authorization"]
    assert client.project.mcp_servers()["servers"][0]["name"] == "docs"
    with pytest.raises(stewrd.StewrdError) as raised:
        client.project.mcp_server_tools("docs")
    assert raised.value.status == 502 and raised.value.code == "mcp_server_error"
    with pytest.raises(stewrd.NotFoundError):
        client.project.mcp_server_tools("nope")
    client.project.set_mcp_servers([])

    run = client.agent("count me")
    client.wait(run["session_id"], timeout=60)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    by_day = client.project.usage(from_=today, to=today)["data"]
    assert by_day and by_day[0]["date"] == today and by_day[0]["runs"] == 1
    by_model = client.project.usage(group_by="model")["data"]
    assert by_model[0]["model"] == "gpt-4o-mini"


def test_admin_projects(admin: stewrd.Client, project: ProjectInfo, receiver_factory: Any) -> None:
    projects = admin.admin.projects
    assert project.id in [p["id"] for p in projects.list()["data"]]
    assert projects.get(project.id)["id"] == project.id
    assert projects.set_llm(project.id, "openai", "gpt-4o")["llm"]["model"] == "gpt-4o"
    assert projects.get_llm(project.id)["llm"]["model"] == "gpt-4o"
    assert projects.delete_llm(project.id)["llm"]["model"] == "gpt-4o-mini"

    limited = projects.set_limits(project.id, max_queued_runs=5, tokens_per_day=1000, usd_per_day=2.5)
    assert limited["limits"]["max_queued_runs"] == 5 and limited["limits"]["usd_per_day"] == 2.5
    assert projects.set_limits(project.id)["limits"]["max_queued_runs"] is None
    assert projects.set_rate_limit(project.id, 120)["rate_limit"]["requests_per_minute"] == 120
    assert projects.set_rate_limit(project.id, None)["rate_limit"]["requests_per_minute"] is None

    url = receiver_factory().url
    assert projects.set_tools(project.id, [{"name": "t1", "url": url}])["tools"][0]["name"] == "t1"
    assert projects.tools(project.id)["tools"][0]["name"] == "t1"
    assert projects.set_mcp_servers(project.id, [{"name": "m", "url": url}])["servers"][0]["name"] == "m"
    assert projects.mcp_servers(project.id)["servers"][0]["name"] == "m"
    with pytest.raises(stewrd.StewrdError) as raised:
        projects.mcp_server_tools(project.id, "m")
    assert raised.value.status == 502
    assert projects.usage(project.id, group_by="model")["data"] == []

    with pytest.raises(stewrd.NotFoundError):
        projects.get("00000000-0000-0000-0000-000000000000")
    with stewrd.Client(admin.base_url, admin_token="wrong") as bad:
        with pytest.raises(stewrd.AuthenticationError):
            bad.admin.projects.list()


def test_admin_prices(admin: stewrd.Client) -> None:
    price = {"provider": "openrouter", "model": "pytest/priced-model", "input_per_mtok": 1.5, "output_per_mtok": 3}
    table = admin.admin.prices.set([price])["prices"]
    mine = [p for p in table if p["model"] == "pytest/priced-model"]
    assert mine and mine[0]["source"] == "operator" and mine[0]["input_per_mtok"] == 1.5
    assert any(p["model"] == "pytest/priced-model" for p in admin.admin.prices.get()["prices"])


def test_operations(client: stewrd.Client) -> None:
    assert client.health()["status"] == "ok"
    assert client.ready()["status"] == "ready"
    assert "stewrd_" in client.metrics()
