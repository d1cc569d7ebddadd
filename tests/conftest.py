"""Shared fixtures: a real Prometheus seeded with promtool, embedded ClickHouse (chDB) paths, the CLI.

chDB lets one process open one path at a time: tests that run the CLI in a subprocess open the path
themselves only after the subprocess has exited, and close it (``ch_client``) before the next CLI run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubecost_worker.localprom import LocalPrometheus, backfill

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(sys.executable).parent / "kubecost-worker"


@pytest.fixture
def prometheus_from(tmp_path_factory):
    """``prometheus_from(openmetrics_path) -> url``: backfill a fresh TSDB and serve it until the test ends."""
    started: list[LocalPrometheus] = []

    def start(openmetrics: Path) -> str:
        tsdb = tmp_path_factory.mktemp("tsdb")
        backfill(Path(openmetrics), tsdb)
        prometheus = LocalPrometheus(tsdb)
        started.append(prometheus)
        return prometheus.start()

    yield start
    for prometheus in started:
        prometheus.stop()


@pytest.fixture
def ch_url(tmp_path) -> str:
    return f"chdb://{tmp_path / 'clickhouse'}"


@contextlib.contextmanager
def ch_client(url: str):
    """A clickhouse-connect client on ``url``, closed afterwards so a CLI subprocess can open the path."""
    from kubecost_worker.sink.clickhouse import connect

    client = connect(url)
    try:
        yield client
    finally:
        client.close()


def run_worker(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KCW_")}
    full_env.update(env or {})
    return subprocess.run([str(WORKER), *args], env=full_env, capture_output=True, text=True, timeout=timeout)
