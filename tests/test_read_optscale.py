"""``read/optscale.py`` (``export-optscale``): the daily costs of ``k8s_expenses_daily`` in OptScale's own
``expenses`` table (its exact DDL, in chDB), read back with OptScale's clean-expenses query after a backfill, a
rerun that changes costs and a rerun in which a pod is gone; and the corrections themselves on hand-made cases."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from kubecost_worker.read import optscale
from kubecost_worker.hours import whole_days
from kubecost_worker.read.optscale import Correction, corrections

from .helpers import Cluster, ch_client, run_worker

TABLE = "optscale.expenses"
DAY = 86400
# OptScale's REST API's clean expenses (rest_api_server/controllers/expense.py), per resource and day
CLEAN_EXPENSES = ("SELECT cloud_account_id, resource_id, toUInt32(date), SUM(cost * sign) FROM {table} "
                  "WHERE cloud_account_id IN {tenants:Array(String)} AND date >= toDateTime({start:UInt32}) "
                  "AND date <= toDateTime({end:UInt32}) "
                  "GROUP BY cloud_account_id, resource_id, date HAVING SUM(sign) > 0")


# -- the corrections, by hand ----------------------------------------------------------------------------------

def test_a_new_resource_day_is_one_plus_row():
    assert corrections({}, {("r", 0): 1.5}) == [Correction("r", 0, 1.5, 1)]


def test_an_unchanged_cost_writes_nothing():
    assert corrections({("r", 0): {1.5: 1}}, {("r", 0): 1.5}) == []


def test_a_changed_cost_cancels_the_old_row_and_adds_the_new():
    assert corrections({("r", 0): {1.5: 1}}, {("r", 0): 2.25}) == [Correction("r", 0, 1.5, -1),
                                                                    Correction("r", 0, 2.25, 1)]


def test_a_cost_changed_back_counts_rows_a_merge_has_not_collapsed():
    # rows 1.5 +1, 1.5 -1, 2.25 +1 not yet merged: 1.5 sums to 0 and is not live
    assert corrections({("r", 0): {1.5: 0, 2.25: 1}}, {("r", 0): 1.5}) == [Correction("r", 0, 2.25, -1),
                                                                            Correction("r", 0, 1.5, 1)]


def test_a_vanished_resource_day_is_one_minus_row():
    assert corrections({("gone", DAY): {0.5: 1}, ("kept", DAY): {1.0: 1}}, {("kept", DAY): 1.0}) == [
        Correction("gone", DAY, 0.5, -1)]


def test_rows_written_twice_or_cancelled_twice_are_repaired():
    # two exports racing wrote the row twice; a stray -1 with no row: both brought back to the wanted state
    assert corrections({("r", 0): {1.5: 2}, ("s", 0): {0.25: -1}}, {("r", 0): 1.5}) == [
        Correction("r", 0, 1.5, -1), Correction("r", 0, 1.5, -1), Correction("r", 0, 1.5, 1),
        Correction("s", 0, 0.25, 1)]


def test_costs_are_compared_bit_for_bit():
    close = 0.1 + 0.2  # 0.30000000000000004: a real change of the stored double, written
    assert corrections({("r", 0): {0.3: 1}}, {("r", 0): close}) == [Correction("r", 0, 0.3, -1),
                                                                     Correction("r", 0, close, 1)]


def test_the_window_is_widened_to_whole_utc_days():
    assert whole_days(DAY + 5, 2 * DAY + 1) == (DAY, 3 * DAY)
    assert whole_days(DAY, 2 * DAY) == (DAY, 2 * DAY)


# -- in chDB, after the pipeline ------------------------------------------------------------------------------

TENANTS = ["optscale-a", "optscale-b"]
HOURS = 30
# the hours cross a UTC midnight: two days, each partly
START = int(time.time()) // DAY * DAY - DAY - 20 * 3600
END = START + HOURS * 3600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The simulated cluster (Prometheus kept running, for reruns), backfilled into chDB, OptScale's table
    created and the resources mapped; the store closed for the tests to open."""
    from kubecost_worker.pipeline import run_hours
    from kubecost_worker.hours import hour_starts
    from kubecost_worker.store import migrations

    root = tmp_path_factory.mktemp("optscale")
    cluster = Cluster(root, TENANTS, START, HOURS, pods=12, seed=4)
    cluster.store = f"chdb://{root / 'ch'}"
    try:
        with ch_client(cluster.store) as client:
            migrations.migrate(client)
            assert run_hours(pipeline(cluster, client), TENANTS, hour_starts(START, END)).failed == 0
            optscale.create_table(client, TABLE)
            map_resources(client)
        yield cluster
    finally:
        cluster.prometheus.stop()


