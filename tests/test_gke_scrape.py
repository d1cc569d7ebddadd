"""The real Kubecost scrape of a GKE cluster, replayed as constant gauges for 3 hours, two tenants (the second
with doubled prices). Expected costs are computed here, independently of the model, from the scrape itself."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from pathlib import Path

import pytest

from .helpers import ch_client, run_worker

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
SCRAPE = Path(__file__).parent / "data" / "kubecost-scrapes" / "kubecost_gke_demo_scrape.prom"
GIB = 2**30
TENANTS = {"gke-a": 1.0, "gke-b": 2.0}
PRICES = {"node_cpu_hourly_cost", "node_ram_hourly_cost", "node_gpu_hourly_cost", "node_total_hourly_cost",
          "pv_hourly_cost", "kubecost_load_balancer_cost", "kubecost_cluster_management_cost"}
HOURS = 3
H0 = int(time.time()) // 3600 * 3600 - (HOURS + 1) * 3600
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def gauges() -> list[tuple[str, str, dict[str, str], float]]:
    types, out = {}, []
    for line in SCRAPE.read_text().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind
        elif line and not line.startswith("#") and (m := LINE.match(line)) and types.get(m.group(1)) == "gauge":
            out.append((m.group(1), m.group(2) or "", dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


@pytest.fixture(scope="module")
def stored(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("gke")
    samples = gauges()
    families = defaultdict(list)
    for name, raw, _, value in samples:
        families[name].append((raw, value))
    with open(root / "gke.om", "w") as f:
        for name, rows in families.items():
            f.write(f"# TYPE {name} gauge\n")
            for tenant, scale in TENANTS.items():
                for raw, value in rows:
                    v = value * scale if name in PRICES else value
                    labels = (raw + "," if raw else "") + f'tenant_id="{tenant}"'
                    f.writelines(f"{name}{{{labels}}} {v!r} {t}\n" for t in range(H0, H0 + HOURS * 3600, 60))
        f.write("# EOF\n")
    from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks

    create_blocks(root / "gke.om", root / "tsdb")
    ch_url = f"chdb://{root / 'ch'}"
    with LocalPrometheus(root / "tsdb") as url:
        env = {"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": ch_url}
        assert run_worker("migrate", env=env).returncode == 0
        result = run_worker("backfill", "--start", str(H0), "--end", str(H0 + HOURS * 3600), env=env)
        assert result.returncode == 0, result.stderr[-2000:]
    with ch_client(ch_url) as client:
        rows = client.query("SELECT cloud_account_id, toUnixTimestamp(hour), namespace, workload_kind, workload_name,"
                            " pod, node, cpu_cost, ram_cost, pv_cost, lb_cost, management_cost, total_cost"
                            " FROM k8s_expenses_current").result_rows
    return samples, rows


def expected_pod_costs(samples):
    """(namespace, pod) -> (cpu_cost, ram_cost, pv_cost) per hour at scale 1."""
    price = defaultdict(dict)
    alloc, requests, pvc, pv_price = {}, defaultdict(dict), defaultdict(float), {}
    for name, _, l, v in samples:
        if name in ("node_cpu_hourly_cost", "node_ram_hourly_cost"):
            price[l["node"]][name] = v
        elif name in ("container_cpu_allocation", "container_memory_allocation_bytes"):
            alloc[(l["namespace"], l["pod"], l["container"], name)] = v
        elif name == "kube_pod_container_resource_requests" and l["resource"] in ("cpu", "memory"):
            requests[(l["namespace"], l["pod"])][(l["container"], l["resource"])] = (v, l["node"])
        elif name == "pod_pvc_allocation":
            pvc[(l["namespace"], l["pod"], l["persistentvolume"])] += v
        elif name == "pv_hourly_cost":
            pv_price[l["persistentvolume"]] = v
    expected = {}
    for (ns, pod), containers in requests.items():
        cpu = ram = 0.0
        for (container, resource), (request, node) in containers.items():
            if resource == "cpu":
                cpu += max(request, alloc.get((ns, pod, container, "container_cpu_allocation"), 0)) * price[node]["node_cpu_hourly_cost"]
            else:
                ram += max(request, alloc.get((ns, pod, container, "container_memory_allocation_bytes"), 0)) / GIB \
                    * price[node]["node_ram_hourly_cost"]
        expected[(ns, pod)] = [cpu, ram, 0.0]
    for (ns, pod, volume), size in pvc.items():
        expected.setdefault((ns, pod), [0.0, 0.0, 0.0])[2] += size / GIB * pv_price[volume]
    return expected


def test_every_pod_costs_allocation_times_price(stored):
    samples, rows = stored
    expected = expected_pod_costs(samples)
    got = defaultdict(lambda: [0.0, 0.0, 0.0])
    for tenant, hour, ns, kind, name, pod, node, cpu, ram, pv, *_ in rows:
        if pod:
            cell = got[(tenant, hour, ns, pod)]
            cell[0] += cpu
            cell[1] += ram
            cell[2] += pv
    checked = 0
    for tenant, scale in TENANTS.items():
        for hour in range(H0, H0 + HOURS * 3600, 3600):
            for (ns, pod), want in expected.items():
                assert got[(tenant, hour, ns, pod)] == pytest.approx([w * scale for w in want], rel=1e-9), (tenant, pod)
                checked += 1
    assert checked == len(TENANTS) * HOURS * len(expected) > 100


def test_hour_totals_are_node_volume_lb_and_management_costs(stored):
    samples, rows = stored
    nodes = sum(v for name, _, _, v in samples if name == "node_total_hourly_cost")
    capacity = {l["persistentvolume"]: v for name, _, l, v in samples if name == "kube_persistentvolume_capacity_bytes"}
    volumes = sum(capacity[l["persistentvolume"]] / GIB * v for name, _, l, v in samples if name == "pv_hourly_cost")
    fixed = sum(v for name, _, _, v in samples if name in ("kubecost_load_balancer_cost", "kubecost_cluster_management_cost"))
    totals = defaultdict(float)
    for tenant, hour, *_, total in rows:
        totals[(tenant, hour)] += total
    assert len(totals) == len(TENANTS) * HOURS
    for (tenant, _), total in totals.items():
        assert total == pytest.approx((nodes + volumes + fixed) * TENANTS[tenant], rel=1e-9)


def test_workloads_and_special_rows(stored):
    samples, rows = stored
    owners = {(l["namespace"], l["pod"]): (l["owner_kind"], l["owner_name"]) for name, _, l, _ in samples
              if name == "kube_pod_owner"}
    by_pod = {(r[2], r[5]): (r[3], r[4]) for r in rows if r[0] == "gke-a" and r[5]}
    for key, (kind, name) in owners.items():
        if key not in by_pod:
            continue
        if kind in ("DaemonSet", "StatefulSet"):
            assert by_pod[key] == (kind.lower(), name)
        elif kind == "ReplicaSet":
            assert by_pod[key][0] == "deployment" and name.startswith(by_pod[key][1] + "-")
        elif kind == "Node":
            assert by_pod[key] == ("__unallocated__", "__unallocated__")
    special = {(r[2], r[3]) for r in rows if r[0] == "gke-a"}
    assert {("__idle__", "__idle__"), ("__cluster_management__", "__cluster_management__"),
            ("ingress-nginx", "service"), ("__unmounted__", "persistentvolume")} <= special
    lb = [r for r in rows if r[0] == "gke-b" and r[3] == "service"]
    assert [r[10] for r in lb] == pytest.approx([0.025 * 2] * HOURS)
