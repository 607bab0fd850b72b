"""Errors come back as StewrdError (subclass by status) carrying the body's
``type``, ``code``, ``param`` and ``message``."""

from __future__ import annotations

import pytest

import stewrd

from conftest import ProjectInfo


def test_bad_request(client: stewrd.Client) -> None:
    with pytest.raises(stewrd.StewrdError) as raised:
        client.agent("   ")
    error = raised.value
    assert isinstance(error, stewrd.BadRequestError)
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.code == "invalid_value"
    assert error.param == "message"
    assert error.message and error.request_id
    assert "status=400" in str(error)


def test_unknown_field_names_the_field(client: stewrd.Client) -> None:
    with pytest.raises(stewrd.BadRequestError) as raised:
        client.agent("hi", extra_body={"colour": "blue"})
    assert (raised.value.code, raised.value.param) == ("unknown_field", "colour")


def test_bad_key(project: ProjectInfo) -> None:
    with stewrd.Client(project.url, "sk-stw_not-a-real-key") as bad:
        with pytest.raises(stewrd.AuthenticationError) as raised:
            bad.project.get()
    assert raised.value.status == 401
    assert raised.value.type == "authentication_error"
    assert raised.value.code


def test_revoked_key(admin: stewrd.Client, project: ProjectInfo) -> None:
    extra = admin.admin.projects.create_api_key(project.id)
    with stewrd.Client(project.url, extra["api_key"]) as c:
        assert c.project.get()["id"] == project.id
        admin.admin.projects.revoke_api_key(project.id, extra["id"])
        with pytest.raises(stewrd.AuthenticationError):
            c.project.get()


def test_not_found_and_conflict(client: stewrd.Client) -> None:
    with pytest.raises(stewrd.NotFoundError) as raised:
        client.sessions.get("00000000-0000-0000-0000-000000000000")
    assert raised.value.status == 404
    run = client.agent("done soon")
    client.wait(run["session_id"], timeout=60)
    with pytest.raises(stewrd.ConflictError) as conflict:
        client.sessions.cancel(run["session_id"])
    assert conflict.value.status == 409
    with pytest.raises(stewrd.ConflictError) as not_waiting:
        client.approve(run["session_id"], [{"tool_call_id": "call_x", "approve": False}])
    assert not_waiting.value.code == "session_not_waiting"


def test_idempotency_key_reused_with_another_body(client: stewrd.Client) -> None:
    client.agent("one body", idempotency_key="reused-key-1")
    with pytest.raises(stewrd.IdempotencyError) as raised:
        client.agent("another body", idempotency_key="reused-key-1")
    assert raised.value.status == 422


def test_missing_credentials_fail_before_any_request(server_url: str) -> None:
    with stewrd.Client(server_url, api_key="") as c:
        with pytest.raises(ValueError, match="api_key"):
            c.project.get()
        assert c.health()["status"] == "ok"
    with stewrd.Client(server_url, "sk-stw_x", admin_token="") as c:
        with pytest.raises(ValueError, match="admin_token"):
            c.admin.projects.list()


def test_error_body_that_is_not_json() -> None:
    from stewrd._errors import error_from_response

    error = error_from_response(502, b"<html>Bad gateway</html>", {"X-Request-Id": "r1"})
    assert error.status == 502 and error.code is None
    assert "Bad gateway" in error.message and error.request_id == "r1"
