"""Retries: 429/503 honour Retry-After; a lost submit is repeated with the same
Idempotency-Key (one session, not two); other writes are never repeated after
a connection error, and a download cut mid-body resumes with Range."""

from __future__ import annotations

import io
import json
import os
from typing import List

import pytest

import stewrd

from conftest import ProjectInfo
from proxies import FORWARD, Answer, CuttingProxy, ScriptedHttpProxy, Seen


def first_time(method: str, path: str, answer: Answer):
    """A script that treats the first ``method path`` with ``answer``, and
    forwards everything else."""

    def script(seen: Seen, history: List[Seen]) -> Answer:
        earlier = [s for s in history if s.method == method and s.path.startswith(path)]
        if seen.method == method and seen.path.startswith(path) and not earlier:
            return answer
        return FORWARD

    return script


UNAVAILABLE = Answer(
    503,
    {"Content-Type": "application/json", "Retry-After": "0"},
    json.dumps({"error": {"type": "service_unavailable_error", "code": "not_ready", "message": "x"}}).encode(),
)
DROPPED = Answer(drop_after_forward=True)


@pytest.mark.parametrize("first", [UNAVAILABLE, DROPPED], ids=["503", "dropped-after-forward"])
def test_submit_is_retried_with_the_same_idempotency_key(
    client: stewrd.Client, project: ProjectInfo, first: Answer
) -> None:
    with ScriptedHttpProxy(project.url, first_time("POST", "/v1/agent", first)) as proxy:
        with project.client(proxy.url) as via_proxy:
            run = via_proxy.agent("only once, please")
        submits = proxy.requests_to("POST", "/v1/agent")
    assert len(submits) == 2
    keys = {s.headers.get("idempotency-key") for s in submits}
    assert len(keys) == 1 and None not in keys
    assert submits[0].body == submits[1].body
    sessions = client.sessions.list()["data"]
    assert [s["id"] for s in sessions] == [run["session_id"]]
    assert client.wait(run["session_id"], timeout=60)["output"] == "Echo: only once, please"


async def test_submit_is_retried_async(client: stewrd.Client, project: ProjectInfo) -> None:
    with ScriptedHttpProxy(project.url, first_time("POST", "/v1/agent", DROPPED)) as proxy:
        async with project.async_client(proxy.url) as via_proxy:
            run = await via_proxy.agent("async, only once")
        submits = proxy.requests_to("POST", "/v1/agent")
    assert len(submits) == 2
    assert submits[0].headers["idempotency-key"] == submits[1].headers["idempotency-key"]
    assert [s["id"] for s in client.sessions.list()["data"]] == [run["session_id"]]


def test_each_submit_call_gets_its_own_key(project: ProjectInfo) -> None:
    with ScriptedHttpProxy(project.url, lambda seen, history: FORWARD) as proxy:
        with project.client(proxy.url) as via_proxy:
            a = via_proxy.agent("first")
            via_proxy.wait(a["session_id"], timeout=60)
            via_proxy.agent("second", session_id=a["session_id"])
            via_proxy.agent("third", idempotency_key="my-own-key")
        keys = [s.headers["idempotency-key"] for s in proxy.requests_to("POST", "/v1/agent")]
    assert len(set(keys[:2])) == 2 and keys[2] == "my-own-key"


def test_retry_after_is_honoured(client: stewrd.Client, project: ProjectInfo) -> None:
    run = client.agent("rate limited read")
    limited = Answer(
        429,
        {"Content-Type": "application/json", "Retry-After": "1"},
        json.dumps({"error": {"type": "rate_limit_error", "code": "rate_limited", "message": "slow down"}}).encode(),
    )
    path = f"/v1/sessions/{run['session_id']}"
    with ScriptedHttpProxy(project.url, first_time("GET", path, limited)) as proxy:
        with project.client(proxy.url) as via_proxy:
            session = via_proxy.sessions.get(run["session_id"], wait=10)
        reads = proxy.requests_to("GET", path)
    assert session["id"] == run["session_id"]
    assert len(reads) == 2
    assert reads[1].at - reads[0].at >= 0.95, "retried before Retry-After"


def test_retry_after_on_a_submit(client: stewrd.Client, project: ProjectInfo) -> None:
    limited = Answer(429, {"Retry-After": "1"}, b"")
    with ScriptedHttpProxy(project.url, first_time("POST", "/v1/agent", limited)) as proxy:
        with project.client(proxy.url) as via_proxy:
            via_proxy.agent("after a second")
        submits = proxy.requests_to("POST", "/v1/agent")
    assert len(submits) == 2 and submits[1].at - submits[0].at >= 0.95
    assert len(client.sessions.list()["data"]) == 1


