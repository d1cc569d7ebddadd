"""``source/extract.py``: fetching a tenant-hour (``fetch_hour``) or a batch of them (``fetch_hours``), against a real
Prometheus.

``fetch_hour`` lets Prometheus reduce the pod-level series to one figure each (a mean, the first and last
positive sample, the labels) and fetches samples only for pods those figures cannot describe. These tests hold
the model's output on the summarised input equal to its output on every sample:

1. on the simulator's tenants (duplicated KSM series, a pod name reused inside an hour, churn, spot price
   changes, volumes, cron jobs...), hour by hour;
2. on a hand-made hour with the cases a reduction could get wrong: unaligned and jittered scrapes, a pod that
   starts or stops inside the hour, a pending container, a NaN allocation, two label series of one pod, GPU
   requests under two resource names, a pod without running series, samples 1 ms before the hour and exactly at
   its end; and which pods were fetched as samples;
3. the probe that tells a closed range (Prometheus 2) from a left-open one (Prometheus 3);
4. cAdvisor's usage series in the same hand-made hour (usage below and above requests, a restart as a counter
   reset and as a new cgroup id, ``container=""`` and ``"POD"`` series, a pod started inside the hour, jittered
   and missed scrapes, copies, NaN samples...): the summaries hold the figures docs/model.md defines, computed here
   from the raw samples by a reference written from that definition, and both inputs give the same usage.

And, on the Prometheus seeded by ``test_source_thanos.py`` (its data and fixtures imported from there):

5. the tenant: a hostile id refused before any request (the first defence), regex-looking safe ids matching
   nothing, another tenant's series dropped even if the server returns them (the third defence);
6. an hour fetched through the client's faults equals it fetched directly;
7. ``fetch_hour(summarise=False)`` returns raw samples of ``[start - step, end)`` with their own timestamps, of the
   tenant asked.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import pytest

from kubecost_worker.errors import TerminalError
from kubecost_worker.model import compute_hour
from kubecost_worker.model.cluster import counter_window
from kubecost_worker.model.rows import COST_FIELDS, NETWORK_FIELDS, QUANTITY_FIELDS, REQUEST_FIELDS, USAGE_FIELDS
from kubecost_worker.model.series import (CONTAINER_CPU_USAGE_SECONDS_TOTAL as CPU_USAGE,
                                         CONTAINER_MEMORY_WORKING_SET_BYTES as WORKING_SET, NOT_CONTAINERS, RUNNING,
                                         KEPT_PREFIX, NEEDED_METRICS, HourInput, Series, Summary)
from kubecost_worker.store.ledger import SENTINEL_METRICS
from kubecost_worker.devtools.simulation import write_simulation
from kubecost_worker.source.extract import census, fetch_hour, fetch_hours
from kubecost_worker.source.promql import tenant_matcher
from kubecost_worker.source.thanos import ThanosClient, ThanosSettings

from .faultproxy import RESET, FaultProxy, Rewrite, Status, When, partial, query_of
from .test_source_thanos import (HOSTILE, SEED, STOP, T0, W_START, WARNINGS, direct, make_client,  # noqa: F401
                                 prom, proxy)  # prom, proxy: the fixtures

pytestmark = [pytest.mark.needs_prometheus]

TENANT_LABEL = "tenant_id"
FIELDS = (*QUANTITY_FIELDS, *COST_FIELDS, *REQUEST_FIELDS, *USAGE_FIELDS, *NETWORK_FIELDS)
# Every column to the same tolerance: the model's irate divides by whole milliseconds, as Prometheus's does.
TOLERANCE: dict[str, float] = {}


def assert_same_result(summarised, sampled) -> None:
    """Same rows (keys, labels, every figure to 1e-12 relative), metric samples, sentinel sample counts."""
    expected = {row.key: row for row in sampled.rows}
    actual = {row.key: row for row in summarised.rows}
    assert actual.keys() == expected.keys()
    for key, row in actual.items():
        assert row.labels == expected[key].labels, key
        assert (row.service, row.price_source) == (expected[key].service, expected[key].price_source), key
        for name in FIELDS:
            a, b = getattr(row, name), getattr(expected[key], name)
            if b is None:  # usage unknown (NULL) on one path: on both
                assert a is None, (key, name, a)
            else:
                assert a == pytest.approx(b, rel=TOLERANCE.get(name, 1e-12), abs=1e-15), (key, name, a, b)
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
            # the daemonset's series kube-state-metrics reports too came as samples, its allocations summarised
            monitoring = {m: {type(s) for s in summarised.of(m) if s.labels["namespace"] == "monitoring"}
                          for m in (RUNNING, "kube_pod_container_resource_requests", "container_cpu_allocation")}
            assert monitoring == {RUNNING: {Series}, "kube_pod_container_resource_requests": {Series},
                                  "container_cpu_allocation": {Summary}}
    assert summarised_pods > 100  # and most pods did not


def test_batched_hours_equal_each_hour_fetched_alone_and_the_samples(prometheus_from, tmp_path):
    """``fetch_hours``: the summaries of consecutive hours from range queries at a one-hour step are the summaries of
    each hour fetched alone, value for value, so the model's rows are the same bits; and the same as the samples'.
    The hand-made hour of edge cases is batched in ``test_the_hand_made_hour_batched_with_its_neighbours``."""
    start = int(time.time()) // 3600 * 3600 - 6 * 3600
    tenants = ["acme", "globex"]
    sim = write_simulation(tmp_path / "sim", tenants, start, 4, nodes=4, pods=40, seed=4)
    url = prometheus_from(Path(sim["openmetrics"]))
    hours = list(range(start, start + 4 * 3600, 3600))
    for tenant in tenants:
        client = ThanosClient(ThanosSettings(url))
        batched = fetch_hours(client, TENANT_LABEL, tenant, hours, 60)
        inputs = [hour.read() for hour in batched]  # an hour that failed would raise its error here
        # about a dozen queries for every hour together, plus each hour's samples and re-fetches
        alone, sampled = ThanosClient(ThanosSettings(url)), ThanosClient(ThanosSettings(url))
        for hour, together in zip(hours, inputs):
            single = fetch_hour(alone, TENANT_LABEL, tenant, hour, hour + 3600, 60)
            assert together.series == single.series and together.counted == single.counted
            result = compute_hour(together)
            assert result.rows == compute_hour(single).rows
            assert_same_result(result, compute_hour(fetch_hour(sampled, TENANT_LABEL, tenant, hour, hour + 3600, 60,
                                                               summarise=False)))
        # each hour's share of the shared queries and its own: what the ledger records
        assert sum(hour.load().queries for hour in batched) < alone.load.queries / 2
        assert sum(hour.load().bytes for hour in batched) < alone.load.bytes


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
    # its owner series alone twice (kube-state-metrics and the cost-model): the copies merged, the rest summarised
    pod(om, "owned-twice", [t for t, _ in hour])
    om.add("kube_pod_owner", {"namespace": "app", "pod": "owned-twice", "owner_kind": "ReplicaSet",
                              "owner_name": "owned-twice-5d8f7c9b4", "owner_is_controller": "true",
                              "job": "kube-state-metrics"}, [(t, 1.0) for t, _ in hour])
    usage_cases(om)
    return om.write(path)


def usage(om: OpenMetrics, name: str, times, *, container: str = "c", cgroup: str | None = None, cores=0.1,
          working_set: float | None = 0.5 * GIB, cpu: bool = True, counter_from: float = 5000.0,
          reset_at: float | None = None, nan_at: float | None = None, labels: dict | None = None):
    """cAdvisor's CPU counter and working set of one container cgroup, sampled at ``times``: the counter grows at
    ``cores`` (varying around it), restarts from 0 at ``reset_at``; ``nan_at`` is a NaN sample of the counter."""
    base = {"namespace": "app", "pod": name, "container": container, "id": cgroup or f"/kubepods/{name}/{container}",
            "image": "app:1", "instance": "kubelet-1", "job": "kubelet", **(labels or {})}
    value, previous, counter, memory = counter_from, None, [], []
    for t in times:
        if previous is not None:
            value += cores * (1 + 0.5 * math.sin(t / 300)) * (t - previous)
        if reset_at is not None and previous is not None and previous < reset_at <= t:
            value = cores * (t - reset_at)
        previous = t
        counter.append((t, math.nan if nan_at is not None and t == nan_at else value))
        if working_set is not None:
            memory.append((t, working_set * (1 + 0.2 * math.sin(t / 400))))
    if cpu:
        om.add(CPU_USAGE, base, counter)
    if working_set is not None:
        om.add(WORKING_SET, base, memory)


def usage_cases(om: OpenMetrics) -> None:
    hour = [t for t, _ in every_minute(H - 60, H + 3600)]
    # using less than requested (0.25 cores, 1 GiB), unaligned: summarised; cAdvisor's pod cgroup and pause
    # container beside it: never summarised, left out on both paths
    usage(om, "steady", [t + 7 for t in hour])
    usage(om, "steady", [t + 7 for t in hour], container="", cgroup="/kubepods/steady", cores=0.2, working_set=GIB)
    usage(om, "steady", [t + 7 for t in hour], container="POD", cores=0.001, working_set=1e6)
    # using more than requested, a sample exactly at the end (the next hour's): summarised
    usage(om, "aligned", hour, cores=0.4, working_set=1.5 * GIB)
    # started at minute 20: no counter sample before the hour, the increase starts at its first one: samples
    started = [t for t, _ in every_minute(H + 1200, H + 3540)]
    pod(om, "started", started)
    usage(om, "started", started)
    # a restart as a counter reset (the id label dropped): samples
    pod(om, "restarted", hour)
    usage(om, "restarted", hour, cores=0.3, reset_at=H + 1510)
    # a restart as a new cgroup: the old series to minute 30, the new one from minute 31 (no sample before the
    # hour, and two working-set series of one container): samples
    pod(om, "reborn", hour)
    usage(om, "reborn", [t for t in hour if t <= H + 1800], cgroup="/kubepods/reborn/c-1")
    usage(om, "reborn", [t for t in hour if t >= H + 1860], cgroup="/kubepods/reborn/c-2", counter_from=0.0)
    # jittered scrapes (+-4 s) with a missed one at minute 33: summarised, the irate grid sees one sample or three
    jitter = random.Random(14)
    wobbly = [H - 58, H + 1] + [H + 60 * i + jitter.uniform(-4, 4) for i in range(1, 61) if i != 33]
    pod(om, "wobbly", hour)
    usage(om, "wobbly", [round(t, 3) for t in wobbly], cores=0.7)
    # aligned, 0.1 cores but for two jumps the irate grid must not see: into the hour's first sample (the grid's
    # first point is start + step) and across a missed scrape at minute 45 (no point has both ends of it within
    # 2 x step - 1 ms): summarised
    pod(om, "spiky", hour)
    spiky, value = [], 100.0
    for t in hour:
        value += 6.0 + (600.0 if t in (H, H + 2760) else 0.0)
        if t != H + 2700:
            spiky.append((t, value))
    om.add(CPU_USAGE, {"namespace": "app", "pod": "spiky", "container": "c", "id": "/kubepods/spiky/c"}, spiky)
    # the scrape before the hour missed: no sample in its step, the increase starts at the hour's first (the model
    # reads no further back than a step): a summary still
    pod(om, "gap", hour)
    usage(om, "gap", [t for t in hour if t != H - 60] + [H - 120])
    # a NaN sample hiding a reset (resets() compares across the NaN, the model leaves it out): samples
    pod(om, "nan-cpu", hour)
    usage(om, "nan-cpu", hour, reset_at=H + 630, nan_at=H + 600)
    # a NaN working set: samples
    pod(om, "nan-ws", hour)
    usage(om, "nan-ws", hour, working_set=None)
    om.add(WORKING_SET, {"namespace": "app", "pod": "nan-ws", "container": "c", "id": "/kubepods/nan-ws/c"},
           [(t, math.nan if t == H + 900 else 3e8) for t in hour])
    # copies of one cgroup's series from two kubelet scrapes: samples
    pod(om, "twin", hour)
    usage(om, "twin", hour)
    usage(om, "twin", hour, labels={"instance": "kubelet-2"})
    # two CPU counters of one container, both through the hour: summaries, their increases add up
    pod(om, "two-ids", hour)
    usage(om, "two-ids", hour, cgroup="/kubepods/two-ids/a", working_set=None)
    usage(om, "two-ids", hour, cgroup="/kubepods/two-ids/b", cores=0.02, working_set=None)
    # two working sets of one container, both through the hour: the model averages their samples together, which
    # their means cannot give: samples
    pod(om, "two-ws", hour)
    usage(om, "two-ws", hour, cgroup="/kubepods/two-ws/a", cpu=False)
    usage(om, "two-ws", [t + 30 for t in hour], cgroup="/kubepods/two-ws/b", cpu=False, working_set=GIB)
    # a sidecar cgroup whose last samples are just before the hour: samples (the model reads the one before)
    pod(om, "sidecar", hour)
    usage(om, "sidecar", hour)
    usage(om, "sidecar", [t for t in hour if t < H] + [H - 30], container="side")
    # working set without a CPU counter: summarised
    pod(om, "ws-only", hour)
    usage(om, "ws-only", hour, cpu=False, working_set=2.5 * GIB)
    # a pod name reused with a new uid at minute 30: samples
    om.add("kube_pod_container_status_running", {"namespace": "app", "pod": "reused", "container": "c",
                                                 "uid": "uid-reused-1"}, [(t, 1.0) for t in hour if t < H + 1800])
    om.add("kube_pod_container_status_running", {"namespace": "app", "pod": "reused", "container": "c",
                                                 "uid": "uid-reused-2"}, [(t, 1.0) for t in hour if t >= H + 1800])
    pod(om, "reused", hour, running=None)
    usage(om, "reused", [t for t in hour if t < H + 1800], cgroup="/kubepods/reused-1/c")
    usage(om, "reused", [t for t in hour if t >= H + 1800], cgroup="/kubepods/reused-2/c", counter_from=0.0)
    # usage of a pod that nothing else reports: samples
    usage(om, "ghost", hour)
    # two samples in the step before the hour, a steep rise between them, the next one late: the model keeps
    # only the later one and no irate of the grid's first point, where Prometheus's irate reads both: samples
    pod(om, "jittered", hour)
    om.add(CPU_USAGE, {"namespace": "app", "pod": "jittered", "container": "c", "id": "/kubepods/jittered/c"},
           [(H - 55, 100.0), (H - 2, 200.0), (H + 61, 206.0)] + [(t, 206.0 + (t - H) / 10) for t in hour if t > H + 61])
    usage(om, "jittered", hour, cpu=False)
    # and "gpu" has no usage series at all


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


def test_only_the_series_a_summary_cannot_describe_come_as_samples(edge):
    _, summarised, _ = edge
    running = kinds(summarised, RUNNING)
    allocation = kinds(summarised, "container_cpu_allocation")
    requests = kinds(summarised, "kube_pod_container_resource_requests")
    for name in ("steady", "aligned", "edge-ms"):
        assert running[name] is Summary and allocation[name] is Summary and requests[name] is Summary, name
    for name in ("jitter", "late", "early", "stopped"):  # first or last sample not pinned down: running samples
        assert running[name] is Series and allocation[name] is Summary and requests[name] is Summary, name
    # not one instance in the hour: every series of the pod
    assert allocation["pending"] is Series and requests["pending"] is Series and running["pending"] is Series
    assert allocation["no-running"] is Series and requests["no-running"] is Series and "no-running" not in running
    # one instance: the metric the summary cannot stand for, the pod's others summarised
    assert allocation["nan"] is Series and requests["nan"] is Summary  # a NaN allocation sample
    for name in ("gpu", "copied"):  # two request series of one container and resource
        assert requests[name] is Series and allocation[name] is Summary and running[name] is Summary, name
    assert kinds(summarised, "kube_pod_labels") == {"relabelled": Series, "steady": Summary}
    owners = kinds(summarised, "kube_pod_owner")
    assert owners["relabelled"] is Summary and owners["owned-twice"] is Series
    assert (running["owned-twice"], allocation["owned-twice"], requests["owned-twice"]) == (Summary, Summary, Summary)


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


# -- 4. usage series ----------------------------------------------------------------------------------------------

def reference_increase(samples, start: float, end: float) -> float:
    """docs/model.md: from the last sample before ``start`` (the fetch brings at most one step before it) to the
    last one before ``end``, the sum of ``v - previous``, or of ``v`` where ``v < previous`` (a reset)."""
    chain = counter_window(samples, start, end)
    return sum(b - a if b >= a else b for (_, a), (_, b) in zip(chain, chain[1:]))


def reference_max_irate(samples, start: int, end: int, step: int) -> float:
    """docs/model.md's irate grid: at ``t = start + k x step``, k = 1 ... 3600/step - 1, the irate of the last two
    samples in ``[t - (2 x step - 1 ms), t]`` (``v2`` alone where ``v2 < v1``), the highest of them; of the samples
    the model reads of a counter (the last one before the hour and those inside it). Times in whole milliseconds,
    as Prometheus stores them (float seconds would be off by a few 1e-9 relative)."""
    ms = [(round(t * 1000), v) for t, v in counter_window(samples, start, end)]
    rates = []
    for k in range(1, (end - start) // step):
        t = (start + k * step) * 1000
        inside = [x for x in ms if t - (2 * step * 1000 - 1) <= x[0] <= t]
        if len(inside) >= 2:
            (t1, v1), (t2, v2) = inside[-2:]
            rates.append((v2 - v1 if v2 >= v1 else v2) / ((t2 - t1) / 1000))
    return max(rates) if rates else math.nan


def reference(metric: str, s: Series, start: int, end: int, step: int) -> tuple[float, float]:
    """The figures of a usage series as docs/model.md defines them: (increase, maximum) of the CPU counter,
    (mean, maximum) of the working set."""
    if metric == CPU_USAGE:
        return reference_increase(s.samples, start, end), reference_max_irate(s.samples, start, end, step)
    inside = [v for t, v in s.samples if start <= t < end]
    return (sum(inside) / len(inside), max(inside)) if inside else (math.nan, math.nan)


def figures_of(metric: str, s: Summary) -> tuple[float, float]:
    return (s.increase, s.maximum) if metric == CPU_USAGE else (s.mean, s.maximum)


def container_usage(hour_input) -> dict[tuple, tuple]:
    """Per container (namespace, pod, container), the figures of its usage series as docs/model.md combines
    them: increases added, maxima the highest, working-set samples averaged together; from samples by the
    reference, from a summary as sent. The stand-in for the model's usage columns until it computes them."""
    out: dict[tuple, list] = {}
    for metric in (CPU_USAGE, WORKING_SET):
        by_container: dict[tuple, list] = {}
        for s in hour_input.of(metric):
            if s.labels.get("container", "") not in NOT_CONTAINERS:
                by_container.setdefault((s.labels["namespace"], s.labels["pod"], s.labels["container"]), []).append(s)
        for key, group in by_container.items():
            group = list({s.labels["id"]: s for s in group}.values())  # copies: one cgroup's series once
            if metric == WORKING_SET and all(isinstance(s, Series) for s in group):
                inside = [v for s in group for t, v in s.samples if H <= t < H + 3600]
                if not inside:
                    continue  # only samples before the hour: the model's window leaves none
                figures = (sum(inside) / len(inside), max(inside))
            else:
                each = [figures_of(metric, s) if isinstance(s, Summary) else reference(metric, s, H, H + 3600, 60)
                        for s in group]
                assert metric == CPU_USAGE or len(each) == 1, key  # summaries of two working sets never come
                figures = (sum(a for a, _ in each), max(b for _, b in each))
            at = 0 if metric == CPU_USAGE else 2
            out.setdefault(key, [None] * 4)[at:at + 2] = figures
    return {key: tuple(v) for key, v in out.items()}


