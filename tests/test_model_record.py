"""The allocation record on cases computed by hand (docs/model.md: "Rows", "Requests and usage", "Services",
"Network", "Nodes", "Unpriced nodes"): containers, usage, services, network classes, nodes, prices' sources."""

from __future__ import annotations

import math
import random

import pytest

from kubecost_worker.model import compute_hour
from kubecost_worker.model.pods import Services
from kubecost_worker.model.rows import COST_FIELDS, IDLE
from kubecost_worker.model.usage import irate_max

from .test_model import GIB, H0, STEP, hour, minutes, node_series, one_row, pod_series, s


def counter(first: int, last_exclusive: int, per_minute: list[float] | float, start_value: float = 0.0):
    """A CPU-seconds counter sampled at minutes [first, last): each step adds ``per_minute`` seconds."""
    increments = per_minute if isinstance(per_minute, list) else [per_minute] * (last_exclusive - first)
    values, total = [], start_value
    for add in increments:
        total += add
        values.append(total)
    return minutes(first, last_exclusive, values)


def usage(pod, container="app", ns="default", cpu=None, memory=None, cid="c1"):
    out = {}
    labels = dict(namespace=ns, pod=pod, container=container, id=f"/kubepods/{pod}/{cid}", node="n1")
    if cpu is not None:
        out["container_cpu_usage_seconds_total"] = [s(**labels)(cpu)]
    if memory is not None:
        out["container_memory_working_set_bytes"] = [s(**labels)(memory)]
    return out


def rows_of(result, pod):
    return sorted((r for r in result.rows if r.pod == pod), key=lambda r: r.container)


def test_a_row_per_container_and_the_pods_own_row_keep_the_pods_sums():
    two = pod_series("web", cpu=0.5, cpu_req=0.25, ram=GIB, container="app")
    side = pod_series("web", cpu=0.1, ram_req=GIB / 2, container="sidecar")
    claim = {"pod_pvc_allocation": [s(namespace="default", pod="web", persistentvolumeclaim="c", persistentvolume="v")(
        minutes(0, 60, 2 * GIB))], "pv_hourly_cost": [s(persistentvolume="v")(minutes(0, 60, 0.0001))]}
    result = compute_hour(hour(node_series(cpu=0.04, ram=0.005), two, side, claim))
    own, app, sidecar = rows_of(result, "web")
    assert (own.container, app.container, sidecar.container) == ("", "app", "sidecar")
    assert app.cpu_core_hours == pytest.approx(0.5) and app.cpu_cost == pytest.approx(0.5 * 0.04)
    assert sidecar.cpu_core_hours == pytest.approx(0.1) and sidecar.ram_byte_hours == pytest.approx(GIB / 2)
    assert app.running_minutes == sidecar.running_minutes == pytest.approx(60)
    # the pod's own row: its volume, no running time, no CPU
    assert own.running_minutes == 0 and own.cpu_cost == 0
    assert own.pv_cost == pytest.approx(2 * 0.0001) and app.pv_cost == sidecar.pv_cost == 0
    assert {r.pod_uid for r in (own, app, sidecar)} == {"uid-web"}
    assert app.cpu_request_core_hours == pytest.approx(0.25) and sidecar.cpu_request_core_hours == 0
    assert sidecar.ram_request_byte_hours == pytest.approx(GIB / 2)
    total = one_row(result, "web")
    assert total.cpu_cost == pytest.approx(0.6 * 0.04)
    assert total.ram_cost == pytest.approx((GIB + GIB / 2) / GIB * 0.005)