def test_a_long_retry_after_is_not_slept_through(project: ProjectInfo) -> None:
    budget = Answer(
        429,
        {"Content-Type": "application/json", "Retry-After": "3600"},
        json.dumps(
            {"error": {"type": "rate_limit_error", "code": "token_budget_exhausted", "message": "x", "param": None}}
        ).encode(),
    )
    with ScriptedHttpProxy(project.url, first_time("POST", "/v1/agent", budget)) as proxy:
        with project.client(proxy.url, max_retry_delay=5) as via_proxy:
            with pytest.raises(stewrd.RateLimitError) as raised:
                via_proxy.agent("not today")
    assert raised.value.code == "token_budget_exhausted"
    assert raised.value.retry_after == 3600
    assert len(proxy.requests_to("POST", "/v1/agent")) == 1


def test_retries_give_up_after_max_retries(project: ProjectInfo) -> None:
    with ScriptedHttpProxy(project.url, lambda seen, history: UNAVAILABLE) as proxy:
        with project.client(proxy.url, max_retries=2) as via_proxy:
            with pytest.raises(stewrd.ServiceUnavailableError) as raised:
                via_proxy.project.get()
    assert raised.value.status == 503 and raised.value.code == "not_ready"
    assert len(proxy.seen) == 3


def test_a_post_is_not_repeated_after_a_connection_error(client: stewrd.Client, project: ProjectInfo) -> None:
    run = client.agent("cancel me")
    path = f"/v1/sessions/{run['session_id']}/cancel"
    with ScriptedHttpProxy(project.url, first_time("POST", path, DROPPED)) as proxy:
        with project.client(proxy.url, max_retries=3) as via_proxy:
            with pytest.raises(stewrd.APIConnectionError) as raised:
                via_proxy.sessions.cancel(run["session_id"])
        assert len(proxy.requests_to("POST", path)) == 1
    assert raised.value.status is None


def test_a_put_is_not_repeated_after_a_connection_error(project: ProjectInfo) -> None:
    with ScriptedHttpProxy(project.url, first_time("PUT", "/v1/project/webhook", DROPPED)) as proxy:
        with project.client(proxy.url, max_retries=3) as via_proxy:
            with pytest.raises(stewrd.APIConnectionError):
                via_proxy.project.set_webhook(None)
        assert len(proxy.requests_to("PUT", "/v1/project/webhook")) == 1


def test_reads_are_repeated_after_a_connection_error(project: ProjectInfo) -> None:
    with ScriptedHttpProxy(project.url, first_time("GET", "/v1/project", DROPPED)) as proxy:
        with project.client(proxy.url) as via_proxy:
            assert via_proxy.project.get()["id"] == project.id
        assert len(proxy.requests_to("GET", "/v1/project")) == 2


def test_an_upload_is_resent_whole_after_a_503(client: stewrd.Client, project: ProjectInfo) -> None:
    data = os.urandom(50_000)
    stream = io.BytesIO(b"skip me" + data)
    stream.seek(7)  # uploads start at the stream's position, also on a retry
    with ScriptedHttpProxy(project.url, first_time("POST", "/v1/files", UNAVAILABLE)) as proxy:
        with project.client(proxy.url) as via_proxy:
            uploaded = via_proxy.files.upload(stream, filename="retried.bin")
        uploads = proxy.requests_to("POST", "/v1/files")
    assert len(uploads) == 2
    for upload in uploads:  # (each attempt has its own multipart boundary)
        assert data in upload.body and b"skip me" not in upload.body
    assert client.files.content(uploaded["id"]) == data
    assert len(client.files.list()["data"]) == 1


def test_a_one_shot_upload_is_not_resent(project: ProjectInfo) -> None:
    from test_files import OneShot

    with ScriptedHttpProxy(project.url, first_time("POST", "/v1/files", UNAVAILABLE)) as proxy:
        with project.client(proxy.url) as via_proxy:
            with pytest.raises(stewrd.ServiceUnavailableError):
                via_proxy.files.upload(OneShot(b"once"), filename="once.bin")
        assert len(proxy.requests_to("POST", "/v1/files")) == 1


def test_download_cut_mid_body_resumes_with_range(client: stewrd.Client, project: ProjectInfo) -> None:
    data = os.urandom(700_000)
    uploaded = client.files.upload(io.BytesIO(data), filename="blob.bin")

    def cut_after_half(index: int, seen: bytes) -> object:
        return 300_000 if index == 0 and len(seen) >= 300_000 else None

    with CuttingProxy(project.url, cut_after_half) as proxy, project.client(proxy.url) as via_proxy:
        out = io.BytesIO()
        written = via_proxy.files.download(uploaded["id"], out)
    assert proxy.cuts == 1 and proxy.connections == 2
    resumed_from = proxy.request_header(1, "range")
    assert resumed_from is not None and resumed_from.startswith("bytes=")
    assert written == len(data) and out.getvalue() == data
