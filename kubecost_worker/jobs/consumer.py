"""Consuming jobs: each message is processed, retried later, or dead-lettered, and acked only after that.

Errors are classified once, where they enter (``TransientError`` / ``TerminalError``, ``errors.kind_of``); here
they only decide the message's fate:
- invalid message or terminal error: dead-letter at once with the reason, ack, go on;
- transient error: back through the delay queue of the next attempt (growing delays), ack; after
  ``KCW_MAX_RETRIES`` retries, dead-letter;
- a range longer than one batch (``pipeline.next_batch`` of ``KCW_BATCH_HOURS``): split into a job of its first
  batch and one of the rest (split again when its turn comes), published before the range is acked (RabbitMQ
  closes the channel of a message unacked for 30 minutes, its ``consumer_timeout``: a month's rerun of a large
  tenant would start again forever; and jobs queued behind a long backfill wait for one of its batches, not all of
  them), then processed like any other; a job's hours run as ``Pipeline.batches`` (summaries fetched together,
  each hour committed on its own), each ending in an ``HourOutcome``: a job of one hour meets its hour's fate, and
  an hour of a longer job that fails is retried or dead-lettered as a job of its own;
- success: ack, after every hour of the job is committed, with heartbeats sent meanwhile.
A crash before the ack leaves the message unacked: the broker delivers it again, and reprocessing an hour
replaces it exactly.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from typing import Any, Callable

import structlog
from kombu.mixins import ConsumerMixin

from .. import telemetry
from ..config import Config
from ..errors import as_worker_error, kind_of
from ..pipeline import next_batch
from ..store.ledger import RunStatus
from .broker import ATTEMPT, REFUSED, Broker, body_of
from .messages import InvalidJob, Job, parse

log = structlog.get_logger(__name__)


class JobHandler:
    def __init__(self, config: Config, broker: Broker, pipeline_factory: Callable[[], Any]):
        self.config = config
        self.broker = broker
        self._pipeline_factory = pipeline_factory
        self._pipeline = None
        self._opening = threading.Lock()
        self.outcomes: Counter[str] = Counter()

    def pipeline(self) -> Any:
        # Opened on first use: a ClickHouse that is down at start-up is a transient error of the first job,
        # not a crash of the consumer. The lock: the readiness probe may ask from its own thread.
        with self._opening:
            if self._pipeline is None:
                self._pipeline = self._pipeline_factory()
            return self._pipeline

    def handle(self, message: Any, channel: Any = None) -> str:
        try:
            body = body_of(message)
            attempt = _attempt(message.headers)
        except Exception as exc:  # a message no code path foresaw: never a reason for the consumer to stop
            return self._dead(message, b"", f"unreadable message: {type(exc).__name__}: {exc}", "invalid", 0, channel)
        if (message.headers or {}).get(REFUSED):
            return self._dead(message, body, str(message.headers[REFUSED]), "invalid", attempt, channel)
        try:
            job = parse(body, self.config.max_rerun_hours)
        except InvalidJob as exc:
            return self._dead(message, body, str(exc), "invalid", attempt, channel)
        first = next_batch(job.hour_starts, self.config.batch_hours)
        if len(first) < len(job.hour_starts):
            return self._split(message, job, first, channel)
        bound = log.bind(tenant=job.cloud_account_id, job=job.describe(), attempt=attempt)
        try:
            with self.broker.heartbeats(channel):
                outcomes = [outcome for batch in self.pipeline().batches(job.cloud_account_id, job.hour_starts,
                                                                         job.reason, job.force) for outcome in batch]
        except Exception as exc:  # no hour could begin (ClickHouse unavailable), or a bug: the job's own failure
            error = as_worker_error(exc)
            if kind_of(error) == "unexpected":
                bound.exception("job failed unexpectedly")
            return self._failed(message, body, kind_of(error), str(error), attempt, channel)
        failed = [outcome for outcome in outcomes if outcome.status == RunStatus.FAILED]
        if len(outcomes) == 1 and failed:  # one hour: the job's fate is the hour's
            return self._failed(message, body, failed[0].kind, failed[0].error, attempt, channel)
        for outcome in failed:  # each failed hour of a batch goes on as a job of its own
            self._retry_or_dead_letter(job.of_hours([outcome.hour]).to_json(), outcome.kind, outcome.error, attempt,
                                       channel)
        message.ack()
        if failed:
            bound.warning("hours of the job failed", failed=len(failed), hours=len(outcomes))
            return self._count("partly-done")
        # refused: the ledger says why, the hour keeps its data; nothing to retry or dead-letter
        return self._count("refused" if any(o.status == RunStatus.REFUSED for o in outcomes) else "done")

    def _failed(self, message: Any, body: bytes, kind: str, error: str, attempt: int, channel: Any) -> str:
        outcome = self._retry_or_dead_letter(body, kind, error, attempt, channel)
        message.ack()
        return outcome

    def _retry_or_dead_letter(self, body: bytes, kind: str, error: str, attempt: int, channel: Any) -> str:
        """A failed job, or a failed hour of one as a job of its own: later again through the delay queue if the
        failure is transient and retries are left, else dead-lettered with its reason."""
        if kind == "transient" and attempt < self.config.max_retries:
            delay = self.broker.retry_later(body, attempt + 1, channel)
            log.warning("job failed, retrying later", error=error, delay_seconds=delay, attempt=attempt,
                        body=body[:200])
            return self._count("retried")
        return self._dead_letter(body, error, kind, attempt, channel)

    def refuse(self, message: Any, error: Exception, channel: Any = None) -> None:
        """kombu's ``on_decode_error``: a message kombu could not build is dead-lettered, never acked silently."""
        body = body_of(message)
        self._dead(message, body, f"undecodable message: {type(error).__name__}: {error}", "invalid", 0, channel)

    def _split(self, message: Any, job: Job, first: list[int], channel: Any) -> str:
        """The range's ``first`` batch as a job, and the rest of the range as another behind it, published (with
        publisher confirms) before the range is acked: a crash in between publishes some hours twice, and running
        an hour twice stores it once. The rest is split again when its turn comes, so a long backfill holds two
        messages of the queue at a time, and the jobs queued meanwhile (other tenants' scheduled hours) wait for one
        of its batches at most, not for all of them."""
        self.broker.publish(job.of_hours(first), channel)
        self.broker.publish(job.of_hours(job.hour_starts[len(first):]), channel)
        message.ack()
        log.info("job split into hours", tenant=job.cloud_account_id, job=job.describe(),
                 hours=len(job.hour_starts), hours_per_job=len(first))
        return self._count("split")

    def _dead(self, message: Any, body: bytes, error: str, kind: str, attempt: int, channel: Any) -> str:
        outcome = self._dead_letter(body, error, kind, attempt, channel)
        message.ack()
        return outcome

    def _dead_letter(self, body: bytes, error: str, kind: str, attempt: int, channel: Any) -> str:
        self.broker.dead_letter(body, error, kind, attempt, channel)
        telemetry.DEAD_LETTERS.labels(kind).inc()
        log.error("job dead-lettered", kind=kind, error=error[:300], attempts=attempt, body=body[:200])
        return self._count(f"dead-{kind}")

    def _count(self, outcome: str) -> str:
        self.outcomes[outcome] += 1
        return outcome


