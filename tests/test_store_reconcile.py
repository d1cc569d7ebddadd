"""Reconciliation with the cloud bill end to end (``store/reconcile.py``, ``k8s_expenses_reconciled_current``): the
simulator's EKS clusters through a real Prometheus and the pipeline into chDB, their FOCUS bill (``devtools/bill.py``)
loaded, the days reconciled. Every node-hour's reconciled rows add up to its bill to 1e-9, unbilled nodes' rows are
unchanged, idle scales with its node, volumes follow their bill, namespaces follow their rows, the bill's lines of no
node are reported; a restated bill re-reconciles exactly the day it changed, a rerun hour its day, and nothing is
counted twice. The matching rule per provider, in chDB."""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import defaultdict
from decimal import Decimal

import pytest

from kubecost_worker.config import load_config
from kubecost_worker.devtools.bill import COLUMNS, as_eks, write_focus_bill
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks
from kubecost_worker.devtools.simulation import simulate
from kubecost_worker.hours import hour_starts
from kubecost_worker.pipeline import run_hours
from kubecost_worker.read import allocation, exports, optscale
from kubecost_worker.store import cleanup, days, migrations, schema
from kubecost_worker.store.bill import load_bill, source_of
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.jobs.status import summarize
from kubecost_worker.store.reconcile import (BillSettings, index_bill, match_key, reconcile_days, reconcile_due,
                                             reconciled_days)
from kubecost_worker.wiring import build_pipeline

from .helpers import ROOT, ch_client
from .test_store_bill import raw_fields

pytestmark = [pytest.mark.needs_chdb]
DAY, HOUR = 86400, 3600
BILL = BillSettings("focus_bill", "EffectiveCost")
REL = 1e-9
end_to_end = pytest.mark.needs_prometheus


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b), 1.0)


PROVIDER_IDS = {
    "aws:///us-west-2a/i-081360af1l266l589": "i-081360af1l266l589",
    "i-081360af1l266l589": "i-081360af1l266l589",
    "arn:aws:ec2:us-west-2:123456789012:instance/i-0abc": "i-0abc",
    "gce://my-project/europe-west1-b/gke-pool-1-abcd": "gke-pool-1-abcd",
    "//compute.googleapis.com/projects/my-project/zones/europe-west1-b/instances/gke-pool-1-abcd": "gke-pool-1-abcd",
    "azure:///subscriptions/S-1/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/"
    "aks-pool-1/virtualMachines/3": "/subscriptions/s-1/resourcegroups/mc_rg/providers/microsoft.compute/"
                                    "virtualmachinescalesets/aks-pool-1",
    "/subscriptions/s-1/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/AKS-POOL-1":
        "/subscriptions/s-1/resourcegroups/mc_rg/providers/microsoft.compute/virtualmachinescalesets/aks-pool-1",
    "azure:///subscriptions/s-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1":
        "/subscriptions/s-1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm-1",
    "ocid1.instance.oc1.phx.anyhqljt": "ocid1.instance.oc1.phx.anyhqljt",
    "oci://ocid1.instance.oc1.phx.anyhqljt": "ocid1.instance.oc1.phx.anyhqljt",
    "aws://us-east-1a/vol-0123": "vol-0123",
    "": "",
}


def test_the_matching_rule_per_provider(ch_url):
    with ch_client(ch_url) as client:
        for provider_id, key in PROVIDER_IDS.items():
            found = client.query(f"SELECT {match_key('{x:Nullable(String)}')}", parameters={"x": provider_id})
            assert found.result_rows == [(key,)], provider_id
        assert client.query(f"SELECT {match_key('NULL')}").result_rows == [("",)]


