"""A small fault-injecting HTTP proxy for tests: put it between a client and a real server on 127.0.0.1.

``with FaultProxy(upstream_url) as proxy: ...`` serves on a free loopback port (``proxy.url``). Each request
takes the next action of the script set with ``proxy.script(action, ...)``; when the script is empty the
default action (``proxy.default``, ``PASS`` unless changed) applies. Actions:

- ``PASS``: forward to the upstream and relay status, ``Content-Type`` and body unchanged;
- ``Status(code, body, headers)``: answer without asking the upstream (``body``: dict as JSON, str or bytes);
- ``STALL``: answer nothing for ``stall_seconds`` (interrupted when the proxy closes), then close;
- ``CLOSE``: close the connection without any response (orderly FIN);
- ``RESET``: abort the connection without any response (RST: ``SO_LINGER`` 0);
- ``TRUNCATE``: forward, send the headers with the full ``Content-Length`` and half of the body, then close
  (FIN);
- ``Rewrite(fn)``: forward, then answer ``fn(parsed JSON body)`` with the upstream's status;
- ``partial(warnings)``: a ``Rewrite`` that keeps half of ``data.result`` and adds ``warnings``, as Thanos does
  when a store did not answer;
- ``Trickle(bytes_per_second)``: forward, then send the answer a few bytes at a time at that rate;
- ``Slow(seconds)``: wait that long, then ``PASS`` (a slow Thanos);
- ``When(matches, action)``: ``action`` for a request whose decoded query string ``matches(query)``, ``PASS``
  for the others (as ``proxy.default``: a fault on one kind of query only).

Every request that reaches the proxy is recorded in ``proxy.seen`` (path with query string) and ``proxy.seen_at``
(``time.monotonic()`` of its arrival); ``proxy.count`` is how many.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import requests

PASS = "pass"
STALL = "stall"
CLOSE = "close"
RESET = "reset"
TRUNCATE = "truncate"


@dataclass(frozen=True)
class Status:
    code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rewrite:
    fn: Callable[[dict], dict]


@dataclass(frozen=True)
class Trickle:
    bytes_per_second: float


@dataclass(frozen=True)
class Slow:
    seconds: float


@dataclass(frozen=True)
class When:
    matches: Callable[[str], bool]
    action: Any


def query_of(path: str) -> str:
    """The PromQL of a request path (``""`` for requests without one)."""
    return parse_qs(urlsplit(path).query).get("query", [""])[0]


def partial(warnings: list[str]) -> Rewrite:
    def rewrite(body: dict) -> dict:
        result = body.get("data", {}).get("result", [])
        body["data"]["result"] = result[: len(result) // 2]
        body["warnings"] = list(warnings)
        return body

    return Rewrite(rewrite)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:  # a client that gave up is not our problem
        pass


class FaultProxy:
    def __init__(self, upstream: str, stall_seconds: float = 5.0, upstream_timeout: float = 15.0):
        self.upstream = upstream.rstrip("/")
        self.stall_seconds = stall_seconds
        self.upstream_timeout = upstream_timeout
        self.default: Any = PASS
        self.seen: list[str] = []
        self.seen_at: list[float] = []  # time.monotonic() of each request's arrival
        self._actions: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="faultproxy", daemon=True)
        self._thread.start()

    # -- control ----------------------------------------------------------------------------------------

    def script(self, *actions: Any) -> "FaultProxy":
        """The actions for the next requests, in order (replacing what was left of the previous script)."""
        with self._lock:
            self._actions = list(actions)
        return self

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._actions)

    def reset_counts(self) -> None:
        with self._lock:
            self.seen.clear()
            self.seen_at.clear()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _next_action(self, path: str) -> Any:
        with self._lock:
            self.seen.append(path)
            self.seen_at.append(time.monotonic())
            return self._actions.pop(0) if self._actions else self.default

    def _forward(self, path: str) -> requests.Response:
        return requests.get(self.upstream + path, headers={"Accept-Encoding": "identity"},
                            timeout=self.upstream_timeout)

    # -- the handler ------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: each attempt is one connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None,
                      send_bytes: int | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body if send_bytes is None else body[:send_bytes])
                self.wfile.flush()

            def _abort(self) -> None:
                # SO_LINGER 0 and a real close (no shutdown first): the peer gets a RST, not a FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                for f in (self.rfile, self.wfile):
                    try:
                        f.close()
                    except OSError:
                        pass
                self.connection.close()

            def do_GET(self) -> None:
                action = proxy._next_action(self.path)
                if isinstance(action, When):
                    action = action.action if action.matches(query_of(self.path)) else PASS
                if isinstance(action, Slow):
                    proxy._stop.wait(action.seconds)
                    action = PASS
                self.close_connection = True
                if action == PASS:
                    upstream = proxy._forward(self.path)
                    self._send(upstream.status_code, upstream.content,
                               upstream.headers.get("Content-Type", "application/json"))
                elif isinstance(action, Status):
                    body = action.body
                    if isinstance(body, (dict, list)):
                        body = json.dumps(body)
                    if isinstance(body, str):
                        body = body.encode()
                    content_type = "application/json" if isinstance(action.body, (dict, list)) else "text/plain"
                    self._send(action.code, body or b"", content_type, action.headers)
                elif action == STALL:
                    proxy._stop.wait(proxy.stall_seconds)
                    self._abort()
                elif action == CLOSE:
                    pass  # the server closes the connection; nothing was written
                elif action == RESET:
                    self._abort()
                elif action == TRUNCATE:
                    upstream = proxy._forward(self.path)
                    body = upstream.content
                    # then an orderly close: the client reads the headers and half the body, then EOF
                    self._send(upstream.status_code, body, "application/json", send_bytes=len(body) // 2)
                elif isinstance(action, Trickle):
                    body = proxy._forward(self.path).content
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    piece = max(1, int(action.bytes_per_second / 10))
                    try:
                        for at in range(0, len(body), piece):
                            if proxy._stop.wait(0.1):
                                break
                            self.wfile.write(body[at:at + piece])
                            self.wfile.flush()
                    except OSError:
                        pass  # the client gave up, as it should
                elif isinstance(action, Rewrite):
                    upstream = proxy._forward(self.path)
                    body = json.dumps(action.fn(upstream.json())).encode()
                    self._send(upstream.status_code, body, "application/json")
                else:
                    raise ValueError(f"unknown fault action {action!r}")

        return Handler
