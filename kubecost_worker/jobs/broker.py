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
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

import kombu
import structlog

from ..config import Config
from .messages import Job

log = structlog.get_logger(__name__)
ATTEMPT = "x-kcw-attempt"
ERROR = "x-kcw-error"
ERROR_KIND = "x-kcw-error-kind"
ATTEMPTS = "x-kcw-attempts"
FAILED_AT = "x-kcw-failed-at"


@dataclass(order=True)
class _Delayed:
    due: float
    body: bytes = field(compare=False)
    headers: dict[str, Any] = field(compare=False)


class Broker:
    def __init__(self, url: str, prefix: str = "kcw", retry_delays: tuple[int, ...] = (30, 120, 600, 1800)):
        self.url = url
        self.is_memory = url.startswith("memory:")
        options = {} if self.is_memory else {"confirm_publish": True}
        self.connection = kombu.Connection(url, transport_options=options, heartbeat=0 if self.is_memory else 30)
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
        return cls(config.broker_url, config.queue_prefix, config.retry_delays_seconds)

    def close(self) -> None:
        self.connection.release()

    # -- declaring and publishing ----------------------------------------------------------------------------

    def declare(self, channel: Any = None) -> None:
        channel = channel or self.connection.default_channel
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
        headers = {ERROR: error[:1000], ERROR_KIND: kind, ATTEMPTS: attempts,
                   FAILED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._publish(body, self.dead, headers, channel)

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
        return queue(self.connection.default_channel).get(no_ack=False)