def pipeline(cluster, client, **settings):
    from kubecost_worker.config import load_config
    from kubecost_worker.store.clickhouse import ClickHouseSink
    from kubecost_worker.wiring import build_pipeline

    config = load_config({"KCW_THANOS_URL": cluster.url, "KCW_CLICKHOUSE_URL": cluster.store, **settings})
    return build_pipeline(config, ClickHouseSink(client, url=cluster.store))


def daily(client, tenant: str, mapped: bool = True) -> dict[tuple[str, int], float]:
    """The view's cost per resource-day of the resources mapped (or not) to an OptScale id, keyed as the export
    maps them (OptScale's id: 'os:' + ours)."""
    return {("os:" + rid, int(day)): cost for rid, day, cost in client.query(
        "SELECT cloud_resource_id, toUInt32(toDateTime(day)), cost FROM k8s_expenses_daily "
        f"WHERE cloud_account_id = {{t:String}} AND cloud_resource_id {'' if mapped else 'NOT'} IN "
        "(SELECT cloud_resource_id FROM optscale_resource_ids WHERE cloud_account_id = {t:String})",
        parameters={"t": tenant}).result_rows}


def clean_expenses(client, tenant: str, table: str = TABLE) -> dict[tuple[str, int], float]:
    return {(rid, int(date)): cost for _, rid, date, cost in client.query(
        CLEAN_EXPENSES.replace("{table}", table),
        parameters={"tenants": [tenant], "start": START - DAY, "end": END + DAY}).result_rows}


def map_resources(client) -> None:
    # every resource of both tenants, except the idle rows of the second (exported once mapped, not before)
    client.command("INSERT INTO optscale_resource_ids (cloud_account_id, cloud_resource_id, resource_id) "
                   "SELECT DISTINCT cloud_account_id, cloud_resource_id, concat('os:', cloud_resource_id) "
                   "FROM k8s_expenses_daily WHERE cloud_resource_id NOT IN "
                   "(SELECT cloud_resource_id FROM optscale_resource_ids) AND "
                   f"NOT (cloud_account_id = '{TENANTS[1]}' AND resource_kind = 'idle')")


def export(client) -> list[optscale.Exported]:
    return [optscale.export_tenant(client, client, TABLE, t, START, END) for t in TENANTS]