def test_usage_is_the_counters_increase_across_a_reset_and_the_average_working_set():
    # 0.5 CPU for 30 minutes, the container restarts (the counter drops to 0 and starts again), then 0.25 CPU
    before_hour = [(float(H0 - STEP), 100.0)]
    first_life = counter(0, 30, 0.5 * STEP, start_value=100.0)
    second_life = counter(30, 60, 0.25 * STEP)
    memory = minutes(0, 60, [GIB] * 30 + [2 * GIB] * 30)
    result = compute_hour(hour(node_series(), pod_series("p", cpu=1.0, cpu_req=1.0, ram_req=4 * GIB),
                               usage("p", cpu=before_hour + first_life + second_life, memory=memory)))
    (row,) = rows_of(result, "p")
    # the first sample after the reset counts whole: 0.25 x 60 seconds, as the next 29
    assert row.cpu_usage_core_hours == pytest.approx((30 * 0.5 * STEP + 30 * 0.25 * STEP) / 3600)
    assert row.ram_usage_byte_hours == pytest.approx(1.5 * GIB)
    assert row.ram_usage_max_bytes == 2 * GIB
    assert row.cpu_usage_max_cores == pytest.approx(0.5)


def test_a_restart_as_a_new_series_adds_its_usage():
    old = usage("p", cpu=[(float(H0 - STEP), 0.0)] + counter(0, 20, 0.3 * STEP), cid="old")
    new = usage("p", cpu=counter(20, 60, 0.6 * STEP), cid="new")
    series = {"container_cpu_usage_seconds_total": old["container_cpu_usage_seconds_total"]
              + new["container_cpu_usage_seconds_total"]}
    result = compute_hour(hour(node_series(), pod_series("p", cpu=1.0), series))
    (row,) = rows_of(result, "p")
    # the new series' first sample is its start: no earlier sample to count from (as Prometheus's increase)
    assert row.cpu_usage_core_hours == pytest.approx((20 * 0.3 * STEP + 39 * 0.6 * STEP) / 3600)
    assert row.cpu_usage_max_cores == pytest.approx(0.6)
    assert row.ram_usage_byte_hours is None and row.ram_usage_max_bytes is None


def test_without_usage_series_usage_is_null_and_cadvisors_pod_and_pause_series_are_not_containers():
    pod_total = usage("p", container="", cpu=counter(0, 60, 9.0 * STEP), memory=minutes(0, 60, 9 * GIB))
    pause = usage("p", container="POD", cpu=counter(0, 60, 0.001 * STEP), memory=minutes(0, 60, 1.0))
    merged = {k: pod_total[k] + pause[k] for k in pod_total}
    result = compute_hour(hour(node_series(), pod_series("p", cpu=1.0), merged))
    (row,) = rows_of(result, "p")
    assert row.container == "app"
    assert row.cpu_usage_core_hours is None and row.ram_usage_byte_hours is None
    assert row.cpu_usage_max_cores is None and row.ram_usage_max_bytes is None


def test_the_irate_grid_skips_gaps_longer_than_two_steps_and_reads_a_drop_as_a_reset():
    samples = [(H0 + 0.0, 0.0), (H0 + 60.0, 30.0), (H0 + 120.0, 90.0), (H0 + 300.0, 100.0), (H0 + 360.0, 6.0)]
    # grid t = 60: pair (0, 60) -> 0.5; t = 120: (60, 120) -> 1.0; t = 180, 240: one sample in reach; t = 300:
    # (120 is 180 s back) none; t = 360: (300, 360), a drop: 6 / 60 = 0.1
    assert irate_max(samples, H0, H0 + 3600, STEP) == pytest.approx(1.0)
    assert irate_max(samples[3:], H0, H0 + 3600, STEP) == pytest.approx(0.1)
    assert irate_max(samples[:1], H0, H0 + 3600, STEP) is None