def test_usage_summaries_hold_the_model_figures(edge):
    """Every usage summary equals the definition computed from the same series' raw samples."""
    _, summarised, sampled = edge
    for metric in (CPU_USAGE, WORKING_SET):
        raw = {frozenset(s.labels.items()): s for s in sampled.of(metric)}
        summaries = [s for s in summarised.of(metric) if isinstance(s, Summary)]
        assert summaries, metric
        for s in summaries:
            expected = reference(metric, raw[frozenset(s.labels.items())], H, H + 3600, 60)
            assert figures_of(metric, s) == pytest.approx(expected, rel=1e-12), (metric, dict(s.labels))


def test_usage_is_the_same_on_both_paths(edge):
    _, summarised, sampled = edge
    expected = container_usage(sampled)
    actual = container_usage(summarised)
    assert actual.keys() == expected.keys()
    for key, figures in actual.items():
        assert [f is None for f in figures] == [f is None for f in expected[key]], key  # no such series: NULL
        for a, b in zip(figures, expected[key]):
            assert a == pytest.approx(b, rel=1e-12, nan_ok=True) if b is not None else a is None, key
    # the cases are really in the data
    steady, aligned = expected[("app", "steady", "c")], expected[("app", "aligned", "c")]
    assert steady[0] / 3600 < 0.25 and steady[2] < GIB < aligned[2] and aligned[0] / 3600 > 0.25
    assert expected[("app", "restarted", "c")][0] == pytest.approx(0.3 * 3600, rel=0.1)  # the reset counted whole
    assert ("app", "gpu", "c") not in expected and ("app", "wobbly", "c") in expected
    assert expected[("app", "spiky", "c")][:2] == pytest.approx((60 * 6.0 + 2 * 600.0, 0.1))  # the jumps: not rates
    for key in expected:
        assert key[2] not in NOT_CONTAINERS


