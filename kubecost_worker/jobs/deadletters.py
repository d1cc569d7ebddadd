"""Reading and replaying the dead-letter queue."""

from __future__ import annotations

from .broker import ATTEMPT, ATTEMPTS, ERROR, ERROR_KIND, FAILED_AT, Broker, body_of


def list_dead(broker: Broker, limit: int) -> list[str]:
    """One line per dead letter (kind, attempts, time, reason, body); every message goes back to the queue."""
    taken = []
    try:
        while len(taken) < limit and (message := broker.get(broker.dead)) is not None:
            taken.append(message)
    finally:
        lines = []
        for message in taken:
            h = message.headers or {}
            body = body_of(message)
            lines.append(f"{h.get(FAILED_AT, '?')} {h.get(ERROR_KIND, '?')} attempts={h.get(ATTEMPTS, '?')} "
                         f"error={h.get(ERROR, '')!r} body={body[:300].decode(errors='replace')!r}")
            message.requeue()
    return lines or ["dlq: empty"]


def replay_dead(broker: Broker, limit: int) -> int:
    """Publish dead letters back to the job queue (attempt 0), acking each only after its publish."""
    replayed = 0
    while replayed < limit and (message := broker.get(broker.dead)) is not None:
        body = body_of(message)
        broker.publish_raw(body, {ATTEMPT: 0})
        message.ack()
        replayed += 1
    return replayed
