"""The queues, with kombu: RabbitMQ (``amqp://``) for many processes, ``memory://`` for one.

Topology (names under ``KCW_QUEUE_PREFIX``, default ``kcw``), all on the default exchange:

- ``kcw.jobs``: tenant-hour jobs (durable, persistent messages, publisher confirms);
- ``kcw.delay.<N>s``: one queue per retry delay, with ``x-message-ttl`` N s and dead-lettering back into
  ``kcw.jobs``: RabbitMQ's own way to retry later without a plugin; one TTL per queue, so no message waits
  behind a longer one;
- ``kcw.dead``: dead letters, with the reason in headers (``x-kcw-error``, ``x-kcw-error-kind``,
  ``x-kcw-attempts``).

The memory transport has no TTL or dead-lettering: there the delayed retries wait in this process (one
process does everything in the embedded mode) and are released by the consumer loop.

Two guards on what the broker hands over: a body whose headers name a ``compression`` is never decompressed
(kombu would do it while building the message, before any of our code: a 177-byte bz2 body becomes 200 MB);
and while a job runs, heartbeats go out from a thread of their own, so RabbitMQ keeps the connection (and the
unacked message) however long the job takes.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import kombu
import structlog

from ..config import Config, load_config
from .messages import Job

log = structlog.get_logger(__name__)
ATTEMPT = "x-kcw-attempt"
ERROR = "x-kcw-error"
ERROR_KIND = "x-kcw-error-kind"
ATTEMPTS = "x-kcw-attempts"
FAILED_AT = "x-kcw-failed-at"
REFUSED = "x-kcw-refused"  # set on a message refused unread (compressed): the handler dead-letters it
TRUNCATED = "x-kcw-truncated-from"  # on a dead letter: the size of the body it carries an excerpt of
# What a broker made without a Config (tests, bench tools) takes: the settings' defaults
_DEFAULTS = load_config({})


def body_of(message: Any) -> bytes:
    """A message's raw body as bytes, whatever the transport handed over (bytes from AMQP, str from memory://,
    nothing at all from a message kombu could not build)."""
    body = getattr(message, "body", None)
    if isinstance(body, bytes):
        return body
    return body.encode(errors="replace") if isinstance(body, str) else b""


@dataclass(order=True)
class _Delayed:
    due: float
    body: bytes = field(compare=False)
    headers: dict[str, Any] = field(compare=False)


class Broker:
    def __init__(self, url: str, prefix: str = _DEFAULTS.queue_prefix,
                 retry_delays: tuple[int, ...] = _DEFAULTS.retry_delays_seconds,
                 heartbeat: int = _DEFAULTS.broker_heartbeat_seconds):
        self.url = url
        self.is_memory = url.startswith("memory:")
        options = {} if self.is_memory else {"confirm_publish": True}
        self.heartbeat = 0 if self.is_memory else heartbeat
        self.connection = kombu.Connection(url, transport_options=options, heartbeat=self.heartbeat)
        self.exchange = kombu.Exchange("", type="direct")
        self.retry_delays = retry_delays
        self.jobs = kombu.Queue(f"{prefix}.jobs", exchange=self.exchange, routing_key=f"{prefix}.jobs", durable=True)
        self.dead = kombu.Queue(f"{prefix}.dead", exchange=self.exchange, routing_key=f"{prefix}.dead", durable=True)
        self.delays = {
            seconds: kombu.Queue(
                f"{prefix}.delay.{seconds}s", exchange=self.exchange, routing_key=f"{prefix}.delay.{seconds}s",
                durable=True, queue_arguments={"x-message-ttl": seconds * 1000, "x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": f"{prefix}.jobs"})
            for seconds in sorted(set(retry_delays))
        }
        self._delayed: list[_Delayed] = []
        self._declared = False

    @classmethod
    def from_config(cls, config: Config) -> "Broker":
        return cls(config.broker_url, config.queue_prefix, config.retry_delays_seconds, config.broker_heartbeat_seconds)

    def close(self) -> None:
        self.connection.release()

    # -- declaring and publishing ----------------------------------------------------------------------------

    def declare(self, channel: Any = None) -> None:
        channel = channel or self.connection.default_channel
        refuse_compressed(channel)
        for queue in (self.jobs, self.dead, *([] if self.is_memory else self.delays.values())):
            queue(channel).declare()
        self._declared = True

    def _publish(self, body: bytes, queue: kombu.Queue, headers: dict[str, Any] | None = None,
                 channel: Any = None) -> None:
        if not self._declared:
            self.declare(channel)
        producer = kombu.Producer(channel or self.connection.default_channel, exchange=self.exchange)
        publish = producer.publish if channel is not None else self.connection.ensure(
            producer, producer.publish, max_retries=5, interval_start=0.5, interval_step=1, interval_max=5)
        publish(body, routing_key=queue.routing_key, headers=headers or {}, content_type="application/json",
                content_encoding="utf-8", delivery_mode=2, serializer=None)

    def publish(self, job: Job, channel: Any = None) -> None:
        self._publish(job.to_json(), self.jobs, {ATTEMPT: 0}, channel)

    def publish_raw(self, body: bytes, headers: dict[str, Any] | None = None, channel: Any = None) -> None:
        """Publish a body as it is (used by tests to send malformed messages, and by ``dlq replay``)."""
        self._publish(body, self.jobs, headers or {ATTEMPT: 0}, channel)

    def retry_later(self, body: bytes, attempt: int, channel: Any = None) -> float:
        """Send a job back for another try after the delay of this attempt (1-based); returns the delay."""
        delay = self.retry_delays[min(attempt, len(self.retry_delays)) - 1]
        headers = {ATTEMPT: attempt}
        if self.is_memory:
            heapq.heappush(self._delayed, _Delayed(time.monotonic() + delay, body, headers))
        else:
            self._publish(body, self.delays[delay], headers, channel)
        return delay

    def dead_letter(self, body: bytes, error: str, kind: str, attempts: int, channel: Any = None) -> None:
        """To the dead-letter queue with the reason; a body larger than a job can be goes as an excerpt (RabbitMQ
        refuses a message over its size limit, and the consumer would reconnect forever)."""
        headers = {ERROR: error[:1000], ERROR_KIND: kind, ATTEMPTS: attempts,
                   FAILED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if len(body) > DEAD_LETTER_BYTES:
            body, headers[TRUNCATED] = body[:DEAD_LETTER_BYTES], len(body)
        self._publish(body, self.dead, headers, channel)

    @contextlib.contextmanager
    def heartbeats(self, channel: Any = None) -> Iterator[None]:
        """Heartbeats to RabbitMQ from a thread while the caller works without touching the connection (a job
        running inside ``on_message``): else RabbitMQ drops the connection after two missed heartbeats (60 s),
        the ack is lost and the job starts again from its first hour. Only this thread writes meanwhile.
        ``channel``: the one the message came on (a consumer's connection is its own clone of ``connection``);
        None: ``get``'s default channel."""
        transport = channel.connection if channel is not None else getattr(self.connection, "_connection", None)
        send = getattr(transport, "send_heartbeat", None)
        if not self.heartbeat or send is None:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat / 3):
                try:
                    send()
                except Exception as exc:  # the connection is gone: the ack fails and the broker redelivers
                    log.warning("could not send a heartbeat", error=str(exc))
                    return

        thread = threading.Thread(target=beat, name="amqp-heartbeats", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- the in-process delay of the memory transport ----------------------------------------------------------

    def next_delayed_due(self) -> float | None:
        return self._delayed[0].due if self._delayed else None

    def release_due(self, channel: Any = None) -> int:
        released = 0
        while self._delayed and self._delayed[0].due <= time.monotonic():
            item = heapq.heappop(self._delayed)
            self._publish(item.body, self.jobs, item.headers, channel)
            released += 1
        return released

    # -- reading a queue without consuming it for good ---------------------------------------------------------

    def get(self, queue: kombu.Queue) -> Any:
        """One message (to ack or requeue), or None when the queue is empty."""
        if not self._declared:
            self.declare()
        channel = self.connection.default_channel
        refuse_compressed(channel)
        return queue(channel).get(no_ack=False)


# Dead letters carry at most this much of a body: four times what a job may be, enough to see what was sent.
DEAD_LETTER_BYTES = 16384


def refuse_compressed(channel: Any) -> None:
    """Make ``channel`` hand over a compressed message unread: kombu decompresses while it builds the message
    (before ``on_message``, before any size check); the ``compression`` header is taken away first and
    ``REFUSED`` says why. Jobs are small JSON: nothing this service publishes is compressed. Every transport
    builds its messages with ``channel.Message`` (consuming and ``basic_get`` alike): that is where it goes."""
    if not getattr(channel.Message, "refuses_compressed", False):
        channel.Message = _refusing(channel.Message)


@functools.cache
def _refusing(message_class: type) -> type:
    """``message_class`` taking the ``compression`` header away before it builds the message (a class: kombu
    checks ``isinstance(raw, channel.Message)``)."""

    class RefusingCompressed(message_class):
        refuses_compressed = True

        def __init__(self, *args: Any, **kwargs: Any):
            headers = _headers_of(args[0] if args else kwargs.get("payload", kwargs.get("msg")))
            if isinstance(headers, dict) and "compression" in headers:
                headers[REFUSED] = f"compressed body ({str(headers.pop('compression'))[:40]}) refused unread"
            super().__init__(*args, **kwargs)

    return RefusingCompressed


def _headers_of(raw: Any) -> Any:
    """The headers of a message as the transport received it: py-amqp's ``application_headers``, the memory
    transport's payload dict."""
    if isinstance(raw, dict):
        return raw.get("headers")
    return (getattr(raw, "properties", None) or {}).get("application_headers")