def test_only_the_pods_usage_summaries_cannot_describe_come_as_samples(edge):
    _, summarised, sampled = edge
    cpu, memory = kinds(summarised, CPU_USAGE), kinds(summarised, WORKING_SET)
    for name in ("steady", "aligned", "wobbly"):
        assert cpu[name] is Summary and memory[name] is Summary, name
    assert cpu["spiky"] is Summary
    assert cpu["two-ids"] is Summary and memory["ws-only"] is Summary and "ws-only" not in cpu
    # started inside the hour, or the scrape before it missed: the increase counts from the hour's first (its lowest)
    for name in ("started", "gap"):
        assert cpu[name] is Summary and memory[name] is Summary, name
    # not one instance in the hour (a pod name reused, usage of a pod nothing else reports): every series of the pod
    for name in ("reused", "ghost"):
        assert memory[name] is Series and cpu[name] is Series, name
        assert all(isinstance(s, Series) for s in summarised.of("container_cpu_allocation")
                   if s.labels["pod"] == name), name
    # one instance: the usage metric whose figure the server cannot give (a reset, a NaN, a counter ending before
    # the hour, two samples in the step before it) or whose series the model merges (copies, two working sets of one
    # container); the pod's other series summarised
    samples_of = {"restarted": {CPU_USAGE}, "nan-cpu": {CPU_USAGE}, "sidecar": {CPU_USAGE}, "jittered": {CPU_USAGE},
                  "nan-ws": {WORKING_SET}, "reborn": {WORKING_SET}, "two-ws": {WORKING_SET},
                  "twin": {CPU_USAGE, WORKING_SET}}
    for name, metrics in samples_of.items():
        assert {m for m, of in ((CPU_USAGE, cpu), (WORKING_SET, memory)) if of.get(name) is Series} == metrics, name
        assert all(isinstance(s, Summary) for s in summarised.of("container_cpu_allocation")
                   if s.labels["pod"] == name), name
    # cAdvisor's pod cgroup and pause container: in the samples, never in the summarised input
    steady = {s.labels.get("container", "") for s in sampled.of(CPU_USAGE) if s.labels["pod"] == "steady"}
    assert steady == {"", "POD", "c"}
    assert all(s.labels.get("container", "") not in NOT_CONTAINERS for m in (CPU_USAGE, WORKING_SET)
               for s in summarised.of(m))
    # usage samples are not counted (a census of every cAdvisor series would cost Prometheus a pass over them):
    # nothing reads them; the coverage the runs record counts the sentinel series, and those are counted alike
    for metric in (CPU_USAGE, WORKING_SET):
        assert metric not in summarised.counted and sampled.counted[metric] > 0, metric
        with pytest.raises(ValueError, match="without the server's sample count"):
            summarised.sample_count((metric,))
    assert summarised.sample_count(SENTINEL_METRICS) == sampled.sample_count(SENTINEL_METRICS) > 0


