"""The cost model as pure functions, on cases computed by hand (docs/model.md is the specification)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from kubecost_worker.model import HourInput, Series, compute_hour
from kubecost_worker.model.rows import COST_FIELDS, NETWORK_FIELDS, QUANTITY_FIELDS, REQUEST_FIELDS
from kubecost_worker.model.series import deduplicate, label_values
from kubecost_worker.model.workload import Owners, resolve_workload
from kubecost_worker.store.ledger import SENTINEL_METRICS

H0 = 1_767_225_600  # 2026-01-01T00:00:00Z
STEP = 60
GIB = 2**30
TENANT = "t-1"


def minutes(first: int, last_exclusive: int, value: float | list[float] = 1.0) -> list[tuple[float, float]]:
    """Samples at minutes [first, last_exclusive) of the hour."""
    values = value if isinstance(value, list) else [value] * (last_exclusive - first)
    return [(float(H0 + m * STEP), float(v)) for m, v in zip(range(first, last_exclusive), values)]


def s(**labels):
    def with_samples(samples):
        return Series(labels, samples)  # as the source hands series over: the tenant label stripped

    return with_samples


def node_series(node="n1", cpu=0.04, ram=0.005, gpu=0.0, cores=4.0, ram_bytes=16 * GIB, gpus=0.0, first=0, last=60):
    lab = dict(node=node, instance=node)
    as_samples = lambda v: v if isinstance(v, list) else minutes(first, last, v)
    return {
        "node_cpu_hourly_cost": [s(**lab)(as_samples(cpu))],
        "node_ram_hourly_cost": [s(**lab)(as_samples(ram))],
        "node_gpu_hourly_cost": [s(**lab)(as_samples(gpu))],
        "node_gpu_count": [s(**lab)(as_samples(gpus))],
        "kube_node_status_capacity_cpu_cores": [s(node=node)(as_samples(cores))],
        "kube_node_status_capacity_memory_bytes": [s(node=node)(as_samples(ram_bytes))],
    }


def pod_series(pod, ns="default", node="n1", uid=None, first=0, last=60, cpu=None, cpu_req=None, ram=None,
               ram_req=None, gpu=None, gpu_req=None, container="app", owner=None, running=True):
    uid = uid or f"uid-{pod}"
    out: dict[str, list[Series]] = {}
    add = lambda metric, series: out.setdefault(metric, []).append(series)
    c = dict(namespace=ns, pod=pod, container=container)
    if running:
        add("kube_pod_container_status_running", s(**c, uid=uid)(minutes(first, last)))
    for metric, value in (("container_cpu_allocation", cpu), ("container_memory_allocation_bytes", ram),
                          ("container_gpu_allocation", gpu)):
        if value is not None:
            add(metric, s(**c, node=node, instance=node)(minutes(first, last, value)))
    for resource, unit, value in (("cpu", "core", cpu_req), ("memory", "byte", ram_req),
                                  ("nvidia_com_gpu", "integer", gpu_req)):
        if value is not None:
            add("kube_pod_container_resource_requests",
                s(**c, node=node, resource=resource, unit=unit, uid=uid)(minutes(first, last, value)))
    if owner:
        kind, name = owner
        add("kube_pod_owner", s(namespace=ns, pod=pod, owner_kind=kind, owner_name=name,
                                owner_is_controller="true")(minutes(first, last)))
    return out


def hour(*groups: dict[str, list[Series]]) -> HourInput:
    merged: dict[str, list[Series]] = {}
    for group in groups:
        for metric, series in group.items():
            merged.setdefault(metric, []).extend(series)
    return HourInput(TENANT, H0, H0 + 3600, STEP, merged)


def pod_rows(result, pod):
    return [r for r in result.rows if r.pod == pod]


def one_row(result, pod):
    """A pod instance's figures: summed over its rows (one per container, and its own), its running time the
    longest of theirs (containers inherit the pod's); docs/model.md, "Rows"."""
    rows = pod_rows(result, pod)
    assert rows and len({(r.pod_uid, r.node, r.workload_kind, r.workload_name) for r in rows}) == 1, rows
    summed = {name: math.fsum(getattr(r, name) for r in rows) for name in (*QUANTITY_FIELDS, *COST_FIELDS,
                                                                            *REQUEST_FIELDS, *NETWORK_FIELDS)}
    summed["running_minutes"] = max(r.running_minutes for r in rows)
    return dataclasses.replace(rows[0], container="", **summed)


def idle_row(result, node="n1"):
    return next(r for r in result.rows if r.namespace == "__idle__" and r.node == node)


def test_partial_hour_pod_pays_its_running_minutes_only():
    result = compute_hour(hour(node_series(cpu=0.04), pod_series("p", first=10, last=30, cpu=0.5, cpu_req=0.25)))
    row = one_row(result, "p")
    assert row.running_minutes == pytest.approx(20)
    assert row.cpu_core_hours == pytest.approx(0.5 * 20 / 60)
    assert row.cpu_cost == pytest.approx(0.5 * 20 / 60 * 0.04)


def test_request_above_usage_wins():
    result = compute_hour(hour(node_series(cpu=0.04, ram=0.005),
                               pod_series("p", cpu=0.1, cpu_req=0.5, ram=1 * GIB, ram_req=3 * GIB)))
    row = one_row(result, "p")
    assert row.cpu_core_hours == pytest.approx(0.5)
    assert row.cpu_cost == pytest.approx(0.5 * 0.04)
    assert row.ram_byte_hours == pytest.approx(3 * GIB)
    assert row.ram_cost == pytest.approx(3 * 0.005)


def test_usage_above_request_wins_on_average():
    # allocation 0.2 for 30 minutes then 0.6: mean 0.4 > request 0.3
    result = compute_hour(hour(node_series(cpu=0.05), pod_series("p", cpu=[0.2] * 30 + [0.6] * 30, cpu_req=0.3)))
    assert one_row(result, "p").cpu_cost == pytest.approx(0.4 * 0.05)


def test_price_change_mid_hour_is_time_weighted():
    prices = minutes(0, 30, 0.03) + minutes(30, 60, 0.06)
    result = compute_hour(hour(node_series(cpu=prices), pod_series("p", cpu=1.0, cpu_req=1.0)))
    assert one_row(result, "p").cpu_cost == pytest.approx(0.045)
    # a pod running only in the second half pays the second price only
    result = compute_hour(hour(node_series(cpu=prices), pod_series("q", first=40, last=60, cpu=1.0)))
    assert one_row(result, "q").cpu_cost == pytest.approx(1.0 * 20 / 60 * 0.06)


def test_gpu_is_priced_per_gpu_hour():
    result = compute_hour(hour(node_series(gpu=2.5, gpus=2.0),
                               pod_series("trainer", cpu=1.0, gpu=1.0, gpu_req=1.0, first=0, last=30)))
    row = one_row(result, "trainer")
    assert row.gpu_hours == pytest.approx(0.5)
    assert row.gpu_cost == pytest.approx(0.5 * 2.5)
    idle = idle_row(result)
    assert idle.gpu_hours == pytest.approx(2.0 - 0.5)
    assert idle.gpu_cost == pytest.approx(2 * 2.5 - 0.5 * 2.5)


def test_pv_shared_by_two_pods_is_paid_half_each_and_nothing_unmounted():
    pv_price = 0.001
    volume = {
        "pv_hourly_cost": [s(persistentvolume="pv-1", volumename="pv-1")(minutes(0, 60, pv_price))],
        "kube_persistentvolume_capacity_bytes": [s(persistentvolume="pv-1")(minutes(0, 60, 10 * GIB))],
        "pod_pvc_allocation": [
            s(namespace="db", pod=p, persistentvolumeclaim="data", persistentvolume="pv-1")(minutes(0, 60, 5 * GIB))
            for p in ("db-0", "db-1")],
    }
    result = compute_hour(hour(node_series(), pod_series("db-0", ns="db", cpu=0.1), pod_series("db-1", ns="db", cpu=0.1),
                               volume))
    for pod in ("db-0", "db-1"):
        row = one_row(result, pod)
        assert row.pv_byte_hours == pytest.approx(5 * GIB)
        assert row.pv_cost == pytest.approx(5 * pv_price)
    assert not [r for r in result.rows if r.namespace == "__unmounted__"]


def test_unclaimed_volume_is_unmounted():
    volume = {
        "pv_hourly_cost": [s(persistentvolume="orphan")(minutes(0, 60, 0.002))],
        "kube_persistentvolume_capacity_bytes": [s(persistentvolume="orphan")(minutes(0, 60, 50 * GIB))],
    }
    result = compute_hour(hour(node_series(), volume))
    row = next(r for r in result.rows if r.namespace == "__unmounted__")
    assert (row.workload_kind, row.workload_name) == ("persistentvolume", "orphan")
    assert row.pv_cost == pytest.approx(50 * 0.002)
    assert row.total_cost == pytest.approx(0.1)


def test_jobs_of_a_cronjob_resolve_to_the_cronjob():
    result = compute_hour(hour(
        node_series(),
        pod_series("backup-29451780-x7k2p", ns="ops", first=5, last=8, cpu=0.5, owner=("Job", "backup-29451780")),
        pod_series("report-1767225600-abcde", ns="ops", first=0, last=2, cpu=0.5, owner=("Job", "report-1767225600")),
        pod_series("migrate-xyz12", ns="ops", first=0, last=2, cpu=0.5, owner=("Job", "migrate")),
    ))
    assert (one_row(result, "backup-29451780-x7k2p").workload_kind,
            one_row(result, "backup-29451780-x7k2p").workload_name) == ("cronjob", "backup")
    assert one_row(result, "report-1767225600-abcde").workload_name == "report"
    assert (one_row(result, "migrate-xyz12").workload_kind, one_row(result, "migrate-xyz12").workload_name) == ("job", "migrate")
    assert one_row(result, "backup-29451780-x7k2p").running_minutes == pytest.approx(3)


def test_duplicated_series_are_counted_once():
    pod = pod_series("p", cpu=0.1, cpu_req=1.0, owner=("StatefulSet", "db"))
    twice = {metric: [Series({**x.labels, "job": job}, x.samples) for x in group for job in ("kube-state-metrics", "kubecost")]
             for metric, group in pod.items()}
    single = compute_hour(hour(node_series(), pod))
    doubled = compute_hour(hour(node_series(), twice))
    assert one_row(doubled, "p").cpu_cost == pytest.approx(one_row(single, "p").cpu_cost) == pytest.approx(0.04)
    assert one_row(doubled, "p").running_minutes == pytest.approx(60)
    assert math.isclose(doubled.total_cost, single.total_cost)


def test_deduplicate_merges_by_identity_and_keeps_one_sample_per_timestamp():
    a = Series({"namespace": "n", "pod": "p", "container": "c", "node": "x", "job": "ksm"}, minutes(0, 2, 1.0))
    b = Series({"namespace": "n", "pod": "p", "container": "c", "node": "x", "job": "kc"}, minutes(1, 3, 1.0))
    merged = deduplicate("container_cpu_allocation", [a, b])
    assert len(merged) == 1 and [t for t, _ in merged[0].samples] == [H0, H0 + 60, H0 + 120]


def test_reused_pod_name_with_a_new_uid_is_two_pods():
    first = pod_series("worker", uid="A", first=0, last=20, owner=("ReplicaSet", "worker-5d8f7c9b4d"))
    second = pod_series("worker", uid="B", first=40, last=60)
    allocation = {"container_cpu_allocation": [
        s(namespace="default", pod="worker", container="app", node="n1")(minutes(0, 20, 1.0) + minutes(40, 60, 2.0))]}
    result = compute_hour(hour(node_series(cpu=0.06), first, second, allocation))
    a, b = (one_row(dataclasses.replace(result, rows=[r for r in result.rows if r.pod_uid == uid]), "worker")
            for uid in ("A", "B"))
    assert a.running_minutes + b.running_minutes == pytest.approx(40)  # not the 60-minute span
    assert a.cpu_core_hours == pytest.approx(1.0 * 20 / 60) and b.cpu_core_hours == pytest.approx(2.0 * 20 / 60)
    assert a.cpu_cost + b.cpu_cost == pytest.approx(1.0 * 0.06)


def test_idle_is_capacity_cost_minus_allocated_and_the_invariant_holds():
    result = compute_hour(hour(
        node_series(cpu=0.05, ram=0.004, cores=4, ram_bytes=8 * GIB),
        pod_series("a", cpu=1.0, ram=2 * GIB), pod_series("b", cpu=0.5, ram=1 * GIB, first=0, last=30),
        {"kubecost_cluster_management_cost": [s(provisioner_name="GKE")(minutes(0, 60, 0.1))],
         "kubecost_load_balancer_cost": [s(namespace="web", service_name="lb", ingress_ip="1.2.3.4")(minutes(0, 60, 0.025))]},
    ))
    idle = idle_row(result)
    assert idle.cpu_core_hours == pytest.approx(4 - 1 - 0.25)
    assert idle.cpu_cost == pytest.approx((4 - 1.25) * 0.05)
    assert idle.ram_cost == pytest.approx((8 - 2 - 0.5) * 0.004)
    node_cost = 4 * 0.05 + 8 * 0.004
    assert result.total_cost == pytest.approx(node_cost + 0.1 + 0.025)
    lb = next(r for r in result.rows if r.workload_kind == "service")
    assert (lb.namespace, lb.workload_name, lb.lb_cost) == ("web", "lb", pytest.approx(0.025))
    management = next(r for r in result.rows if r.namespace == "__cluster_management__")
    assert management.management_cost == pytest.approx(0.1) and management.total_cost == pytest.approx(0.1)


def test_overcommitted_node_has_no_negative_idle():
    result = compute_hour(hour(node_series(cpu=0.05, cores=1), pod_series("a", cpu=1.0), pod_series("b", cpu=1.0)))
    assert idle_row(result).cpu_cost == 0.0
    assert result.total_cost > 1 * 0.05 + 16 * 0.005


def test_node_active_part_of_the_hour_only():
    result = compute_hour(hour(node_series(cpu=0.06, ram=0.0, cores=2, first=30, last=60)))
    assert idle_row(result).cpu_cost == pytest.approx(2 * 0.06 / 2)


def test_pending_pod_costs_nothing():
    result = compute_hour(hour(node_series(), pod_series("pending", cpu_req=1.0, running=False)))
    assert pod_rows(result, "pending") == []


def test_network_egress_by_class():
    bytes_at = lambda values: [(float(H0 + (m - 1) * STEP), float(v)) for m, v in enumerate(values)]
    # the first sample is one step before the hour: its increase into the hour counts
    internet = bytes_at([10 * GIB, 11 * GIB] + [11 * GIB] * 58 + [12 * GIB])  # minutes -1..59
    cross_zone = bytes_at([0, 4 * GIB] + [4 * GIB] * 58 + [1 * GIB])  # a reset at the end: +1 GiB
    network = {
        "kubecost_network_internet_egress_cost": [s()(minutes(0, 60, 0.12))],
        "kubecost_network_zone_egress_cost": [s()(minutes(0, 60, 0.01))],
        "kubecost_network_region_egress_cost": [s()(minutes(0, 60, 0.02))],
        "kubecost_pod_network_egress_bytes_total": [
            s(namespace="default", pod_name="p", internet="true", same_zone="false", same_region="false")(internet),
            s(namespace="default", pod_name="p", internet="false", same_zone="false", same_region="true")(cross_zone),
            s(namespace="default", pod_name="p", internet="false", same_zone="true", same_region="true")(internet),
        ],
    }
    result = compute_hour(hour(node_series(), pod_series("p", cpu=0.1), network))
    assert one_row(result, "p").network_cost == pytest.approx(2 * 0.12 + 5 * 0.01)


def test_workload_resolution():
    owners = Owners(
        pod_owner={("ns", "api-7c9f8d6b5-abcde"): ("ReplicaSet", "api-7c9f8d6b5"),
                   ("ns", "web-55d9c8-xyz12"): ("ReplicaSet", "web-55d9c8"),
                   ("ns", "etcd-node1"): ("Node", "node1"),
                   ("ns", "ds-abcde"): ("DaemonSet", "ds"),
                   ("ns", "ro-6d7f8-abcde"): ("ReplicaSet", "ro-6d7f8"),
                   ("ns", "bare-rs-abcde"): ("ReplicaSet", "bare-rs")},
        replicaset_owner={("ns", "ro-6d7f8"): ("Rollout", "ro"), ("ns", "bare-rs"): ("<none>", "<none>")},
    )
    assert resolve_workload(owners, "ns", "api-7c9f8d6b5-abcde", {}) == ("deployment", "api")
    assert resolve_workload(owners, "ns", "web-55d9c8-xyz12", {"pod_template_hash": "55d9c8"}) == ("deployment", "web")
    assert resolve_workload(owners, "ns", "etcd-node1", {}) == ("__unallocated__", "__unallocated__")
    assert resolve_workload(owners, "ns", "nobody", {}) == ("__unallocated__", "__unallocated__")
    assert resolve_workload(owners, "ns", "ds-abcde", {}) == ("daemonset", "ds")
    assert resolve_workload(owners, "ns", "ro-6d7f8-abcde", {}) == ("rollout", "ro")
    assert resolve_workload(owners, "ns", "bare-rs-abcde", {}) == ("replicaset", "bare-rs")


def test_a_pods_controller_is_its_owner_whatever_the_order_of_its_owner_series():
    """Two owners of one pod: the controller wins over an owner listed before it; two controllers (a copy from a
    second exporter), the first in label order, in whichever order the series came."""
    def owner(pod, kind, name, controller, **more):
        return s(namespace="ns", pod=pod, owner_kind=kind, owner_name=name, owner_is_controller=controller,
                 **more)(minutes(0, 60))

    plain = owner("p", "ConfigMap", "cfg", "false")
    controller = owner("p", "StatefulSet", "db", "true")
    first_copy = owner("q", "Job", "a", "true", instance="a")
    second_copy = owner("q", "Job", "b", "true", instance="b")
    for series in ([plain, controller, second_copy, first_copy], [controller, plain, first_copy, second_copy]):
        owners = Owners.from_series(series, [], [])
        assert owners.pod_owner == {("ns", "p"): ("StatefulSet", "db"), ("ns", "q"): ("Job", "a")}


def test_label_values_read_a_missing_label_as_empty():
    labels = {"namespace": "ns", "pod": "p", "container": "c"}
    assert label_values(labels, ("namespace", "pod", "container")) == ("ns", "p", "c")
    assert label_values(labels, ("pod",)) == ("p",)
    assert label_values(labels, ("namespace", "id")) == ("ns", "")
    assert label_values(labels, ("id",)) == ("",)
    assert label_values({}, ()) == ()


def test_labels_pod_over_namespace():
    labels = {
        "kube_namespace_labels": [s(namespace="default", label_team="platform", label_env="prod")(minutes(0, 60))],
        "kube_pod_labels": [s(namespace="default", pod="p", uid="uid-p", label_team="payments", label_app="api")(minutes(0, 60))],
    }
    row = one_row(compute_hour(hour(node_series(), pod_series("p", cpu=0.1), labels)), "p")
    assert row.labels == {"team": "payments", "env": "prod", "app": "api"}


def test_samples_outside_the_hour_are_ignored():
    before_and_after = {"container_cpu_allocation": [s(namespace="default", pod="p", container="app", node="n1")(
        [(H0 - 60.0, 100.0)] + minutes(0, 60, 1.0) + [(H0 + 3600.0, 100.0)])]}
    result = compute_hour(hour(node_series(cpu=0.04), pod_series("p"), before_and_after))
    assert one_row(result, "p").cpu_cost == pytest.approx(0.04)


def test_hourly_metric_samples_keep_kubecost_series_with_labels():
    savings = {"kubecost_savings_cpu_allocation": [s(daemonset="false")(minutes(0, 30, 1.0) + minutes(30, 60, 3.0))]}
    result = compute_hour(hour(node_series(), savings))
    (sample,) = [m for m in result.metric_samples if m.metric == "kubecost_savings_cpu_allocation"]
    assert sample.value == pytest.approx(2.0) and sample.labels == {"daemonset": "false"} and sample.samples == 60


def test_series_of_two_clusters_are_computed_apart():
    a = {k: [Series({**x.labels, "cluster_id": "a"}, x.samples) for x in v] for k, v in
         hour(node_series(cpu=0.01), pod_series("p", cpu=1.0)).series.items()}
    b = {k: [Series({**x.labels, "cluster_id": "b"}, x.samples) for x in v] for k, v in
         hour(node_series(cpu=0.02), pod_series("p", cpu=1.0)).series.items()}
    result = compute_hour(hour(a, b))
    costs = {r.cluster_id: r.cpu_cost for r in pod_rows(result, "p")}
    assert costs == {"a": pytest.approx(0.01), "b": pytest.approx(0.02)}


# -- summaries in place of samples (the summarised fetch) -----------------------------------------------------

def test_summaries_give_the_hand_computed_cost():
    """A pod running minutes 10..29 with a mean of 0.75 cores (request 0.25), all of it as summaries."""
    from kubecost_worker.model.series import Summary

    c = dict(namespace="default", pod="p", container="app")
    summarised = {
        "kube_pod_container_status_running": [Summary({**c, "uid": "u"}, first=H0 + 600.0, last=H0 + 29 * 60.0)],
        "container_cpu_allocation": [Summary({**c, "node": "n1"}, mean=0.75)],
        "kube_pod_container_resource_requests": [Summary({**c, "node": "n1", "resource": "cpu"}, mean=0.25)],
        "kube_pod_owner": [Summary(dict(namespace="default", pod="p", owner_kind="StatefulSet", owner_name="db",
                                        owner_is_controller="true"))],
    }
    inp = hour(node_series(cpu=0.04), summarised)
    with pytest.raises(ValueError, match="sample count"):  # coverage counts running samples: the source must say
        inp.sample_count(SENTINEL_METRICS)
    inp = HourInput(TENANT, H0, H0 + 3600, STEP, inp.series, counted={"kube_pod_container_status_running": 20})
    result = compute_hour(inp)
    assert inp.sample_count(SENTINEL_METRICS) == 20 + 60  # the running samples as counted, node_cpu_hourly_cost's 60
    row = one_row(result, "p")
    assert row.running_minutes == pytest.approx(20)
    assert row.cpu_core_hours == pytest.approx(0.75 * 20 / 60)
    assert row.cpu_cost == pytest.approx(0.75 * 20 / 60 * 0.04)
    assert (row.workload_kind, row.workload_name) == ("statefulset", "db")


def test_a_summary_where_samples_are_needed_is_refused():
    """Two instances of one pod name split their samples by time: a summary cannot be split, the model says so."""
    from kubecost_worker.model.series import Summary

    c = dict(namespace="default", pod="p", container="app")
    two_instances = {
        "kube_pod_container_status_running": [s(**c, uid="a")(minutes(0, 20)), s(**c, uid="b")(minutes(40, 60))],
        "container_cpu_allocation": [Summary({**c, "node": "n1"}, mean=0.75)],
    }
    with pytest.raises(ValueError, match="summary"):
        compute_hour(hour(node_series(), two_instances))
