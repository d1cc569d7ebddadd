"""A small client of the Prometheus HTTP API as Thanos Query serves it.

Failures are classified here, once: connection errors, timeouts, 429, 5xx and partial responses
(``warnings``) are ``TransientError`` and retried with backoff (honouring ``Retry-After``); a query the server
rejects (400/422 with ``status: error``) is ``TerminalError``. Nothing partial is ever returned as complete.

An answer that is not what the query asks for (another ``resultType``, a result item without its labels or
values) is a ``ThanosBadAnswer``: transient, retried, never handed on. ``timeout_seconds`` bounds the whole
request, from connecting to the body's last byte: a server trickling its answer is cut off like a silent one.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
import structlog
import tenacity
import urllib3

from .. import telemetry
from ..config import Config
from ..errors import TerminalError, TransientError
from .promql import RANGE_KIND_PROBE

log = structlog.get_logger(__name__)

# Prometheus and Thanos refuse a range query that would return more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
MAX_RETRY_AFTER_SECONDS = 60.0
# Request failures that retrying cannot fix: the URL or a header is wrong. Every other failure is transient.
MISCONFIGURED = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                 requests.exceptions.InvalidHeader, requests.exceptions.URLRequired)


class ThanosUnavailable(TransientError):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ThanosBadAnswer(ThanosUnavailable):
    """A success that does not answer the query: the wrong result type, items without labels or values,
    samples that contradict each other. Retried like an unavailable server (a proxy or store glitch), never
    stored."""


class ThanosDownsampled(TerminalError):
    """Samples spaced wider than the scrape step: a downsampled block (5m, 1h) answered for the raw samples, or
    the scrape is slower than KCW_STEP_SECONDS. Retrying asks the same blocks again: the hour fails as it is."""


# What each kind of query returns: an instant query of a range selector gives the raw samples (a matrix),
# any other instant query a vector, a range query a matrix.
VECTOR, MATRIX = "vector", "matrix"
READ_CHUNK_BYTES = 1 << 16


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None  # an HTTP date: rare from Thanos; fall back to our own backoff
    if math.isnan(seconds):
        return None  # "nan" parses as a float, and time.sleep(nan) raises
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    def __init__(self, backoff: tenacity.wait.wait_base):
        self.backoff = backoff

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ThanosUnavailable) and exc.retry_after is not None:
            return exc.retry_after
        return self.backoff(retry_state)


@dataclass(frozen=True)
class ThanosSettings:
    url: str
    timeout_seconds: float = 60.0
    headers: tuple[tuple[str, str], ...] = ()
    token_file: str | None = None
    ca_file: str | None = None
    dedup: bool | None = None
    partial_response: bool = False
    raw_only: bool = True
    retries: int = 5
    parallel_queries: int = 4
    compressed: bool = False
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 20.0

    @classmethod
    def from_config(cls, config: Config) -> "ThanosSettings":
        if not config.thanos_url:
            raise TerminalError("KCW_THANOS_URL is not set")
        return cls(
            url=config.thanos_url,
            timeout_seconds=config.thanos_timeout_seconds,
            headers=config.thanos_headers,
            token_file=config.thanos_token_file,
            ca_file=config.thanos_ca_file,
            dedup=config.thanos_dedup,
            partial_response=config.thanos_partial_response,
            raw_only=config.thanos_raw_only,
            retries=config.thanos_retries,
            parallel_queries=config.thanos_parallel_queries,
            compressed=config.thanos_compressed,
        )


@dataclass
class ThanosLoad:
    """What a client's requests asked of Thanos: requests sent (retries included), bytes and samples received.
    Added to from the fetch's threads."""

    queries: int = 0
    bytes: int = 0
    samples: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, body_bytes: int, samples: int) -> None:
        with self._lock:
            self.queries += 1
            self.bytes += body_bytes
            self.samples += samples


@dataclass
class _RangeKind:
    """Whether the server's ranges are closed at both ends (Prometheus 2) or left-open (3): asked once, shared by
    a client and the clients ``counting`` makes of it."""

    closed: bool | None = None