@pytest.mark.parametrize("metric", [CPU_USAGE, WORKING_SET])
def test_a_usage_summary_missing_series_is_refused(edge, metric):
    """A proxy or store dropping part of a usage summary's answer: the census tells, the hour is not priced."""
    from kubecost_worker.source.thanos import ThanosBadAnswer

    client, _, _ = edge

    def drop_a_series(body: dict) -> dict:
        result = body["data"]["result"]
        body["data"]["result"] = [i for i in result if i["metric"].get("pod") != "steady"]
        return body

    with FaultProxy(client.settings.url) as proxy:
        # every figure's answer, not the census's
        proxy.default = When(lambda q: f"({metric}{{" in q and "label_replace" not in q, Rewrite(drop_a_series))
        with pytest.raises(ThanosBadAnswer, match=f"{metric}: the summary lists .* an answer is incomplete"):
            fetch_hour(ThanosClient(ThanosSettings(proxy.url)), TENANT_LABEL, "t-edge", H, H + 3600, 60)


def test_the_models_usage_columns_are_the_definitions(edge):
    """The model's usage columns on either input are docs/model.md's figures (the reference above), NULL where a
    container has no usage series of a kind."""
    _, summarised, sampled = edge
    reference_usage = container_usage(sampled)
    for hour_input in (summarised, sampled):
        rows = {(row.pod, row.container): row for row in compute_hour(hour_input).rows if row.container}
        for name in ("steady", "aligned", "wobbly", "spiky", "two-ids", "restarted", "reborn", "started", "nan-cpu",
                     "twin", "sidecar", "ws-only", "two-ws", "jittered"):
            row = rows[(name, "c")]
            increase, max_cores, mean, max_bytes = reference_usage[("app", name, "c")]
            if increase is None:
                assert row.cpu_usage_core_hours is None and row.cpu_usage_max_cores is None, name
            else:
                assert row.cpu_usage_core_hours == pytest.approx(increase / 3600, rel=1e-12), name
                assert row.cpu_usage_max_cores == pytest.approx(max_cores, rel=1e-8), name
            if mean is None:
                assert row.ram_usage_byte_hours is None and row.ram_usage_max_bytes is None, name
            else:
                assert row.ram_usage_byte_hours == pytest.approx(mean * row.running_minutes / 60, rel=1e-12), name
                assert row.ram_usage_max_bytes == max_bytes, name
        assert rows[("gpu", "c")].cpu_usage_core_hours is None and rows[("gpu", "c")].ram_usage_byte_hours is None
        assert not any(container in NOT_CONTAINERS for _, container in rows)