def _attempt(headers: dict[str, Any] | None) -> int:
    try:
        return max(0, int((headers or {}).get(ATTEMPT, 0)))
    except (TypeError, ValueError):
        return 0


class JobConsumer(ConsumerMixin):
    """``consume``: long-running; reconnects after broker restarts (kombu's ConsumerMixin)."""

    def __init__(self, broker: Broker, handler: JobHandler, prefetch: int,
                 on_iteration: Callable[[Any], None] | None = None):
        self.broker = broker
        self.connection = broker.connection
        self.handler = handler
        self.prefetch = prefetch
        self._on_iteration = on_iteration
        self._channel = None

    def get_consumers(self, Consumer, channel):  # noqa: N803 (kombu's signature)
        self._channel = channel
        self.broker.declare(channel)
        return [Consumer(queues=[self.broker.jobs], on_message=self._on_message, prefetch_count=self.prefetch,
                         accept=["application/json"],
                         on_decode_error=lambda message, error: self.handler.refuse(message, error, self._channel))]

    def _on_message(self, message: Any) -> None:
        self.handler.handle(message, self._channel)

    def on_connection_revived(self) -> None:
        log.info("connected to the broker", url=self.broker.connection.as_uri())

    def on_iteration(self) -> None:
        if self._channel is not None:
            self.broker.release_due(self._channel)
            if self._on_iteration:
                self._on_iteration(self._channel)


def drain(broker: Broker, handler: JobHandler) -> Counter[str]:
    """``once``: process jobs until the queue is empty and no in-process retry is waiting; returns the
    outcomes of this call."""
    before = Counter(handler.outcomes)
    while True:
        broker.release_due()
        message = broker.get(broker.jobs)
        if message is not None:
            handler.handle(message)
            continue
        due = broker.next_delayed_due()
        if due is None:
            return handler.outcomes - before
        time.sleep(min(max(due - time.monotonic(), 0.05), 5.0))


def stop_gracefully(consumer: JobConsumer, grace_seconds: float) -> None:
    """SIGTERM/SIGINT: take no new message; exit once the current one is done, or after the grace period
    without acking it (the broker then delivers it again)."""

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping: finishing the current job", signal=signal.Signals(signum).name, grace_seconds=grace_seconds)
        consumer.should_stop = True

        def force_exit() -> None:
            time.sleep(grace_seconds)
            log.warning("grace period over: exiting without acking the current job")
            os._exit(128 + signum)

        threading.Thread(target=force_exit, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
