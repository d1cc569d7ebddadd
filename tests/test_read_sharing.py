"""``read/sharing.py``: read-time sharing, efficiency and rightsizing math as pure functions on hand-computed cases
(docs/api.md, "Sharing"). The allocation API's parameters: ``test_read_allocation.py``."""

from __future__ import annotations

import math

import pytest

from kubecost_worker.read import sharing
from kubecost_worker.read.sharing import IDLE_ROLE, MANAGEMENT_ROLE, OWN, SHARED, Part, SharePolicy

H = 1_700_000_000 // 3600 * 3600


def part(key, role=OWN, cpu=0.0, ram=0.0, gpu=0.0, other=0.0, cluster="c1", node="", kept=True, **more) -> Part:
    figures = {name: 0.0 for name in sharing.FIGURES}
    figures.update(cpu_cost=cpu, ram_cost=ram, gpu_cost=gpu, pv_cost=other, total_cost=cpu + ram + gpu + other,
                   cpu_usage_core_hours=None, ram_usage_byte_hours=None, **more)
    return Part((key,), cluster, node, role, kept, figures, H, H)


def by_key(groups) -> dict[str, sharing.Group]:
    return {g.key[0]: g for g in groups}


def test_idle_is_shared_resource_by_resource_in_proportion_to_each_groups_cost_of_it():
    # CPU idle 6 goes 1:2 by CPU cost (a: 1, b: 2); RAM idle 3 goes 3:0 by RAM cost (a only)
    parts = [part("a", cpu=1, ram=3), part("b", cpu=2), part("__idle__", IDLE_ROLE, cpu=6, ram=3)]
    groups = by_key(sharing.share(parts, SharePolicy(share_idle=True)))
    assert set(groups) == {"a", "b"}
    assert groups["a"].idle_cost == pytest.approx(2 + 3) and groups["b"].idle_cost == pytest.approx(4)
    assert groups["a"].total_cost == pytest.approx(4 + 5) and groups["b"].total_cost == pytest.approx(2 + 4)
    assert groups["a"].figures["cpu_cost"] == 1  # own costs are unchanged: the share is beside them


def test_idle_without_sharing_is_its_own_group():
    parts = [part("a", cpu=1), part("__idle__", IDLE_ROLE, cpu=6)]
    groups = by_key(sharing.share(parts, SharePolicy()))
    assert groups["__idle__"].total_cost == 6 and groups["a"].idle_cost == 0


def test_idle_of_a_resource_nobody_pays_for_stays_as_idle():
    # GPU idle 5 with no GPU cost anywhere: it cannot be shared and stays; CPU idle is shared
    parts = [part("a", cpu=1), part("__idle__", IDLE_ROLE, cpu=2, gpu=5)]
    groups = by_key(sharing.share(parts, SharePolicy(share_idle=True)))
    assert groups["a"].idle_cost == pytest.approx(2)
    assert groups["__idle__"].figures["gpu_cost"] == 5 and groups["__idle__"].figures["cpu_cost"] == 0
    assert groups["__idle__"].total_cost == 5
    assert math.fsum(g.total_cost for g in groups.values()) == pytest.approx(8)


def test_idle_by_node_shares_each_nodes_idle_over_that_nodes_groups():
    parts = [part("a", cpu=1, node="n1"), part("b", cpu=1, node="n2"), part("a", cpu=1, node="n2"),
             part("__idle__", IDLE_ROLE, cpu=4, node="n1"), part("__idle__", IDLE_ROLE, cpu=2, node="n2")]
    groups = by_key(sharing.share(parts, SharePolicy(share_idle=True, idle_by_node=True)))
    # n1's 4 all to a; n2's 2 half each
    assert groups["a"].idle_cost == pytest.approx(5) and groups["b"].idle_cost == pytest.approx(1)
    by_cluster = by_key(sharing.share(parts, SharePolicy(share_idle=True)))  # nodes ignored: the parts' node is ''
    assert by_cluster["a"].idle_cost + by_cluster["b"].idle_cost == pytest.approx(6)


