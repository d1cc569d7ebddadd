"""Bytes per ``k8s_expenses`` row on disk with every column of the allocation record populated (migration 0011),
and of the daily tier that replaces 24 of them (issue 29).

    .venv/bin/python bench/storage.py [--pods 2000] [--hours 24] [--seed 1] [--year-days 365]

A day of a 2,000-pod tenant as the model writes it (docs/model.md), built here as rows rather than simulated through
Prometheus (seconds instead of minutes, and independent of the model's progress): deployments of 5 replicas in three
namespaces, a quarter of them with a sidecar, pods living half an hour to 12 hours (their uids random v4 UUIDs),
a row per container with its CPU and RAM (allocation = max(request, usage) step by step, usage drawn per minute as
the simulator does: CPU rounded to 1e-4 cores, memory whole bytes), its requests and its usage (CPU increase,
RAM mean x hours, both maxima); a few pods with a volume and network egress by class on their own row
(``container = ''``); an idle row per node, a management row, a load balancer. The rows go through
``ClickHouseSink.write_hour`` into a fresh embedded ClickHouse, one run per hour; after ``OPTIMIZE FINAL`` it prints
bytes per row on disk (``system.parts``) and each column's compressed bytes per row (``system.columns``).
``bench/run.py`` measures the same figure on the simulator's rows through the whole pipeline.

The daily tier: the generated day built as the worker builds it (``days.build_days``: the sums of the current hourly
rows per identity into ``k8s_expenses_by_day``), its bytes per daily row (a container-day: what 24 hourly rows of a
container running all day become) beside 24 hourly rows' (target <= 1/10). Then a year of the tenant's daily tier
(``--year-days``): the day's daily rows copied to each earlier day with the names, uids and figures each copy would
have of its own (pods renamed, uids drawn anew, every figure scaled by a factor of its own: no copy compresses
against another better than real days would), each day a build of its own and sealed, as expiry leaves them; its
bytes on disk after ``OPTIMIZE FINAL``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker.model.rows import (COST_FIELDS, GIB, IDLE, MANAGEMENT, NETWORK_FIELDS,  # noqa: E402
                                        PRICE_NODE, USAGE_FIELDS, ExpenseRow, HourResult, NodeRow)
from kubecost_worker.store.ledger import RunRecord  # noqa: E402
from kubecost_worker.store import days, migrations, schema  # noqa: E402
from kubecost_worker.store.clickhouse import ClickHouseSink  # noqa: E402

MIB = 2**20
TENANT = "bench-tenant"
CLUSTER = f"{TENANT}-cluster"
STEP = 60
STEPS = 3600 // STEP
NAMESPACES = {"frontend": "web", "backend": "api", "data": "data"}
ALNUM = "bcdfghjklmnpqrstvwxz2456789"


class Container:
    def __init__(self, rng: random.Random, name: str, cpu: float, mem: float):
        self.name, self.cpu, self.mem = name, cpu, mem
        self.rng = random.Random(rng.random())

    def hour(self, steps: int) -> dict[str, float]:
        """The container's figures over ``steps`` running minutes of an hour."""
        cpu = [round(self.cpu * self.rng.uniform(0.2, 1.5), 4) for _ in range(steps)]
        mem = [float(int(self.mem * self.rng.uniform(0.5, 1.3))) for _ in range(steps)]
        hours = steps * STEP / 3600
        return {
            "running_minutes": steps * STEP / 60,
            "cpu_core_hours": sum(max(u, self.cpu) for u in cpu) / steps * hours,
            "ram_byte_hours": sum(max(u, self.mem) for u in mem) / steps * hours,
            "cpu_request_core_hours": self.cpu * hours,
            "ram_request_byte_hours": self.mem * hours,
            "cpu_usage_core_hours": sum(cpu) * STEP / 3600,
            "ram_usage_byte_hours": sum(mem) / steps * hours,
            "cpu_usage_max_cores": max(cpu),
            "ram_usage_max_bytes": max(mem),
        }


class Pod:
    def __init__(self, rng: random.Random, namespace: str, deployment: str, replicaset: str, node: str, start: int,
                 end: int, cpu: float, mem: float, sidecar: bool):
        self.namespace, self.deployment, self.node, self.start, self.end = namespace, deployment, node, start, end
        self.name = f"{replicaset}-{''.join(rng.choice(ALNUM) for _ in range(5))}"
        self.uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.containers = [Container(rng, deployment, cpu, mem)]
        if sidecar:
            self.containers.append(Container(rng, "istio-proxy", 0.1, 128 * MIB))
        self.labels = {"app": deployment, "team": NAMESPACES[namespace], "pod_template_hash": replicaset[-10:]}
        self.service = deployment if rng.random() < 0.8 else ""
        self.volume = rng.random() < 0.02
        self.network = rng.random() < 0.05