def test_the_hand_made_hour_batched_with_its_neighbours(edge):
    """The edge cases' hour fetched with the hours around it: the same summaries, the same rows."""
    client, summarised, sampled = edge
    before, hour, after = (h.read() for h in fetch_hours(client, TENANT_LABEL, "t-edge", [H - 3600, H, H + 3600], 60))
    assert hour.series == summarised.series and hour.counted == summarised.counted
    assert_same_result(compute_hour(hour), compute_hour(sampled))
    assert isinstance(before, HourInput) and isinstance(after, HourInput)


def test_a_census_asked_ahead_is_taken_for_the_first_hours_it_covers_and_the_rest_asked(edge):
    """A batch given the census of its first hour (``Pipeline`` asks it ahead to size the batch) takes it for that
    hour and asks the census of the others: the same inputs as a batch that asks every hour's."""
    client = edge[0]
    hours = [H - 3600, H, H + 3600]
    ahead = census(client, TENANT_LABEL, "t-edge", hours[:1], 60)
    assert ahead.of(hours) == ahead.per_hour and ahead.of(hours[1:]) == [] and ahead.of([H - 7200, *hours]) == []
    given = [h.read() for h in fetch_hours(client, TENANT_LABEL, "t-edge", hours, 60, ahead)]
    asked = [h.read() for h in fetch_hours(client, TENANT_LABEL, "t-edge", hours, 60)]
    assert [(h.series, h.counted) for h in given] == [(h.series, h.counted) for h in asked]


