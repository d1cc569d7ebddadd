"""The two kinds of failure, decided once where the failure enters (the source or sink boundary).

Everything above the boundary only asks "retry later?" (``TransientError``) or "retrying cannot help"
(``TerminalError``): a rerun message is retried or dead-lettered, a CLI run exits non-zero with the reason.
"""


class WorkerError(Exception):
    """Base of the errors this service raises on purpose."""


class TransientError(WorkerError):
    """Retrying later may succeed: Thanos or ClickHouse unavailable, a timeout, a partial response."""


class TerminalError(WorkerError):
    """Retrying cannot succeed: invalid input, a rejected query, a schema problem."""


class UnexpectedError(TerminalError):
    """An exception no check foresaw (a bug, or an input that breaks one of the model's invariants): the tenant-hour
    fails and is recorded, the others go on, its job is dead-lettered as ``unexpected``. Retrying would fail again."""


def as_worker_error(error: Exception) -> WorkerError:
    """``error`` as a failure of this service: itself if it is one, else an ``UnexpectedError`` naming it."""
    if isinstance(error, WorkerError):
        return error
    return UnexpectedError(f"unexpected {type(error).__name__}: {error}")


def kind_of(error: WorkerError) -> str:
    """How a failure is counted and dead-lettered: ``unexpected`` (a bug), ``transient`` or ``terminal``."""
    if isinstance(error, UnexpectedError):
        return "unexpected"
    return "transient" if isinstance(error, TransientError) else "terminal"


class ConfigError(TerminalError):
    """Invalid configuration; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))
