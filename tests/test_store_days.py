"""The daily tier on chDB (``store/days.py``, ``cleanup.expire_hours``): a day's daily rows are the sums of its
current hourly rows (1e-9) after reruns, late hours and cleanup; builds never double a day; hours expire only once
their day is sealed; the reads across tiers (the allocation API, exports, OptScale's daily view) answer the same
before and after the hours expire; retention TTLs; ``status`` a line per tenant."""

from __future__ import annotations

import json
import math
import random
import time

import pytest

from kubecost_worker.errors import TransientError
from kubecost_worker.hours import DAY, HOUR, day_of
from kubecost_worker.jobs.status import summarize
from kubecost_worker.model.rows import IDLE, MANAGEMENT, PRICE_NODE, ExpenseRow, HourResult, NodeRow
from kubecost_worker.read import allocation
from kubecost_worker.read.exports import export
from kubecost_worker.store import cleanup, days, migrations, schema
from kubecost_worker.store.clickhouse import ClickHouseSink

from .helpers import ch_client, iso, run_worker, same_answer
from .test_store import H0, commit, sink  # noqa: F401  (sink: the fixture)

pytestmark = [pytest.mark.needs_chdb]
TENANTS = ("t-1", "t-2")
IDENTITY = days.IDENTITY[days.EXPENSES_BY_DAY]
REL = 1e-9
TODAY = day_of(time.time())  # the simulated days are over