def first_hour() -> int:
    """Two hours before a midnight and two after, all closed: the reconciliation's two days."""
    midnight = int(time.time()) // DAY * DAY
    return midnight - 2 * HOUR if time.time() > midnight + 3 * HOUR else midnight - DAY - 2 * HOUR


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory):
    """One tenant's EKS cluster (3 nodes, a spot and an unpriced one among them, volumes) over 4 hours across a
    midnight, run through Prometheus and the pipeline, its bill loaded and both days reconciled."""
    root = tmp_path_factory.mktemp("reconcile")
    start = first_hour()
    sim = as_eks(simulate(["t-r"], start, 4, nodes=3, pods=12, seed=11))
    sim.write_openmetrics(root / "metrics.om")
    create_blocks(root / "metrics.om", root / "tsdb")
    prometheus = LocalPrometheus(root / "tsdb")
    config = load_config({"KCW_THANOS_URL": prometheus.start(), "KCW_CLICKHOUSE_URL": f"chdb://{root / 'ch'}"})
    path, truth = write_focus_bill(sim, root / "bill.csv")
    try:
        with ch_client(config.clickhouse_url) as client:
            migrations.migrate(client)
            sink = ClickHouseSink(client, url=config.clickhouse_url)
            pipeline = build_pipeline(config, sink)
            assert run_hours(pipeline, ["t-r"], hour_starts(start, start + 4 * HOUR)).failed == 0
            load_bill(client, [source_of(str(path))])
            days = reconcile_days(client, BILL, [], start, start + 4 * HOUR)
            yield {"client": client, "pipeline": pipeline, "start": start, "truth": truth, "path": path,
                   "days": days, "root": root}
    finally:
        prometheus.stop()


def node_sums(client, view: str = "k8s_expenses_reconciled_current") -> dict:
    rows = client.query(f"SELECT node, toUnixTimestamp(hour), sum(cpu_cost + ram_cost + gpu_cost) FROM {view} "
                        "WHERE node != '' GROUP BY ALL").result_rows
    return {(node, hour): cost for node, hour, cost in rows}


@end_to_end
def test_every_billed_node_hour_adds_up_to_its_bill_and_the_others_stay_at_list(reconciled):
    client, truth = reconciled["client"], reconciled["truth"]
    assert [d.changed for d in reconciled["days"]] == [True, True]
    ids = {name: rid for (_, kind, name), rid in truth["resource_ids"].items() if kind == "node"}
    reconciled_sums, list_sums = node_sums(client), node_sums(client, "k8s_expenses_current")
    assert set(reconciled_sums) == set(list_sums)
    billed = 0
    for (node, hour), cost in reconciled_sums.items():
        if node in ids:
            expected = float(truth["totals"][(ids[node], hour)]["EffectiveCost"])
            assert close(cost, expected), (node, hour, cost, expected)
            billed += 1
        else:
            assert cost == list_sums[(node, hour)], node  # bit for bit
    assert billed == 4 * len(ids) and billed < len(reconciled_sums)
    unbilled = client.query("SELECT count() FROM k8s_expenses_reconciled_current WHERE node IN {n:Array(String)} "
                            "AND (cpu_cost != cpu_cost_list OR ram_cost != ram_cost_list OR gpu_cost != gpu_cost_list "
                            "OR total_cost - pv_cost != total_cost_list - pv_cost_list)",
                            parameters={"n": [n for _, k, n in truth["unbilled"] if k == "node"]})
    assert unbilled.result_rows == [(0,)]  # their pods' volumes follow the volumes' bill


@end_to_end
def test_status_tells_the_days_reconciled_and_how_much_was_matched(reconciled):
    client, days = reconciled["client"], reconciled["days"]
    found = reconciled_days(client, ["t-r"])["t-r"]
    assert found.days == len(days) == 2
    assert close(found.list_cost, sum(d.list_cost for d in days))
    assert close(found.modelled_cost, sum(d.modelled_cost for d in days)) and 0 < found.matched_share < 1
    line = summarize(ClickHouseSink(client).ledger_summary("t-r"), reconciled={"t-r": found}).splitlines()[0]
    assert line.startswith("t-r: ") and line.endswith(
        f"; reconciled with the bill: 2 days, {found.matched_share:.0%} of their list cost matched to bill lines")