@pytest.mark.slow
@pytest.mark.needs_chdb
@pytest.mark.needs_prometheus
def test_optscale_reads_exactly_the_daily_costs_through_backfill_and_reruns(cluster, monkeypatch):
    from kubecost_worker.source import extract

    tenant = TENANTS[0]
    repriced_settings = {"KCW_DEFAULT_CPU_PRICE": "0.05", "KCW_DEFAULT_RAM_PRICE": "0.01"}
    with ch_client(cluster.store) as client:
        # the backfill: a +1 row per mapped resource-day, nothing else; OptScale reads the view's costs exactly
        first = export(client)
        wanted = daily(client, tenant)
        assert {(d.added, d.cancelled) for d in first} == {(d.resources, 0) for d in first}
        assert first[0].resources == len(wanted) > 100 and first[0].days == 2 and first[0].unmapped == 0
        assert first[1].unmapped == len(daily(client, TENANTS[1], mapped=False)) > 0
        assert clean_expenses(client, tenant) == wanted
        assert {d for _, d in wanted} == {START - START % DAY, START - START % DAY + DAY}
        assert [(d.added, d.cancelled) for d in export(client)] == [(0, 0), (0, 0)]  # again: nothing

        # a rerun with default prices: the unpriced node's pods cost more that day, and only theirs change; the
        # node now has an idle row, a resource without an OptScale id yet
        hour = START + 22 * 3600
        repriced_run = pipeline(cluster, client, **repriced_settings).run_hour(tenant, hour, "rerun", force=True)
        assert repriced_run.record.rows_written
        repriced_costs = daily(client, tenant)
        changed = {k for k in wanted if repriced_costs[k] != wanted[k]}
        assert changed and repriced_costs.keys() == wanted.keys()
        repriced = export(client)[0]
        assert (repriced.added, repriced.cancelled) == (len(changed), len(changed))
        assert repriced.unmapped == len(daily(client, tenant, mapped=False)) == 1
        assert_reads(client, tenant, repriced_costs)

        # a rerun in which a pod seen in that hour only is gone: its resource-day is one -1 row, nothing added
        # for it (its node's idle grows: a changed cost)
        (uid, seen), = client.query(
            "SELECT cloud_resource_id, toUInt32(first_seen) FROM k8s_expenses_daily WHERE cloud_account_id = "
            "{t:String} AND resource_kind = 'pod' AND first_seen = last_seen AND toUInt32(first_seen) != {h:UInt32} "
            "ORDER BY cost DESC LIMIT 1", parameters={"t": tenant, "h": hour}).result_rows
        pod, = {p for (p,) in client.query("SELECT DISTINCT pod FROM k8s_expenses WHERE pod_uid = {u:String}",
                                            parameters={"u": uid}).result_rows}
        fetch = extract.fetch_hour
        monkeypatch.setattr(extract, "fetch_hour", lambda *a, **k: without_pod(fetch(*a, **k), pod))
        assert pipeline(cluster, client).run_hour(tenant, seen, "rerun", force=True).record.rows_written
        monkeypatch.undo()
        after = daily(client, tenant)
        gone = repriced_costs.keys() - after.keys()
        changed = {k for k in after if after[k] != repriced_costs[k]}
        assert gone == {("os:" + uid, seen - seen % DAY)} and after.keys() <= repriced_costs.keys()
        vanished = export(client)[0]
        assert (vanished.added, vanished.cancelled) == (len(changed), len(changed) + 1)
        assert_reads(client, tenant, after)
        assert [(d.added, d.cancelled) for d in export(client)] == [(0, 0), (0, 0)]

        # the second tenant's idle rows, once mapped, are written by the next export
        client.command("INSERT INTO optscale_resource_ids (cloud_account_id, cloud_resource_id, resource_id) "
                       "SELECT DISTINCT cloud_account_id, cloud_resource_id, concat('os:', cloud_resource_id) "
                       "FROM k8s_expenses_daily WHERE cloud_account_id = {t:String} AND resource_kind = 'idle'",
                       parameters={"t": TENANTS[1]})
        late = export(client)[1]
        assert late.added == first[1].unmapped and late.cancelled == 0 and late.unmapped == 0
        assert_reads(client, TENANTS[1], daily(client, TENANTS[1]))


