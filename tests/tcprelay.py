"""A small threaded TCP relay for fault injection: put it between a client and a real server on 127.0.0.1.

``with TcpRelay("127.0.0.1", 5672) as relay: ...`` listens on a free loopback port (``relay.port``) and forwards
every accepted connection to the upstream, byte for byte, in both directions. ``relay.cut()`` aborts every
current connection at once, on both sides, with a RST (``SO_LINGER`` 0): to the client and to the server it
looks like a network failure, not an orderly close. The listener stays open, so the client can reconnect.

``relay.accepted`` counts the connections accepted so far, ``relay.active`` the ones open now and
``relay.cuts`` the connections aborted by ``cut()``.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading

_LINGER_ZERO = struct.pack("ii", 1, 0)


class _Pair(threading.Thread):
    """One relayed connection: its own thread moves bytes both ways until either side closes or it is cut."""

    def __init__(self, relay: "TcpRelay", client: socket.socket, upstream: socket.socket):
        super().__init__(name="tcprelay-pair", daemon=True)
        self.relay = relay
        self.client = client
        self.upstream = upstream
        self.kill = threading.Event()

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self.client, selectors.EVENT_READ, self.upstream)
            selector.register(self.upstream, selectors.EVENT_READ, self.client)
            while not self.kill.is_set():
                for key, _ in selector.select(0.05):
                    data = key.fileobj.recv(65536)
                    if not data:  # an orderly close by one side: close the other one too
                        return
                    key.data.sendall(data)
        except OSError:
            pass
        finally:
            selector.close()
            for sock in (self.client, self.upstream):
                if self.kill.is_set():
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                    except OSError:
                        pass
                try:
                    sock.close()
                except OSError:
                    pass
            self.relay._forget(self)


class TcpRelay:
    def __init__(self, upstream_host: str, upstream_port: int, listen_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.accepted = 0
        self.cuts = 0
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.host, self.port = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept_loop, name="tcprelay-accept", daemon=True)
        self._thread.start()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._pairs)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                client.close()
                continue
            pair = _Pair(self, client, upstream)
            with self._lock:
                self.accepted += 1
                self._pairs.add(pair)
            pair.start()

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)

    def cut(self, timeout: float = 5.0) -> int:
        """Abort every current connection (RST to both sides); returns how many were cut."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.kill.set()
        for pair in pairs:
            pair.join(timeout)
        with self._lock:
            self.cuts += len(pairs)
        return len(pairs)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._listener.close()
        self.cut()

    def __enter__(self) -> "TcpRelay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
