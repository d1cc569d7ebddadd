"""End to end with real components: simulator -> promtool -> Prometheus -> `kubecost-worker` CLI -> chDB.

Tolerance against the ground truth: 1e-9 relative (1e-12 absolute near 0), for every numeric column of every row
(costs, quantities, requests, usage, network classes; a NULL only against a NULL) and of every node row; service and
price source exactly. Values travel exactly (repr floats in
OpenMetrics, float64 in Prometheus, shortest round-trip decimal in its JSON); only the order of float
additions differs between the simulator and the model, which moves the last bits (2e-15 measured).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from kubecost_worker.devtools.accuracy import compare_nodes_with_ground_truth, compare_with_ground_truth
from kubecost_worker.store.clickhouse import ClickHouseSink

from .helpers import Cluster, ch_client, iso, run_worker

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["e2e-tenant-a", "e2e-tenant-b"]
HOURS = 3
REL, ABS = 1e-9, 1e-12
END = int(time.time()) // 3600 * 3600 - 3600  # a closed hour, safely in the past
START = END - HOURS * 3600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), TENANTS, START, HOURS, pods=20, seed=7)
    yield c
    c.prometheus.stop()


@pytest.fixture(scope="module")
def smaller_cluster(tmp_path_factory):
    """The same tenants and hours with fewer pods: what a rerun finds after the data changed."""
    c = Cluster(tmp_path_factory.mktemp("smaller"), TENANTS, START, HOURS, pods=8, seed=8)
    yield c
    c.prometheus.stop()


def backfill_all(env: dict[str, str], *extra: str) -> str:
    migrate = run_worker("migrate", env=env)
    assert migrate.returncode == 0, migrate.stderr
    result = run_worker("backfill", "--start", iso(START), "--end", iso(END), *extra, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def stored(ch_url: str) -> list[dict]:
    from kubecost_worker.devtools.accuracy import stored_rows

    with ch_client(ch_url) as client:
        return stored_rows(ClickHouseSink(client))


def stored_node_rows(ch_url: str) -> list[dict]:
    from kubecost_worker.devtools.accuracy import stored_nodes

    with ch_client(ch_url) as client:
        return stored_nodes(ClickHouseSink(client))


def truth_nodes(cluster: Cluster) -> list[dict]:
    return [json.loads(line) for line in Path(cluster.sim["ground_truth_nodes"]).read_text().splitlines() if line]


def full_rows(ch_url: str) -> list[tuple]:
    with ch_client(ch_url) as client:
        return sorted(client.query(
            "SELECT * EXCEPT (run_id, inserted_at) FROM k8s_expenses_current").result_rows, key=repr)


def assert_matches_truth(ch_url: str, truth: list[dict], nodes: list[dict] | None = None) -> None:
    """Every row, and in it every cost, quantity, request, usage and network column (None only against None) within
    REL of the ground truth (ABS near 0), and its service and price source; the node rows likewise."""
    accuracy = compare_with_ground_truth(stored(ch_url), truth, rel=REL, abs_=ABS)
    assert accuracy.missing == [] and accuracy.unexpected == [], (accuracy.missing[:5], accuracy.unexpected[:5])
    assert accuracy.compared == len(truth)
    assert accuracy.mismatches == [], accuracy.mismatches[:10]
    if nodes is not None:
        node_accuracy = compare_nodes_with_ground_truth(stored_node_rows(ch_url), nodes, rel=REL, abs_=ABS)
        assert node_accuracy.missing == [] and node_accuracy.unexpected == [], node_accuracy
        assert node_accuracy.compared == len(nodes) and node_accuracy.mismatches == [], node_accuracy.mismatches[:10]


def test_backfill_equals_the_ground_truth(cluster, ch_url):
    out = backfill_all(cluster.worker_env(ch_url))  # no --tenant: every tenant Thanos knows
    assert f"{len(TENANTS) * HOURS}/{len(TENANTS) * HOURS} tenant-hours" in out and "0 failed" in out
    assert_matches_truth(ch_url, cluster.truth, truth_nodes(cluster))
    with ch_client(ch_url) as client:
        runs = client.query("SELECT cloud_account_id, count() FROM k8s_expense_runs WHERE status = 'succeeded' "
                            "GROUP BY 1 ORDER BY 1").result_rows
        kinds = {k for k, in client.query("SELECT DISTINCT workload_kind FROM k8s_expenses_current").result_rows}
        labelled = client.query("SELECT count() FROM k8s_expenses_current WHERE labels['team'] != ''").result_rows
        unknown_usage = client.query("SELECT count() FROM k8s_expenses_current "
                                     "WHERE container != '' AND cpu_usage_core_hours IS NULL").result_rows
        sources = {s for s, in client.query("SELECT DISTINCT price_source FROM k8s_expenses_current").result_rows}
        services = {s for s, in client.query("SELECT DISTINCT service FROM k8s_expenses_current").result_rows}
    assert runs == [(t, HOURS) for t in TENANTS]
    assert {"deployment", "statefulset", "daemonset", "cronjob", "__unallocated__", "__idle__", "service",
            "persistentvolume", "__cluster_management__"} <= kinds
    assert labelled[0][0] > 0
    # what the comparison covered: containers without usage (NULL), the unpriced node's pods, services
    nulls = sum(1 for r in cluster.truth if r["container"] and r["cpu_usage_core_hours"] is None)
    assert unknown_usage[0][0] == nulls > 0
    assert sources == {"", "node", "none"} and {"web", "web-all", "backend", "postgres", ""} <= services


def test_the_invariant_holds_against_sums_prometheus_computes(cluster, ch_url):
    """sum(total_cost) per tenant-hour == node costs + PV + LB + network + management, the right side
    computed by PromQL from node_total_hourly_cost (a series the model never reads) and the raw inputs."""
    backfill_all(cluster.worker_env(ch_url), "--tenant", TENANTS[0])
    with ch_client(ch_url) as client:
        totals = dict(client.query("SELECT toUnixTimestamp(hour), sum(total_cost) FROM k8s_expenses_current "
                                   "GROUP BY 1").result_rows)
    network_by_hour = defaultdict(float)
    for row in cluster.truth:
        if row["cloud_account_id"] == TENANTS[0]:
            network_by_hour[row["hour"]] += row["network_cost"]
    for hour in range(START, END, 3600):
        at = hour + 3600 - 0.001
        sel = f'{{tenant_id="{TENANTS[0]}"}}'

        def value(promql: str) -> float:
            result = cluster.instant(promql, at)
            return float(result[0]["value"][1]) if result else 0.0

        per_step = 60 / 3600
        nodes = value(f"sum(sum_over_time(node_total_hourly_cost{sel}[3600s])) * {per_step}")
        lbs = value(f"sum(sum_over_time(kubecost_load_balancer_cost{sel}[3600s])) * {per_step}")
        management = value(f"sum(sum_over_time(kubecost_cluster_management_cost{sel}[3600s])) * {per_step}")
        volumes = value(f"sum(sum_over_time(pv_hourly_cost{sel}[3600s]) * on (persistentvolume) group_left "
                        f"avg_over_time(kube_persistentvolume_capacity_bytes{sel}[3600s])) / 2^30 * {per_step}")
        network = network_by_hour[hour]
        assert nodes > 0 and lbs > 0 and management > 0 and volumes > 0 and network > 0
        assert totals[hour] == pytest.approx(nodes + volumes + lbs + network + management, rel=1e-9)


def collect_garbage(env: dict[str, str]) -> str:
    result = run_worker("gc", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_rerun_changes_nothing_refuses_far_less_data_and_force_replaces_it(cluster, smaller_cluster, ch_url):
    backfill_all(cluster.worker_env(ch_url))
    first = full_rows(ch_url)
    backfill_all(cluster.worker_env(ch_url))
    assert full_rows(ch_url) == first
    with ch_client(ch_url) as client:  # the rerun deleted nothing: the first runs are underneath until cleanup
        assert client.query("SELECT count() FROM k8s_expenses").result_rows == [(2 * len(first),)]
    assert f"removed the rows of {len(TENANTS) * HOURS} runs" in collect_garbage(cluster.worker_env(ch_url))
    with ch_client(ch_url) as client:
        assert client.query("SELECT count() FROM k8s_expenses").result_rows == [(len(first),)]

    # same tenants and hours, 8 pods instead of 20: a few rows fewer; with a strict KCW_REFUSE_BELOW that is
    # markedly less (as when Thanos lost data): refused, the stored hours kept
    strict = {**smaller_cluster.worker_env(ch_url), "KCW_REFUSE_BELOW": "0.999"}
    summary = backfill_all(strict)
    with ch_client(ch_url) as client:
        refused = client.query("SELECT cloud_account_id, hour FROM k8s_expense_runs WHERE status != 'collected' "
                               "GROUP BY 1, 2 HAVING argMax(status, recorded_at) = 'refused'").result_rows
    assert refused and f"{len(refused)} refused (less data than stored; --force replaces)" in summary

    def of_refused_hours(rows: list[tuple]) -> list[tuple]:
        return [r for r in rows if (r[0], r[2]) in set(refused)]  # (cloud_account_id, cluster_id, hour, ...)

    assert of_refused_hours(full_rows(ch_url)) == of_refused_hours(first) != []
    status = run_worker("status", env=strict)
    assert status.returncode == 0 and f", {len(refused)} refused, " in status.stdout.splitlines()[-1]  # the total
    assert "rows against" in status.stdout and "--force" in status.stdout
    backfill_all(strict, "--force")  # the operator knows the data changed
    assert_matches_truth(ch_url, smaller_cluster.truth, truth_nodes(smaller_cluster))
    pods_before = {r["pod"] for r in cluster.truth} - {r["pod"] for r in smaller_cluster.truth}
    assert pods_before, "the smaller cluster should lack some pods"
    collect_garbage(smaller_cluster.worker_env(ch_url))
    with ch_client(ch_url) as client:
        stale = client.query("SELECT count() FROM k8s_expenses_current WHERE pod IN {p:Array(String)}",
                             parameters={"p": sorted(pods_before)}).result_rows
        left_underneath = client.query("SELECT count() FROM k8s_expenses WHERE pod IN {p:Array(String)}",
                                       parameters={"p": sorted(pods_before)}).result_rows
    assert stale == [(0,)] and left_underneath == [(0,)]


def test_hostile_tenant_id_is_refused_before_any_query(cluster, ch_url):
    env = cluster.worker_env(ch_url)
    assert run_worker("migrate", env=env).returncode == 0
    for hostile in ('e2e-tenant-a"} or {tenant_id=~".+', "e2e-tenant-a\n", ".*"):
        result = run_worker("backfill", "--tenant", hostile, "--start", iso(START), "--end", iso(END), env=env)
        assert result.returncode == 2 and "safe alphabet" in result.stderr
    with ch_client(ch_url) as client:
        assert client.query("SELECT count() FROM k8s_expense_runs").result_rows == [(0,)]


def test_thanos_faults_are_retried_and_a_partial_hour_is_never_stored(cluster, ch_url):
    """Through a fault-injecting proxy: transient faults are retried and the hour succeeds; a fault that
    does not clear fails the hour (ledger 'failed', nothing visible); once it clears the hour succeeds."""
    from .faultproxy import RESET, Status, partial, FaultProxy

    tenant_args = ("--tenant", TENANTS[0])
    with FaultProxy(cluster.url) as proxy:
        env = {**cluster.worker_env(ch_url), "KCW_THANOS_URL": proxy.url, "KCW_THANOS_RETRIES": "3",
               "KCW_THANOS_TIMEOUT_SECONDS": "5"}
        assert run_worker("migrate", env=env).returncode == 0
        proxy.default = partial(["store eu-1 did not answer"])
        failed = run_worker("backfill", *tenant_args, "--start", iso(START), "--end", iso(END), env=env)
        assert failed.returncode == 1 and "tenant-hours failed" in failed.stderr
        assert proxy.count == 3 + HOURS * 3  # the census asked ahead, then every hour alone, each tried 3 times
        with ch_client(ch_url) as client:
            assert client.query("SELECT count() FROM k8s_expenses_current").result_rows == [(0,)]
            statuses = client.query("SELECT argMax(status, recorded_at) AS s, any(error) FROM k8s_expense_runs "
                                    "WHERE status != 'running' GROUP BY run_id").result_rows
        assert len(statuses) == HOURS and all(s == "failed" and "partial response" in e for s, e in statuses)

        proxy.default = "pass"
        proxy.script(Status(503, {"status": "error", "errorType": "unavailable", "error": "overloaded"}),
                     Status(429, "slow down", {"Retry-After": "1"}), RESET)
        # three faults in a row on the first request: 4 attempts let it through
        ok = run_worker("backfill", *tenant_args, "--start", iso(START), "--end", iso(END),
                        env={**env, "KCW_THANOS_RETRIES": "4"})
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert proxy.pending == 0
    truth = [r for r in cluster.truth if r["cloud_account_id"] == TENANTS[0]]
    assert_matches_truth(ch_url, truth, [r for r in truth_nodes(cluster) if r["cloud_account_id"] == TENANTS[0]])
