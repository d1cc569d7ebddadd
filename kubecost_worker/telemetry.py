"""Self-metrics (prometheus-client) and the health endpoints of the scheduler and consumer processes.

The read API serves the same ``/metrics``, ``/healthz`` and ``/readyz`` on its own port; ``consume``,
``schedule`` and ``run`` serve them on ``KCW_METRICS_PORT``. Ready means: ClickHouse answers and every
migration is applied.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

TENANT_HOURS = Counter("kcw_tenant_hours_total", "Tenant-hours processed, by outcome (succeeded, failed, refused)",
                       ["outcome"])
TENANT_HOUR_FAILURES = Counter("kcw_tenant_hour_failures_total",
                               "Failed tenant-hours, by reason (transient, terminal, unexpected)",
                               ["reason"])
RUN_SECONDS = Histogram("kcw_run_duration_seconds",
                        "Duration of one tenant-hour run: the wait for its input (read ahead where it can be), "
                        "compute, its share of its batch's write and commit",
                        buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
ROWS_WRITTEN = Counter("kcw_rows_written_total", "k8s_expenses rows written")
THANOS_SECONDS = Histogram("kcw_thanos_request_seconds", "Latency of Thanos requests", ["endpoint"],
                           buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
# The load the worker puts on Thanos (per tenant-hour in the ledger: thanos_queries, thanos_bytes, thanos_samples)
THANOS_QUERIES = Counter("kcw_thanos_queries_total", "HTTP requests sent to Thanos (retries included)")
THANOS_BYTES = Counter("kcw_thanos_response_bytes_total", "Bytes of the Thanos answers received")
THANOS_SAMPLES = Counter("kcw_thanos_samples_total", "Samples (values) in the Thanos answers received")
THANOS_ERRORS = Counter("kcw_thanos_request_errors_total", "Failed Thanos requests, by kind (transient, terminal)",
                        ["kind"])
NEWEST_COMPLETE_LAG = Gauge("kcw_newest_complete_hour_lag_seconds",
                            "Seconds from the end of the newest complete hour of a tenant to the last scheduler tick",
                            ["tenant"])
DEAD_LETTERS = Counter("kcw_dead_letters_total", "Jobs moved to the dead-letter queue, by kind", ["kind"])
REFUSED_HOURS = Gauge("kcw_refused_hours",
                      "Hours of the scheduler's window whose latest run was refused (less data than stored; the stored "
                      "hour kept), per tenant", ["tenant"])
UNPRICED_NODES = Gauge("kcw_unpriced_nodes",
                       "Nodes without price series in the tenant's latest committed run (their pods priced by the "
                       "KCW_DEFAULT_*_PRICE defaults, else at 0), per tenant", ["tenant"])
RUNS_COLLECTED = Counter("kcw_runs_collected_total", "Superseded, failed or abandoned runs whose rows cleanup removed")
JOBS_ENQUEUED = Counter("kcw_jobs_enqueued_total", "Jobs the scheduler enqueued, by reason", ["reason"])
RECONCILED_DAYS = Counter("kcw_reconciled_days_total",
                          "Tenant-days reconciled with the cloud bill, by outcome (reconciled, unchanged)", ["outcome"])
RECONCILED_SHARE = Gauge("kcw_reconciled_share",
                         "Of the list cost of a tenant's latest reconciled day, the share matched to the cloud bill",
                         ["tenant"])


def metrics_text() -> bytes:
    return generate_latest()


HEALTH_PATHS = ("/metrics", "/healthz", "/readyz")
PLAIN_TEXT = "text/plain; charset=utf-8"


def health_answer(path: str, ready: Callable[[], bool]) -> tuple[int, bytes, str]:
    """(status, body, content type) of ``/metrics``, ``/healthz`` or ``/readyz``: the one definition both the
    worker processes' server (below) and the read API serve. Ready: ``ready()`` says so without raising."""
    if path == "/metrics":
        return 200, metrics_text(), CONTENT_TYPE_LATEST
    if path == "/healthz":
        return 200, b"ok\n", PLAIN_TEXT
    if path == "/readyz":
        ok = safe_check(ready)
        return (200, b"ready\n", PLAIN_TEXT) if ok else (503, b"not ready\n", PLAIN_TEXT)
    return 404, b"not found\n", PLAIN_TEXT


class _Handler(BaseHTTPRequestHandler):
    ready: Callable[[], bool] = staticmethod(lambda: True)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._send(*health_answer(self.path.split("?", 1)[0], self.ready))

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # access logs would drown the structured logs
        pass


def safe_check(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def serve_health(host: str, port: int, ready: Callable[[], bool]) -> ThreadingHTTPServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread."""
    handler = type("HealthHandler", (_Handler,), {"ready": staticmethod(ready)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
