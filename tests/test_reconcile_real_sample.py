"""The real FOCUS sample (``data/focus/focus_sample.csv``) against a simulated EKS cluster whose nodes are four of
its EC2 instances: the sample loads unchanged, the day is reconciled, and the node whose instance-hour the sample
bills adds up to that line; the three whose only lines of the hour are data transfer, its unbilled hour, and every
other row stay at list price, and the sample's other lines change none of them."""

from __future__ import annotations

import csv
import datetime as dt
import math
from decimal import Decimal

import pytest

from kubecost_worker.config import load_config
from kubecost_worker.devtools.bill import as_eks
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks
from kubecost_worker.devtools.simulation import simulate
from kubecost_worker.hours import hour_starts
from kubecost_worker.pipeline import run_hours
from kubecost_worker.store import migrations
from kubecost_worker.store.bill import load_bill, source_of
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.store.reconcile import BillSettings, reconcile_days
from kubecost_worker.wiring import build_pipeline

from .helpers import ch_client
from .test_store_bill import SAMPLE

pytestmark = [pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
HOUR = 3600
START = int(dt.datetime(2024, 9, 26, tzinfo=dt.timezone.utc).timestamp())  # the sample bills these instances here
HOURS = 2  # the second hour is one the sample does not bill
TENANT = "t-sample"
# The EC2 instances the sample has Compute Usage lines of at START, and what each line is in BilledCost: one
# instance-hour, which reconciles its node, and three of data transfer (PricingUnit GB) charged to the instance,
# which the reconciliation's rule (store/reconcile.py BILLED_LINES) leaves to the network costs.
INSTANCE_HOURS = {"i-081360af1l266l589": Decimal("0.34000000000")}
TRANSFER = {
    "i-066a869eb9006b804": Decimal("0.00000000000"),
    "i-07l523fl47072f106": Decimal("0.00000474370"),
    "i-0fe23a08576a54e3a": Decimal("0.00000334870"),
}
INSTANCES = [*sorted({**INSTANCE_HOURS, **TRANSFER})]
# The anonymisation scrambled EffectiveCost (0 on every one of these lines): BilledCost is the sample's real amount.
BILL = BillSettings("focus_bill", "BilledCost")


def sample_lines() -> list[dict]:
    with open(SAMPLE, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def billed_by_rule(lines: list[dict], hour: int, transfer: bool = False) -> tuple[dict[str, Decimal], dict[str, int]]:
    """Each instance's BilledCost and line count in ``hour``: its Compute usage lines but data transfer and the
    Credit and Adjustment lines naming it, as the reconciliation takes them (``transfer``: its data transfer)."""
    stamp = f"{dt.datetime.fromtimestamp(hour, dt.timezone.utc):%Y-%m-%d %H:%M:%S}"
    costs, counts = {i: Decimal(0) for i in INSTANCES}, {i: 0 for i in INSTANCES}
    for line in lines:
        usage = (line["ChargeCategory"], line["ServiceCategory"]) == ("Usage", "Compute")
        taken = ((usage and (line["PricingUnit"] == "GB") == transfer)
                 or (not transfer and line["ChargeCategory"] in ("Credit", "Adjustment")))
        instance = line["ResourceId"].rsplit("/", 1)[-1]
        if line["ChargePeriodStart"] == stamp and taken and instance in costs:
            costs[instance] += Decimal(line["BilledCost"])
            counts[instance] += 1
    return costs, counts


def test_the_real_sample_loads_and_its_ec2_lines_match_simulated_nodes_of_its_instances(tmp_path):
    lines = sample_lines()
    instances_at_start = {line["ResourceId"] for line in lines if line["ChargePeriodStart"] == "2024-09-26 00:00:00"
                          and (line["ServiceCategory"], line["ChargeCategory"]) == ("Compute", "Usage")
                          and line["ResourceId"].startswith("i-")}
    assert instances_at_start == set(INSTANCES)
    billed, counts = billed_by_rule(lines, START)
    assert billed == {**dict.fromkeys(TRANSFER, Decimal(0)), **INSTANCE_HOURS}
    assert counts == {i: int(i in INSTANCE_HOURS) for i in INSTANCES}
    assert billed_by_rule(lines, START, transfer=True) == ({**dict.fromkeys(INSTANCE_HOURS, Decimal(0)), **TRANSFER},
                                                           {i: int(i in TRANSFER) for i in INSTANCES})
    assert billed_by_rule(lines, START + HOUR)[1] == dict.fromkeys(INSTANCES, 0)  # the second hour: no line of them

    # 4 priced nodes (and the simulator's unpriced one, without a providerID), one for each instance
    sim = as_eks(simulate([TENANT], START, HOURS, nodes=4, pods=12, seed=5), instance_ids=INSTANCES)
    nodes = sim.tenants[0].nodes
    priced = [node for node in nodes if node.provider_id]
    assert [n.provider_id for n in priced] == [f"aws:///{n.zone}/{i}" for n, i in zip(priced, INSTANCES, strict=True)]
    node_of = {instance: node.name for instance, node in zip(INSTANCES, priced)}
    sim.write_openmetrics(tmp_path / "metrics.om")
    create_blocks(tmp_path / "metrics.om", tmp_path / "tsdb")
    prometheus = LocalPrometheus(tmp_path / "tsdb")
    config = load_config({"KCW_THANOS_URL": prometheus.start(), "KCW_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}"})
    try:
        with ch_client(config.clickhouse_url) as client:
            migrations.migrate(client)
            pipeline = build_pipeline(config, ClickHouseSink(client, url=config.clickhouse_url))
            assert run_hours(pipeline, [TENANT], hour_starts(START, START + HOURS * HOUR)).failed == 0
            loaded = load_bill(client, [source_of(str(SAMPLE))])
            assert sum(p.lines for p in loaded.periods) == len(lines) == 1000
            days = reconcile_days(client, BILL, [TENANT], START, START + HOURS * HOUR)
            check_reconciled(client, days, node_of, [node.name for node in nodes])
    finally:
        prometheus.stop()


def check_reconciled(client, days, node_of: dict[str, str], nodes: list[str]) -> None:
    assert [(d.tenant, d.day, d.changed) for d in days] == [(TENANT, START, True)]
    factors = {(node, int(hour)): (resource_id, matched, factor, Decimal(billed), count)
               for node, hour, resource_id, matched, factor, billed, count in client.query(
                   "SELECT resource, toUnixTimestamp(hour), resource_id, matched, factor, period_billed_cost, "
                   "bill_lines FROM k8s_reconciled_factors_current WHERE kind = 'node'").result_rows}
    rows = client.query(
        "SELECT node, toUnixTimestamp(hour), sum(cpu_cost + ram_cost + gpu_cost), "
        "sum(cpu_cost_list + ram_cost_list + gpu_cost_list), "
        "countIf(cpu_cost != cpu_cost_list OR ram_cost != ram_cost_list OR gpu_cost != gpu_cost_list "
        "OR pv_cost != pv_cost_list OR total_cost != total_cost_list) "
        "FROM k8s_expenses_reconciled_current WHERE cloud_account_id = {t:String} GROUP BY ALL",
        parameters={"t": TENANT}).result_rows
    costs = {(node, int(hour)): (cost, listed, changed) for node, hour, cost, listed, changed in rows}
    for instance, billed in INSTANCE_HOURS.items():
        node = node_of[instance]
        resource_id, matched, _, period_billed, count = factors[(node, START)]
        assert (resource_id, matched, period_billed, count) == (instance, True, billed, 1), node
        cost, listed, _ = costs[(node, START)]
        assert listed > 0 and math.isclose(cost, float(billed), rel_tol=1e-9, abs_tol=0), (instance, cost, billed)
    for instance, node in node_of.items():  # data transfer alone bills no node: network costs are their own
        if instance in TRANSFER:
            assert factors[(node, START)][1:3] == (False, 1.0), (node, START)
        for hour in range(START + HOUR, START + HOURS * HOUR, HOUR):
            assert factors[(node, hour)][1:3] == (False, 1.0), (node, hour)
    billed_hours = {(node_of[instance], START) for instance in INSTANCE_HOURS}
    # every other row, the billed nodes' unbilled hours among them, keeps its list costs bit for bit
    assert all(changed == 0 for key, (_, _, changed) in costs.items() if key not in billed_hours)
    assert sum(1 for (node, hour) in costs if node in node_of.values()) == len(node_of) * HOURS
    assert sorted(factors) == sorted((node, START + h * HOUR) for node in nodes for h in range(HOURS))
    ledger = client.query("SELECT node_hours_matched, node_hours_unmatched, volume_hours_matched, "
                          "unmatched_bill_lines, unmatched_billed_cost, billed_cost FROM k8s_reconciliations "
                          "WHERE cloud_account_id = {t:String}", parameters={"t": TENANT}).result_rows
    # the sample's other lines (no such instance, no tag of this cluster) are neither matched nor reported
    assert ledger == [(len(INSTANCE_HOURS), len(factors) - len(INSTANCE_HOURS), 0, 0, Decimal(0),
                       sum(INSTANCE_HOURS.values()))]
