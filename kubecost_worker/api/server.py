"""How the read API is served: uvicorn, set so that every request up to the documented size reaches the app and
every refusal keeps Metroculus's error body.

uvicorn answers the requests its HTTP parser refuses (a head longer than it buffers, a malformed request line or
header) itself, with a plain-text 400, before the app sees them. Here:

- the parser is h11 whatever is installed (uvicorn's ``auto`` would pick httptools when present, whose limits
  differ);
- h11 buffers heads up to ``MAX_HEAD_BYTES``: the app's ``MAX_TARGET_BYTES`` plus 16 KiB of headers (h11's
  default for the whole head), so the app sees every request target up to its limit and refuses longer ones
  itself (414). h11 only counts an unfinished head: one longer than this that arrives whole still reaches the app;
- what the parser still refuses gets the error body: a head too long to buffer 414, anything else malformed 400,
  both OM0006 naming ``request``. The connection then closes lingering (as nginx and Apache do): what the client
  still sends is read and dropped for up to ``LINGER_SECONDS``, since closing a socket with unread data resets the
  connection, and a client still sending its long head would lose the answer.

Every server of the read API (``serve``, ``run --serve``, the tests) takes ``server_options()``.
"""

from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from .app import MAX_TARGET_BYTES, ApiError, error_body, too_long

MAX_HEADERS_BYTES = 16 * 1024
MAX_HEAD_BYTES = MAX_TARGET_BYTES + MAX_HEADERS_BYTES
LINGER_SECONDS = 2.0


class _Connection(h11.Connection):
    """h11's server side, remembering whether the request it refused last was refused for its size."""

    too_long = False

    def next_event(self):
        try:
            return super().next_event()
        except h11.RemoteProtocolError as error:
            self.too_long = error.error_status_hint == 431  # h11's hint for a head past its buffer
            raise


class ErrorBodyH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering the requests h11 refuses with the error body instead of plain text."""

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limit = config.h11_max_incomplete_event_size
        self.conn = _Connection(h11.SERVER, **({} if limit is None else {"max_incomplete_event_size": limit}))
        self.refused = False

    def data_received(self, data: bytes) -> None:
        if not self.refused:  # after a refusal: the rest of what the client sends, dropped
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        error = too_long() if self.conn.too_long else ApiError(400, "OM0006", "Invalid request", ["request"])
        body = json.dumps(error_body(error), separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        self.transport.write(self.conn.send(h11.Response(status_code=error.status, headers=headers,
                                                         reason=STATUS_PHRASES[error.status])))
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is whole; closed when the client closes, or after the linger
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


def server_options() -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.Config`` (or ``uvicorn.run``) every server of the read API takes."""
    return {"http": ErrorBodyH11Protocol, "h11_max_incomplete_event_size": MAX_HEAD_BYTES}
