"""The summarised fetch computes exactly what the samples compute (``source/extract.py``).

``fetch_hour`` lets Prometheus reduce the pod-level series to one figure each (a mean, the first and last
positive sample, the labels) and fetches samples only for pods those figures cannot describe. These tests hold
the model's output on the summarised input equal to its output on every sample, against a real Prometheus:

1. on the simulator's tenants (duplicated KSM series, a pod name reused inside an hour, churn, spot price
   changes, volumes, cron jobs...), hour by hour;
2. on a hand-made hour with the cases a reduction could get wrong: unaligned and jittered scrapes, a pod that
   starts or stops inside the hour, a pending container, a NaN allocation, two label series of one pod, GPU
   requests under two resource names, a pod without running series, samples 1 ms before the hour and exactly at
   its end; and which pods were fetched as samples;
3. the probe that tells a closed range (Prometheus 2) from a left-open one (Prometheus 3).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from kubecost_worker.model import compute_hour
from kubecost_worker.model.series import RUNNING, Series, Summary
from kubecost_worker.runs import SENTINEL_METRICS
from kubecost_worker.devtools.simulation import write_simulation
from kubecost_worker.source.extract import fetch_hour
from kubecost_worker.source.thanos import ThanosClient, ThanosSettings

from .faultproxy import FaultProxy, Rewrite

pytestmark = [pytest.mark.needs_prometheus]

TENANT_LABEL = "tenant_id"
FIELDS = ("running_minutes", "cpu_core_hours", "ram_byte_hours", "gpu_hours", "pv_byte_hours", "cpu_cost",
          "ram_cost", "gpu_cost", "pv_cost", "network_cost", "lb_cost", "management_cost")


def assert_same_result(summarised, sampled) -> None:
    """Same rows (keys, labels, every figure to 1e-12 relative), metric samples, sentinel sample counts."""
    expected = {row.key: row for row in sampled.rows}
    actual = {row.key: row for row in summarised.rows}
    assert actual.keys() == expected.keys()
    for key, row in actual.items():
        assert row.labels == expected[key].labels, key
        for name in FIELDS:
            a, b = getattr(row, name), getattr(expected[key], name)
            assert a == pytest.approx(b, rel=1e-12, abs=1e-15), (key, name, a, b)
    assert summarised.total_cost == pytest.approx(sampled.total_cost, rel=1e-12)
    assert summarised.metric_samples == sampled.metric_samples
    assert summarised.samples_seen < sampled.samples_seen  # a summary is one value read for a series' samples


def both(client: ThanosClient, tenant: str, start: int, step: int = 60):
    summarised = fetch_hour(client, TENANT_LABEL, tenant, start, start + 3600, step)
    sampled = fetch_hour(client, TENANT_LABEL, tenant, start, start + 3600, step, summarise=False)
    return summarised, sampled


# -- 1. the simulator's tenants ------------------------------------------------------------------------------

def test_summarised_equals_sampled_on_the_simulated_tenants(prometheus_from, tmp_path):
    start = int(time.time()) // 3600 * 3600 - 6 * 3600
    tenants = ["acme", "globex"]
    sim = write_simulation(tmp_path / "sim", tenants, start, 3, nodes=4, pods=40, seed=3)
    client = ThanosClient(ThanosSettings(prometheus_from(Path(sim["openmetrics"]))))
    summarised_pods = 0
    for tenant in tenants:
        for hour in range(start, start + 3 * 3600, 3600):
            summarised, sampled = both(client, tenant, hour)
            assert_same_result(compute_hour(summarised), compute_hour(sampled))
            assert summarised.sample_count(SENTINEL_METRICS) == sampled.sample_count(SENTINEL_METRICS)
            summarised_pods += sum(isinstance(s, Summary) for s in summarised.of(RUNNING))
            # the pod name reused inside the first hour and the duplicated daemonset series went through samples
            if hour == start:
                assert all(isinstance(s, Series) for s in summarised.of(RUNNING) if s.labels["pod"] == "cache-0")
            assert all(isinstance(s, Series) for s in summarised.of("container_cpu_allocation")
                       if s.labels["namespace"] == "monitoring")
    assert summarised_pods > 100  # and most pods did not


# -- 2. a hand-made hour --------------------------------------------------------------------------------------

H = int(time.time()) // 3600 * 3600 - 8 * 3600
GIB = 2**30


class OpenMetrics:
    """Series by metric family, written as OpenMetrics for promtool (families contiguous, samples in order)."""

    def __init__(self):
        self.families: dict[str, list[tuple[dict, list[tuple[float, float]]]]] = {}

    def add(self, name: str, labels: dict, samples) -> None:
        self.families.setdefault(name, []).append(({"tenant_id": "t-edge", **labels}, list(samples)))

    def write(self, path: Path) -> Path:
        lines = []
        for name, group in self.families.items():
            lines.append(f"# TYPE {name} gauge")
            for labels, samples in group:
                rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                lines += [f"{name}{{{rendered}}} {_value(v)} {t:.3f}" for t, v in samples]
        path.write_text("\n".join(lines) + "\n# EOF\n")
        return path


def _value(v: float) -> str:
    return "NaN" if math.isnan(v) else repr(v)


def every_minute(first: float, last: float, value=1.0):
    """Samples every 60 s from ``first`` through ``last``; ``value`` may be a function of the time."""
    count = int((last - first) // 60) + 1
    return [(first + 60 * i, value(first + 60 * i) if callable(value) else value) for i in range(count)]


def pod(om: OpenMetrics, name: str, times, *, uid: str | None = None, cpu=0.5, running=1.0, node="n1",
        extra_requests=(), owner=True):
    """One pod with one container: running, allocation and request series sampled at ``times``."""
    base = {"namespace": "app", "pod": name}
    if running is not None:
        om.add("kube_pod_container_status_running", {**base, "container": "c", "uid": uid or f"uid-{name}"},
               [(t, running) for t in times])
    for metric, value in (("container_cpu_allocation", cpu), ("container_memory_allocation_bytes", 2.0 * GIB)):
        om.add(metric, {**base, "container": "c", "node": node},
               [(t, value(t) if callable(value) else value) for t in times])
    for resource, unit, value in (("cpu", "core", 0.25), ("memory", "byte", 1.0 * GIB), *extra_requests):
        om.add("kube_pod_container_resource_requests",
               {**base, "container": "c", "node": node, "resource": resource, "unit": unit},
               [(t, value) for t in times])
    if owner:
        om.add("kube_pod_owner", {**base, "owner_kind": "ReplicaSet", "owner_name": f"{name}-5d8f7c9b4",
                                  "owner_is_controller": "true"}, [(t, 1.0) for t in times])


def edge_hour(path: Path) -> Path:
    om = OpenMetrics()
    hour = every_minute(H - 60, H + 3600)  # through the next hour's first sample, at exactly the end
    for metric, value in (("node_cpu_hourly_cost", 0.031), ("node_ram_hourly_cost", 0.0041),
                          ("node_gpu_hourly_cost", 0.95), ("node_gpu_count", 1.0),
                          ("kube_node_status_capacity_cpu_cores", 8.0),
                          ("kube_node_status_capacity_memory_bytes", 32.0 * GIB)):
        om.add(metric, {"node": "n1"}, [(t, value) for t, _ in hour])
    om.add("kubecost_cluster_info", {"id": "edge-cluster", "name": "edge"}, hour)
    # unaligned scrape (7 s after the minute), values varying: summarised
    pod(om, "steady", [t + 7 for t, _ in every_minute(H - 60, H + 3600)], cpu=lambda t: 0.5 + (t % 600) / 1000)
    # aligned, with a sample exactly at the hour's end (the next hour's): summarised
    pod(om, "aligned", [t for t, _ in hour])
    # two samples inside the first step (jitter): its running samples are fetched
    pod(om, "jitter", [H + 1, H + 59.5] + [t for t, _ in every_minute(H + 120, H + 3540)])
    # starts at minute 20, stops at minute 40: running samples fetched, the rest summarised
    pod(om, "late", [t for t, _ in every_minute(H + 1200, H + 3540)])
    pod(om, "early", [t for t, _ in every_minute(H - 120, H + 2400)])
    # a sample 1 ms before the hour: outside it on both paths
    pod(om, "edge-ms", [H - 0.001] + [t for t, _ in every_minute(H, H + 3540)], cpu=lambda t: 9.0 if t < H else 0.5)
    # pending: running series at 0 the whole hour
    pod(om, "pending", [t for t, _ in hour], running=0.0)
    # stops running at minute 30, its running series reports 0 from then on
    pod(om, "stopped", [t for t, _ in hour], running=None)
    om.add("kube_pod_container_status_running", {"namespace": "app", "pod": "stopped", "container": "c",
                                                 "uid": "uid-stopped"},
           [(t, 1.0 if t < H + 1800 else 0.0) for t, _ in hour])
    # a NaN allocation sample (a broken exporter)
    pod(om, "nan", [t for t, _ in hour], cpu=lambda t: math.nan if t == H + 600 else 0.75)
    # GPU requested under two resource names
    pod(om, "gpu", [t for t, _ in hour], extra_requests=(("nvidia_com_gpu", "integer", 1.0),
                                                          ("nvidia.com/gpu", "integer", 1.0)))
    # no running series at all: its running time comes from its allocation samples
    pod(om, "no-running", [t for t, _ in every_minute(H + 600, H + 3000)], running=None)
    # labels changed at minute 30: two label series, the later one wins
    pod(om, "relabelled", [t for t, _ in hour])
    om.add("kube_pod_labels", {"namespace": "app", "pod": "relabelled", "uid": "uid-relabelled", "label_team": "a"},
           [(t, 1.0) for t, _ in hour if t < H + 1800])
    om.add("kube_pod_labels", {"namespace": "app", "pod": "relabelled", "uid": "uid-relabelled", "label_team": "b"},
           [(t, 1.0) for t, _ in hour if t >= H + 1800])
    om.add("kube_pod_labels", {"namespace": "app", "pod": "steady", "uid": "uid-steady", "label_team": "c"}, hour)
    # copies of one series (kube-state-metrics and the cost-model re-emitting it, with another job label)
    pod(om, "copied", [t for t, _ in hour])
    om.add("kube_pod_container_resource_requests",
           {"namespace": "app", "pod": "copied", "container": "c", "node": "n1", "resource": "cpu", "unit": "core",
            "job": "kube-state-metrics"}, [(t, 0.25) for t, _ in hour if t % 120 == 0])
    return om.write(path)


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks

    root = tmp_path_factory.mktemp("edge")
    create_blocks(edge_hour(root / "edge.om"), root / "tsdb")
    with LocalPrometheus(root / "tsdb") as url:
        client = ThanosClient(ThanosSettings(url))
        yield client, *both(client, "t-edge", H)


def kinds(hour_input, metric: str) -> dict[str, type]:
    out: dict[str, set[type]] = {}
    for s in hour_input.of(metric):
        out.setdefault(s.labels["pod"], set()).add(type(s))
    return {name: types.pop() if len(types) == 1 else tuple(types) for name, types in out.items()}


def test_summarised_equals_sampled_on_the_edge_cases(edge):
    _, summarised, sampled = edge
    expected = compute_hour(sampled)
    assert_same_result(compute_hour(summarised), expected)
    assert summarised.sample_count(SENTINEL_METRICS) == sampled.sample_count(SENTINEL_METRICS)
    # the cases are really in the data: a NaN left out, a pending pod without cost, the later labels
    rows = {row.pod: row for row in expected.rows}
    assert rows["nan"].cpu_core_hours == pytest.approx(0.75)
    assert "pending" not in rows
    assert rows["relabelled"].labels["team"] == "b"
    assert rows["late"].running_minutes == pytest.approx(40.0) and rows["early"].running_minutes == pytest.approx(41.0)
    assert rows["stopped"].running_minutes == pytest.approx(30.0)
    assert rows["steady"].running_minutes == pytest.approx(60 - 7 / 60)
    assert rows["edge-ms"].cpu_core_hours == pytest.approx(0.5)  # the 9-core sample 1 ms before the hour is out


def test_only_the_pods_a_summary_cannot_describe_come_as_samples(edge):
    _, summarised, _ = edge
    running = kinds(summarised, RUNNING)
    allocation = kinds(summarised, "container_cpu_allocation")
    for name in ("steady", "aligned", "edge-ms"):
        assert running[name] is Summary and allocation[name] is Summary, name
    for name in ("jitter", "late", "early", "stopped"):  # first or last sample not pinned down: running samples
        assert running[name] is Series and allocation[name] is Summary, name
    requests = kinds(summarised, "kube_pod_container_resource_requests")
    for name in ("pending", "nan", "gpu", "copied"):  # everything as samples
        assert allocation[name] is Series and requests[name] is Series, name
    assert allocation["no-running"] is Series and "no-running" not in running
    assert kinds(summarised, "kube_pod_labels") == {"relabelled": Series, "steady": Summary}


# -- 3. closed or left-open ranges ----------------------------------------------------------------------------

def test_range_selector_is_one_millisecond_shorter_on_a_closed_range_server(edge):
    client, _, _ = edge
    assert client.range_selector(3600) == "3599999ms"
    assert client.range_selector(60) == "59999ms"


def test_range_selector_on_a_left_open_range_server(edge):
    """A server that selects ``(t - range, t]`` (Prometheus 3) answers the probe with 60 points."""
    client, _, _ = edge

    def left_open(body: dict) -> dict:
        for item in body["data"]["result"]:
            item["value"][1] = "60"
        return body

    with FaultProxy(client.settings.url) as proxy:
        proxy.script(Rewrite(left_open))
        prometheus_3 = ThanosClient(ThanosSettings(proxy.url))
        assert prometheus_3.range_selector(3600) == "3600s"
        assert prometheus_3.range_selector(3600) == "3600s" and proxy.count == 1  # asked once


def test_pods_needing_samples_are_fetched_in_batches_of_short_regexes(edge, monkeypatch):
    """Many pods needing samples: several queries, each URL short, the same input as one query."""
    from kubecost_worker.source import extract

    client, summarised, _ = edge
    assert extract.pod_patterns(["a.b", "c", "d-1"], max_chars=6) == ["a\\.b|c", "d\\-1"]
    assert extract.pod_patterns(["x" * 10], max_chars=4) == ["x" * 10]  # a name alone is never split
    one_query = ThanosClient(ThanosSettings(client.settings.url))
    fetch_hour(one_query, TENANT_LABEL, "t-edge", H, H + 3600, 60)
    monkeypatch.setattr(extract, "MAX_PATTERN_CHARS", 12)  # a pod name or two a query
    batched_client = ThanosClient(ThanosSettings(client.settings.url))
    batched = fetch_hour(batched_client, TENANT_LABEL, "t-edge", H, H + 3600, 60)
    assert batched == summarised
    assert batched_client.requests_made >= one_query.requests_made + 5  # 10 pods in 2-name batches, not 2 queries