@end_to_end
def test_idle_scales_with_its_node_and_namespaces_follow_their_rows(reconciled):
    client = reconciled["client"]
    factors = dict(((node, hour), factor) for node, hour, factor in client.query(
        "SELECT resource, toUnixTimestamp(hour), factor FROM k8s_reconciled_factors_current "
        "WHERE kind = 'node' AND matched").result_rows)
    idle = client.query("SELECT node, toUnixTimestamp(hour), cpu_cost, cpu_cost_list, ram_cost, ram_cost_list "
                        "FROM k8s_expenses_reconciled_current WHERE namespace = '__idle__'").result_rows
    assert any((node, hour) in factors for node, hour, *_ in idle)
    for node, hour, cpu, cpu_list, ram, ram_list in idle:
        factor = factors.get((node, hour), 1.0)
        assert close(cpu, cpu_list * factor) and close(ram, ram_list * factor)
    expected = defaultdict(float)
    volume_parts = pv_by_row(client)
    for namespace, node, hour, key, cpu, ram, gpu, pv, other in client.query(
            "SELECT namespace, node, toUnixTimestamp(hour), (namespace, workload_name, pod, pod_uid, container), "
            "cpu_cost, ram_cost, gpu_cost, pv_cost, network_cost + lb_cost + management_cost "
            "FROM k8s_expenses_current").result_rows:
        factor = factors.get((node, hour), 1.0)
        expected[namespace] += (cpu + ram + gpu) * factor + volume_parts.get((hour, key), pv) + other
    found = dict(client.query("SELECT namespace, sum(total_cost) FROM k8s_expenses_reconciled_current "
                              "GROUP BY namespace").result_rows)
    assert set(found) == set(expected) and all(close(found[n], expected[n]) for n in found)
    counts = client.query("SELECT (SELECT count() FROM k8s_expenses_current), "
                          "(SELECT count() FROM k8s_expenses_reconciled_current)").result_rows
    assert counts[0][0] == counts[0][1]  # no row joined twice


def pv_by_row(client) -> dict:
    """Each row's pv_cost as its volumes' factors make it, computed here from the claims and the factors."""
    factors = dict(((volume, hour), factor) for volume, hour, factor in client.query(
        "SELECT resource, toUnixTimestamp(hour), factor FROM k8s_reconciled_factors_current "
        "WHERE kind = 'volume' AND matched").result_rows)
    parts, matched = defaultdict(float), set()
    for volume, hour, claims in client.query("SELECT volume, toUnixTimestamp(hour), claims "
                                             "FROM k8s_volumes_hourly_current").result_rows:
        for claim in claims:
            namespace, workload, pod, uid, cost = claim.values()  # a named tuple comes as a dict
            key = (hour, (namespace, workload, pod, uid, ""))
            parts[key] += cost * factors.get((volume, hour), 1.0)
            matched |= {key} if (volume, hour) in factors else set()
    return {key: cost for key, cost in parts.items() if key in matched}


@end_to_end
def test_volumes_follow_their_bill_and_lines_of_no_resource_are_reported(reconciled):
    client, truth = reconciled["client"], reconciled["truth"]
    ids = {name: rid for (_, kind, name), rid in truth["resource_ids"].items() if kind == "volume"}
    periods = client.query("SELECT resource, toUnixTimestamp(hour), modelled_cost * factor, period_billed_cost "
                           "FROM k8s_reconciled_factors_current WHERE kind = 'volume' AND matched").result_rows
    assert {volume for volume, *_ in periods} == set(ids)
    for volume, hour, scaled, billed in periods:
        assert billed == truth["totals"][(ids[volume], hour)]["EffectiveCost"] and close(scaled, float(billed))
    reported = client.query("SELECT DISTINCT resource_id FROM k8s_reconciled_factors_current "
                            "WHERE kind = 'bill'").result_rows
    assert sorted(r for r, in reported) == sorted(rid for _, rid in truth["foreign"])
    ledger = client.query("SELECT sum(node_hours_matched), sum(node_hours_unmatched), sum(unmatched_bill_lines) "
                          "FROM k8s_reconciliations").result_rows[0]
    assert ledger == (4 * 2, 4 * 2, 2)  # 2 billed nodes of 4; an instance and a volume of no resource


