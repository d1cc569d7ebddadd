"""``devtools/localprom.py``: the local Prometheus the tests and benchmarks read, started on a free port even where
another process takes that port first (the tests run in several processes, each starting its own)."""

from __future__ import annotations

import requests
import pytest

from kubecost_worker.devtools import localprom
from kubecost_worker.devtools.localprom import LocalPrometheus

pytestmark = pytest.mark.needs_prometheus


def served_path(url: str) -> str:
    return requests.get(f"{url}/api/v1/status/flags", timeout=5).json()["data"]["storage.tsdb.path"]


def test_a_port_taken_by_another_prometheus_is_left_to_it_and_another_is_used(tmp_path, monkeypatch):
    with LocalPrometheus(tmp_path / "first") as first_url:
        taken = int(first_url.rsplit(":", 1)[1])
        ports = iter([taken])
        free = localprom.free_port
        monkeypatch.setattr(localprom, "free_port", lambda: next(ports, None) or free())
        # the other process's Prometheus answers on the port this one was given: its readiness is not this one's
        with LocalPrometheus(tmp_path / "second") as second_url:
            assert second_url != first_url
            assert served_path(second_url) == str(tmp_path / "second")
            assert served_path(first_url) == str(tmp_path / "first")


def test_a_port_given_and_taken_is_an_error(tmp_path):
    with LocalPrometheus(tmp_path / "first") as first_url:
        taken = int(first_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="prometheus exited"):
            LocalPrometheus(tmp_path / "second", port=taken).start()
