"""Load balancers (``docs/model.md``, "Load balancers"): each one's cost over its active interval, on a row of its
service (workload kind ``service``, column ``service``) in its namespace: grouped by service, a service's pods
and its load balancer add up."""

from __future__ import annotations

from .cluster import ClusterHour, RowBook
from .series import KUBECOST_LOAD_BALANCER_COST


def load_balancers(ctx: ClusterHour, book: RowBook, namespace_labels: dict[str, dict[str, str]]) -> None:
    for s in ctx.of(KUBECOST_LOAD_BALANCER_COST):
        ns, service = s.labels.get("namespace", ""), s.labels.get("service_name", "")
        row = book.row(ns, "service", service, labels=namespace_labels.get(ns, {}), service=service)
        row.lb_cost += ctx.active_cost(s)
