"""The synthetic cluster simulator (``devtools/``: cluster.py, openmetrics.py, oracle.py, simulation.py) and its
ground truth."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import fields

import pytest

from kubecost_worker.devtools.accuracy import KEY as ROW_KEY
from kubecost_worker.devtools.cluster import GiB, escape_label_value
from kubecost_worker.model.rows import COST_FIELDS
from kubecost_worker.devtools.simulation import simulate, write_simulation

# seconds each: whole simulated clusters and their files, promtool's check
pytestmark = pytest.mark.slow

START = 1_700_002_800  # an hour boundary
HOURS = 2
STEP = 60
TENANTS = ["acme", "beta"]
WEIRD = 'we"ird\\ten\nant'

COUNTERS = ("kubecost_pod_network_egress_bytes_total", "container_cpu_usage_seconds_total")
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+) (\d+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(v: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse_openmetrics(path):
    """Yield (family, name, labels dict, value, ts) and check the file's structural rules on the way."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    assert text.endswith("# EOF\n")
    assert "\r" not in text
    family = None
    out = []
    for line in text[: -len("# EOF\n")].split("\n")[:-1]:
        assert line, "blank line"
        if line.startswith("# TYPE "):
            _, _, family, mtype = line.split(" ")
            assert mtype == ("unknown" if family in COUNTERS else "gauge")
            continue
        m = _LINE.match(line)
        assert m, line
        name, labels, value, ts = m.groups()
        assert name == family
        lab = {k: _unescape(v) for k, v in _LABEL.findall(labels)}
        v = float(value)
        assert repr(v) == value
        out.append((family, name, lab, v, int(ts)))
    return out


@pytest.fixture(scope="module")
def sim():
    return simulate(TENANTS, START, HOURS, nodes=3, pods=20, step=STEP, seed=7)


