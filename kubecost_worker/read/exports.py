"""Files for finance and other tools: the current data of a tenant and window, written by ClickHouse itself in its
own output formats (``CSVWithNames``, ``Parquet``, ``JSONEachRow``), streamed to the file as it comes.

Without ``aggregate`` an export holds the rows of ``k8s_expenses_current`` (every column but the run's
bookkeeping, ``total_cost`` included: the hours stored); with it, their sums grouped as the allocation API groups
them (docs/api.md: the same properties, the same ``__unallocated__`` and special rows, the days sealed in the daily
tier from their daily rows at every step but ``hour``), per step. Values are bound parameters, never SQL text.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Callable, Iterator

from . import allocation, metroculus
from ..errors import TerminalError, TransientError, WorkerError
from . import sharing
from ..store.client import query
from ..store.cluster import quote_identifier
from ..store.days import SealedDay

FORMATS = {"csv": "CSVWithNames", "parquet": "Parquet", "jsonl": "JSONEachRow"}
# the sums an aggregated export holds, named as the stored columns
SUMS = (*sharing.COSTS, *sharing.QUANTITIES, *sharing.USAGE)
PROGRESS_SECONDS = 2.0


def export_sql(tenant: str, start: int, end: int, aggregate: str | None = None, step: str = "window",
               sealed: tuple[SealedDay, ...] = (), reconciled: bool = False) -> tuple[str, dict]:
    """The export's query and its parameters; ``aggregate`` as the allocation API takes it (``BadParameter``);
    ``sealed``: the days an aggregated export takes from the daily tier (``allocation.sealed_in``); ``reconciled``:
    the costs reconciled with the cloud bill, the list costs beside them (``k8s_expenses_reconciled_current``)."""
    if aggregate is None:
        rows = (f"{allocation.RECONCILED} WHERE {metroculus.WINDOW}" if reconciled else
                f"k8s_expenses WHERE {metroculus.WINDOW}")  # the view names its total_cost among its columns
        sql = (f"SELECT * EXCEPT (run_id, inserted_at){'' if reconciled else ', total_cost'} FROM {rows} "
               "ORDER BY hour, cluster_id, namespace, workload_kind, workload_name, pod, container, node")
        return sql, metroculus.bound_params(tenant, start, end)
    request = allocation.AllocationRequest(allocation.parse_aggregate(aggregate), step, reconcile=reconciled)
    params = allocation.BoundParams(metroculus.bound_params(tenant, start, end))
    keys = [f"d{i}" for i in range(len(request.dimensions))]
    dims = [f"{allocation.dimension_sql(d, params)} AS {key}" for d, key in zip(request.dimensions, keys)]
    sums = [f"sum({name}) AS f_{name}" for name in SUMS]
    source = allocation.row_source(request, params, sealed)
    # grouped under plain aliases, named in the outer query: a dimension named as the column it is made of (node,
    # pod, container...) would otherwise be an alias of itself
    inner = (f"SELECT toDateTime({allocation.STEPS[step]}, 'UTC') AS start, {', '.join([*dims, *sums])} "
             f"FROM {source.sql} GROUP BY start, {', '.join(keys)}")
    named = [f"{key} AS {quote_identifier(d.name)}" for key, d in zip(keys, request.dimensions)]
    sql = (f"SELECT start, {', '.join([*named, *(f'f_{name} AS {name}' for name in SUMS)])} FROM ({inner}) "
           f"ORDER BY start, {', '.join(keys)}")
    return sql, params.values


class BadOutput(ValueError):
    """The path given names no file an export can create: empty, a directory, a name too long, a directory that
    does not exist or cannot be written."""


# creating the temporary file fails for these when the path given is wrong, not when the work is
USAGE_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG}
READ_BYTES = 1 << 20  # what is read from ClickHouse and written at a time
TEMP_ATTEMPTS = 100


def temp_name() -> str:
    """A temporary file's name: short and of fixed length, so any legal target name still fits beside it."""
    return f".kcw-export-{secrets.token_hex(8)}.tmp"