def hour_of(tenant: str, hour: int, seed: int = 0, pods: int = 5) -> HourResult:
    """An hour of a small cluster: pods of three namespaces on two nodes, some with a sidecar, usage unknown in some
    hours, a label that changes at noon, a pod's own row with network, idle rows, management, the nodes."""
    rng = random.Random(f"{tenant}/{hour}/{seed}")
    rows: list[ExpenseRow] = []
    for i in range(pods):
        namespace = ("web", "data", "kube-system")[i % 3]
        labels = {"team": namespace, "shift": "pm" if hour % DAY >= 12 * HOUR else "am"}
        common = dict(cloud_account_id=tenant, cluster_id="c1", hour=hour, namespace=namespace,
                      workload_kind="deployment", workload_name=f"svc-{i % 3}", pod=f"pod-{i}", node=f"n{i % 2}",
                      labels=labels, pod_uid=f"uid-{tenant}-{i}", service=f"svc-{i % 3}")
        for container in ("app", "sidecar")[:1 + i % 2]:
            known = (hour // HOUR + i) % 4 != 0
            usage = rng.uniform(0.01, 1.0)
            rows.append(ExpenseRow(**common, container=container, running_minutes=60.0,
                                   cpu_core_hours=rng.uniform(0.1, 2), ram_byte_hours=rng.uniform(1e8, 4e9),
                                   cpu_cost=rng.uniform(1e-3, 0.1), ram_cost=rng.uniform(1e-4, 0.05),
                                   cpu_request_core_hours=0.5, ram_request_byte_hours=1e9,
                                   cpu_usage_core_hours=usage if known else None,
                                   ram_usage_byte_hours=usage * 2e9 if known else None,
                                   cpu_usage_max_cores=usage * 1.5 if known else None,
                                   ram_usage_max_bytes=usage * 3e9 if known else None, price_source=PRICE_NODE))
        if i == 0:
            rows.append(ExpenseRow(**common, network_zone_cost=rng.uniform(0, 1e-3), network_zone_bytes=1e6,
                                   network_cost=0.0, pv_byte_hours=2e10, pv_cost=rng.uniform(0, 1e-3)))
            rows[-1].network_cost = rows[-1].network_zone_cost
    nodes = []
    for n in ("n0", "n1"):
        rows.append(ExpenseRow(tenant, "c1", hour, IDLE, IDLE, IDLE, "", n, running_minutes=60.0,
                               cpu_cost=rng.uniform(0, 0.2), ram_cost=rng.uniform(0, 0.1), price_source=PRICE_NODE))
        nodes.append(NodeRow(tenant, "c1", hour, n, provider_id=f"gce://p/z/{n}", instance_type="n2", region="r",
                             zone="z", arch="amd64", running_minutes=60.0, cpu_cores=8.0, ram_bytes=32e9,
                             cpu_price=0.03, ram_price=0.004, price_source=PRICE_NODE, cpu_cost=rng.uniform(0.2, 0.3),
                             ram_cost=rng.uniform(0.1, 0.2), allocated_cost=0.2, idle_cost=0.1))
    rows.append(ExpenseRow(tenant, "c1", hour, MANAGEMENT, MANAGEMENT, MANAGEMENT, "", "", management_cost=0.1))
    return HourResult(rows, [], samples_seen=1, unpriced_nodes=[], nodes=nodes)


def write(sink, tenant: str, hours, seed: int = 0) -> None:
    for hour in hours:
        commit(sink, hour_of(tenant, hour, seed))


def hours_of_day(day: int, count: int = 24) -> list[int]:
    return [day + k * HOUR for k in range(count)]


def daily_from_hours(sink, tenant: str, day: int) -> dict[tuple, dict]:
    """The day's current hourly rows summed in Python per identity: what its daily rows must hold."""
    names = [c for c, in sink.query("SELECT name FROM system.columns WHERE database = currentDatabase() "
                                     "AND table = 'k8s_expenses_current' ORDER BY position")]
    sums: dict[tuple, dict] = {}
    for row in sink.query("SELECT * FROM k8s_expenses_current WHERE cloud_account_id = {t:String} "
                          "AND toDate(hour) = toDate(toDateTime({d:Int64}, 'UTC'))", {"t": tenant, "d": day}):
        values = dict(zip(names, row))
        key = tuple(json.dumps(values[c], sort_keys=True) for c in IDENTITY)
        into = sums.setdefault(key, {"hours": set(), "values": {}})
        into["hours"].add(values["hour"])
        for name, value in values.items():
            if name not in IDENTITY and isinstance(value, float):
                into["values"].setdefault(name, []).append(value)
    return sums


def assert_day_is_its_hours(sink, tenant: str, day: int) -> None:
    """Every daily row of the day's current build equals the sums (maxima for the usage maxima, None where no hour
    had usage) of its identity's current hourly rows, to 1e-9, and holds their hours; no identity is missing."""
    expected = daily_from_hours(sink, tenant, day)
    names = [c for c, in sink.query("SELECT name FROM system.columns WHERE database = currentDatabase() "
                                     "AND table = 'k8s_expenses_by_day_current' ORDER BY position")]
    stored = {}
    for row in sink.query("SELECT * FROM k8s_expenses_by_day_current WHERE cloud_account_id = {t:String} "
                          "AND day = toDate(toDateTime({d:Int64}, 'UTC'))", {"t": tenant, "d": day}):
        values = dict(zip(names, row))
        stored[tuple(json.dumps(values[c], sort_keys=True) for c in IDENTITY)] = values
    assert stored.keys() == expected.keys() and stored
    for key, want in expected.items():
        got = stored[key]
        assert got["hours"] == len(want["hours"])
        assert (got["first_hour"], got["last_hour"]) == (min(want["hours"]), max(want["hours"]))
        for name, values in want["values"].items():
            if name in ("cpu_usage_max_cores", "ram_usage_max_bytes"):
                assert got[name] == max(values), name
            else:
                assert math.isclose(got[name], math.fsum(values), rel_tol=REL, abs_tol=1e-12), name
        for name in ("cpu_usage_core_hours", "cpu_usage_max_cores"):
            assert (got[name] is None) == (name not in want["values"]), name


def test_a_day_build_is_the_sum_of_its_current_hours_and_of_its_nodes(sink):
    day = H0
    write(sink, "t-1", hours_of_day(day, 6))
    assert days.stale_days(days.day_states(sink.client)) == [("t-1", day)]
    assert days.build_days(sink.client, [("t-1", day)]).built == 1
    assert_day_is_its_hours(sink, "t-1", day)
    (by_day, exact), = sink.query("SELECT sum(total_cost), sum(total_cost_exact) FROM k8s_expenses_by_day_current")
    (hourly,), = sink.query("SELECT sum(total_cost) FROM k8s_expenses_current")
    assert math.isclose(by_day, hourly, rel_tol=REL) and float(exact) == pytest.approx(hourly, rel=REL)
    nodes = sink.query("SELECT node, hours, cpu_core_hours, cpu_cost, idle_cost FROM k8s_nodes_by_day_current "
                       "ORDER BY node")
    hourly_nodes = sink.query("SELECT node, count(), sum(cpu_cores * running_minutes / 60), sum(cpu_cost), "
                              "sum(idle_cost) FROM k8s_nodes_hourly_current GROUP BY node ORDER BY node")
    assert [n[:2] for n in nodes] == [n[:2] for n in hourly_nodes] == [("n0", 6), ("n1", 6)]
    for got, want in zip(nodes, hourly_nodes):
        assert all(math.isclose(a, b, rel_tol=REL) for a, b in zip(got[2:], want[2:]))
    assert days.stale_days(days.day_states(sink.client)) == []


def test_a_rerun_a_late_hour_and_cleanup_keep_the_day_its_hours_sum_without_doubling(sink):
    day = H0
    write(sink, "t-1", hours_of_day(day, 4))
    days.sweep(sink.client, None, TODAY)
    commit(sink, hour_of("t-1", day + HOUR, seed=1))  # a rerun that found other numbers
    commit(sink, hour_of("t-1", day + 9 * HOUR))  # an hour arriving late
    assert days.stale_days(days.day_states(sink.client)) == [("t-1", day)]
    assert days.sweep(sink.client, None, TODAY).built == 1
    assert_day_is_its_hours(sink, "t-1", day)
    builds = "SELECT uniqExact(build_id) FROM {table}"
    for table in days.BUILD_TABLES:  # the superseded build is underneath, invisible
        assert sink.query(builds.format(table=table)) == [(2,)], table
    collected = sink.collect_garbage()
    assert (collected.runs, collected.builds) == (1, 1)
    for table in days.BUILD_TABLES:
        assert sink.query(builds.format(table=table)) == [(1,)], table
    assert_day_is_its_hours(sink, "t-1", day)
    assert sink.collect_garbage().builds == 0  # recorded 'collected': not looked at again
    # built again and again (rollup-days without --resume), the day is its hours once
    for _ in range(2):
        days.build_days(sink.client, [("t-1", day)])
    assert_day_is_its_hours(sink, "t-1", day)
    assert days.build_days(sink.client, [("t-1", day)], resume=True).up_to_date == 1


def test_a_build_reads_the_runs_it_sums_first_so_a_commit_racing_it_leaves_it_stale(sink, monkeypatch):
    write(sink, "t-1", hours_of_day(H0, 2))
    real = days.build_sql

    def racing(table: str, reconciled: bool) -> str:  # an hour commits between the reading of the runs and the rows
        if table == days.EXPENSES_BY_DAY:
            monkeypatch.setattr(days, "build_sql", real)
            commit(sink, hour_of("t-1", H0 + 2 * HOUR))
        return real(table, reconciled)

    monkeypatch.setattr(days, "build_sql", racing)
    days.build_day(sink.client, "t-1", H0)
    assert days.stale_days(days.day_states(sink.client)) == [("t-1", H0)]
    days.sweep(sink.client, None, TODAY)
    assert_day_is_its_hours(sink, "t-1", H0)


def test_the_pipelines_hook_builds_the_days_that_are_over_and_never_raises(sink):
    ended = [commit(sink, hour_of("t-1", H0 + k * HOUR)) for k in range(3)] + [TransientError("too late")]
    days.rebuild_committed(sink.client, ended, now=H0 + 3 * HOUR)  # the day still runs: built once it is over
    assert sink.query("SELECT count() FROM k8s_day_builds") == [(0,)]
    days.rebuild_committed(sink.client, ended, now=H0 + DAY)
    assert_day_is_its_hours(sink, "t-1", H0)
    days.rebuild_committed(None, ended, now=H0 + DAY)  # the store gone: logged, the sweep repairs it


def test_rollup_days_builds_the_history_once_and_resumes(ch_url):
    with ch_client(ch_url) as client:
        migrations.migrate(client)
        sink = ClickHouseSink(client)
        for day in (H0, H0 + DAY):
            write(sink, "t-1", hours_of_day(day, 2))
        write(sink, "t-2", hours_of_day(H0 + DAY, 2))
    env = {"KCW_CLICKHOUSE_URL": ch_url}
    first = run_worker("rollup-days", "--no-progress", env=env)
    assert first.returncode == 0 and first.stdout.startswith("rollup-days: 3 days built, 0 up to date"), first.stderr
    again = run_worker("rollup-days", "--resume", "--tenant", "t-1", "--start", iso(H0 + DAY), env=env)
    assert again.returncode == 0 and again.stdout.startswith("rollup-days: 0 days built, 1 up to date"), again.stderr
    bad = run_worker("rollup-days", "--start", iso(H0 + DAY), "--end", iso(H0), env=env)
    assert bad.returncode == 2 and "--end must be after --start" in bad.stderr
    with ch_client(ch_url) as client:
        sink = ClickHouseSink(client)
        for tenant, day in (("t-1", H0), ("t-1", H0 + DAY), ("t-2", H0 + DAY)):
            assert_day_is_its_hours(sink, tenant, day)
        status = summarize(sink.ledger_summary(), days.day_states(client))
    assert status.splitlines()[-1].endswith("daily tier: 3 days, 0 sealed, 0 to rebuild")


def test_expiring_hours_never_loses_a_day(sink):
    """Days before the cutoff: one built and current, one built then rerun (stale), one never built, one whose build
    must wait (the limit of builds): the first three are sealed with their current hours' sums before any of their
    hours goes; the fourth keeps its hours; the kept days are untouched."""
    day0, day1, day2, day3, kept = (H0 + k * DAY for k in range(5))
    for day in (day0, day1, day2, day3, kept):
        write(sink, "t-1", hours_of_day(day, 3))
    days.build_days(sink.client, [("t-1", day0), ("t-1", day1)])
    commit(sink, hour_of("t-1", day1, seed=7))
    before = {day: daily_from_hours(sink, "t-1", day) for day in (day0, day1, day2, day3)}
    hourly_totals = dict(sink.query("SELECT toUnixTimestamp(toDateTime(toDate(hour), 'UTC')), sum(total_cost) "
                                    "FROM k8s_expenses_current GROUP BY 1"))
    expired = cleanup.expire_hours(sink.client, None, day3, limit=1)  # day0 current, day1 rebuilt, day2 waits
    assert (expired.days, expired.waiting, expired.builds) == (2, 1, 1)
    expired = cleanup.expire_hours(sink.client, None, kept)
    assert (expired.days, expired.waiting) == (2, 0)
    sealed = sink.query("SELECT toUnixTimestamp(toDateTime(day, 'UTC')), total_cost FROM k8s_day_current_builds "
                        "WHERE sealed ORDER BY day")
    assert [d for d, _ in sealed] == [day0, day1, day2, day3]
    assert all(math.isclose(cost, hourly_totals[d], rel_tol=REL) for d, cost in sealed)
    for day in (day0, day1, day2, day3):
        rows = sink.query("SELECT count() FROM k8s_expenses_by_day_current WHERE day = toDate(toDateTime("
                          "{d:Int64}, 'UTC'))", {"d": day})
        assert rows == [(len(before[day]),)]
    for table in cleanup.EXPIRED_TABLES:
        assert sink.query(f"SELECT DISTINCT toUnixTimestamp(toDateTime(toDate(hour), 'UTC')) FROM {table}") in (
            [(kept,)], []), table
    assert sink.query("SELECT count() FROM k8s_expenses_current WHERE toDate(hour) = toDate(toDateTime("
                      "{d:Int64}, 'UTC'))", {"d": kept}) == [(len(hour_of("t-1", kept).rows) * 3,)]
    assert cleanup.expire_hours(sink.client, None, kept).days == 0  # nothing left to expire


def test_a_sealed_day_is_final(sink):
    write(sink, "t-1", hours_of_day(H0, 3))
    cleanup.expire_hours(sink.client, None, H0 + DAY)
    (build, total), = sink.query("SELECT build_id, total_cost FROM k8s_day_current_builds")
    commit(sink, hour_of("t-1", H0 + HOUR, seed=3))  # an expired hour written again (a backfill past retention)
    assert days.build_day(sink.client, "t-1", H0) is None
    assert days.sweep(sink.client, None, TODAY).built == 0
    assert sink.query("SELECT build_id, total_cost FROM k8s_day_current_builds") == [(build, total)]
    (cost,), = sink.query("SELECT sum(cost) FROM k8s_expenses_daily")
    assert math.isclose(cost, total, rel_tol=REL)  # the hour written again is left out of the sealed day
    assert cleanup.expire_hours(sink.client, None, H0 + DAY).days == 1
    assert sink.query("SELECT count() FROM k8s_expenses") == [(0,)]


READS = {  # the allocation API's requests a month of OptScale or finance asks at day steps and over a window
    "namespace by day": {"aggregate": "namespace", "step": "day"},
    "pod by day": {"aggregate": "namespace,pod,container", "step": "day"},
    "controller and label by week": {"aggregate": "controller,label:team", "step": "week"},
    "shared idle by node by month": {"aggregate": "namespace", "step": "month", "shareIdle": "true",
                                     "idleByNode": "true"},
    "shared namespaces over the window": {"aggregate": "service", "shareNamespaces": "kube-system",
                                          "shareTenancyCosts": "true", "shareSplit": "even"},
    "filtered by label": {"aggregate": "cluster", "step": "day", "filter": 'label[shift]:"pm"'},
}


def reads(sink, tmp_path, start: int, end: int) -> dict[str, list]:
    """Every read that must not change when the hours expire: the allocation API, aggregated exports, OptScale's
    daily costs."""
    out = {}
    for name, params in READS.items():
        out[name] = list(allocation.allocation(sink, allocation.parse_request(params), "t-1", start, end))
    for step in ("day", "month", "window"):
        path = tmp_path / f"{step}.jsonl"
        export(sink.client, path, "jsonl", "t-1", start, end, "namespace,label:team", step)
        out[f"export {step}"] = [json.loads(line) for line in path.read_text().splitlines()]
    out["optscale"] = sink.query("SELECT * EXCEPT (first_seen, last_seen) FROM k8s_expenses_daily "
                                 "WHERE cloud_account_id = 't-1' ORDER BY ALL")
    return out


def test_the_reads_answer_the_same_before_and_after_the_hours_expire(sink, tmp_path):
    """Days 1-3 of two tenants' 4 days expire: over whole days every read equals its answer from the hours (1e-9;
    OptScale's costs bit for bit); a window starting mid-day answers its whole days the same and leaves out the day
    it holds part of (its hours are gone, and a daily row cannot be cut); the hour step answers the hours kept."""
    for tenant in TENANTS:
        for day in range(4):
            write(sink, tenant, hours_of_day(H0 + day * DAY))
    days.sweep(sink.client, None, TODAY)
    whole, partial = (H0 + DAY, H0 + 4 * DAY), (H0 + DAY + 6 * HOUR, H0 + 4 * DAY)
    before_whole, before_partial = reads(sink, tmp_path, *whole), reads(sink, tmp_path, *partial)
    assert all(before_whole.values())
    cleanup.expire_hours(sink.client, None, H0 + 3 * DAY)
    (first,), = sink.query("SELECT toUnixTimestamp(min(hour)) FROM k8s_expenses")
    assert first == H0 + 3 * DAY
    after_whole, after_partial = reads(sink, tmp_path, *whole), reads(sink, tmp_path, *partial)
    for name in before_whole:
        assert same_answer(after_whole[name], before_whole[name]), name
    assert after_whole["optscale"] == before_whole["optscale"]  # bit for bit: an unchanged day exports nothing
    for name in ("namespace by day", "pod by day", "filtered by label"):
        assert same_answer(after_partial[name], [r for r in before_partial[name] if r["timestamp"] != H0 + DAY]), name
        assert {r["timestamp"] for r in after_partial[name]} == {H0 + 2 * DAY, H0 + 3 * DAY}, name
    hourly = allocation.parse_request({"aggregate": "namespace", "step": "hour"})
    assert {r["timestamp"] for r in allocation.allocation(sink, hourly, "t-1", *whole)} == set(
        hours_of_day(H0 + 3 * DAY))


def test_retention_ttls_the_daily_tables_and_leaves_the_hourly_to_the_expiry(sink):
    for table in migrations.RETAINED_TABLES:  # a TTL an older version set
        sink.client.command(f"ALTER TABLE {table} MODIFY TTL hour + toIntervalDay(90)")
    assert sorted(migrations.apply_retention(sink.client, 400)) == sorted(
        [*migrations.RETAINED_TABLES, *migrations.DAILY_TABLES])
    assert migrations.apply_retention(sink.client, 400) == []  # twice: nothing changes
    ttls = dict(sink.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"))
    assert all(" TTL " not in ttls[t] for t in migrations.RETAINED_TABLES)
    assert all("TTL day + toIntervalDay(400)" in ttls[t] for t in migrations.DAILY_TABLES)
    assert sorted(migrations.apply_retention(sink.client, 0)) == sorted(migrations.DAILY_TABLES)
    ttls = dict(sink.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"))
    assert all(" TTL " not in ttls[t] for t in (*migrations.RETAINED_TABLES, *migrations.DAILY_TABLES))
    assert schema.daily_tables() == migrations.DAILY_TABLES


def test_status_is_a_line_per_tenant_with_ranges_and_a_total(sink):
    hours = hours_of_day(H0, 24) + hours_of_day(H0 + DAY, 10)
    for hour in hours:
        result = hour_of("t-1", hour)
        result.unpriced_nodes = ["n0"] if hour >= H0 + DAY else []
        commit(sink, result)
    write(sink, "t-2", [H0, H0 + 2 * HOUR])
    cleanup.expire_hours(sink.client, None, H0 + DAY)
    days.sweep(sink.client, None, TODAY)
    text = summarize(sink.ledger_summary(), days.day_states(sink.client))
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0] == (
        f"t-1: last complete hour 2026-01-02T09:00:00Z; 10 h done; unpriced 10 h [2026-01-02T00:00:00Z, "
        f"2026-01-02T10:00:00Z) (1 node without price series: n0); daily tier: 2 days, 1 sealed, 0 to rebuild")
    assert lines[1] == "t-2: no hours kept; daily tier: 1 day, 1 sealed, 0 to rebuild"
    assert lines[2] == ("total: 2 tenants, 10 h done, 0 missing, 0 failing, 0 refused, 0 pending, 10 unpriced; "
                        "daily tier: 3 days, 2 sealed, 0 to rebuild")


@pytest.mark.needs_prometheus
def test_a_backfill_builds_each_of_its_days_once(tmp_path, ch_url):
    """A backfill's day is built once no hour of it is left to run, not after each of its batches: 26 hours from a
    midnight of two tenants in rounds, 4 to a batch (each batch fetched while the one before it runs, the other
    tenant's from the second round on), build each tenant's two days once, each summing its hours."""
    from kubecost_worker import wiring
    from kubecost_worker.config import load_config
    from kubecost_worker.hours import hour_starts
    from kubecost_worker.pipeline import run_hours

    from .helpers import Cluster

    first = int(time.time()) // DAY * DAY - 3 * DAY
    tenants = ["t-b", "t-c"]
    cluster = Cluster(tmp_path, tenants, first, 26, pods=4, seed=3, step=300)
    try:
        config = load_config({**cluster.worker_env(ch_url), "KCW_BATCH_HOURS": "4", "KCW_STEP_SECONDS": "300"})
        sink = wiring.open_sink(config)
        wiring.apply_schema(sink, config)
        done = run_hours(wiring.build_pipeline(config, sink), tenants, hour_starts(first, first + 26 * HOUR))
        assert (done.done, done.failed) == (2 * 26, 0)
        builds = sink.query("SELECT cloud_account_id, toUnixTimestamp(toDateTime(day, 'UTC')), count() "
                            "FROM k8s_day_builds WHERE status = 'built' GROUP BY ALL ORDER BY ALL")
        assert builds == [(t, day, 1) for t in tenants for day in (first, first + DAY)]
        states = days.day_states(sink.client)
        assert [(key, s.hours, s.is_current) for key, s in sorted(states.items())] == [
            ((t, day), hours, True) for t in tenants for day, hours in ((first, 24), (first + DAY, 2))]
        sink.close()
    finally:
        cluster.prometheus.stop()