@pytest.fixture(scope="module")
def written(sim, tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "metrics.om"
    n = sim.write_openmetrics(path)
    return path, n, sim.series_written


@pytest.fixture(scope="module")
def parsed(written):
    return parse_openmetrics(written[0])


@pytest.fixture(scope="module")
def truth(sim):
    return sim.ground_truth()


def _hour_rows(truth, tenant, h):
    return [r for r in truth if r["cloud_account_id"] == tenant and r["hour"] == START + h * 3600]


# ---------------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------------


def test_openmetrics_structure(written, parsed):
    path, samples, series = written
    assert samples == len(parsed)
    families_seen = []
    last_ts: dict[tuple, int] = {}
    series_keys = set()
    for family, name, labels, value, ts in parsed:
        if not families_seen or families_seen[-1] != family:
            assert family not in families_seen, f"{family} is not contiguous"
            families_seen.append(family)
        assert "tenant_id" in labels
        assert START <= ts < START + HOURS * 3600 and (ts - START) % STEP == 0
        key = (name, tuple(sorted(labels.items())))
        assert ts > last_ts.get(key, -1), f"timestamps not increasing in {key}"
        last_ts[key] = ts
        series_keys.add(key)
    assert len(series_keys) == series
    for f in ("kubecost_cluster_info", "node_cpu_hourly_cost", "node_ram_hourly_cost", "node_gpu_hourly_cost",
              "node_gpu_count", "node_total_hourly_cost", "kubecost_node_is_spot",
              "kube_node_status_capacity_cpu_cores", "kube_node_status_capacity_memory_bytes",
              "kube_namespace_labels", "kube_pod_container_status_running", "container_cpu_allocation",
              "container_memory_allocation_bytes", "container_gpu_allocation",
              "kube_pod_container_resource_requests", "kube_pod_owner", "kube_replicaset_owner", "kube_pod_labels",
              "pod_pvc_allocation", "pv_hourly_cost", "kube_persistentvolume_capacity_bytes",
              "kubecost_load_balancer_cost", "kubecost_cluster_management_cost",
              "kubecost_network_zone_egress_cost", "kubecost_network_region_egress_cost",
              "kubecost_network_internet_egress_cost", "kubecost_pod_network_egress_bytes_total",
              "kubecost_savings_cpu_allocation", "kubecost_savings_memory_allocation_bytes",
              "container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "kube_node_labels",
              "service_selector_labels"):
        assert f in families_seen, f


def test_promtool_accepts_file(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    res = write_simulation(tmp_path / "out", ["acme", WEIRD], START, 2, pods=10, seed=3)
    db = tmp_path / "db"
    proc = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=72h",
                           res["openmetrics"], str(db)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listing = subprocess.run([promtool, "tsdb", "list", str(db)], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.strip().splitlines()
    cols = [re.split(r"\s{2,}", ln.strip()) for ln in lines]
    i_samples = cols[0].index("NUM SAMPLES")
    i_series = cols[0].index("NUM SERIES")
    assert sum(int(c[i_samples]) for c in cols[1:]) == res["samples"]
    # one block spans the whole file: its series are the file's series
    assert len(cols) == 2 and int(cols[1][i_series]) == res["series"]


def test_label_escaping():
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_weird_tenant_label_round_trips(tmp_path):
    s = simulate([WEIRD], START, 1, pods=5)
    s.write_openmetrics(tmp_path / "m.om")
    rows = parse_openmetrics(tmp_path / "m.om")
    assert {r[2]["tenant_id"] for r in rows} == {WEIRD}
    assert {r["cloud_account_id"] for r in s.ground_truth()} == {WEIRD}


def test_determinism(tmp_path, truth):
    a = write_simulation(tmp_path / "a", TENANTS, START, HOURS, seed=7)
    b = write_simulation(tmp_path / "b", TENANTS, START, HOURS, seed=7)
    c = write_simulation(tmp_path / "c", TENANTS, START, HOURS, seed=8)
    assert open(a["openmetrics"], "rb").read() == open(b["openmetrics"], "rb").read()
    assert open(a["ground_truth"], "rb").read() == open(b["ground_truth"], "rb").read()
    assert open(a["openmetrics"], "rb").read() != open(c["openmetrics"], "rb").read()
    rows = [json.loads(line) for line in open(a["ground_truth"])]
    assert rows == truth
    keys = [tuple(r[k] for k in ROW_KEY) for r in rows]
    assert len(keys) == len(set(keys))


def test_validation():
    with pytest.raises(ValueError):
        simulate(["a"], START + 60, 1)
    with pytest.raises(ValueError):
        simulate(["a"], START, 1, step=7)
    with pytest.raises(ValueError):
        simulate(["a", "a"], START, 1)


def test_pods_scale():
    s = simulate(["big"], START, 1, pods=300, seed=1)
    t = s.tenants[0]
    for k in (0, 30, 59):
        alive = sum(1 for p in t.pods if not p.pending and p.start <= k < p.end)
        assert 270 <= alive <= 330, alive


# ---------------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------------


def _network_price(t, s):
    if s.internet == "true":
        return t.network_prices["internet"]
    if s.same_region == "false":
        return t.network_prices["region"]
    if s.same_zone == "false":
        return t.network_prices["zone"]
    return 0.0


def check_invariant(sim, truth):
    n = sim.steps_per_hour
    step = sim.step
    for t in sim.tenants:
        for h in range(sim.hours):
            steps = range(h * n, (h + 1) * n)
            nodes = math.fsum(
                nd.cpu_cores * nd.cpu_price[k] * step / 3600 + nd.mem_bytes / GiB * nd.ram_price[k] * step / 3600
                + nd.gpus * nd.gpu_price[k] * step / 3600 for nd in t.nodes for k in steps)
            pv = math.fsum(v.capacity / GiB * v.price for v in t.volumes)
            lb = math.fsum(lb.price for lb in t.load_balancers)
            net = 0.0
            for s in t.network:
                first = max(0, h * n - 1)
                net += (s.values[(h + 1) * n - 1] - s.values[first]) / GiB * _network_price(t, s)
            expected = nodes + pv + lb + net + t.management_price
            rows = [r for r in truth if r["cloud_account_id"] == t.tenant and r["hour"] == sim.start + h * 3600]
            got = math.fsum(r["total_cost"] for r in rows)
            assert got == pytest.approx(expected, rel=1e-9, abs=0)
            assert math.fsum(r["network_cost"] for r in rows) == pytest.approx(net, rel=1e-9)


def test_invariant(sim, truth):
    check_invariant(sim, truth)


@pytest.mark.parametrize("nodes,step,hours,pods", [(1, 60, 1, 5), (2, 300, 3, 12), (4, 30, 1, 40)])
def test_invariant_other_shapes(nodes, step, hours, pods):
    s = simulate(["x", "y"], START, hours, nodes=nodes, pods=pods, step=step, seed=11)
    truth = s.ground_truth()
    check_invariant(s, truth)
    keys = [tuple(r[k] for k in ROW_KEY) for r in truth]
    assert len(keys) == len(set(keys))
    assert any(r["gpu_cost"] > 0 for r in truth) == (nodes >= 2)


def test_rows_are_consistent(truth):
    for r in truth:
        assert r["total_cost"] == pytest.approx(math.fsum(r[f] for f in COST_FIELDS), rel=1e-12, abs=1e-15)
        for f in COST_FIELDS + ("cpu_core_hours", "ram_byte_hours", "gpu_hours", "pv_byte_hours"):
            assert r[f] >= 0, (f, r)
        assert r["cluster_id"] == r["cloud_account_id"] + "-cluster"
        if r["namespace"] in ("__idle__", "__unmounted__", "__cluster_management__"):
            assert r["labels"] == {}
            assert r["pod"] == ""


def test_features_present(sim, truth):
    n = 3600 // STEP
    for t in sim.tenants:
        tenant_rows = [r for r in truth if r["cloud_account_id"] == t.tenant]
        for h in range(HOURS):
            rows = _hour_rows(truth, t.tenant, h)
            kinds = {r["workload_kind"] for r in rows}
            assert {"deployment", "statefulset", "daemonset", "cronjob", "__unallocated__", "__idle__",
                    "__cluster_management__", "service", "persistentvolume"} <= kinds
            # an idle row per priced node: the node without prices has none
            assert len([r for r in rows if r["namespace"] == "__idle__"]) == len(t.nodes) - 1
            assert len([r for r in rows if r["namespace"] == "__cluster_management__"]) == 1
            svc = [r for r in rows if r["workload_kind"] == "service"]
            assert svc and svc[0]["lb_cost"] > 0 and svc[0]["labels"] == t.namespace_labels[svc[0]["namespace"]]
            # the unclaimed volume is the only unmounted one: claimed (and shared) volumes are fully paid
            unclaimed = [v.name for v in t.volumes if v.claim is None]
            assert [r["workload_name"] for r in rows if r["namespace"] == "__unmounted__"] == unclaimed
            gpu = [r for r in rows if r["gpu_cost"] > 0 and r["namespace"] != "__idle__"]
            assert gpu and gpu[0]["gpu_hours"] == pytest.approx(1.0)
            assert sum(1 for r in rows if r["workload_kind"] == "cronjob") == 3
            unalloc = {r["pod"] for r in rows if r["workload_kind"] == "__unallocated__"}
            assert "debug-shell" in unalloc and any(p.startswith("kube-proxy-") for p in unalloc)
            assert sum(1 for r in rows if r["network_cost"] > 0) >= 2
            assert any(r["pv_cost"] > 0 for r in rows if r["workload_kind"] == "statefulset")
        # pods that ran only part of an hour have rows
        partial = [p for p in t.pods if not p.pending and (p.start % n or p.end % n)]
        assert any(p.role == "cronjob" for p in partial) and any(p.role == "deployment" for p in partial)
        pod_rows = {(r["hour"], r["namespace"], r["pod"]) for r in tenant_rows}
        for p in partial:
            assert (START + p.start // n * 3600, p.namespace, p.name) in pod_rows
        # the pending pod costs nothing
        pending = [p for p in t.pods if p.pending]
        assert len(pending) == 1 and pending[0].name not in {r["pod"] for r in tenant_rows}
        # the spot node changes price inside every hour
        spot = [nd for nd in t.nodes if nd.spot]
        assert len(spot) == 1
        for h in range(HOURS):
            assert len(set(spot[0].cpu_price[h * n:(h + 1) * n])) == 2
        # a shared volume: two pods each with half its bytes
        shared = [v for v in t.volumes if v.role == "shared"][0]
        holders = [(p, b) for p in t.pods for (_c, vol, b) in p.pvcs if vol == shared.name]
        assert len(holders) == 2 and all(b == shared.capacity / 2 for _, b in holders)
        # some pods have two containers
        assert sum(1 for p in t.pods if len(p.containers) == 2) >= 3


def test_reused_pod_name(sim, truth):
    n = 3600 // STEP
    for t in sim.tenants:
        reused = sorted((p for p in t.pods if p.name == "cache-0"), key=lambda p: p.start)
        assert len(reused) == 2 and reused[0].uid != reused[1].uid and reused[0].node == reused[1].node
        assert (reused[0].start, reused[0].end) == (0, n // 3)
        assert reused[1].start == 2 * n // 3
        rows = [r for r in _hour_rows(truth, t.tenant, 0) if r["pod"] == "cache-0"]
        # one row per instance (pod_uid is part of the key), each 20 minutes of at least the 0.25-core request
        assert sorted(r["pod_uid"] for r in rows) == sorted(p.uid for p in reused)
        assert all(r["container"] == "redis" and r["running_minutes"] == 20 for r in rows)
        assert all(r["cpu_core_hours"] >= 0.25 * (20 / 60) - 1e-12 for r in rows)


def test_labels_overlay(sim, truth):
    t = sim.tenants[0]
    rows = _hour_rows(truth, t.tenant, 0)
    trainer = [r for r in rows if r["workload_name"] == "trainer"][0]
    assert trainer["labels"]["team"] == "ml" and trainer["labels"]["env"] == "prod"
    assert "pod_template_hash" in trainer["labels"]
    shell = [r for r in rows if r["pod"] == "debug-shell"][0]
    assert shell["labels"] == t.namespace_labels["default"]


def test_file_features(sim, parsed):
    t = sim.tenants[0]
    by_family = defaultdict(list)
    for family, _name, labels, value, ts in parsed:
        if labels["tenant_id"] == t.tenant:
            by_family[family].append((labels, value, ts))
    # duplicated KSM series
    for fam in ("kube_pod_owner", "kube_pod_container_status_running", "kube_pod_container_resource_requests"):
        assert {lab["job"] for lab, _, _ in by_family[fam]} == {"kube-state-metrics", "kubecost"}
    # kube_replicaset_owner for some deployments only
    owned = {lab["owner_name"] for lab, _, _ in by_family["kube_replicaset_owner"]}
    deployments = {p.workload[1] for p in t.pods if p.workload[0] == "deployment"}
    assert owned and deployments - owned
    # pod names follow the controllers' patterns
    owners = {(lab["pod"], lab["owner_kind"], lab["owner_name"]) for lab, _, _ in by_family["kube_pod_owner"]}
    assert any(k == "Job" and re.fullmatch(r"report-\d{8}", o) and re.fullmatch(re.escape(o) + r"-[a-z0-9]{5}", p)
               for p, k, o in owners)
    assert any(k == "ReplicaSet" and re.fullmatch(re.escape(o) + r"-[a-z0-9]{5}", p) for p, k, o in owners)
    assert any(k == "Node" for _, k, _ in owners)
    assert "debug-shell" not in {p for p, _, _ in owners}
    # GPU request
    gpu = [(lab, v) for lab, v, _ in by_family["kube_pod_container_resource_requests"]
           if lab["resource"] == "nvidia_com_gpu"]
    assert gpu and all(lab["unit"] == "integer" and v == 1.0 for lab, v in gpu)
    # the pending pod: requests, no running series, no allocation
    pending = [p for p in t.pods if p.pending][0]
    assert any(lab["pod"] == pending.name for lab, _, _ in by_family["kube_pod_container_resource_requests"])
    for fam in ("kube_pod_container_status_running", "container_cpu_allocation"):
        assert not any(lab["pod"] == pending.name for lab, _, _ in by_family[fam])
    # the network counter only grows
    counters = defaultdict(list)
    for lab, v, ts in by_family["kubecost_pod_network_egress_bytes_total"]:
        counters[tuple(sorted(lab.items()))].append(v)
    assert len(counters) >= 8 and all(all(b > a for a, b in zip(vs, vs[1:])) for vs in counters.values())
    # node_total_hourly_cost is the sum of the parts
    for nd in t.nodes:
        total = [v for lab, v, _ in by_family["node_total_hourly_cost"] if lab["node"] == nd.name]
        if not nd.priced:
            assert total == []
            continue
        assert total[0] == pytest.approx(nd.cpu_cores * nd.cpu_price[0] + nd.mem_bytes / GiB * nd.ram_price[0]
                                         + nd.gpus * nd.gpu_price[0], rel=1e-12)


def test_truth_matches_file(sim, parsed, truth):
    """Recompute pod quantities and CPU/RAM costs from the written samples (a small, independent reading
    of docs/model.md) and compare with the ground truth, per (tenant, hour, namespace, pod, node)."""
    running = defaultdict(set)  # (tenant, ns, pod, uid) -> timestamps
    alloc = defaultdict(dict)  # (metric, tenant, ns, pod, container, node) -> {ts: v}
    price = defaultdict(dict)  # (metric, tenant, node) -> {ts: v}
    requests = defaultdict(dict)  # (tenant, ns, pod, container, resource, uid) -> {ts: v}
    for family, _n, lab, v, ts in parsed:
        tn = lab["tenant_id"]
        if family == "kube_pod_container_status_running" and v > 0:
            running[(tn, lab["namespace"], lab["pod"], lab["uid"])].add(ts)
        elif family in ("container_cpu_allocation", "container_memory_allocation_bytes"):
            alloc[(family, tn, lab["namespace"], lab["pod"], lab["container"], lab["node"])][ts] = v
        elif family in ("node_cpu_hourly_cost", "node_ram_hourly_cost"):
            price[(family, tn, lab["node"])][ts] = v
        elif family == "kube_pod_container_resource_requests":
            requests[(tn, lab["namespace"], lab["pod"], lab["container"], lab["resource"], lab["uid"])][ts] = v
    expected = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for h in range(HOURS):
        hs, he = START + h * 3600, START + (h + 1) * 3600
        for (tn, ns, pod, uid), tss in running.items():
            inside = sorted(x for x in tss if hs <= x < he)
            if not inside:
                continue
            first, last = inside[0], min(inside[-1] + STEP, he)
            hours = (last - first) / 3600
            for (metric, atn, ans, apod, container, node), samples in alloc.items():
                if (atn, ans, apod) != (tn, ns, pod):
                    continue
                vals = [v for x, v in samples.items() if first <= x < last]
                if not vals:
                    continue
                resource = "cpu" if metric == "container_cpu_allocation" else "memory"
                req = [v for x, v in requests.get((tn, ns, pod, container, resource, uid), {}).items()
                       if first <= x < last]
                q = max(math.fsum(vals) / len(vals), math.fsum(req) / len(req) if req else 0.0) * hours
                pmetric = "node_cpu_hourly_cost" if resource == "cpu" else "node_ram_hourly_cost"
                ps = [v for x, v in price[(pmetric, tn, node)].items() if first <= x < last]
                mean_price = math.fsum(ps) / len(ps) if ps else 0.0  # the unpriced node: its pods cost 0
                acc = expected[(tn, hs, ns, pod, node)]
                if resource == "cpu":
                    acc[0] += q
                    acc[2] += q * mean_price
                else:
                    acc[1] += q
                    acc[3] += q / GiB * mean_price
    got = defaultdict(lambda: defaultdict(float))  # a pod's rows summed: its containers' and its own
    for r in truth:
        if r["pod"]:
            for f in ("cpu_core_hours", "ram_byte_hours", "cpu_cost", "ram_cost"):
                got[(r["cloud_account_id"], r["hour"], r["namespace"], r["pod"], r["node"])][f] += r[f]
    assert set(got) == set(expected)
    for key, (cpu_h, ram_h, cpu_c, ram_c) in expected.items():
        r = got[key]
        assert r["cpu_core_hours"] == pytest.approx(cpu_h, rel=1e-9)
        assert r["ram_byte_hours"] == pytest.approx(ram_h, rel=1e-9)
        assert r["cpu_cost"] == pytest.approx(cpu_c, rel=1e-9)
        assert r["ram_cost"] == pytest.approx(ram_c, rel=1e-9)


# ---------------------------------------------------------------------------------------------------
# The allocation record: usage, restarts, traps, services, nodes
# ---------------------------------------------------------------------------------------------------

from kubecost_worker.devtools.accuracy import (compare_nodes_with_ground_truth,  # noqa: E402
                                               compare_with_ground_truth)
from kubecost_worker.devtools.cluster import Container, Pod, Service  # noqa: E402
from kubecost_worker.devtools.oracle import cpu_increments, cpu_usage_of_hour, service_of  # noqa: E402
from kubecost_worker.model.rows import NETWORK_FIELDS, NodeRow, REQUEST_FIELDS, USAGE_FIELDS  # noqa: E402

USAGE_METRICS = ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes")


def _series_of(parsed, tenant: str, families) -> dict[tuple, list[tuple[int, float]]]:
    """(family, labels without the tenant) -> samples, of one tenant."""
    out = defaultdict(list)
    for family, _n, lab, v, ts in parsed:
        if family in families and lab["tenant_id"] == tenant:
            out[(family, tuple(sorted((k, x) for k, x in lab.items() if k != "tenant_id")))].append((ts, v))
    return out


def _container_of(labels: tuple) -> tuple[str, str, str]:
    lab = dict(labels)
    return lab["namespace"], lab["pod"], lab["container"]


def test_usage_series_restarts_and_traps_in_the_file(sim, parsed):
    for t in sim.tenants:
        series = _series_of(parsed, t.tenant, USAGE_METRICS)
        by_container = defaultdict(list)
        for (family, labels), samples in series.items():
            by_container[(family, *_container_of(labels))].append((dict(labels), samples))
        running = [p for p in t.pods if not p.pending]
        names = defaultdict(int)
        for p in running:
            names[(p.namespace, p.name)] += 1
        for p in running:
            instances = names[(p.namespace, p.name)]
            for family in USAGE_METRICS:
                # the traps: the pod's cgroup and its pause container, for every running pod
                for trap in ("", "POD"):
                    assert len(by_container[(family, p.namespace, p.name, trap)]) == instances
                for c in p.containers:
                    has = c.cpu_usage_series if family.startswith("container_cpu") else c.mem_usage_series
                    # this instance's series (a reused name's other instance is another cgroup)
                    found = [(lab, samples)
                             for lab, samples in by_container.get((family, p.namespace, p.name, c.name), [])
                             if "id" not in lab or lab["id"].startswith(f"/kubepods/burstable/pod{p.uid}/")]
                    if not has:
                        assert found == [], (p.name, c.name)
                        continue
                    assert found and all(lab["image"] == c.image and lab["node"] == p.node for lab, _ in found)
                    if c.restart is not None and c.restart_new_series:
                        assert len(found) == 2 and len({lab["id"] for lab, _ in found}) == 2
                    elif c.restart is not None:
                        assert len(found) == 1 and "id" not in found[0][0]
                    else:
                        assert len(found) == 1
        # restarts of both kinds, containers with no usage at all and with CPU usage only
        containers = [c for p in running for c in p.containers]
        assert any(c.restart is not None and c.restart_new_series for c in containers)
        assert any(c.restart is not None and not c.restart_new_series for c in containers)
        assert any(not c.cpu_usage_series and not c.mem_usage_series for c in containers)
        assert any(c.cpu_usage_series and not c.mem_usage_series for c in containers)
        # the same-series reset is a visible drop; every other counter only grows
        for (family, labels), samples in series.items():
            if family != "container_cpu_usage_seconds_total":
                continue
            values = [v for _, v in sorted(samples)]
            drops = sum(1 for a, b in zip(values, values[1:]) if b < a)
            assert drops == (0 if "id" in dict(labels) else 1), labels
        # container="" is the pod's whole cgroup: its containers' working sets (those without a series too)
        # plus the pause container's
        p = next(p for p in running if len(p.containers) == 2 and names[(p.namespace, p.name)] == 1)
        ts = START + p.start * STEP
        at = lambda container: math.fsum(v for (lab, samples) in by_container[(USAGE_METRICS[1], p.namespace, p.name,
                                                                                 container)]
                                         for x, v in samples if x == ts)
        assert at("") == at(p.containers[0].name) + at(p.containers[1].name) + at("POD")


def _hour_usage_from_samples(series: list[list[tuple[int, float]]], hs: int, he: int) -> tuple[float, float]:
    """docs/model.md's increase and irate grid, read from the written samples (an independent reading)."""
    increase, highest = 0.0, None
    for samples in series:
        samples = sorted(samples)
        window = [(t, v) for t, v in samples if hs - STEP <= t < he]
        for (t1, v1), (t2, v2) in zip(window, window[1:]):
            increase += v2 - v1 if v2 >= v1 else v2
        for k in range(1, 3600 // STEP):
            g = hs + k * STEP
            pair = [(t, v) for t, v in samples if g - (2 * STEP - 0.001) <= t <= g][-2:]
            if len(pair) == 2:
                (t1, v1), (t2, v2) = pair
                rate = (v2 - v1) / (t2 - t1) if v2 >= v1 else v2 / (t2 - t1)
                highest = rate if highest is None else max(highest, rate)
    return increase / 3600, highest


def test_usage_truth_matches_the_file(sim, parsed, truth):
    """The usage columns of every container row, recomputed from the written cAdvisor samples."""
    checked = 0
    for t in sim.tenants:
        series = _series_of(parsed, t.tenant, USAGE_METRICS)
        pods = {(p.namespace, p.name, p.uid): p for p in t.pods}
        by_instance = defaultdict(list)  # (family, ns, pod, uid, container) -> [samples of each series]
        for (family, labels), samples in series.items():
            ns, pod, container = _container_of(labels)
            if container in ("", "POD"):
                continue  # never a container
            uids = [u for (pns, pname, u) in pods if (pns, pname) == (ns, pod)]
            cgroup = dict(labels).get("id", "")
            uid = next(u for u in uids if len(uids) == 1 or f"pod{u}/" in cgroup)
            by_instance[(family, ns, pod, uid, container)].append(samples)
        for r in truth:
            if r["cloud_account_id"] != t.tenant or not r["container"]:
                continue
            hs = r["hour"]
            cpu = by_instance.get(("container_cpu_usage_seconds_total", r["namespace"], r["pod"], r["pod_uid"],
                                   r["container"]))
            mem = by_instance.get(("container_memory_working_set_bytes", r["namespace"], r["pod"], r["pod_uid"],
                                   r["container"]))
            if cpu is None:
                assert r["cpu_usage_core_hours"] is None and r["cpu_usage_max_cores"] is None
            else:
                increase, highest = _hour_usage_from_samples(cpu, hs, hs + 3600)
                assert r["cpu_usage_core_hours"] == pytest.approx(increase, rel=1e-9, abs=1e-12)
                assert r["cpu_usage_max_cores"] == (None if highest is None else
                                                    pytest.approx(highest, rel=1e-9, abs=1e-12))
            if mem is None:
                assert r["ram_usage_byte_hours"] is None and r["ram_usage_max_bytes"] is None
            else:
                inside = [v for s in mem for x, v in s if hs <= x < hs + 3600]
                hours = r["running_minutes"] / 60
                assert r["ram_usage_byte_hours"] == pytest.approx(math.fsum(inside) / len(inside) * hours, rel=1e-12)
                assert r["ram_usage_max_bytes"] == max(inside)
            checked += 1
    assert checked > 40
    # usage below the requests, above them at times (the allocation follows it up), and all the hour
    rows = [r for r in truth if r["container"] and r["cpu_usage_core_hours"] and r["cpu_request_core_hours"]]
    assert any(r["cpu_usage_core_hours"] < r["cpu_request_core_hours"] for r in rows)
    peaks = [r for r in rows if r["cpu_usage_max_cores"] * r["running_minutes"] / 60 > r["cpu_request_core_hours"]]
    assert peaks and all(r["cpu_core_hours"] > r["cpu_request_core_hours"] for r in peaks)
    assert any(r["workload_name"] == "api-gateway" and r["cpu_usage_core_hours"] > r["cpu_request_core_hours"]
               for r in rows)


def test_rows_per_container_and_the_pods_own_row(sim, truth):
    n = 3600 // STEP
    for t in sim.tenants:
        rows = [r for r in truth if r["cloud_account_id"] == t.tenant]
        for p in t.pods:
            if p.pending:
                continue
            for h in range(p.start // n, (p.end - 1) // n + 1):
                mine = [r for r in rows if r["hour"] == START + h * 3600 and r["pod_uid"] == p.uid]
                containers = sorted(r["container"] for r in mine if r["container"])
                assert containers == sorted(c.name for c in p.containers)
                minutes = (min(p.end, (h + 1) * n) - max(p.start, h * n)) * STEP / 60
                assert max(r["running_minutes"] for r in mine) == minutes
                own = [r for r in mine if r["container"] == ""]
                has_net = any(s.pod_name == p.name and s.namespace == p.namespace for s in t.network)
                assert len(own) == (1 if p.pvcs or has_net else 0)
                for r in own:
                    assert r["running_minutes"] == 0 and r["cpu_cost"] == 0 and r["price_source"] == ""
                    assert r["cpu_usage_core_hours"] is None and r["cpu_request_core_hours"] == 0
                for r in mine:
                    assert r["labels"] == mine[0]["labels"] and r["service"] == mine[0]["service"]
                    if r["container"]:
                        assert r["pv_cost"] == 0 and r["network_cost"] == 0
                        assert r["price_source"] == ("node" if [nd for nd in t.nodes if nd.name == p.node][0].priced
                                                     else "none")
                        c = next(c for c in p.containers if c.name == r["container"])
                        assert r["cpu_request_core_hours"] == pytest.approx((c.cpu_request or 0) * minutes / 60)
                        assert r["ram_request_byte_hours"] == pytest.approx((c.mem_request or 0) * minutes / 60)
        for r in rows:
            assert r["container"] not in ("POD",)
            if r["namespace"] in ("__idle__", "__cluster_management__", "__unmounted__"):
                assert (r["container"], r["pod_uid"], r["service"]) == ("", "", "")
                assert r["price_source"] == ("node" if r["namespace"] == "__idle__" else "")
            for f in (*REQUEST_FIELDS, *USAGE_FIELDS, *NETWORK_FIELDS):
                assert f in r and (r[f] is None or r[f] >= 0)
        # the shell has no usage series at all, kube-proxy a CPU counter only: NULL, never 0
        shell = [r for r in rows if r["pod"] == "debug-shell"]
        assert shell and all(r[f] is None for r in shell for f in USAGE_FIELDS)
        proxy = [r for r in rows if r["pod"].startswith("kube-proxy-")]
        assert proxy and all(r["cpu_usage_core_hours"] is not None and r["ram_usage_byte_hours"] is None
                             for r in proxy)


def test_network_classes(sim, truth):
    for t in sim.tenants:
        rows = [r for r in truth if r["cloud_account_id"] == t.tenant and r["network_cost"] > 0]
        assert rows and all(r["container"] == "" for r in rows)
        for cls in ("zone", "region", "internet"):
            assert all(r[f"network_{cls}_cost"] > 0 and r[f"network_{cls}_bytes"] > 0 for r in rows)
        for r in rows:
            assert r["network_cost"] == pytest.approx(
                r["network_zone_cost"] + r["network_region_cost"] + r["network_internet_cost"], rel=1e-15)
            assert r["network_internet_cost"] == pytest.approx(
                r["network_internet_bytes"] / GiB * t.network_prices["internet"], rel=1e-12)
        # same-zone traffic exists and is free
        assert any(s.price_key is None for s in t.network)


def test_services(sim, parsed, truth):
    t = sim.tenants[0]
    selectors = [dict(lab) for (_f, lab) in _series_of(parsed, t.tenant, ("service_selector_labels",))]
    empty = [s for s in selectors if s["service"] == "external-db"]
    assert len(empty) == 1 and not any(k.startswith("label_") for k in empty[0])
    rows = [r for r in truth if r["cloud_account_id"] == t.tenant]
    service = lambda prefix: {r["service"] for r in rows if r["pod"].startswith(prefix) and r["pod"]}
    assert service("web-") == {"web"}  # also selected by web-all: "web" is first by name
    assert service("api-gateway-") == {"web-all"}
    assert service("orders-") == {"backend"}  # "backend" before the more specific "orders"
    assert service("postgres-") == {"postgres"} and service("ci-runner-") == {"ci-runner"}
    assert service("debug-shell") == {""}  # no labels
    used = {r["service"] for r in rows}
    assert not used & {"legacy", "external-db", "prod"}  # nothing, an empty selector, a namespace label
    assert not any(r["namespace"] == "default" and r["service"] == "web" for r in rows)
    lb = [r for r in rows if r["workload_kind"] == "service"]
    assert lb and all(r["service"] == r["workload_name"] == "web" and r["lb_cost"] > 0 for r in lb)


def test_nodes_in_the_file_and_the_truth(sim, parsed):
    nodes = sim.ground_truth_nodes()
    assert [tuple(r) for r in nodes[:1]] == [tuple(f.name for f in fields(NodeRow))]
    for t in sim.tenants:
        prices = _series_of(parsed, t.tenant, ("node_cpu_hourly_cost", "kubecost_node_is_spot"))
        labelled = {dict(lab)["node"]: dict(lab) for (_f, lab) in _series_of(parsed, t.tenant, ("kube_node_labels",))}
        unpriced = [nd for nd in t.nodes if not nd.priced]
        assert len(unpriced) == 1
        priced_names = {dict(lab)["node"] for (_f, lab) in prices}
        assert unpriced[0].name not in priced_names and len(priced_names) == len(t.nodes) - 1
        for (family, lab), samples in prices.items():
            lab = dict(lab)
            assert {"instance_type", "region", "provider_id", "arch"} <= set(lab)
        assert {nd.instance_type for nd in t.nodes if nd.priced} >= {"a2-highgpu-1g"} and \
            len({nd.instance_type for nd in t.nodes if nd.priced}) == 3
        assert len({nd.arch for nd in t.nodes}) == 2
        assert any("label_failure_domain_beta_kubernetes_io_zone" in lab
                   and "label_topology_kubernetes_io_zone" not in lab for lab in labelled.values())
        rows = {r["node"]: r for r in nodes if r["cloud_account_id"] == t.tenant and r["hour"] == START}
        assert set(rows) == {nd.name for nd in t.nodes}
        assert len({r["zone"] for r in rows.values()}) == 4  # three zones and '' (the unpriced node has no label)
        off = rows[unpriced[0].name]
        assert (off["zone"], off["provider_id"], off["price_source"], off["cpu_cost"], off["idle_cost"]) == \
            ("", "", "none", 0.0, 0.0)
        assert off["cpu_cores"] > 0 and off["running_minutes"] == 60
        assert [r["spot"] for r in rows.values()].count(True) == 1
        # the unpriced node runs pods: they cost 0, their price source says so
        expense = [r for r in sim.ground_truth() if r["cloud_account_id"] == t.tenant and r["node"] == off["node"]]
        assert expense and all(r["price_source"] == "none" and r["total_cost"] == 0 for r in expense)
        assert not any(r["namespace"] == "__idle__" for r in expense)
        for r in rows.values():
            if r["price_source"] == "node":
                assert r["allocated_cost"] + r["idle_cost"] == pytest.approx(
                    r["cpu_cost"] + r["ram_cost"] + r["gpu_cost"], rel=1e-12)
                assert r["allocated_cost"] > 0 and r["provider_id"].startswith("gce://")


def test_node_zones_follow_the_labels():
    s = simulate(["z"], START, 1, nodes=5, pods=30, seed=2)
    zones = {r["node"]: r["zone"] for r in s.ground_truth_nodes()}
    nodes = s.tenants[0].nodes
    assert nodes[3].labels is None and zones[nodes[3].name] == ""  # no kube_node_labels at all
    assert zones[nodes[1].name] == nodes[1].zone  # from the deprecated label alone
    assert zones[nodes[0].name] == nodes[0].zone and zones[nodes[4].name] == nodes[4].zone


# -- the oracle on cases checked by hand -------------------------------------------------------------------


def _container(restart=None, new_series=True, start=1000.0) -> Container:
    return Container("app", 1.0, 1.0, 0, 1.0, (1, 1), 1.0, (1, 1), "k", restart=restart,
                     restart_new_series=new_series, cpu_counter_start=start)


def test_cpu_usage_by_hand():
    usage = [1.0, 2.0, 0.5, 3.0, 1.5, 0.25]  # cores in six 600 s steps, one hour
    # a reset in the same series at step 3: the counter drops, and the value after it counts whole
    same = _container(restart=3, new_series=False)
    assert same.cpu_counter(usage, 600) == [1000.0, 1600.0, 2800.0, 300.0, 2100.0, 3000.0]
    # increases 600 + 1200 + 300 (the reset) + 1800 + 900 = 4800 s; the last step's usage shows in no sample
    assert cpu_usage_of_hour(same, usage, cpu_increments(same, 6), 0, 0, 6, 600) == (4800 / 3600, 3.0)
    # a restart into a new series: its first sample has no predecessor, step 2's usage is not seen
    new = _container(restart=3, new_series=True)
    assert cpu_increments(new, 6) == [True, True, False, True, True, False]
    assert cpu_usage_of_hour(new, usage, cpu_increments(new, 6), 0, 0, 6, 600) == (4500 / 3600, 3.0)
    # hours of three steps: the pair across the boundary counts in hour 1's increase, not on its irate grid
    peaky = [1.0, 2.0, 9.0, 3.0, 1.5, 0.25]
    plain = _container()
    seen = cpu_increments(plain, 6)
    assert cpu_usage_of_hour(plain, peaky, seen, 0, 3, 6, 1200) == ((9.0 + 3.0 + 1.5) * 1200 / 3600, 3.0)
    assert cpu_usage_of_hour(plain, peaky, seen, 0, 0, 3, 1200) == ((1.0 + 2.0) * 1200 / 3600, 2.0)
    # a pod seen once in hour 1 of three steps: an increase of 0, no grid point, so no maximum (NULL)
    assert cpu_usage_of_hour(plain, [5.0], cpu_increments(plain, 1), 5, 3, 6, 1200) == (0.0, None)
    # a pod whose only pair in hour 1 ends at its first sample: an increase, but no grid point either
    assert cpu_usage_of_hour(plain, [4.0, 7.0], cpu_increments(plain, 2), 2, 3, 6, 1200) == (4.0 / 3, None)


def test_service_choice_by_hand():
    pod = Pod("ns", "p", "u", "n", 0, 1, None, ("deployment", "d"), {"app": "a", "tier": "web"}, [])
    services = [Service("ns", "zeta", {"app": "a"}), Service("ns", "alpha", {"app": "a", "tier": "web"}),
                Service("ns", "beta", {"tier": "web", "extra": "x"}), Service("other", "aaa", {"app": "a"}),
                Service("ns", "empty", {})]
    assert service_of(pod, services) == "alpha"  # both zeta and alpha select it: the first by name
    assert service_of(pod, services[:1]) == "zeta"
    assert service_of(pod, services[2:]) == ""  # a missing label, another namespace, an empty selector


def test_accuracy_reports_nulls_strings_and_numbers():
    row = {"cloud_account_id": "a", "cluster_id": "c", "hour": 0, "namespace": "n", "workload_kind": "k",
           "workload_name": "w", "pod": "p", "node": "x", "container": "app", "pod_uid": "u", "cpu_cost": 1.0,
           "cpu_usage_core_hours": None, "service": "s", "price_source": "node"}
    assert compare_with_ground_truth([dict(row)], [row]).exact
    for changed in ({"cpu_usage_core_hours": 0.0}, {"service": "t"}, {"cpu_cost": 1.0 + 1e-6}):
        accuracy = compare_with_ground_truth([dict(row, **changed)], [row])
        assert not accuracy.exact and [m[1] for m in accuracy.mismatches] == list(changed)
    node = {"cloud_account_id": "a", "cluster_id": "c", "hour": 0, "node": "x", "spot": True, "cpu_cost": 2.0}
    assert compare_nodes_with_ground_truth([dict(node)], [node]).exact
    assert not compare_nodes_with_ground_truth([dict(node, spot=False)], [node]).exact


# -- the model against the ground truth, in process (no Prometheus, no ClickHouse) --------------------------------


def hour_input(parsed, tenant: str, hour: int, step: int = STEP):
    """The HourInput the source would fetch for one tenant-hour from the written samples: ``[hour, hour + 1h)``,
    a counter's one step before too, the tenant label stripped."""
    from kubecost_worker.model.series import COUNTERS as MODEL_COUNTERS, HourInput, Series

    grouped = defaultdict(list)
    for family, _n, lab, v, ts in parsed:
        first = hour - step if family in MODEL_COUNTERS else hour
        if lab["tenant_id"] == tenant and first <= ts < hour + 3600:
            grouped[(family, tuple(sorted((k, x) for k, x in lab.items() if k != "tenant_id")))].append((ts, v))
    series = defaultdict(list)
    for (family, labels), samples in sorted(grouped.items()):
        series[family].append(Series(dict(labels), sorted((float(t), v) for t, v in samples)))
    return HourInput(tenant, hour, hour + 3600, step, dict(series))


def assert_the_model_equals_the_ground_truth(sim, parsed) -> None:
    from dataclasses import asdict

    from kubecost_worker.model import compute_hour

    truth = sim.ground_truth()
    truth_nodes = sim.ground_truth_nodes()
    for t in sim.tenants:
        for h in range(sim.hours):
            hour = sim.start + h * 3600
            result = compute_hour(hour_input(parsed, t.tenant, hour, sim.step))
            rows = [dict(asdict(r), total_cost=r.total_cost) for r in result.rows]
            expected = [r for r in truth if r["cloud_account_id"] == t.tenant and r["hour"] == hour]
            accuracy = compare_with_ground_truth(rows, expected)
            assert accuracy.missing == [] and accuracy.unexpected == [], accuracy
            assert accuracy.mismatches == [], accuracy.mismatches[:10]
            nodes = compare_nodes_with_ground_truth(
                [asdict(r) for r in result.nodes],
                [r for r in truth_nodes if r["cloud_account_id"] == t.tenant and r["hour"] == hour])
            assert nodes.missing == [] and nodes.unexpected == [], nodes
            assert nodes.mismatches == [], nodes.mismatches[:10]
            assert result.unpriced_nodes == [nd.name for nd in t.nodes if not nd.priced]


def test_the_model_equals_the_ground_truth(sim, parsed):
    """compute_hour on every simulated tenant-hour against the ground truth: every row, every column at 1e-9,
    and every node row."""
    assert_the_model_equals_the_ground_truth(sim, parsed)


def test_the_model_equals_the_ground_truth_in_another_shape(tmp_path):
    """Five-minute steps over three hours (one-sample pods: no irate grid point; a fully allocated GPU: idle 0)."""
    s = simulate(["x", "y"], START, 3, nodes=2, pods=12, step=300, seed=11)
    s.write_openmetrics(tmp_path / "m.om")
    assert_the_model_equals_the_ground_truth(s, parse_openmetrics(tmp_path / "m.om"))
