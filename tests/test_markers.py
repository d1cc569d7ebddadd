"""The guard of tests/conftest.py: a test that starts a component it did not declare fails, naming the marker.

This module declares none (but for the last test), so each component it touches is refused before it starts."""

from __future__ import annotations

import kombu
import pytest
import requests

from kubecost_worker.devtools.localprom import LocalPrometheus
from kubecost_worker.store.client import connect


def test_a_local_prometheus_needs_its_marker(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="without @pytest.mark.needs_prometheus"):
        LocalPrometheus(tmp_path).start()


def test_the_embedded_clickhouse_needs_its_marker(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="without @pytest.mark.needs_chdb"):
        connect(f"chdb://{tmp_path / 'ch'}")
    assert not (tmp_path / "ch" / "metadata").exists()  # refused before the engine opened the path


def test_rabbitmq_needs_its_marker_and_the_memory_transport_does_not():
    with pytest.raises(pytest.fail.Exception, match="without @pytest.mark.needs_rabbitmq"):
        kombu.Connection("amqp://guest:guest@127.0.0.1:5672//").connect()
    with kombu.Connection("memory://") as memory:
        memory.connect()
        assert memory.connected


@pytest.mark.needs_prometheus
def test_a_declared_component_is_not_refused(tmp_path):
    prometheus = LocalPrometheus(tmp_path / "tsdb")
    try:
        url = prometheus.start()
        assert requests.get(f"{url}/-/ready", timeout=10).status_code == 200
    finally:
        prometheus.stop()