def export(client, out: str | os.PathLike, fmt: str, tenant: str, start: int, end: int, aggregate: str | None = None,
           step: str = "window", progress: Callable[[int], None] | None = None, reconciled: bool = False) -> int:
    """Write the export to ``out``; returns the bytes written. ``progress(bytes so far)`` is called every couple of
    seconds.

    The data goes to a new file of its own beside ``out`` (created exclusively: a link or file already at its name
    is never opened), flushed to disk, then renamed over ``out`` in one step: a reader, or another export to the
    same path, sees the previous file or a whole new one, and a link at ``out`` is replaced, never written through.
    The file gets the mode of any new file (0666 less the umask), not the previous file's. A failure removes that
    temporary file only; ``out`` is never opened for writing. Raises ``BadOutput`` for a path that names no file
    that can be created, ``WorkerError`` for a failure writing (a full disk...)."""
    sealed = () if aggregate is None else allocation.sealed_in(
        lambda sql, parameters: query(client, sql, parameters), step, tenant, start, end)
    sql, params = export_sql(tenant, start, end, aggregate, step, sealed, reconciled)
    target = check_output(out)
    fd, temp = _create_temp(target)
    created = os.fstat(fd)
    written, reported = 0, time.monotonic()
    try:
        with contextlib.closing(client.raw_stream(sql, parameters=params, fmt=FORMATS[fmt])) as stream:
            while chunk := stream.read(READ_BYTES):
                with _writing(target):
                    _write_all(fd, chunk)
                written += len(chunk)
                if progress is not None and time.monotonic() - reported >= PROGRESS_SECONDS:
                    progress(written)
                    reported = time.monotonic()
        with _writing(target):
            os.fsync(fd)
            closing, fd = fd, -1  # closed even when close() reports an error
            os.close(closing)
            if not _same_file(temp, created):
                raise TerminalError(f"export: the temporary file {temp} was replaced by another; {target} "
                                    "left as it was")
            os.replace(temp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if _same_file(temp, created):
            temp.unlink(missing_ok=True)
        raise
    # the rename made durable; the export is in place whatever this says
    with contextlib.suppress(OSError):
        _fsync_directory(target.parent)
    return written


def check_output(out: str | os.PathLike) -> Path:
    """``out`` as the path of a file an export can create; ``BadOutput`` when it cannot be."""
    if not os.fspath(out):
        raise BadOutput("an empty path names no file")
    target = Path(out)
    if target.name in ("", ".", "..") or os.path.isdir(target):
        raise BadOutput(f"{out} is a directory")
    if not target.parent.is_dir():
        reason = "is not a directory" if target.parent.exists() else "does not exist"
        raise BadOutput(f"directory {target.parent} {reason}")
    try:
        name_max = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(target.name)) > name_max:
        raise BadOutput(f"file name longer than {name_max} bytes: {target.name}")
    return target


def _create_temp(target: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(TEMP_ATTEMPTS):
        temp = target.with_name(temp_name())
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue  # a file or link already has that name: not ours, left alone
        except OSError as exc:
            if exc.errno in USAGE_ERRNOS:
                raise BadOutput(f"cannot create a file in {target.parent}: {_reason(exc)}") from exc
            raise _write_error(exc, target) from exc
    raise TerminalError(f"export: no free temporary file name beside {target} after {TEMP_ATTEMPTS} attempts")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _same_file(path: Path, created: os.stat_result) -> bool:
    """Whether ``path`` is still the file this export created (not a link or file put there since)."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (created.st_dev, created.st_ino) and stat.S_ISREG(now.st_mode)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """A file system failure while writing the export (a full disk, an I/O error): the export failed."""
    try:
        yield
    except OSError as exc:
        raise _write_error(exc, target) from exc


def _write_error(exc: OSError, target: Path) -> WorkerError:
    kind = TransientError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else TerminalError
    return kind(f"export: {_reason(exc)} writing {target}")


def _reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return reason[:1].lower() + reason[1:]
