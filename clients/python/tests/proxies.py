"""Two small proxies that sit between the client and a real stewrd, to make the
failures the client must survive happen on purpose, on loopback only.

* :class:`CuttingProxy` pumps raw TCP and can cut a connection after a given
  point of the server's answer (an SSE stream cut mid-event, a download cut
  mid-body). It records each connection's request head.
* :class:`ScriptedHttpProxy` understands HTTP/1.1 requests: a script decides,
  per request, to forward it, answer it itself (a 429 or 503), or forward it
  and drop the connection before answering. It records every request with the
  time it arrived.

Both run in daemon threads and stop with ``close()`` (or as context managers).
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit


def _split(url: str) -> Tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


# --- raw TCP ----------------------------------------------------------------

#: Given the connection's index and everything the server has sent on it so
#: far, the number of bytes to let through before cutting, or None to go on.
CutRule = Callable[[int, bytes], Optional[int]]


class CuttingProxy:
    def __init__(self, upstream_url: str, cut: CutRule) -> None:
        self._upstream = _split(upstream_url)
        self._cut = cut
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests: List[bytes] = []  # each connection's first bytes from the client
        self.forwarded: List[bytes] = []  # what each connection let through to the client
        self.cuts = 0
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.requests)

    def request_header(self, index: int, name: str) -> Optional[str]:
        """A header of connection ``index``'s first request."""
        head = self.requests[index].split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            with self._lock:
                index = len(self.requests)
                self.requests.append(b"")
                self.forwarded.append(b"")
            threading.Thread(target=self._upstream_pump, args=(index, client, server), daemon=True).start()
            threading.Thread(target=self._downstream_pump, args=(index, client, server), daemon=True).start()

    def _upstream_pump(self, index: int, client: socket.socket, server: socket.socket) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                with self._lock:
                    if len(self.requests[index]) < 8192:
                        self.requests[index] += data
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _downstream_pump(self, index: int, client: socket.socket, server: socket.socket) -> None:
        seen = b""
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                before = len(seen)
                seen += data
                limit = self._cut(index, seen)
                if limit is not None:
                    if limit > before:
                        client.sendall(seen[before:limit])
                    with self._lock:
                        self.forwarded[index] = seen[: max(limit, before)]
                        self.cuts += 1
                    _reset(client)
                    break
                client.sendall(data)
                with self._lock:
                    if len(self.forwarded[index]) < 1 << 20:
                        self.forwarded[index] = seen
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)

    def __enter__(self) -> "CuttingProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close(sock: socket.socket) -> None:
    # shutdown() first: it wakes a thread blocked in recv() on this socket.
    for step in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
        try:
            step()
        except OSError:
            pass


def _reset(sock: socket.socket) -> None:
    """Closes with a TCP reset, as a crashed peer or a killed proxy would."""
    linger = struct.pack("ii", 1, 0)
    for step in (
        lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger),
        lambda: sock.shutdown(socket.SHUT_RD),
        sock.close,
    ):
        try:
            step()
        except OSError:
            pass


# --- HTTP -------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the proxy received it."""

    at: float  # time.monotonic()
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes


@dataclass
class Answer:
    """What the proxy does with a request: forward it (``status is None``),
    answer it itself, or forward it and then drop the connection unanswered."""

    status: Optional[int] = None
    headers: Dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    drop_after_forward: bool = False


FORWARD = Answer()
Script = Callable[[Seen, List[Seen]], Answer]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a dropped connection is the point, not a failure


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


class ScriptedHttpProxy:
    def __init__(self, upstream_url: str, script: Script) -> None:
        self._upstream = _split(upstream_url)
        self._script = script
        self.seen: List[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(
                    time.monotonic(),
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with proxy._lock:
                    history = list(proxy.seen)
                    proxy.seen.append(seen)
                answer = proxy._script(seen, history)
                if answer.status is not None:
                    self._reply(answer.status, answer.headers, answer.body)
                    return
                status, headers, payload = proxy._forward(seen)
                if answer.drop_after_forward:
                    self.close_connection = True
                    _reset(self.connection)
                    return
                self._reply(status, headers, payload)

            def _reply(self, status: int, headers: Dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _forward(self, seen: Seen) -> Tuple[int, Dict[str, str], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=120)
        try:
            headers = {k: v for k, v in seen.headers.items() if k not in _HOP_BY_HOP}
            connection.request(seen.method, seen.path, body=seen.body or None, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def requests_to(self, method: str, path_prefix: str) -> List[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ScriptedHttpProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