class ThanosClient:
    def __init__(self, settings: ThanosSettings, session: requests.Session | None = None,
                 range_kind: _RangeKind | None = None):
        self.settings = settings
        self.session = session or requests.Session()
        # Thanos gzips an answer the client accepts gzipped, on its own CPU (a sixth more of it): inside a cluster
        # the bytes cost less than that (docs/operations.md). A header in KCW_THANOS_HEADERS still wins.
        self.session.headers["Accept-Encoding"] = "gzip" if settings.compressed else "identity"
        self.session.headers.update(dict(settings.headers))
        if settings.ca_file:
            self.session.verify = settings.ca_file
        self.load = ThanosLoad()
        self._range_kind = range_kind or _RangeKind()
        self._get = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(settings.retries),
            wait=_WaitRetryAfterOrBackoff(
                tenacity.wait_exponential(multiplier=settings.backoff_initial_seconds, max=settings.backoff_max_seconds)
                + tenacity.wait_random(0, settings.backoff_initial_seconds)
            ),
            retry=tenacity.retry_if_exception_type(TransientError),
            before_sleep=self._log_retry,
            reraise=True,
        ).wraps(self._get_once)

    def counting(self) -> "ThanosClient":
        """A client on the same connections whose ``load`` counts only its own requests: one per tenant-hour, so
        that the ledger records what each hour asked of Thanos. The server's kind of range is asked once for all of
        them, by whichever needs it first."""
        return type(self)(self.settings, self.session, self._range_kind)

    @property
    def requests_made(self) -> int:
        return self.load.queries

    @staticmethod
    def _log_retry(retry_state: tenacity.RetryCallState) -> None:
        log.warning("thanos request failed, retrying", attempt=retry_state.attempt_number,
                    error=str(retry_state.outcome.exception()), sleep=round(retry_state.upcoming_sleep, 2))

    # -- the API ------------------------------------------------------------------------------------------

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        """Instant query of an instant vector; returns ``data.result``, each item ``{"metric", "value"}``."""
        return self._get("/api/v1/query", {"query": promql, "time": _fmt_time(at)}, VECTOR)["result"]

    def samples(self, promql: str, at: float) -> list[dict[str, Any]]:
        """Instant query of a range selector (``metric{...}[1h]``): the raw samples with their own timestamps;
        each item ``{"metric", "values"}``."""
        return self._get("/api/v1/query", {"query": promql, "time": _fmt_time(at)}, MATRIX)["result"]

    def query_range(self, promql: str, start: float, end: float, step: int) -> list[dict[str, Any]]:
        """Range query over ``[start, end]``, split so no request asks more than 11,000 points per series."""
        chunks = split_range(start, end, step)
        asked = ({"query": promql, "start": _fmt_time(a), "end": _fmt_time(b), "step": str(step)} for a, b in chunks)
        if len(chunks) == 1:  # nothing to merge: the answer as it is (a batch's answers hold 100,000 series)
            return self._get("/api/v1/query_range", next(asked), MATRIX)["result"]
        merged: dict[tuple, dict[str, Any]] = {}
        for params in asked:
            for series in self._get("/api/v1/query_range", params, MATRIX)["result"]:
                key = tuple(sorted(series["metric"].items()))
                if key in merged:
                    merged[key]["values"].extend(series["values"])
                else:
                    merged[key] = {"metric": series["metric"], "values": list(series["values"])}
        return list(merged.values())

    def label_values(self, label: str) -> list[str]:
        return list(self._get(f"/api/v1/label/{label}/values", {}))

    def range_selector(self, seconds: int) -> str:
        """A PromQL range that, evaluated 1 ms before a window's end, selects exactly the last ``seconds``.

        Prometheus 2 (and the Thanos built on it) selects ``[t - range, t]``, closed at both ends; Prometheus 3
        selects ``(t - range, t]``. Evaluated at ``end - 1 ms``, a closed range must be 1 ms shorter to leave out
        a sample 1 ms before ``start``. Which one the server does is asked once, with a query that needs no data:
        ``vector(1)`` sampled every second over 60 s gives 61 points on a closed range, 60 on a left-open one.
        """
        if self._range_kind.closed is None:
            result = self.query(RANGE_KIND_PROBE, 1_000_000_000)
            self._range_kind.closed = bool(result) and float(result[0]["value"][1]) == 61
        return f"{seconds * 1000 - 1}ms" if self._range_kind.closed else f"{seconds}s"

    # -- one HTTP request ---------------------------------------------------------------------------------

    def _params(self, params: dict[str, str]) -> dict[str, str]:
        extra = {"partial_response": "true" if self.settings.partial_response else "false"}
        if self.settings.raw_only:  # a compacted range's 5m or 1h blocks would answer for the raw samples
            extra["max_source_resolution"] = "0s"
        if self.settings.dedup is not None:
            extra["dedup"] = "true" if self.settings.dedup else "false"
        return {**params, **extra}

    def _auth_headers(self) -> dict[str, str]:
        if not self.settings.token_file:
            return {}
        # Read each time: projected service-account tokens rotate under a running pod.
        with open(self.settings.token_file) as f:
            return {"Authorization": f"Bearer {f.read().strip()}"}

    def _get_once(self, path: str, params: dict[str, str], result_type: str | None = None) -> Any:
        endpoint = "/api/v1/label/values" if path.startswith("/api/v1/label/") else path
        try:
            with telemetry.THANOS_SECONDS.labels(endpoint).time():
                return self._request(path, params, result_type)
        except TransientError:
            telemetry.THANOS_ERRORS.labels("transient").inc()
            raise
        except TerminalError:
            telemetry.THANOS_ERRORS.labels("terminal").inc()
            raise

    def _request(self, path: str, params: dict[str, str], result_type: str | None) -> Any:
        """One request, counted in ``load`` whatever its outcome (a refused connection is a request with no bytes)."""
        url = self.settings.url + path
        started = time.perf_counter()
        timeout = self.settings.timeout_seconds
        content = bytearray()
        samples = 0
        try:
            with self.session.get(url, params=self._params(params), headers=self._auth_headers(), timeout=timeout,
                                  stream=True) as response:
                content = _read_body(path, response.raw, started + timeout, timeout)
            log.debug("thanos request", path=path, status=response.status_code,
                      seconds=round(time.perf_counter() - started, 3), bytes=len(content))
            data = self._parse(path, response, content, result_type)
            samples = _samples_in(data)
            return data
        except MISCONFIGURED as exc:
            raise TerminalError(f"{path}: {type(exc).__name__}: {exc}") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # connection refused or reset, timeout, a body cut short...
            raise ThanosUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc
        finally:
            self._count(len(content), samples)

    def _count(self, body_bytes: int, samples: int) -> None:
        self.load.add(body_bytes, samples)
        telemetry.THANOS_QUERIES.inc()
        telemetry.THANOS_BYTES.inc(body_bytes)
        telemetry.THANOS_SAMPLES.inc(samples)

    @staticmethod
    def _parse(path: str, response: requests.Response, content: bytearray, result_type: str | None) -> Any:
        status = response.status_code
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = None
        if status == 429 or status >= 500:
            reason = body.get("error") if isinstance(body, dict) else content[:200].decode(errors="replace")
            raise ThanosUnavailable(f"{path}: HTTP {status}: {reason}", _retry_after(response))
        if not isinstance(body, dict) or "status" not in body:
            raise ThanosUnavailable(f"{path}: HTTP {status}: not a Prometheus API response: {bytes(content[:200])!r}")
        if body["status"] != "success":
            error = f"{path}: HTTP {status}: {body.get('errorType')}: {body.get('error')}"
            if body.get("errorType") in ("timeout", "canceled", "unavailable", "internal"):
                raise ThanosUnavailable(error)
            raise TerminalError(error)
        if body.get("warnings"):
            # Thanos answers with warnings when a store did not answer (partial response): never complete.
            raise ThanosUnavailable(f"{path}: partial response: {'; '.join(map(str, body['warnings']))[:500]}")
        data = body.get("data")
        if data is None:
            raise ThanosUnavailable(f"{path}: success without data")
        if path.startswith("/api/v1/query") and not (isinstance(data, dict) and isinstance(data.get("result"), list)):
            raise ThanosUnavailable(f"{path}: success without a result list: {str(data)[:200]}")
        if result_type is not None:
            _check_result(path, data, result_type)
        return data