def test_idle_stays_in_its_cluster():
    parts = [part("a", cpu=1, cluster="c1"), part("a", cpu=1, cluster="c2"),
             part("__idle__", IDLE_ROLE, cpu=3, cluster="c2")]
    groups = by_key(sharing.share(parts, SharePolicy(share_idle=True)))
    assert groups["a"].idle_cost == pytest.approx(3) and "__idle__" not in groups


def test_shared_namespaces_weighted_by_total_cost_with_their_idle():
    # monitoring (shared) costs 2 and gets CPU idle 1 (of 4, by CPU cost 2 of 8); its 3 go 1:2 over a and b
    parts = [part("a", cpu=2), part("b", cpu=4), part("monitoring", SHARED, cpu=2),
             part("__idle__", IDLE_ROLE, cpu=4)]
    groups = by_key(sharing.share(parts, SharePolicy(share_idle=True)))
    assert set(groups) == {"a", "b"}
    assert groups["a"].idle_cost == pytest.approx(1) and groups["b"].idle_cost == pytest.approx(2)
    assert groups["a"].shared_cost == pytest.approx(1) and groups["b"].shared_cost == pytest.approx(2)
    assert math.fsum(g.total_cost for g in groups.values()) == pytest.approx(12)


def test_even_split_is_per_group_not_per_part():
    # a has two parts (two nodes): it still gets one even share, spread over its parts by their cost
    parts = [part("a", cpu=1, node="n1"), part("a", cpu=3, node="n2"), part("b", cpu=100),
             part("shared", SHARED, cpu=10)]
    groups = by_key(sharing.share(parts, SharePolicy(split="even")))
    assert groups["a"].shared_cost == pytest.approx(5) and groups["b"].shared_cost == pytest.approx(5)
    kept_n2 = [p if p.node == "n2" or p.key != ("a",) else Part(p.key, p.cluster, p.node, p.role, False, p.figures,
                                                                  p.first_hour, p.last_hour) for p in parts]
    assert by_key(sharing.share(kept_n2, SharePolicy(split="even")))["a"].shared_cost == pytest.approx(5 * 3 / 4)


def test_management_is_shared_only_with_share_tenancy_costs():
    parts = [part("a", cpu=1), part("b", cpu=3), part("__cluster_management__", MANAGEMENT_ROLE, other=0.4)]
    kept = by_key(sharing.share(parts, SharePolicy()))
    assert kept["__cluster_management__"].total_cost == pytest.approx(0.4)
    shared = by_key(sharing.share(parts, SharePolicy(share_tenancy=True)))
    assert "__cluster_management__" not in shared
    assert shared["a"].shared_cost == pytest.approx(0.1) and shared["b"].shared_cost == pytest.approx(0.3)


def test_a_filter_keeps_the_coefficients_of_the_unfiltered_answer():
    parts = [part("a", cpu=1), part("b", cpu=3), part("__idle__", IDLE_ROLE, cpu=8),
             part("shared", SHARED, cpu=4)]
    whole = by_key(sharing.share(parts, SharePolicy(share_idle=True)))
    only_a = [Part(p.key, p.cluster, p.node, p.role, p.key == ("a",), p.figures, p.first_hour, p.last_hour)
              for p in parts]
    filtered = by_key(sharing.share(only_a, SharePolicy(share_idle=True)))
    assert set(filtered) == {"a"}
    assert filtered["a"].idle_cost == whole["a"].idle_cost and filtered["a"].shared_cost == whole["a"].shared_cost


def test_a_cluster_with_nothing_to_share_with_keeps_its_shared_costs():
    parts = [part("shared", SHARED, cpu=4), part("__idle__", IDLE_ROLE, cpu=2)]
    groups = by_key(sharing.share(parts, SharePolicy(share_idle=True)))
    # the idle goes to the shared namespace (it used the CPU), which has no one to pass it to
    assert set(groups) == {"shared"} and groups["shared"].total_cost == pytest.approx(6)