@end_to_end
def test_migration_0022_writes_the_claim_rows_each_reconciliation_writes(reconciled):
    """A store reconciled before 0022 has no claim rows: the migration writes those of every current reconciliation,
    and the reconciled view answers as from the rows the reconciliations wrote."""
    client = reconciled["client"]
    claims = ("SELECT cloud_account_id, cluster_id, toUnixTimestamp(hour), resource, factor, matched, namespace, "
              "workload_name, pod, pod_uid, pv_reconciled, pv_matched, reconcile_id FROM k8s_reconciled_factors "
              "WHERE kind = 'claim' ORDER BY ALL")
    volumes = ("SELECT toUnixTimestamp(hour), namespace, pod, pod_uid, pv_cost FROM k8s_expenses_reconciled_current "
               "WHERE pv_cost != 0 ORDER BY ALL")
    written, before, pv_before = client.query(claims).result_rows, node_sums(client), client.query(volumes).result_rows
    assert written and any(row[11] for row in written)  # pods' volumes matched to their bill
    backfill, = [s for m in migrations.load_migrations(ROOT / "migrations") if m.name == "reconciled_claims"
                 for s in m.statements if s.startswith("INSERT")]
    client.command("ALTER TABLE k8s_reconciled_factors DELETE WHERE kind = 'claim' SETTINGS mutations_sync = 1")
    assert client.query(claims).result_rows == [] and client.query(volumes).result_rows != pv_before  # at list
    client.command(schema.as_installed(backfill))
    again = client.query(claims).result_rows
    assert [row[:10] + row[11:] for row in again] == [row[:10] + row[11:] for row in written]
    assert all(close(a[10], b[10]) for a, b in zip(again, written))
    after, pv_after = node_sums(client), client.query(volumes).result_rows
    assert set(after) == set(before) and all(close(after[k], before[k]) for k in before)
    assert [row[:4] for row in pv_after] == [row[:4] for row in pv_before]
    assert all(close(a[4], b[4]) for a, b in zip(pv_after, pv_before))
    client.command(schema.as_installed(backfill))  # twice is once
    assert len(client.query(claims).result_rows) == len(written)


def restate(path, hour: int, factor: Decimal, out) -> None:
    """The bill as written, but one instance-hour's EffectiveCost times ``factor``."""
    text = path.read_text().splitlines(keepends=True)
    stamp = f'"{time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(hour))}"'
    at = {name: i for i, name in enumerate(COLUMNS)}
    for number, line in enumerate(text[1:], start=1):
        fields = raw_fields(line.rstrip("\n"))
        if (fields[at["ChargePeriodStart"]], fields[at["ResourceType"]], fields[at["ChargeCategory"]]) == (
                stamp, '"instance"', '"Usage"'):
            fields[at["EffectiveCost"]] = f"{Decimal(fields[at['EffectiveCost']]) * factor:.11f}"
            text[number] = ",".join(fields) + "\n"
            break
    out.write_text("".join(text))