class CutShort:
    """A target whose insert stops half-way (the connection lost after the first of its rows were stored): a
    fault injected on a real chDB client."""

    def __init__(self, client):
        self.client = client

    def query(self, *args, **kwargs):
        return self.client.query(*args, **kwargs)

    def command(self, *args, **kwargs):
        return self.client.command(*args, **kwargs)

    def insert(self, table, rows, column_names, **kwargs):
        if "lease" in table:
            return self.client.insert(table, rows, column_names=column_names, **kwargs)
        self.client.insert(table, rows[:len(rows) // 2], column_names=column_names)
        raise ConnectionResetError("connection reset by peer")


@pytest.mark.slow
@pytest.mark.needs_chdb
@pytest.mark.needs_prometheus
def test_an_export_cut_short_is_completed_by_the_next(cluster):
    table = "optscale.cut_short"
    with ch_client(cluster.store) as client:
        optscale.create_table(client, table)
        with pytest.raises(ConnectionResetError):
            optscale.export_tenant(client, CutShort(client), table, TENANTS[0], START, END)
        (written,), = client.query(f"SELECT count() FROM {table}").result_rows
        wanted = daily(client, TENANTS[0])
        assert 0 < written < len(wanted)
        done = optscale.export_tenant(client, client, table, TENANTS[0], START, END)
        assert (done.added, done.cancelled) == (len(wanted) - written, 0)  # the rest, nothing twice
        assert clean_expenses(client, TENANTS[0], table) == wanted


class BeforeEachWrite(CutShort):
    """A target on which ``action(client)`` runs before each insert into the expenses table, between the export's
    read and its write (fault injection on a real chDB client)."""

    def __init__(self, client, action):
        super().__init__(client)
        self.action = action

    def insert(self, table, rows, column_names, **kwargs):
        if "lease" not in table:
            self.action(self.client)
        return self.client.insert(table, rows, column_names=column_names, **kwargs)


@pytest.mark.slow
@pytest.mark.needs_chdb
@pytest.mark.needs_prometheus
def test_exports_at_once_write_each_correction_once(cluster):
    # four exports in threads with their own clients (chDB opens one path per process), each slow between its
    # read and its write: without a lease all four read an empty table and write every row four times
    table = "optscale.racing"
    errors, done = [], []

    def one_export():
        try:
            with ch_client(cluster.store) as client:
                slow = BeforeEachWrite(client, lambda _: time.sleep(0.3))
                done.append(optscale.export_tenant(client, slow, table, TENANTS[0], START, END))
        except Exception as exc:  # reported below
            errors.append(exc)

    with ch_client(cluster.store) as client:
        optscale.create_table(client, table)
        wanted = daily(client, TENANTS[0])
        threads = [threading.Thread(target=one_export) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted((d.added, d.cancelled) for d in done) == [(0, 0), (0, 0), (0, 0), (len(wanted), 0)]
        assert_reads(client, TENANTS[0], wanted, table)


@pytest.mark.slow
@pytest.mark.needs_chdb
@pytest.mark.needs_prometheus
def test_a_merge_between_read_and_write_does_not_leave_costs_wrong(cluster):
    # every row written twice (as two exports racing before the lease did): a merge keeps one of each pair, so
    # the export's cancellations, computed before the merge, would cancel the row the merge kept
    table = "optscale.merged"
    with ch_client(cluster.store) as client:
        optscale.create_table(client, table)
        wanted = daily(client, TENANTS[0])
        rows = [[TENANTS[0], rid, day, cost, 1] for (rid, day), cost in wanted.items()]
        for _ in range(2):
            client.insert(table, rows, column_names=optscale.COLUMNS)
        merge = BeforeEachWrite(client, lambda c: c.command(f"OPTIMIZE TABLE {table} FINAL"))
        optscale.export_tenant(client, merge, table, TENANTS[0], START, END)
        assert_reads(client, TENANTS[0], wanted, table)
        again = optscale.export_tenant(client, client, table, TENANTS[0], START, END)
        assert (again.added, again.cancelled) == (0, 0)


def assert_reads(client, tenant: str, wanted: dict, table: str = TABLE) -> None:
    """OptScale's query returns the view's costs: to the last bits while the old rows are not merged away (it
    sums cost * sign), exactly once they are."""
    read = clean_expenses(client, tenant, table)
    assert read.keys() == wanted.keys()
    assert all(abs(read[k] - wanted[k]) <= 1e-12 * max(1.0, abs(wanted[k])) for k in wanted)
    client.command(f"OPTIMIZE TABLE {table} FINAL")
    assert clean_expenses(client, tenant, table) == wanted


def without_pod(hour_input, pod: str):
    return dataclasses.replace(hour_input, series={
        metric: [s for s in group if s.labels.get("pod") != pod] for metric, group in hour_input.series.items()})


@pytest.mark.slow
@pytest.mark.needs_chdb
@pytest.mark.needs_prometheus
def test_the_cli_creates_the_table_and_a_second_run_writes_nothing(cluster):
    # its own table: what the test above wrote to OptScale's is not this test's
    env = {"KCW_CLICKHOUSE_URL": cluster.store, "KCW_OPTSCALE_TABLE": "optscale.cli_expenses"}
    args = ("export-optscale", "--tenant", TENANTS[0], "--start", str(START), "--end", str(END))
    first = run_worker(*args, "--create-table", env=env)
    assert first.returncode == 0, first.stderr
    assert f"export-optscale: {TENANTS[0]}: 2 days," in first.stdout and " 0 rows -1" in first.stdout
    second = run_worker(*args, env=env)
    assert second.returncode == 0 and "0 rows +1, 0 rows -1" in second.stdout, second.stdout
    down = run_worker(*args, env={**env, "KCW_OPTSCALE_CLICKHOUSE_URL": "http://default:@127.0.0.1:1/default"})
    assert down.returncode == 1, down.stderr
    assert down.stderr.strip().splitlines()[-1].startswith("kubecost-worker: ClickHouse unavailable while connecting")
    hostile = run_worker("export-optscale", "--tenant", "a' OR 1=1 --", env=env)
    assert hostile.returncode == 2 and "not a safe tenant id" in hostile.stderr
    # the hourly run of cronjob mode exports yesterday and today after its work: yesterday's rows are there
    # already (the export above), so only what changed would be written
    once = run_worker("once", "--export-optscale", env={**env, "KCW_THANOS_URL": cluster.url,
                                                         "KCW_TENANTS": TENANTS[0], "KCW_MAX_CATCHUP_HOURS": "1",
                                                         "KCW_RECHECK_HOURS": "0"})
    assert once.returncode == 0, once.stderr
    assert f"export-optscale: {TENANTS[0]}: 2 days," in once.stdout and "0 rows -1" in once.stdout
