"""Shared fixtures (a real Prometheus seeded with promtool, embedded ClickHouse paths) and the guard that makes a
test declare the components it starts. The helpers tests import are in ``helpers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks

# -- what a test needs, declared and enforced ------------------------------------------------------------------
# A test (or its module's ``pytestmark``) that starts a Prometheus, opens an embedded ClickHouse or connects to
# RabbitMQ in this process says so with a marker; touching one without it fails the test (as snuba's
# ``block_clickhouse_db`` does), so ``pytest -m "not needs_rabbitmq"`` runs on a machine without a broker. The
# components a CLI subprocess opens are not seen here: the modules that run them carry the markers too.
COMPONENT_MARKERS = ("needs_prometheus", "needs_chdb", "needs_rabbitmq")
_declared: set[str] = set()
_running: list[str] = [""]


def pytest_configure(config) -> None:
    import clickhouse_connect
    import kombu

    def guarded(marker: str, what: str, original):
        def call(*args, **kwargs):
            if marker not in _declared:
                pytest.fail(f"{_running[0]} uses {what} without @pytest.mark.{marker}", pytrace=False)
            return original(*args, **kwargs)
        return call

    get_client = clickhouse_connect.get_client

    def get_client_guarded(*args, **kwargs):
        if str(kwargs.get("dsn", "")).startswith("chdb:"):
            return guarded("needs_chdb", "the embedded ClickHouse", get_client)(*args, **kwargs)
        return get_client(*args, **kwargs)

    clickhouse_connect.get_client = get_client_guarded
    LocalPrometheus.start = guarded("needs_prometheus", "a local Prometheus", LocalPrometheus.start)
    establish = kombu.Connection._establish_connection

    def establish_guarded(self):
        if self.transport_cls not in ("memory",):
            return guarded("needs_rabbitmq", "RabbitMQ", establish)(self)
        return establish(self)

    kombu.Connection._establish_connection = establish_guarded


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    # before the item's fixtures: a module-scoped fixture set up for this item is judged by its markers
    _declared.clear()
    _declared.update(m.name for m in item.iter_markers() if m.name in COMPONENT_MARKERS)
    _running[0] = item.nodeid


@pytest.fixture
def prometheus_from(tmp_path_factory):
    """``prometheus_from(openmetrics_path) -> url``: backfill a fresh TSDB and serve it until the test ends."""
    started: list[LocalPrometheus] = []

    def start(openmetrics: Path) -> str:
        tsdb = tmp_path_factory.mktemp("tsdb")
        create_blocks(Path(openmetrics), tsdb)
        prometheus = LocalPrometheus(tsdb)
        started.append(prometheus)
        return prometheus.start()

    yield start
    for prometheus in started:
        prometheus.stop()


@pytest.fixture
def ch_url(tmp_path) -> str:
    return f"chdb://{tmp_path / 'clickhouse'}"