def test_a_fault_in_one_batched_hour_fails_that_hour_only(edge):
    """A range answer missing one series at one hour's point: that hour is refused (its census tells), the others
    are read; a shared query failing outright: each hour is fetched on its own."""
    from kubecost_worker.source.thanos import ThanosBadAnswer

    client, summarised, _ = edge

    def drop_a_point_of_the_last_hour(body: dict) -> dict:
        if body["data"]["resultType"] == "matrix":  # the batched answer; an hour fetched alone passes
            item = next(i for i in body["data"]["result"] if i["metric"].get("pod") == "steady")
            item["values"] = item["values"][:-1]
        return body

    def first_time_only(prefix: str):
        seen = []

        def matches(query: str) -> bool:
            if query.startswith(prefix):
                seen.append(query)
                return len(seen) == 1
            return False

        return matches

    hours = [H - 3600, H]
    with FaultProxy(client.settings.url) as proxy:
        proxy.default = When(lambda q: q.startswith("avg_over_time(container_cpu_allocation"),
                             Rewrite(drop_a_point_of_the_last_hour))
        proxied = ThanosClient(ThanosSettings(proxy.url, retries=1))
        before, hour = fetch_hours(proxied, TENANT_LABEL, "t-edge", hours, 60)
        assert isinstance(before.read(), HourInput)
        with pytest.raises(ThanosBadAnswer, match="an answer is incomplete"):
            hour.read()
        # a shared query failing for good (its one attempt): each hour alone, as fetch_hour would
        proxy.default = When(first_time_only("avg_over_time(container_memory_allocation"),
                             Status(503, {"status": "error", "errorType": "unavailable", "error": "down"}))
        before, hour = (h.read() for h in fetch_hours(proxied, TENANT_LABEL, "t-edge", hours, 60))
        assert hour.series == summarised.series and isinstance(before, HourInput)


def test_a_summary_that_is_not_a_number_fails_its_batched_hour_only(edge):
    """A batch's answers wait for their hours as numbers: a value of the last hour written as no number is that
    hour's error, raised when it is read, and the hour before is read from the same answers, as it is alone, with
    no summary asked again."""
    from kubecost_worker.source.thanos import ThanosBadAnswer

    client, _, _ = edge
    spoiled = "avg_over_time(container_cpu_allocation"

    def spoil_a_value_of_the_last_hour(body: dict) -> dict:
        if body["data"]["resultType"] == "matrix":  # the batched answer; an hour fetched alone passes
            item = next(i for i in body["data"]["result"] if len(i["values"]) == 2)  # a series in both hours
            item["values"][1] = [item["values"][1][0], "twelve"]
        return body

    hours = [H - 3600, H]
    with FaultProxy(client.settings.url) as proxy:
        proxy.default = When(lambda q: q.startswith(spoiled), Rewrite(spoil_a_value_of_the_last_hour))
        before, hour = fetch_hours(ThanosClient(ThanosSettings(proxy.url, retries=1)), TENANT_LABEL, "t-edge",
                                   hours, 60)
        assert before.read().series == fetch_hour(client, TENANT_LABEL, "t-edge", H - 3600, H, 60).series
        with pytest.raises(ThanosBadAnswer, match="a value that is not a number: twelve"):
            hour.read()
        # the batch's range query only: no hour was fetched on its own
        assert len([q for q in map(query_of, proxy.seen) if q.startswith(spoiled)]) == 1


