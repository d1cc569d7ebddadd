"""``model/reconcile.py``, the reconciliation's math as a pure function on hand-computed cases: a factor per resource
and billing period that makes the resource's rows add up to its bill, credits counted, a scale set's nodes as one
group, daily bills per day, unbilled resources at factor 1, lines of the tenant's clusters that no resource is
reported, and lines of other clusters ignored."""

from __future__ import annotations

from decimal import Decimal

from kubecost_worker.model.reconcile import BILL, NODE, VOLUME, BillLines, ResourceHour, reconcile

H0 = 1_725_148_800  # 2024-09-01 00:00 UTC
H = 3600


def by_resource(factors):
    return {(f.kind, f.resource, f.hour): f for f in factors}


def test_hourly_lines_give_a_factor_per_node_hour_and_credits_count():
    resources = [ResourceHour(NODE, "c", "n1", H0, "i-1", 2.0), ResourceHour(NODE, "c", "n1", H0 + H, "i-1", 4.0)]
    lines = [BillLines("i-1", "Compute", "Usage", H0, H0 + H, Decimal("1.5"), 1),
             BillLines("i-1", "Compute", "Usage", H0 + H, H0 + 2 * H, Decimal("3"), 1),
             BillLines("i-1", "Compute", "Credit", H0 + H, H0 + 2 * H, Decimal("-1"), 1)]
    found = by_resource(reconcile(resources, lines, {"c"}))
    assert found[(NODE, "n1", H0)].factor == 0.75 and found[(NODE, "n1", H0)].matched
    assert found[(NODE, "n1", H0 + H)].factor == 0.5  # (3 - 1) / 4
    assert found[(NODE, "n1", H0 + H)].period_billed == Decimal(2) and found[(NODE, "n1", H0 + H)].bill_lines == 2


def test_a_scale_set_is_one_group_and_its_nodes_share_its_factor():
    key = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/pool"
    resources = [ResourceHour(NODE, "c", "vm0", H0, key, 1.0), ResourceHour(NODE, "c", "vm1", H0, key, 3.0)]
    lines = [BillLines(key, "Compute", "Usage", H0, H0 + H, Decimal(2), 1)]
    found = by_resource(reconcile(resources, lines, set()))
    assert found[(NODE, "vm0", H0)].factor == found[(NODE, "vm1", H0)].factor == 0.5
    assert found[(NODE, "vm0", H0)].modelled * 0.5 + found[(NODE, "vm1", H0)].modelled * 0.5 == 2


def test_a_daily_bill_reconciles_the_day_and_unbilled_hours_stay_at_list_price():
    resources = [ResourceHour(NODE, "c", "n1", H0 + h * H, "vm-1", 1.0) for h in range(24)]
    resources += [ResourceHour(NODE, "c", "n2", H0, "vm-2", 5.0), ResourceHour(VOLUME, "c", "v1", H0, "", 1.0)]
    lines = [BillLines("vm-1", "Compute", "Usage", H0, H0 + 24 * H, Decimal(12), 3)]
    factors = reconcile(resources, lines, {"c"})
    found = by_resource(factors)
    assert {f.factor for f in factors if f.resource == "n1"} == {0.5}
    assert found[(NODE, "n1", H0 + 5 * H)].period_start == H0 and found[(NODE, "n1", H0)].period_end == H0 + 24 * H
    assert sum(f.modelled * f.factor for f in factors if f.resource == "n1") == 12
    for unbilled in ((NODE, "n2", H0), (VOLUME, "v1", H0)):
        assert (found[unbilled].factor, found[unbilled].matched) == (1.0, False)


def test_lines_of_the_tenants_clusters_that_no_resource_is_are_reported_others_ignored():
    resources = [ResourceHour(NODE, "c", "n1", H0, "i-1", 1.0), ResourceHour(VOLUME, "c", "v1", H0, "vol-1", 1.0)]
    lines = [BillLines("i-9", "Compute", "Usage", H0, H0 + H, Decimal("0.3"), 1, "c"),
             BillLines("i-8", "Compute", "Usage", H0, H0 + H, Decimal("0.7"), 1, "another"),
             BillLines("vol-1", "Compute", "Usage", H0, H0 + H, Decimal("0.2"), 1, "c"),  # no instance: reported
             BillLines("vol-1", "Storage", "Usage", H0, H0 + H, Decimal("0.4"), 1, "c"),
             BillLines("vol-1", "Storage", "Credit", H0, H0 + H, Decimal("-0.1"), 1, "c")]
    factors = reconcile(resources, lines, {"c"})
    reported = sorted((f.resource_id, f.period_billed) for f in factors if f.kind == BILL)
    assert reported == [("i-9", Decimal("0.3")), ("vol-1", Decimal("0.2"))]
    assert by_resource(factors)[(VOLUME, "v1", H0)].factor == 0.3  # (0.4 - 0.1) / 1, summed exactly
    assert by_resource(factors)[(NODE, "n1", H0)].matched is False


def test_a_billed_period_whose_resources_cost_nothing_is_reported_not_divided_by_zero():
    resources = [ResourceHour(NODE, "c", "n1", H0, "i-1", 0.0)]
    lines = [BillLines("i-1", "Compute", "Usage", H0, H0 + H, Decimal("0.5"), 1)]
    factors = reconcile(resources, lines, {"c"})
    assert [(f.kind, f.period_billed) for f in factors if f.kind == BILL] == [(BILL, Decimal("0.5"))]
    assert by_resource(factors)[(NODE, "n1", H0)].factor == 1.0