def test_the_first_service_by_name_whose_selector_matches_and_its_load_balancer():
    labelled = pod_series("api-1", owner=("StatefulSet", "api"), cpu=0.2)
    labelled["kube_pod_labels"] = [s(namespace="default", pod="api-1", uid="uid-api-1", label_app="api",
                                     label_tier="web")(minutes(0, 60))]
    selectors = {"service_selector_labels": [
        s(namespace="default", service="zeta", label_app="api")(minutes(0, 60)),
        s(namespace="default", service="alpha", label_app="api", label_tier="web")(minutes(0, 60)),
        s(namespace="default", service="beta", label_app="other")(minutes(0, 60)),
        s(namespace="default", service="empty")(minutes(0, 60)),  # no selector: selects nothing
        s(namespace="other", service="aaa", label_app="api")(minutes(0, 60)),  # another namespace
    ], "kubecost_load_balancer_cost": [s(namespace="default", service_name="alpha", ingress_ip="1.1.1.1")(
        minutes(0, 60, 0.025))]}
    result = compute_hour(hour(node_series(), labelled, pod_series("plain", cpu=0.1), selectors))
    assert {r.service for r in rows_of(result, "api-1")} == {"alpha"}
    assert {r.service for r in rows_of(result, "plain")} == {""}
    (lb,) = [r for r in result.rows if r.lb_cost]
    assert (lb.service, lb.workload_kind, lb.container) == ("alpha", "service", "")
    by_service = math.fsum(r.total_cost for r in result.rows if r.service == "alpha")
    assert by_service == pytest.approx(0.2 * 0.04 + 0.025)


def test_a_pods_service_looked_up_by_one_selector_label_is_the_first_by_name_of_all_that_match():
    """``Services`` finds a pod's candidates by one label of each selector: the answer is the one the rule gives
    checking every Service (first by name, selector not empty, all its labels on the pod), over random selectors
    and pods that share labels, miss some, or have none."""
    rng = random.Random(20261206)
    keys, values = ["app", "tier", "team", "version"], ["a", "b", "c"]
    labelled = lambda most: {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, most))}
    services = sorted((f"svc-{i:03d}", labelled(3)) for i in range(120))
    index = Services(services)
    matched = 0
    for _ in range(600):
        pod = labelled(4)
        every = next((name for name, selector in services if selector and selector.items() <= pod.items()), "")
        assert index.selecting(pod) == every
        matched += every != ""
    assert 100 < matched < 600  # both outcomes were tried


def test_network_classes_add_up_to_the_network_cost_on_the_pods_own_row():
    prices = {"kubecost_network_internet_egress_cost": [s()(minutes(0, 60, 0.12))],
              "kubecost_network_region_egress_cost": [s()(minutes(0, 60, 0.02))],
              "kubecost_network_zone_egress_cost": [s()(minutes(0, 60, 0.01))]}
    egress = lambda gib, **cls: s(namespace="default", pod_name="p", **cls)(
        [(H0 - 60.0, 0.0), (H0 + 3540.0, gib * GIB)])
    prices["kubecost_pod_network_egress_bytes_total"] = [
        egress(2, internet="true", same_zone="false", same_region="false"),
        egress(3, internet="false", same_zone="false", same_region="false"),
        egress(5, internet="false", same_zone="false", same_region="true"),
        egress(7, internet="false", same_zone="true", same_region="true")]  # inside the zone: free, not stored
    result = compute_hour(hour(node_series(), pod_series("p", cpu=0.1), prices))
    own, app = rows_of(result, "p")
    assert own.container == "" and app.network_cost == 0
    assert own.network_internet_bytes == 2 * GIB and own.network_internet_cost == pytest.approx(0.24)
    assert own.network_region_bytes == 3 * GIB and own.network_region_cost == pytest.approx(0.06)
    assert own.network_zone_bytes == 5 * GIB and own.network_zone_cost == pytest.approx(0.05)
    assert own.network_cost == own.network_zone_cost + own.network_region_cost + own.network_internet_cost


