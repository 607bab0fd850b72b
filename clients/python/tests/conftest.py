"""Fixtures: a real stewrd (``STEWRD_TEST_URL``, admin token
``STEWRD_TEST_ADMIN_TOKEN``) and a fresh project per test, so tests never see
each other's sessions, files or settings."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Iterator, List, Tuple

import httpx
import pytest

import stewrd

SERVER_URL = os.environ.get("STEWRD_TEST_URL", "http://127.0.0.1:18080").rstrip("/")
ADMIN_TOKEN = os.environ.get("STEWRD_TEST_ADMIN_TOKEN", "dev-admin-token")


@dataclass
class ProjectInfo:
    id: str
    api_key: str
    url: str

    def client(self, url: str = "", **kwargs: object) -> stewrd.Client:
        return stewrd.Client(url or self.url, self.api_key, **kwargs)  # type: ignore[arg-type]

    def async_client(self, url: str = "", **kwargs: object) -> stewrd.AsyncClient:
        return stewrd.AsyncClient(url or self.url, self.api_key, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server_url() -> str:
    try:
        httpx.get(f"{SERVER_URL}/healthz", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"no stewrd at STEWRD_TEST_URL={SERVER_URL} ({exc}); start `stewrd dev`")
    return SERVER_URL


@pytest.fixture(scope="session")
def admin(server_url: str) -> Iterator[stewrd.Client]:
    with stewrd.Client(server_url, admin_token=ADMIN_TOKEN) as client:
        yield client


@pytest.fixture
def project(admin: stewrd.Client, request: pytest.FixtureRequest) -> ProjectInfo:
    created = admin.admin.projects.create(f"pytest {request.node.name} {uuid.uuid4().hex[:8]}")
    return ProjectInfo(created["project"]["id"], created["api_key"], admin.base_url)


@pytest.fixture
def client(project: ProjectInfo) -> Iterator[stewrd.Client]:
    with project.client() as c:
        yield c


# --- a local HTTP receiver (webhooks, server tools) -------------------------


@dataclass
class Received:
    path: str
    headers: Dict[str, str]
    body: bytes


class Receiver:
    """Records every POST and answers it with ``respond(received)`` →
    ``(status, content_type, body)``."""

    def __init__(self, respond: Callable[[Received], Tuple[int, str, bytes]]) -> None:
        self.received: List[Received] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                receiver.received.append(got)
                status, content_type, payload = respond(got)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                receiver.event.set()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    made: List[Receiver] = []

    def make(respond: Callable[[Received], Tuple[int, str, bytes]] = lambda r: (200, "text/plain", b"ok")) -> Receiver:
        receiver = Receiver(respond)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()