def _samples_in(data: Any) -> int:
    """Values in an answer: one per vector item, each sample of a matrix (label values: one each)."""
    if isinstance(data, list):
        return len(data)
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        return 0
    if data.get("resultType") == MATRIX:
        return sum(len(item.get("values", ())) for item in result)
    return len(result)


def _read_body(path: str, raw: urllib3.response.HTTPResponse, deadline: float, timeout: float) -> bytearray:
    """The whole body by ``deadline`` (``time.perf_counter()``). requests' timeout is per read, and a read of
    n bytes waits for all n: a body trickling in a byte a second would never time out. ``read1`` returns what
    has arrived."""
    content = bytearray()
    while chunk := raw.read1(READ_CHUNK_BYTES, decode_content=True):
        content += chunk
        if time.perf_counter() > deadline:
            raise ThanosUnavailable(f"{path}: the answer took longer than {timeout:g} s ({len(content):,} bytes "
                                    "by then)")
    return content  # orjson parses a bytearray as it is: no copy of a body of tens of MB


def _check_result(path: str, data: dict, result_type: str) -> None:
    """The answer has the shape its query asks for: every item its labels, and its value or its samples. The
    samples themselves (numbers, order) are checked where they are read (``source/extract.py``)."""
    if data.get("resultType") != result_type:
        raise ThanosBadAnswer(f"{path}: resultType {str(data.get('resultType'))[:40]!r} where the query asks "
                              f"for a {result_type}")
    key = "value" if result_type == VECTOR else "values"
    for item in data["result"]:
        if not (isinstance(item, dict) and isinstance(item.get("metric"), dict) and isinstance(item.get(key), list)
                and (key == "values" or len(item[key]) == 2)):
            raise ThanosBadAnswer(f"{path}: a {result_type} item without its metric and {key}: {str(item)[:200]}")


def split_range(start: float, end: float, step: int) -> list[tuple[float, float]]:
    """Chunks of ``[start, end]`` with at most ``MAX_POINTS_PER_SERIES`` evaluation points each."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if end < start:
        raise ValueError("end before start")
    span = (MAX_POINTS_PER_SERIES - 1) * step
    chunks = []
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(chunk_start + span, end)
        chunks.append((chunk_start, chunk_end))
        chunk_start = chunk_end + step
    return chunks


def _fmt_time(t: float) -> str:
    return f"{t:.3f}"
