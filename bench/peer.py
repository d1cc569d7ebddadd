"""The worker against its peer, OpenCost, per tenant-hour, on one local Prometheus holding a simulated tenant.

    .venv/bin/python bench/peer.py [--pods 20,200,2000] [--hours 6] [--repeat 1]

The peer: the query set of OpenCost's ``CostModel.computeAllocation`` for a one-hour window, reproduced from
pkg/costmodel/allocation.go of opencost/opencost at commit 4ed1bcfe7835b1746a20a1a2a6ee6f1369d0fcbb (the
``queryFmt*`` templates and the order ``computeAllocation`` sends them in; ``buildPodMap``'s pods query from
allocation_helpers.go). Instant queries at the window's end, resolution 5 minutes, at most 5 at once (the
default concurrency of OpenCost's Prometheus client). At that commit, in the default build, one window sends 45
queries (the issue counts 47, from another revision; the incubating build's ``queryExtendedNodeData`` would add 3):
the pods query; then the CPU-maximum query on the recording rule ``kubecost_container_cpu_usage_irate``, which is
absent here, so its subquery fallback ``max_over_time(irate(...[10m])[1h:5m])`` (awaited one after the other, as
the source does); the node-labels query (``GetAllocationNodeLabelsEnabled``, on by default); and the 41 others.
OpenCost narrows nothing to a tenant: its only label is the cluster (``env.GetPromClusterLabel()``, grouped on);
here every query's selector carries ``tenant_id="<tenant>"`` and ``tenant_id`` stands for the cluster label.
Only the queries are sent and their answers parsed (``json``): OpenCost's computation and any storing are not
counted, so the peer's figures are a lower bound. The peer accepts gzipped answers, as OpenCost's client does (Go's
``http.Transport`` asks for them unless told not to; ``NewPrometheusClient`` in pkg/prom/prom.go does not tell it);
the worker does not by default (``KCW_THANOS_COMPRESSED``).

The worker: ``kubecost-worker backfill`` as a subprocess into a fresh embedded ClickHouse (migrated first,
untimed), hour by hour (``KCW_BATCH_HOURS=1``, the scheduled path) and batched (the defaults, a backfill). Start-up
is taken off: each backfill's figures less those of the same command over an empty range (one hour, a day before
the simulated data, into its own fresh path; the median of 3 such runs). ``--repeat N``: N rounds of the peer and
the worker's two runs in turn, each figure the median of the rounds (a machine whose speed drifts moves one round,
not the median).

Measured for each: wall seconds; the Prometheus process's CPU seconds (utime + stime from /proc/<pid>/stat, before
and after); the client's CPU seconds (the worker subprocess's, embedded ClickHouse included, from
``getrusage(RUSAGE_CHILDREN)``; the peer's client, this process's, from ``getrusage(RUSAGE_SELF)``). All divided
by the hours. Targets, ratios to the peer: wall hour by hour <= 1.5, batched <= 0.75; Prometheus CPU hour by hour
<= 1.0, batched <= 0.5; the worker's CPU batched <= 1.0 x the Prometheus CPU of the peer's queries.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import write_simulation  # noqa: E402
from kubecost_worker.hours import last_closed_hour  # noqa: E402

TENANT = "bench-tenant"
WORKER = Path(sys.executable).parent / "kubecost-worker"
CONCURRENCY = 5
RESOLUTION = "5m"
DOUBLE_RESOLUTION = "10m"
DURATION = "1h"

# OpenCost's templates (commit above), {T} where the tenant matcher goes, {C} for the cluster label, {d} the window's
# duration, {r} the resolution, {r2} twice the resolution.
POD_QUERY = "avg(kube_pod_container_status_running{{{T}}}) by (pod, namespace, {C})[{d}:{r}]"
CPU_MAX_RECORDING_RULE = ("max(max_over_time(kubecost_container_cpu_usage_irate{{{T}}}[{d}])) by (container_name, "
                          "container, pod_name, pod, namespace, instance, {C})")
CPU_MAX_SUBQUERY = ('max(max_over_time(irate(container_cpu_usage_seconds_total{{container_name!="POD", '
                    'container_name!="", {T}}}[{r2}])[{d}:{r}])) by (container_name, container, pod_name, pod, '
                    "namespace, instance, {C})")
# computeAllocation's order; the 7 sent before the CPU-maximum pair, then the rest.
BEFORE_CPU_MAX = [
    'avg(avg_over_time(container_memory_allocation_bytes{{container!="", container!="POD", node!="", {T}}}[{d}])) '
    "by (container, pod, namespace, node, {C}, provider_id)",
    'avg(avg_over_time(kube_pod_container_resource_requests{{resource="memory", unit="byte", container!="", '
    'container!="POD", node!="", {T}}}[{d}])) by (container, pod, namespace, node, {C})',
    'avg(avg_over_time(container_memory_working_set_bytes{{container!="", container_name!="POD", container!="POD", '
    "{T}}}[{d}])) by (container_name, container, pod_name, pod, namespace, instance, {C})",
    'max(max_over_time(container_memory_working_set_bytes{{container!="", container_name!="POD", container!="POD", '
    "{T}}}[{d}])) by (container_name, container, pod_name, pod, namespace, instance, {C})",
    'avg(avg_over_time(container_cpu_allocation{{container!="", container!="POD", node!="", {T}}}[{d}])) '
    "by (container, pod, namespace, node, {C})",
    'avg(avg_over_time(kube_pod_container_resource_requests{{resource="cpu", unit="core", container!="", '
    'container!="POD", node!="", {T}}}[{d}])) by (container, pod, namespace, node, {C})',
    'avg(rate(container_cpu_usage_seconds_total{{container!="", container_name!="POD", container!="POD", {T}}}[{d}])) '
    "by (container_name, container, pod_name, pod, namespace, instance, {C})",
]
AFTER_CPU_MAX = [
    'avg(avg_over_time(kube_pod_container_resource_requests{{resource="nvidia_com_gpu", container!="",'
    'container!="POD", node!="", {T}}}[{d}])) by (container, pod, namespace, node, {C})',
    'avg(avg_over_time(container_gpu_allocation{{container!="", container!="POD", node!="", {T}}}[{d}])) '
    "by (container, pod, namespace, node, {C})",
    "avg(avg_over_time(node_cpu_hourly_cost{{{T}}}[{d}])) by (node, {C}, instance_type, provider_id)",
    "avg(avg_over_time(node_ram_hourly_cost{{{T}}}[{d}])) by (node, {C}, instance_type, provider_id)",
    "avg(avg_over_time(node_gpu_hourly_cost{{{T}}}[{d}])) by (node, {C}, instance_type, provider_id)",
    "avg_over_time(kubecost_node_is_spot{{{T}}}[{d}])",
    'avg(kube_persistentvolumeclaim_info{{volumename != "", {T}}}) by (persistentvolumeclaim, storageclass, '
    "volumename, namespace, {C})[{d}:{r}]",
    "avg(avg_over_time(pod_pvc_allocation{{{T}}}[{d}])) by (persistentvolume, persistentvolumeclaim, pod, "
    "namespace, {C})",
    "avg(avg_over_time(kube_persistentvolumeclaim_resource_requests_storage_bytes{{{T}}}[{d}])) "
    "by (persistentvolumeclaim, namespace, {C})",
    "count(kube_persistentvolume_capacity_bytes{{{T}}}) by (persistentvolume, {C})[{d}:{r}]",
    "avg(avg_over_time(kube_persistentvolume_capacity_bytes{{{T}}}[{d}])) by (persistentvolume, {C})",
    "avg(avg_over_time(pv_hourly_cost{{{T}}}[{d}])) by (volumename, {C})",
    'sum(increase(container_network_transmit_bytes_total{{pod!="", {T}}}[{d}])) by (pod_name, pod, namespace, {C})',
    'sum(increase(container_network_receive_bytes_total{{pod!="", {T}}}[{d}])) by (pod_name, pod, namespace, {C})',
    'sum(increase(kubecost_pod_network_egress_bytes_total{{internet="false", sameZone="false", sameRegion="true", '
    "{T}}}[{d}])) by (pod_name, namespace, {C}) / 1024 / 1024 / 1024",
    "avg(avg_over_time(kubecost_network_zone_egress_cost{{{T}}}[{d}])) by ({C})",
    'sum(increase(kubecost_pod_network_egress_bytes_total{{internet="false", sameZone="false", sameRegion="false", '
    "{T}}}[{d}])) by (pod_name, namespace, {C}) / 1024 / 1024 / 1024",
    "avg(avg_over_time(kubecost_network_region_egress_cost{{{T}}}[{d}])) by ({C})",
    'sum(increase(kubecost_pod_network_egress_bytes_total{{internet="true", {T}}}[{d}])) by (pod_name, namespace, {C}) '
    "/ 1024 / 1024 / 1024",
    "avg(avg_over_time(kubecost_network_internet_egress_cost{{{T}}}[{d}])) by ({C})",
    "avg_over_time(kube_node_labels{{{T}}}[{d}])",
    "avg_over_time(kube_namespace_labels{{{T}}}[{d}])",
    "avg_over_time(kube_namespace_annotations{{{T}}}[{d}])",
    "avg_over_time(kube_pod_labels{{{T}}}[{d}])",
    "avg_over_time(kube_pod_annotations{{{T}}}[{d}])",
    "avg_over_time(service_selector_labels{{{T}}}[{d}])",
    "avg_over_time(deployment_match_labels{{{T}}}[{d}])",
    "avg_over_time(statefulSet_match_labels{{{T}}}[{d}])",
    'sum(avg_over_time(kube_pod_owner{{owner_kind="DaemonSet", {T}}}[{d}])) by (pod, owner_name, namespace, {C})',
    'sum(avg_over_time(kube_pod_owner{{owner_kind="ReplicaSet", {T}}}[{d}])) by (pod, owner_name, namespace ,{C})',
    'avg(avg_over_time(kube_replicaset_owner{{owner_kind="<none>", owner_name="<none>", {T}}}[{d}])) '
    "by (replicaset, namespace, {C})",
    'avg(avg_over_time(kube_replicaset_owner{{owner_kind="Rollout", {T}}}[{d}])) '
    "by (replicaset, namespace, owner_kind, owner_name, {C})",
    'sum(avg_over_time(kube_pod_owner{{owner_kind="Job", {T}}}[{d}])) by (pod, owner_name, namespace ,{C})',
    "avg(avg_over_time(kubecost_load_balancer_cost{{{T}}}[{d}])) by (namespace, service_name, {C})",
    "count(kubecost_load_balancer_cost{{{T}}}) by (namespace, service_name, {C})[{d}:{r}]",
]


def render(template: str) -> str:
    if template is CPU_MAX_SUBQUERY and SUBQUERY_LABEL != "container_name":
        template = template.replace("container_name!=", f"{SUBQUERY_LABEL}!=")
    return template.format(T=f'tenant_id="{TENANT}"', C="tenant_id", d=DURATION, r=RESOLUTION, r2=DOUBLE_RESOLUTION)


SUBQUERY_LABEL = "container_name"  # --subquery-label
QUERY_COUNT = 1 + len(BEFORE_CPU_MAX) + 2 + len(AFTER_CPU_MAX)


def prometheus_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


class Measure:
    """Wall, Prometheus CPU, and this process's own and its waited-for children's CPU, between enter and exit."""

    def __init__(self, pid: int):
        self.pid = pid

    @staticmethod
    def _cpu(who) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self):
        self.figures = {}
        self._start = (time.perf_counter(), prometheus_cpu(self.pid), self._cpu(resource.RUSAGE_SELF),
                       self._cpu(resource.RUSAGE_CHILDREN))
        return self.figures

    def __exit__(self, *exc):
        end = (time.perf_counter(), prometheus_cpu(self.pid), self._cpu(resource.RUSAGE_SELF),
               self._cpu(resource.RUSAGE_CHILDREN))
        wall, prom, own, children = (b - a for a, b in zip(self._start, end))
        self.figures.update(wall=wall, prom=prom, own=own, children=children)


def peer_window(session: requests.Session, pool: ThreadPoolExecutor, url: str, end: int) -> int:
    """One one-hour window's queries as computeAllocation sends them; the answers parsed; the series returned."""

    def query(template: str) -> list:
        response = session.get(f"{url}/api/v1/query", params={"query": render(template), "time": end}, timeout=600)
        body = json.loads(response.content)
        assert body.get("status") == "success", (template, response.text[:300])
        return body["data"]["result"]

    series = len(query(POD_QUERY))  # buildPodMap, before the rest
    before = [pool.submit(query, t) for t in BEFORE_CPU_MAX]
    cpu_max = pool.submit(query, CPU_MAX_RECORDING_RULE).result()
    if not cpu_max:  # no recording rule: the subquery
        cpu_max = pool.submit(query, CPU_MAX_SUBQUERY).result()
        SUBQUERY_SERIES[0] += len(cpu_max)
    series += len(cpu_max)
    after = [pool.submit(query, t) for t in AFTER_CPU_MAX]
    return series + sum(len(f.result()) for f in before + after)