def test_a_node_row_holds_its_attributes_capacity_prices_and_what_was_allocated_and_idle():
    nodes = node_series(cpu=0.04, ram=0.005, cores=4, ram_bytes=16 * GIB)
    for metric in ("node_cpu_hourly_cost", "node_ram_hourly_cost"):
        nodes[metric] = [s(node="n1", instance="n1", instance_type="e2-standard-4", region="us-central1",
                           provider_id="gce://p/us-central1-c/n1", arch="amd64")(minutes(0, 60, 0.04 if "cpu" in metric
                                                                                             else 0.005))]
    nodes["kubecost_node_is_spot"] = [s(node="n1")(minutes(0, 60, 1.0))]
    nodes["kube_node_labels"] = [s(node="n1", label_topology_kubernetes_io_zone="us-central1-c")(minutes(0, 60))]
    result = compute_hour(hour(nodes, pod_series("p", cpu=1.0, ram=2 * GIB)))
    (node,) = result.nodes
    assert (node.provider_id, node.instance_type, node.region, node.zone, node.arch, node.spot) == (
        "gce://p/us-central1-c/n1", "e2-standard-4", "us-central1", "us-central1-c", "amd64", True)
    assert (node.cpu_cores, node.ram_bytes, node.running_minutes) == (4, 16 * GIB, 60)
    assert (node.cpu_price, node.ram_price, node.price_source) == (pytest.approx(0.04), pytest.approx(0.005), "node")
    assert node.cpu_cost == pytest.approx(0.16) and node.ram_cost == pytest.approx(0.08)
    assert node.allocated_cost == pytest.approx(0.04 + 2 * 0.005)
    idle = next(r for r in result.rows if r.namespace == IDLE)
    assert node.idle_cost == pytest.approx(idle.cpu_cost + idle.ram_cost)
    assert node.allocated_cost + node.idle_cost == pytest.approx(node.total_cost)


def test_a_node_without_prices_is_listed_its_pods_cost_nothing_or_the_defaults_and_say_so():
    capacity = {"kube_node_status_capacity_cpu_cores": [s(node="bare")(minutes(0, 60, 2.0))],
                "kube_node_status_capacity_memory_bytes": [s(node="bare")(minutes(0, 60, 4 * GIB))]}
    inp = hour(node_series(), capacity, pod_series("on-bare", node="bare", cpu=1.0, ram=GIB),
               pod_series("priced", cpu=1.0))
    plain = compute_hour(inp)
    (row,) = rows_of(plain, "on-bare")
    assert row.cpu_cost == 0 and row.price_source == "none"
    assert rows_of(plain, "priced")[0].price_source == "node"
    assert plain.unpriced_nodes == ["bare"]
    assert not [r for r in plain.rows if r.namespace == IDLE and r.node == "bare"]
    bare = next(n for n in plain.nodes if n.node == "bare")
    assert (bare.price_source, bare.cpu_cores, bare.total_cost) == ("none", 2.0, 0.0)

    priced = compute_hour(inp, default_prices={"cpu": 0.031611, "ram": 0.004237})
    (row,) = rows_of(priced, "on-bare")
    assert row.price_source == "default"
    assert row.cpu_cost == pytest.approx(0.031611) and row.ram_cost == pytest.approx(0.004237)
    idle = next(r for r in priced.rows if r.namespace == IDLE and r.node == "bare")
    assert idle.cpu_cost == pytest.approx(0.031611) and idle.ram_cost == pytest.approx(3 * 0.004237)
    assert priced.unpriced_nodes == ["bare"]  # still listed: priced by a guess
    # the priced node is untouched by the defaults
    assert sum(r.total_cost for r in priced.rows if r.node == "n1") == pytest.approx(
        sum(r.total_cost for r in plain.rows if r.node == "n1"))


def test_every_cost_of_the_hour_is_on_exactly_one_row():
    result = compute_hour(hour(node_series(), pod_series("a", cpu=1.0, container="x"),
                               pod_series("a", cpu=0.5, container="y")))
    keys = [r.key for r in result.rows]
    assert len(keys) == len(set(keys))
    assert math.fsum(r.total_cost for r in result.rows) == pytest.approx(
        math.fsum(getattr(r, f) for r in result.rows for f in COST_FIELDS))