def test_a_bad_sample_in_the_batchs_samples_fails_its_hour_only(edge):
    """The samples of a batch's hours come in one answer: a sample of the last hour given twice with two values
    refuses that answer, and each hour is then fetched on its own; the hour before, whose window holds no such
    sample, is read as it is alone."""
    from kubecost_worker.source.thanos import ThanosBadAnswer

    client, _, _ = edge
    contradicted = []

    def contradict_a_sample_of_the_last_hour(body: dict) -> dict:
        for item in body["data"]["result"]:
            inside = [p for p in item["values"] if H <= float(p[0]) < H + 3600]
            if inside:
                t, value = inside[0]
                item["values"].append([t, str(float(value) + 1)])
                contradicted.append(item["metric"]["__name__"])
                break
        return body

    hours = [H - 3600, H]
    with FaultProxy(client.settings.url) as proxy:
        # the samples of the metrics never summarised (node prices among them), not a re-fetch of some pods' series
        proxy.default = When(lambda q: "node_cpu_hourly_cost" in q and "pod=~" not in q,
                             Rewrite(contradict_a_sample_of_the_last_hour))
        before, hour = fetch_hours(ThanosClient(ThanosSettings(proxy.url, retries=1)), TENANT_LABEL, "t-edge",
                                   hours, 60)
        assert before.read().series == fetch_hour(client, TENANT_LABEL, "t-edge", H - 3600, H, 60).series
        with pytest.raises(ThanosBadAnswer, match="two samples at"):
            hour.read()
    assert len(contradicted) == 2  # the batch's answer, then the hour's own; the hour before had none to change


# -- 5. the tenant asked, and no other ------------------------------------------------------------------------------

@pytest.mark.parametrize("hostile", HOSTILE, ids=repr)
def test_hostile_tenant_is_refused_before_any_request(prom, proxy, hostile):
    client = make_client(proxy.url)
    with pytest.raises(TerminalError, match="safe alphabet"):
        fetch_hour(client, TENANT_LABEL, hostile, T0, T0 + 3600, 60)
    with pytest.raises(TerminalError):
        tenant_matcher(TENANT_LABEL, hostile)
    assert client.requests_made == 0
    assert proxy.count == 0, f"a request reached the server: {proxy.seen}"


@pytest.mark.parametrize("tenant", ["good-tenant.", "good-tenan", "Good-Tenant", "good-tenant.+", "good-tenant=",
                                    "other-tenant:good-tenant"])
def test_regex_looking_safe_tenant_ids_match_nothing(prom, proxy, tenant):
    client = make_client(proxy.url)
    hour = fetch_hour(client, TENANT_LABEL, tenant, T0, T0 + 3600, 60)
    assert dict(hour.series) == {}
    assert client.requests_made == proxy.count  # every query went to the server, none found data


def test_fetch_hour_drops_series_of_another_tenant_even_if_the_server_returns_them(prom, proxy):
    """The third defence: a misbehaving server (a Thanos without tenancy enforcement, say) cannot leak data."""
    def inject(body: dict) -> dict:
        body["data"]["result"].append({"metric": {"__name__": "node_cpu_hourly_cost", "node": "evil",
                                                  TENANT_LABEL: "other-tenant"},
                                       "values": [[T0 + 60, "123"]]})
        body["data"]["result"].append({"metric": {"__name__": "node_cpu_hourly_cost", "node": "evil-untenanted"},
                                       "values": [[T0 + 60, "123"]]})
        return body

    clean = fetch_hour(make_client(prom), TENANT_LABEL, "good-tenant", T0, T0 + 3600, 60)
    proxy.script(Rewrite(inject))
    hour = fetch_hour(make_client(proxy.url), TENANT_LABEL, "good-tenant", T0, T0 + 3600, 60)
    assert proxy.count >= 10  # the samples and every summarising query, each rewritten
    assert hour == clean
    assert "evil" not in {s.labels["node"] for s in hour.of("node_cpu_hourly_cost")}


# -- 6. through the client's faults ---------------------------------------------------------------------------------

def test_fetch_hour_through_faults_equals_fetch_hour_direct(prom, proxy):
    clean = fetch_hour(make_client(prom), TENANT_LABEL, "good-tenant", T0, T0 + 3600, 60, summarise=False)
    proxy.script(Status(503), partial(WARNINGS), RESET)
    hour = fetch_hour(make_client(proxy.url), TENANT_LABEL, "good-tenant", T0, T0 + 3600, 60, summarise=False)
    assert hour == clean
    assert proxy.count == 4


def test_summarised_fetch_through_faults_equals_it_direct(prom, proxy):
    """The summarising queries run in parallel: faults hit whichever comes first, and each is retried alone."""
    clean = fetch_hour(make_client(prom), TENANT_LABEL, "good-tenant", T0, T0 + 3600, 60)
    proxy.script(Status(503), partial(WARNINGS), RESET)  # fewer than the attempts, even if one query gets all
    client = make_client(proxy.url)
    hour = fetch_hour(client, TENANT_LABEL, "good-tenant", T0, T0 + 3600, 60)
    assert hour == clean
    assert client.requests_made == proxy.count >= 3 + 10  # the 3 faults, then every query answered


# -- 7. fetch_hour(summarise=False): raw samples of [start - step, end), of the tenant asked ------------------------

def expected_hour(tenant: str, start: int, end: int, step: int) -> dict[tuple, list[tuple[float, float]]]:
    out = {}
    for name, labels, samples in SEED:
        if labels.get(TENANT_LABEL) != tenant or not (name in NEEDED_METRICS or name.startswith(KEPT_PREFIX)):
            continue
        kept = [(float(t), v) for t, v in samples if start - step <= t < end]
        if kept:  # the model's input carries no tenant label: the source checked it and stripped it
            out[(name, tuple(sorted((k, v) for k, v in labels.items() if k != TENANT_LABEL)))] = kept
    return out