@end_to_end
def test_a_restated_bill_and_a_rerun_hour_re_reconcile_exactly_their_day(reconciled):
    client, start = reconciled["client"], reconciled["start"]
    far = start + 10 * DAY  # past the lag, within the window a tick looks at
    assert reconcile_due(client, BILL, 48, far) == []  # nothing changed since
    load_bill(client, [source_of(str(reconciled["path"]))])  # the same bill again: a new load, the same lines
    assert [d.changed for d in reconcile_due(client, BILL, 48, far)] == [False, False]
    restated = reconciled["root"] / "restated.csv"
    restate(reconciled["path"], start + 3 * HOUR, Decimal(2), restated)
    load_bill(client, [source_of(str(restated))])
    again = reconcile_due(client, BILL, 48, far)
    assert [(d.day, d.changed) for d in again] == [(start // DAY * DAY, False), (start // DAY * DAY + DAY, True)]
    before = node_sums(client)
    assert run_hours(reconciled["pipeline"], ["t-r"], [start + HOUR], force=True).failed == 0
    rerun = reconcile_due(client, BILL, 48, far)
    assert [(d.day, d.changed) for d in rerun] == [(start // DAY * DAY, True)]
    after = node_sums(client)
    assert set(after) == set(before) and all(close(after[k], before[k]) for k in before)
    counts = client.query("SELECT (SELECT count() FROM k8s_expenses_current), "
                          "(SELECT count() FROM k8s_expenses_reconciled_current)").result_rows
    assert counts[0][0] == counts[0][1]


def foreign(path, out) -> None:
    """The bill as written, as another billing account's of other resources and no cluster."""
    text = path.read_text().splitlines(keepends=True)
    at = {name: i for i, name in enumerate(COLUMNS)}
    for number, line in enumerate(text[1:], start=1):
        fields = raw_fields(line.rstrip("\n"))
        fields[at["BillingAccountId"]] = '"999999999999"'
        fields[at["ResourceId"]] = fields[at["ResourceId"]].replace('"', '"x-', 1)  # a NULL has no quote: stays
        fields[at["Tags"]] = "NULL"
        text[number] = ",".join(fields) + "\n"
    out.write_text("".join(text))


@end_to_end
def test_another_accounts_bill_and_a_load_that_died_before_its_replace_re_reconcile_nothing(reconciled):
    """A day is reconciled with the periods billing its resources: another account's bill of the month is not read,
    and a period indexed by a load that died before it replaced it (no lines) changes nothing."""
    client, start = reconciled["client"], reconciled["start"]
    far = start + 10 * DAY
    assert reconcile_due(client, BILL, 48, far) == []
    before = node_sums(client)
    other = reconciled["root"] / "other-account.csv"
    foreign(reconciled["path"], other)
    loaded = load_bill(client, [source_of(str(other))])
    assert {p.billing_account for p in loaded.periods} == {"999999999999"}
    assert reconcile_due(client, BILL, 48, far) == []  # before the index, every account's load changed every day
    client.command("CREATE TABLE died_load AS focus_bill")
    client.command("INSERT INTO died_load SELECT * REPLACE ('888888888888' AS BillingAccountId) FROM focus_bill "
                   "WHERE BillingAccountId != '999999999999'")
    index_bill(client, "died_load")  # its periods indexed, the tenant's resources among them; never replaced
    client.command("DROP TABLE died_load")
    assert client.query("SELECT count() FROM focus_bill_resources WHERE BillingAccountId = '888888888888'"
                        ).result_rows[0][0] > 0
    assert reconcile_due(client, BILL, 48, far) == []
    assert node_sums(client) == before


@end_to_end
def test_cleanup_removes_the_factors_of_superseded_reconciliations_only(reconciled):
    client = reconciled["client"]
    before = node_sums(client)
    current = client.query("SELECT count() FROM k8s_reconciled_factors_current").result_rows[0][0]
    assert client.query("SELECT count() FROM k8s_reconciled_factors").result_rows[0][0] > current  # reconciled again
    done = cleanup.collect_garbage(client, None)
    assert done.reconciliations >= 2  # the restated day's first, the rerun day's first
    assert client.query("SELECT count() FROM k8s_reconciled_factors").result_rows[0][0] == current
    assert node_sums(client) == before
    assert cleanup.collect_garbage(client, None, since=done.began_at).reconciliations == 0  # no day changed since


class Reader:
    """The read API's reader over the test's client."""

    def __init__(self, client):
        self.client = client

    def query(self, sql, parameters=None, strings_as_bytes=False):
        return self.client.query(sql, parameters=parameters or {}).result_rows

    def stream(self, sql, parameters=None, strings_as_bytes=False):
        yield from self.query(sql, parameters)


@end_to_end
def test_the_allocation_api_answers_reconciled_costs_when_asked(reconciled):
    client, start = reconciled["client"], reconciled["start"]
    asked = {"aggregate": "namespace", "step": "window"}
    listed, billed = ({row["namespace"]: row["total_cost"] for row in allocation.allocation(
        Reader(client), allocation.parse_request(params), "t-r", start, start + 4 * HOUR)}
        for params in (asked, {**asked, "reconcile": "true"}))
    expected = dict(client.query("SELECT namespace, sum(total_cost) FROM k8s_expenses_reconciled_current "
                                 "GROUP BY namespace").result_rows)
    assert set(billed) == set(expected) and all(close(billed[n], expected[n]) for n in expected)
    assert listed != billed and all(close(listed[n], c) for n, c in client.query(
        "SELECT namespace, sum(total_cost) FROM k8s_expenses_current GROUP BY namespace").result_rows)


@end_to_end
def test_an_export_of_reconciled_costs_holds_the_views_rows(reconciled, tmp_path):
    client, start = reconciled["client"], reconciled["start"]
    written = exports.export(client, tmp_path / "rows.csv", "csv", "t-r", start, start + 4 * HOUR, reconciled=True)
    assert written > 0
    with open(tmp_path / "rows.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {"cpu_cost_list", "total_cost_list"} <= set(rows[0])
    total = client.query("SELECT sum(total_cost), count() FROM k8s_expenses_reconciled_current").result_rows[0]
    assert len(rows) == total[1] and close(sum(float(r["total_cost"]) for r in rows), total[0])
    exports.export(client, tmp_path / "ns.csv", "csv", "t-r", start, start + 4 * HOUR, aggregate="namespace",
                   reconciled=True)
    with open(tmp_path / "ns.csv", newline="") as file:
        assert close(sum(float(r["cpu_cost"]) for r in csv.DictReader(file)), client.query(
            "SELECT sum(cpu_cost) FROM k8s_expenses_reconciled_current").result_rows[0][0])


@end_to_end
def test_a_sealed_day_keeps_its_reconciled_costs_for_every_reader(reconciled, tmp_path):
    """Last in the module: it seals the first day. A day reconciled anew is built again from the reconciled view,
    and once sealed (read from the daily tier, as after its hours expire) the allocation API, the aggregated export
    and OptScale's daily costs answer its reconciled costs as they did from its hours; export-optscale --reconciled
    writes them, and a list export after it writes the list costs back."""
    client, day = reconciled["client"], reconciled["start"] // DAY * DAY
    state = days.day_states(client, [("t-r", day)])[("t-r", day)]
    assert state.reconciled and state.is_current and not state.sealed
    on_day = {"d": dt.datetime.fromtimestamp(day, dt.timezone.utc).date()}
    built = client.query("SELECT namespace, sum(total_cost_reconciled), sum(total_cost) "
                         "FROM k8s_expenses_by_day_current WHERE day = {d:Date} GROUP BY ALL", on_day).result_rows
    hourly = {namespace: (billed, listed) for namespace, billed, listed in client.query(
        "SELECT namespace, sum(total_cost), sum(total_cost_list) FROM k8s_expenses_reconciled_current "
        "WHERE toDate(hour) = {d:Date} GROUP BY ALL", on_day).result_rows}
    assert {n for n, *_ in built} == set(hourly) and all(
        close(billed, hourly[n][0]) and close(listed, hourly[n][1]) for n, billed, listed in built)
    assert any(not close(billed, listed) for _, billed, listed in built)  # the bill differs from the list prices

    def answers() -> tuple[dict, dict, dict]:
        api = {row["namespace"]: row["total_cost"] for row in allocation.allocation(
            Reader(client), allocation.parse_request({"aggregate": "namespace", "step": "day", "reconcile": "true"}),
            "t-r", day, day + DAY)}
        exports.export(client, tmp_path / "ns.csv", "csv", "t-r", day, day + DAY, aggregate="namespace",
                       reconciled=True)
        with open(tmp_path / "ns.csv", newline="") as file:
            exported = {row["namespace"]: float(row["total_cost"]) for row in csv.DictReader(file)}
        listed, billed = ({rid: cost for rid, cost in client.query(
            f"SELECT cloud_resource_id, cost FROM {optscale.daily_source(kind)} WHERE day = {{d:Date}}",
            on_day).result_rows} for kind in (False, True))
        assert listed.keys() == billed.keys()
        daily = {rid: (cost, billed[rid]) for rid, cost in listed.items()}
        return api, exported, daily

    from_hours = answers()
    assert set(from_hours[0]) == set(hourly) and all(close(c, hourly[n][0]) for n, c in from_hours[0].items())
    assert days.seal_days(client, [("t-r", day)])[0] == {("t-r", day)}
    assert [d.day for d in allocation.sealed_in(Reader(client).query, "day", "t-r", day, day + DAY)] == [day]
    from_days = answers()
    for before, after in zip(from_hours, from_days):
        assert set(before) == set(after)
        for key, value in before.items():
            pairs = zip(value, after[key]) if isinstance(value, tuple) else [(value, after[key])]
            assert all(close(a, b) for a, b in pairs), key
    daily = from_days[2]
    assert any(not close(listed, billed) for listed, billed in daily.values())
    client.command("INSERT INTO optscale_resource_ids (cloud_account_id, cloud_resource_id, resource_id) "
                   "SELECT 't-r', cloud_resource_id, concat('os-', cloud_resource_id) FROM k8s_expenses_daily "
                   "WHERE cloud_account_id = 't-r'")
    optscale.create_table(client, "optscale_reconciled.expenses")

    def exported_to_optscale(reconciled_costs: bool) -> dict:
        optscale.export_tenant(client, client, "optscale_reconciled.expenses", "t-r", day, day + DAY,
                               reconciled=reconciled_costs)
        return dict(client.query("SELECT resource_id, sum(cost * sign) FROM optscale_reconciled.expenses "
                                 "GROUP BY resource_id HAVING sum(sign) > 0").result_rows)

    for reconciled_costs, which in ((True, 1), (False, 0), (True, 1)):
        target = exported_to_optscale(reconciled_costs)
        assert target.keys() == {f"os-{rid}" for rid in daily}
        assert all(close(target[f"os-{rid}"], costs[which]) for rid, costs in daily.items()), reconciled_costs