def test_kubecosts_efficiency_example():
    # requests 2 CPU and 1 GB, usage 0.5 CPU and 0.5 GB, CPU cost 20 and RAM cost 1 -> 5.5 / 21 (Kubecost's page)
    figures = dict(cpu_cost=20.0, ram_cost=1.0, cpu_usage_core_hours=0.5, ram_usage_byte_hours=0.5,
                   cpu_request_core_hours_with_usage=2.0, ram_request_byte_hours_with_usage=1.0,
                   cpu_cost_with_usage=20.0, ram_cost_with_usage=1.0)
    cpu, ram, total = sharing.efficiency(figures)
    assert (cpu, ram) == (0.25, 0.5) and total == pytest.approx(5.5 / 21)


def test_efficiency_edge_cases():
    base = dict(cpu_cost=1.0, ram_cost=1.0, cpu_usage_core_hours=None, ram_usage_byte_hours=None,
                cpu_request_core_hours_with_usage=0.0, ram_request_byte_hours_with_usage=0.0,
                cpu_cost_with_usage=0.0, ram_cost_with_usage=0.0)
    assert sharing.efficiency(base) == (None, None, None)  # no usage known
    assert sharing.efficiency({**base, "cpu_cost": 0.0, "ram_cost": 0.0}) == (None, None, 0.0)  # nothing paid
    used_unrequested = {**base, "cpu_usage_core_hours": 0.2, "cpu_cost_with_usage": 1.0}
    assert sharing.efficiency(used_unrequested) == (1.0, None, 1.0)  # zero request, used and paid: 1


def test_averages_divide_by_the_groups_hours():
    figures = dict(cpu_request_core_hours=6.0, ram_request_byte_hours=30.0, cpu_usage_core_hours=3.0,
                   ram_usage_byte_hours=None)
    assert sharing.averages(figures, H, H + 2 * 3600) == {
        "cpu_request_average_cores": 2.0, "ram_request_average_bytes": 10.0, "cpu_usage_average_cores": 1.0,
        "ram_usage_average_bytes": None}


def test_quantile_recommendation_and_saving():
    assert sharing.quantile([4, 1, 3, 2], 0.5) == 2.5 and sharing.quantile([1, 2, 3, 4, 5], 0.95) == 4.8
    assert sharing.quantile([7], 0.95) == 7
    assert sharing.recommend(0.35, 0.7, sharing.MIN_CPU_CORES) == pytest.approx(0.5)
    assert sharing.recommend(0.001, 0.7, sharing.MIN_CPU_CORES) == sharing.MIN_CPU_CORES
    assert sharing.recommend(None, 0.7, sharing.MIN_CPU_CORES) is None
    # 1 core requested, 0.5 recommended, $0.04 a core-hour, 2 replicas: 0.5 x 0.04 x 730 x 2
    assert sharing.monthly_saving(1.0, 0.5, 0.04, 2.0) == pytest.approx(29.2)


def test_coefficients_are_decided_from_the_steps_totals():
    # c1: own CPU 2, a shared namespace's CPU 2, idle CPU 4 and GPU 1 (no GPU receiver); c2: nothing to share with
    figures = dict.fromkeys(sharing.WEIGHED, 0.0)
    totals = sharing.Totals({("c1", "", OWN): {**figures, "cpu_cost": 2.0, "total_cost": 2.0},
                             ("c1", "", SHARED): {**figures, "cpu_cost": 2.0, "total_cost": 2.0},
                             ("c1", "", IDLE_ROLE): {**figures, "cpu_cost": 4.0, "gpu_cost": 1.0, "total_cost": 5.0},
                             ("c2", "", SHARED): {**figures, "total_cost": 3.0}}, {"c1": 4})
    weighted = sharing.coefficients(totals, SharePolicy(share_idle=True))
    assert weighted.idle[("c1", "")] == sharing.IdleShare({"cpu_cost": 1.0, "ram_cost": 0.0, "gpu_cost": 0.0},
                                                          frozenset({"gpu_cost"}))
    # the shared namespace's 2 and the idle CPU it received (2 x 1) over the takers' cost of 2; c2 keeps its own
    assert weighted.shared == {"c1": 2.0}
    assert sharing.coefficients(totals, SharePolicy(share_idle=True, split="even")).shared == {"c1": 1.0}  # 4 / 4
    assert sharing.coefficients(totals, SharePolicy()) == sharing.Coefficients({}, {"c1": 1.0})  # 2 / 2, no idle