SUBQUERY_SERIES = [0]


def peer(url: str, pid: int, hours: list[int]) -> dict:
    SUBQUERY_SERIES[0] = 0
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=CONCURRENCY))
    with ThreadPoolExecutor(CONCURRENCY) as pool, Measure(pid) as figures:
        figures["series"] = sum(peer_window(session, pool, url, hour + 3600) for hour in hours)
    figures["client"] = figures["own"]
    figures["subquery_series"] = SUBQUERY_SERIES[0]
    return figures


def worker(url: str, pid: int, path: Path, start: int, end: int, batch_hours: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCW_")}
    env.update(KCW_THANOS_URL=url, KCW_CLICKHOUSE_URL=f"chdb://{path}", KCW_LOG_LEVEL="error")
    if batch_hours is not None:
        env["KCW_BATCH_HOURS"] = str(batch_hours)
    subprocess.run([str(WORKER), "migrate"], env=env, check=True, capture_output=True)
    with Measure(pid) as figures:
        done = subprocess.run([str(WORKER), "backfill", "--tenant", TENANT, "--start", str(start), "--end", str(end),
                               "--no-progress"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-1000:]
    figures["client"] = figures["children"]
    figures["line"] = done.stdout.strip()
    return figures


def less(full: dict, empty: dict) -> dict:
    return {k: full[k] - empty[k] for k in ("wall", "prom", "client")}


EMPTY_RUNS = 3


def simulated(workdir: Path, name: str, pods: int, first_hour: int, hours: int) -> Path:
    """A simulated tenant of ``pods`` pods from ``first_hour`` on for ``hours`` hours, backfilled into a Prometheus
    data directory: its path."""
    say(f"simulating {pods:,} pods for {hours} h and backfilling Prometheus")
    sim = write_simulation(workdir / f"sim-{name}", [TENANT], first_hour, hours, nodes=max(3, pods // 50), pods=pods)
    create_blocks(Path(sim["openmetrics"]), workdir / f"tsdb-{name}")
    Path(sim["openmetrics"]).unlink()  # gigabytes, and Prometheus holds it now
    return workdir / f"tsdb-{name}"


def simulated_hours(workdir: Path, name: str, pods: int, hours: int) -> tuple[Path, list[int]]:
    """``simulated`` for the last ``hours`` closed hours and the hour before the first (a counter's increase starts
    at its last sample before the hour): the data directory and the hours' starts."""
    last = last_closed_hour()
    first = last - (hours - 1) * 3600
    return simulated(workdir, name, pods, first - 3600, hours + 1), list(range(first, last + 3600, 3600))


def measure_size(pods: int, hours: int, workdir: Path, repeat: int = 1) -> dict:
    """The peer and the worker (hour by hour, batched) over ``hours`` hours of ``pods`` pods, ``repeat`` rounds in
    turn on one Prometheus: each figure the median of the rounds (the machine's speed drifts between rounds)."""
    tsdb, hour_list = simulated_hours(workdir, str(pods), pods, hours)
    first, last = hour_list[0], hour_list[-1]
    empty_start = first - 86400
    rounds = []
    server = LocalPrometheus(tsdb)
    with server as url:
        pid = server.process.pid
        peer(url, pid, hour_list[:1])  # warm-up: Prometheus's first touch of the blocks, untimed
        for k in range(repeat):
            say(f"{pods:,} pods, round {k + 1} of {repeat}: the peer's queries")
            results = {"peer": peer(url, pid, hour_list)}
            for name, batch in (("hour by hour", 1), ("batched", None)):
                say(f"{pods:,} pods, round {k + 1} of {repeat}: the worker {name}")
                empty = medians([worker(url, pid, workdir / f"ch-{pods}-{batch}-{k}-empty-{i}", empty_start,
                                           empty_start + 3600, batch) for i in range(EMPTY_RUNS)])
                full = worker(url, pid, workdir / f"ch-{pods}-{batch}-{k}", first, last + 3600, batch)
                say(f"  {full['line']} (empty range: {empty['line']})")
                results[name] = less(full, empty) | {"raw": full, "empty": empty}
            rounds.append(results)
    return {name: medians([r[name] for r in rounds]) for name in rounds[0]}


def medians(runs: list[dict]) -> dict:
    """Each number the median of the runs' (nested ones too); anything else the first run's."""
    first = runs[0]
    return {k: (sorted(r[k] for r in runs)[len(runs) // 2] if isinstance(v, (int, float))
                else medians([r[k] for r in runs]) if isinstance(v, dict) else v) for k, v in first.items()}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:6.2f} (<= {target}: {'yes' if ratio <= target else 'NO'})"


TARGETS = {"hour by hour": (1.5, 1.0, None), "batched": (0.75, 0.5, 1.0)}


def ratios(results: dict) -> list[tuple[str, str, float, float | None]]:
    """Each ratio to the peer beside its target (None: none set): (run, what, ratio, target)."""
    p, found = results["peer"], []
    for name, (wall_t, prom_t, cpu_t) in TARGETS.items():
        r = results[name]
        found += [(name, "wall", r["wall"] / p["wall"], wall_t), (name, "Prometheus CPU", r["prom"] / p["prom"], prom_t),
                  (name, "worker CPU / peer's Prometheus CPU", r["client"] / p["prom"], cpu_t)]
    return found


def report(size: int, hours: int, results: dict) -> None:
    p = results["peer"]
    n = hours
    print(f"\n{size:,} pods, {hours} hours, per tenant-hour (the peer: {QUERY_COUNT} queries a window, "
          f"{p['series'] / n:,.0f} series answered an hour; CPU-maximum subquery on {SUBQUERY_LABEL}, "
          f"{p['subquery_series'] / n:,.0f} series answered)")
    print(f"{'':<20} {'wall s':>8} {'Prom CPU s':>11} {'client CPU s':>13}   "
          f"{'wall / peer':<24} {'Prom CPU / peer':<24} {'client CPU / peer Prom CPU'}")
    print(f"{'peer':<20} {p['wall'] / n:>8.3f} {p['prom'] / n:>11.3f} {p['client'] / n:>13.3f}")
    by_run = {}
    for name, _, ratio, target in ratios(results):
        by_run.setdefault(name, []).append(verdict(ratio, target) if target else f"{ratio:6.2f}")
    for name, cells in by_run.items():
        r = results[name]
        print(f"{'worker ' + name:<20} {r['wall'] / n:>8.3f} {r['prom'] / n:>11.3f} {r['client'] / n:>13.3f}   "
              f"{cells[0]:<24} {cells[1]:<24} {cells[2]}")
    for name in TARGETS:
        e = results[name]["empty"]
        print(f"  start-up taken off ({name}, the same command over an empty hour): wall {e['wall']:.2f} s, "
              f"Prometheus CPU {e['prom']:.2f} s, worker CPU {e['client']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", default="20,200,2000", help="comma-separated tenant sizes")
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the peer and the worker in turn; each figure the median of the rounds")
    parser.add_argument("--subquery-label", default="container_name",
                        help="the label of the CPU-maximum subquery's matchers: OpenCost's container_name (at the "
                             "commit read; absent from cAdvisor since Kubernetes 1.16 and from the simulator, so the "
                             "subquery selects nothing), or container (the subquery then reads every CPU series)")
    args = parser.parse_args()
    global SUBQUERY_LABEL
    SUBQUERY_LABEL = args.subquery_label
    sizes = [int(s) for s in args.pods.split(",") if s.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-peer-"))
    for size in sizes:
        report(size, args.hours, measure_size(size, args.hours, workdir, args.repeat))
    print("\ntargets, ratios to the peer: wall hour by hour <= 1.5, batched <= 0.75; Prometheus CPU hour by hour "
          "<= 1.0, batched <= 0.5; worker CPU (embedded ClickHouse included) batched <= 1.0 x the peer's Prometheus "
          "CPU. The peer's figures are a lower bound (its queries only).")


if __name__ == "__main__":
    main()
