"""``telemetry.py``: the health server of a worker process (``/healthz``, ``/readyz``, ``/metrics``)."""

from __future__ import annotations


def test_health_endpoints_report_readiness():
    import requests

    from kubecost_worker.devtools.localprom import free_port
    from kubecost_worker.telemetry import TENANT_HOURS, serve_health

    state = {"ready": False}

    def ready():
        if state["ready"] is None:
            raise ConnectionError("ClickHouse is down")
        return state["ready"]

    port = free_port()
    server = serve_health("127.0.0.1", port, ready)
    try:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 503
        state["ready"] = None
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 503
        state["ready"] = True
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        TENANT_HOURS.labels("succeeded").inc(0)
        assert "kcw_tenant_hours_total" in requests.get(f"{base}/metrics", timeout=5).text
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    finally:
        server.shutdown()
