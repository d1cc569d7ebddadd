"""``read/metroculus.py`` on rows written by the sink, called directly (over HTTP: ``test_api.py``): the cluster-cost
breakdown. The rows and the fixture are the allocation record's of ``test_store_record.py``."""

from __future__ import annotations

import pytest

from kubecost_worker.read import metroculus

from .test_store_record import H0, T, allocation_hour, commit, sink  # noqa: F401  (sink: the fixture)

pytestmark = [pytest.mark.needs_chdb]


def test_cluster_costs_returns_cloudtuners_breakdown(sink):
    result = allocation_hour()
    commit(sink, result)
    answer = metroculus.cluster_costs(sink, T, H0, H0 + 3600)
    assert answer["breakdown"] == {"management_cost": 0.1, "load_balancer_cost": 0.025, "network_internet_cost": 0.12,
                                   "network_region_cost": 0.002, "network_zone_cost": 0.001}
    assert list(answer["breakdown"]) == list(metroculus.BREAKDOWN)
    summary = answer["summary"]  # unchanged beside it: the parts add up to the total
    assert summary["total_cost"] == answer["total_cost"] == pytest.approx(result.total_cost)
    assert summary["network_cost"] == pytest.approx(sum(answer["breakdown"][f"network_{c}_cost"]
                                                        for c in ("zone", "region", "internet")))
    assert sum(v for k, v in summary.items() if k != "total_cost") == pytest.approx(summary["total_cost"])
    empty = metroculus.cluster_costs(sink, "nobody", H0, H0 + 3600)
    assert empty["breakdown"] == dict.fromkeys(metroculus.BREAKDOWN, 0.0) and empty["total_cost"] == 0.0