def actual_hour(hour) -> dict[tuple, list[tuple[float, float]]]:
    out = {}
    for name, group in hour.series.items():
        for series in group:
            key = (name, tuple(sorted(series.labels.items())))
            assert key not in out, f"series twice: {key}"
            out[key] = list(series.samples)
    return out


@pytest.mark.parametrize("tenant", ["good-tenant", "other-tenant"])
@pytest.mark.parametrize("step", [60, 300])
def test_fetch_hour_returns_the_raw_samples_of_the_hour(prom, tenant, step):
    start, end = T0, T0 + 3600
    client = make_client(prom)
    hour = fetch_hour(client, TENANT_LABEL, tenant, start, end, step, summarise=False)

    assert client.requests_made == 1
    assert (hour.tenant, hour.start, hour.end, hour.step) == (tenant, start, end, step)
    assert actual_hour(hour) == expected_hour(tenant, start, end, step)
    for name, group in hour.series.items():
        assert name and (name in NEEDED_METRICS or name.startswith(KEPT_PREFIX))
        for series in group:
            assert TENANT_LABEL not in series.labels and "__name__" not in series.labels
            assert all(start - step <= t < end for t, _ in series.samples)
            assert [t for t, _ in series.samples] == sorted({t for t, _ in series.samples})
    assert "unrelated_metric" not in hour.series


def test_fetch_hour_window_edges_and_own_timestamps(prom):
    start, end, step = T0, T0 + 3600, 60
    hour = fetch_hour(make_client(prom), TENANT_LABEL, "good-tenant", start, end, step, summarise=False)
    nodes = {s.labels["node"]: s.samples for s in hour.of("node_cpu_hourly_cost")}
    assert set(nodes) == {"n1", "n2"}  # not n9 (other-tenant), not n0 (no tenant), no probe
    # on the minute: from start - step (included) up to the last sample before end; the one at end is the next hour's
    assert nodes["n1"][0][0] == start - step and nodes["n1"][-1][0] == end - 60
    assert len(nodes["n1"]) == 61
    # 7 s after the minute: the samples' own timestamps, not the evaluation grid
    assert nodes["n2"][0][0] == start - step + 7 and nodes["n2"][-1][0] == end - 60 + 7
    assert all(t % 60 == 7 for t, _ in nodes["n2"])
    assert nodes["n2"][0][1] == 200.5 + (start - step - W_START) // 60

    pods = {s.labels["pod"]: s.samples for s in hour.of("container_cpu_allocation")}
    assert set(pods) == {"stopper", "steady"}
    # stops at minute 20: no sample after it (no 5-minute lookback), each sample exactly as seeded
    assert pods["stopper"] == [(float(t), 0.25 + i) for i, t in enumerate(range(T0, STOP + 1, 60))]
    assert max(t for t, _ in pods["stopper"]) == STOP


def test_fetch_hour_keeps_the_window_even_if_the_server_returns_more(prom, proxy):
    """A server whose range is wider (closed at both ends, or ignoring the 1 ms) must not leak the next hour's
    sample at ``end`` nor one before ``start - step`` into the hour."""
    start, end, step = T0, T0 + 3600, 60

    def widen(body: dict) -> dict:
        for item in body["data"]["result"]:
            if item["metric"].get("node") == "n1" and item["metric"]["__name__"] == "node_cpu_hourly_cost":
                item["values"] = [[start - step - 60, "1"], *item["values"], [end, "2"], [end + 60, "3"]]
        return body

    clean = fetch_hour(make_client(prom), TENANT_LABEL, "good-tenant", start, end, step, summarise=False)
    proxy.script(Rewrite(widen))
    hour = fetch_hour(make_client(proxy.url), TENANT_LABEL, "good-tenant", start, end, step, summarise=False)
    assert proxy.count == 1
    assert hour == clean


def test_query_range_would_have_applied_the_lookback(prom):
    """The premise of the test above: the same data through query_range runs on 5 minutes past the stop."""
    result = direct(prom, "/api/v1/query_range", query='container_cpu_allocation{pod="stopper"}',
                    start=T0, end=T0 + 3600 - 60, step=60)["result"]
    times = [float(t) for t, _ in result[0]["values"]]
    assert max(times) > STOP
    assert max(times) <= STOP + 300


def test_fetch_hour_leaves_out_non_finite_samples(prometheus_from, tmp_path):
    from kubecost_worker.source.extract import fetch_hour as fetch

    start = int(time.time()) // 3600 * 3600 - 5 * 3600
    values = ["0.03", "NaN", "+Inf", "0.03"]
    lines = ["# TYPE node_cpu_hourly_cost gauge"]
    lines += [f'node_cpu_hourly_cost{{node="n1",tenant_id="t-nan"}} {v} {start + i * 60}' for i, v in enumerate(values)]
    (tmp_path / "nan.om").write_text("\n".join(lines) + "\n# EOF\n")
    client = ThanosClient(ThanosSettings(prometheus_from(tmp_path / "nan.om")))
    hour = fetch(client, "tenant_id", "t-nan", start, start + 3600, 60)
    (series,) = hour.series["node_cpu_hourly_cost"]
    assert series.samples == [(float(start), 0.03), (float(start + 180), 0.03)]