def plan(rng: random.Random, pods: int, hours: int, nodes: list[str]) -> list[Pod]:
    """Deployments of 5 replicas; each replica slot a chain of pods living 30 min to 12 h over the window."""
    out = []
    total = hours * STEPS
    for d in range(pods // 5):
        namespace = list(NAMESPACES)[d % 3]
        deployment = f"svc-{d:03d}"
        replicaset = f"{deployment}-{''.join(rng.choice(ALNUM) for _ in range(10))}"
        cpu = rng.choice([0.1, 0.25, 0.5, 1.0])
        mem = float(rng.choice([128, 256, 512, 1024]) * MIB)
        sidecar = d % 4 == 0
        for _ in range(5):
            at = 0
            while at < total:
                end = min(total, at + rng.randint(STEPS // 2, 12 * STEPS))
                out.append(Pod(rng, namespace, deployment, replicaset, rng.choice(nodes), at, end, cpu, mem, sidecar))
                at = end
    return out


def hour_rows(pods: list[Pod], nodes: list[str], k: int, hour: int) -> HourResult:
    rows: list[ExpenseRow] = []
    cpu_price, ram_price = 0.031611, 0.004237
    node_cost = {n: [0.0, 0.0] for n in nodes}
    first, last = k * STEPS, (k + 1) * STEPS
    for pod in pods:
        steps = min(pod.end, last) - max(pod.start, first)
        if steps <= 0:
            continue
        common = dict(cloud_account_id=TENANT, cluster_id=CLUSTER, hour=hour, namespace=pod.namespace,
                      workload_kind="deployment", workload_name=pod.deployment, pod=pod.name, node=pod.node,
                      labels=pod.labels, pod_uid=pod.uid, service=pod.service)
        for container in pod.containers:
            figures = container.hour(steps)
            cpu_cost = figures["cpu_core_hours"] * cpu_price
            ram_cost = figures["ram_byte_hours"] / GIB * ram_price
            node_cost[pod.node][0] += cpu_cost
            node_cost[pod.node][1] += ram_cost
            rows.append(ExpenseRow(**common, **figures, container=container.name, cpu_cost=cpu_cost,
                                   ram_cost=ram_cost, price_source=PRICE_NODE))
        if pod.volume or pod.network:
            own = ExpenseRow(**common)
            if pod.volume:
                own.pv_byte_hours = 20 * GIB * steps / STEPS
                own.pv_cost = own.pv_byte_hours / GIB * 0.000055
            if pod.network:
                for kind, price in (("zone", 0.01), ("region", 0.01), ("internet", 0.12)):
                    egress = float(random.Random(pod.uid + kind + str(k)).randint(1, 10**9))
                    setattr(own, f"network_{kind}_bytes", egress)
                    setattr(own, f"network_{kind}_cost", egress / GIB * price)
                own.network_cost = own.network_zone_cost + own.network_region_cost + own.network_internet_cost
            rows.append(own)
    node_rows = []
    for n in nodes:
        cores, ram = 32.0, 128 * GIB
        capacity_cpu, capacity_ram = cores * cpu_price, ram / GIB * ram_price
        idle_cpu, idle_ram = max(0.0, capacity_cpu - node_cost[n][0]), max(0.0, capacity_ram - node_cost[n][1])
        rows.append(ExpenseRow(TENANT, CLUSTER, hour, IDLE, IDLE, IDLE, "", n, running_minutes=60.0,
                               cpu_cost=idle_cpu, ram_cost=idle_ram, price_source=PRICE_NODE))
        node_rows.append(NodeRow(TENANT, CLUSTER, hour, n, provider_id=f"gce://bench/europe-west1-b/{n}",
                                 instance_type="n2-standard-32", region="europe-west1", zone="europe-west1-b",
                                 arch="amd64", running_minutes=60.0, cpu_cores=cores, ram_bytes=ram,
                                 cpu_price=cpu_price, ram_price=ram_price, price_source=PRICE_NODE,
                                 cpu_cost=capacity_cpu, ram_cost=capacity_ram,
                                 allocated_cost=sum(node_cost[n]), idle_cost=idle_cpu + idle_ram))
    rows.append(ExpenseRow(TENANT, CLUSTER, hour, MANAGEMENT, MANAGEMENT, MANAGEMENT, "", "", management_cost=0.1))
    rows.append(ExpenseRow(TENANT, CLUSTER, hour, "frontend", "service", "service/web", "", "", lb_cost=0.025,
                           service="web"))
    return HourResult(rows, [], samples_seen=0, unpriced_nodes=[], nodes=node_rows)


def measure(pods: int, hours: int, seed: int, directory: Path | None = None, year_days: int = 0) -> dict:
    rng = random.Random(seed)
    nodes = [f"gke-bench-pool-{i:03d}" for i in range(max(3, pods // 50))]
    planned = plan(rng, pods, hours, nodes)
    first_hour = 1_767_225_600
    path = (directory or Path(tempfile.mkdtemp(prefix="kcw-storage-"))) / "clickhouse"
    sink = ClickHouseSink.open(f"chdb://{path}")
    migrations.migrate(sink.client)
    for k in range(hours):
        hour = first_hour + k * 3600
        run = RunRecord.start(TENANT, hour, "bench")
        sink.record(run)
        sink.write_hour(run, hour_rows(planned, nodes, k, hour))
    rows, on_disk, columns = on_disk_bytes(sink, "k8s_expenses")
    containers = sink.query("SELECT countIf(container != ''), countIf(container = '' AND pod != '') "
                            "FROM k8s_expenses")[0]
    out = {"rows": rows, "bytes_per_row": on_disk / rows, "container_rows": containers[0],
           "pod_rows": containers[1], "columns": columns}
    days.build_days(sink.client, [(TENANT, first_hour)])
    day_rows, day_bytes, day_columns = on_disk_bytes(sink, days.EXPENSES_BY_DAY)
    out.update(day_rows=day_rows, day_bytes_per_row=day_bytes / day_rows, day_columns=day_columns)
    if year_days:
        out.update(year(sink, first_hour, year_days))
    sink.close()
    return out


def on_disk_bytes(sink: ClickHouseSink, table: str) -> tuple[int, int, list[tuple[str, float]]]:
    """Rows and bytes on disk of ``table`` after ``OPTIMIZE FINAL`` (one part per partition), and each column's
    compressed bytes per row."""
    sink.client.command(f"OPTIMIZE TABLE {table} FINAL")
    rows, on_disk = sink.query("SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active "
                               "AND database = currentDatabase() AND table = {t:String}", {"t": table})[0]
    columns = sink.query("SELECT name, data_compressed_bytes FROM system.columns WHERE database = currentDatabase() "
                         "AND table = {t:String} ORDER BY data_compressed_bytes DESC", {"t": table})
    return int(rows), int(on_disk), [(name, size / rows) for name, size in columns if size]


# How a copy of the built day's daily rows becomes another day of the tenant's: its day and hours, a build of its
# own, its pods' names and uids, and every measured figure (costs, allocations, usage, egress) scaled by a factor of
# its own (n: days back); what is set rather than measured (running minutes, requests) stays as it was.
_FACTOR = "(1 + (cityHash64(pod, container, node, n.number) % 20001 - 10000) / 1e6)"
_MEASURED = (*COST_FIELDS, "cpu_core_hours", "ram_byte_hours", "gpu_hours", *USAGE_FIELDS, *NETWORK_FIELDS,
             "cpu_cost_without_usage", "ram_cost_without_usage")
_SCALED = {"total_cost_exact": f"toDecimal128(toFloat64(total_cost_exact) * {_FACTOR}, 18)",
           **{name: f"{name} * {_FACTOR}" for name in _MEASURED}}
_COPIED = {
    "day": "subtractDays(day, n.number)",
    "build_id": "reinterpretAsUUID(MD5(concat(cloud_account_id, toString(n.number))))",
    "first_hour": "first_hour - toIntervalDay(n.number)",
    "last_hour": "last_hour - toIntervalDay(n.number)",
    "pod": "if(pod = '', '', concat(substring(pod, 1, length(pod) - 5), "
           "substring(lower(hex(cityHash64(pod, n.number))), 1, 5)))",
    "pod_uid": "if(pod_uid = '', '', toString(reinterpretAsUUID(MD5(concat(pod_uid, toString(n.number))))))",
}


def fill_days(sink: ClickHouseSink, tenant: str, day: int, count: int, to: tuple[str, ...] = ()) -> None:
    """Copy the tenant's current daily rows of ``day`` to the ``count`` days up to it of each tenant of ``to`` (the
    tenant itself: the days before it), as ``_COPIED`` derives each copy, each a build of its own, built and sealed
    in ``k8s_day_builds``."""
    names = schema.written_columns(days.EXPENSES_BY_DAY)
    select = [_COPIED.get(c) or _SCALED.get(c) or c for c in names]
    (build,), = sink.query("SELECT build_id FROM k8s_day_current_builds WHERE cloud_account_id = {t:String} "
                           "AND day = toDate(toDateTime({d:Int64}, 'UTC'))", {"t": tenant, "d": day})
    params = {"t": tenant, "b": build, "d": day, "tenants": list(to or (tenant,))}
    sink.client.command(
        f"INSERT INTO {days.EXPENSES_BY_DAY} ({', '.join(names)}) SELECT {', '.join(select)} "
        f"FROM (SELECT * REPLACE (copy_tenant AS cloud_account_id) FROM {days.EXPENSES_BY_DAY} AS source "
        "ARRAY JOIN {tenants:Array(String)} AS copy_tenant "
        "WHERE source.cloud_account_id = {t:String} AND source.build_id = {b:UUID}) AS copied "
        f"CROSS JOIN numbers({count}) AS n WHERE n.number > 0 OR copied.cloud_account_id != {{t:String}}",
        parameters=params)
    for status in ("built", "sealed"):
        sink.client.command(
            f"INSERT INTO {days.BUILDS} (cloud_account_id, day, build_id, status, hours, rows_written, total_cost) "
            f"SELECT cloud_account_id, day, build_id, '{status}', 24, count(), toFloat64(sum(total_cost_exact)) "
            f"FROM {days.EXPENSES_BY_DAY} WHERE cloud_account_id IN {{tenants:Array(String)}} "
            "AND (day < toDate(toDateTime({d:Int64}, 'UTC')) OR cloud_account_id != {t:String}) "
            "GROUP BY cloud_account_id, day, build_id", parameters=params)


def year(sink: ClickHouseSink, first_hour: int, count: int) -> dict:
    """A year (``count`` days) of the tenant's daily tier: its bytes on disk, of its rows and of the whole tier (the
    namespace rollup and the builds' ledger beside them)."""
    fill_days(sink, TENANT, first_hour, count)
    rows, on_disk, columns = on_disk_bytes(sink, days.EXPENSES_BY_DAY)
    tier = on_disk + sum(on_disk_bytes(sink, table)[1] for table in (*days.BUILD_TABLES, days.BUILDS)
                         if table != days.EXPENSES_BY_DAY)
    return {"year_days": count, "year_rows": rows, "year_bytes": on_disk, "year_columns": columns, "tier_bytes": tier}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--year-days", type=int, default=365, help="days of the daily tier measured (0: none)")
    args = parser.parse_args()
    out = measure(args.pods, args.hours, args.seed, year_days=args.year_days)
    print(f"k8s_expenses: {out['rows']:,} rows ({out['container_rows']:,} container rows, {out['pod_rows']:,} pod "
          f"rows), {out['bytes_per_row']:.1f} bytes per row on disk (target <= 40)")
    for name, size in out["columns"]:
        print(f"  {name:<24} {size:6.2f} B/row")
    hourly_day = 24 * out["bytes_per_row"]
    ratio = out["day_bytes_per_row"] / hourly_day
    print(f"\nk8s_expenses_by_day: {out['day_rows']:,} rows for the day, {out['day_bytes_per_row']:.1f} bytes per "
          f"row (a container-day) against {hourly_day:.0f} for 24 hourly rows: {ratio:.3f} "
          f"(target <= 0.100: {'yes' if ratio <= 0.1 else 'NO'})")
    if args.year_days:
        per_row = out["year_bytes"] / out["year_rows"]
        print(f"\na year of the tenant's daily tier ({out['year_days']} days, {args.pods} pods): "
              f"{out['year_rows']:,} rows, {out['year_bytes'] / 1e6:.1f} MB on disk, {per_row:.1f} bytes per row "
              f"({per_row / hourly_day:.3f} of 24 hourly rows); the tier with its namespace rollup "
              f"and the builds' ledger {out['tier_bytes'] / 1e6:.1f} MB; the same year hourly: "
              f"{out['rows'] / args.hours * 24 * out['year_days'] * out['bytes_per_row'] / 1e9:.2f} GB")
        for name, size in out["year_columns"]:
            print(f"  {name:<38} {size:6.2f} B/row")


if __name__ == "__main__":
    main()
