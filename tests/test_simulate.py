"""Tests of the synthetic cluster simulator (kubecost_worker/devtools/) and its ground truth."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections import defaultdict

import pytest

from kubecost_worker.devtools.accuracy import KEY as ROW_KEY
from kubecost_worker.devtools.cluster import GiB, escape_label_value
from kubecost_worker.model.rows import COST_FIELDS
from kubecost_worker.devtools.simulation import simulate, write_simulation

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
