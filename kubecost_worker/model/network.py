"""Network egress (``docs/model.md``, "Network"): each pod's egress bytes in the hour, by class (internet, across
regions, across zones; within a zone is free), at the hour's time-weighted price of the class."""

from __future__ import annotations

from . import timeline
from .cluster import ClusterHour
from .pods import Pod, PodRows, Pods
from .rows import GIB
from .series import (KUBECOST_NETWORK_INTERNET_EGRESS_COST, KUBECOST_NETWORK_REGION_EGRESS_COST,
                     KUBECOST_NETWORK_ZONE_EGRESS_COST, KUBECOST_POD_NETWORK_EGRESS_BYTES_TOTAL)

PRICE_METRICS = {"zone": KUBECOST_NETWORK_ZONE_EGRESS_COST, "region": KUBECOST_NETWORK_REGION_EGRESS_COST,
                 "internet": KUBECOST_NETWORK_INTERNET_EGRESS_COST}


def allocate_network(ctx: ClusterHour, pods: Pods, rows: PodRows) -> None:
    price_of = {}
    for cls, metric in PRICE_METRICS.items():
        samples = sorted(x for s in ctx.of(metric) for x in s.samples)
        price_of[cls] = timeline.time_weighted_mean(samples, ctx.start, ctx.end)
    charged = {}
    for s in ctx.of(KUBECOST_POD_NETWORK_EGRESS_BYTES_TOTAL):
        labels = s.labels
        if labels.get("internet") == "true":
            cls = "internet"
        elif labels.get("same_region") == "false":
            cls = "region"
        elif labels.get("same_zone") == "false":
            cls = "zone"
        else:
            continue  # inside a zone: free
        egress = timeline.counter_increase(s.samples)
        if egress == 0:
            continue
        ns, name = labels.get("namespace", ""), labels.get("pod_name", "")
        instances = pods.get((ns, name))
        if instances:
            pod = max(instances, key=lambda p: p.stop - p.start)
        else:
            pod = Pod(ns, name, "", ctx.start, ctx.start)
        row = rows.of(pod)
        setattr(row, f"network_{cls}_bytes", getattr(row, f"network_{cls}_bytes") + egress)
        setattr(row, f"network_{cls}_cost", getattr(row, f"network_{cls}_cost") + egress / GIB * price_of[cls])
        charged[id(row)] = row
    for row in charged.values():
        row.network_cost = row.network_zone_cost + row.network_region_cost + row.network_internet_cost
