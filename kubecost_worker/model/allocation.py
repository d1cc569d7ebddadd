"""The OpenCost allocation model for one tenant-hour: raw series in, ``k8s_expenses`` rows out.

Pure functions only: no I/O, no clock. ``docs/model.md`` is the specification. Per cluster of the hour
(``cluster.ClusterHour``, a frozen context of its series), in this order: pods and their containers
(``pods.py``: a row per container, CPU, RAM and GPU over ``resources.RESOURCES``, priced by ``NodePrices``),
their usage (``usage.py``), volumes (``volumes.py``), network (``network.py``), load balancers
(``load_balancers.py``), cluster management, unmounted volumes, the nodes and their idle capacity (``idle.py``,
``volumes.py``): each adds its costs to the cluster's ``RowBook``; the nodes come out as ``NodeRow``s.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping

from . import timeline
from .cluster import ClusterHour, RowBook, window
from .idle import management, nodes_and_idle
from .load_balancers import load_balancers
from .network import allocate_network
from .pods import PodRows, allocate_containers, pod_instances
from .usage import allocate_usage
from .resources import RESOURCES, NodePrices
from .rows import ExpenseRow, HourResult, MetricSample, NodeRow, VolumeRow
from .series import KEPT_PREFIX, KUBECOST_CLUSTER_INFO, HourInput, Series, Summary
from .volumes import allocate_volumes, unmounted


def compute_hour(inp: HourInput, default_prices: Mapping[str, float] | None = None) -> HourResult:
    """All rows, node rows and metric samples of one tenant-hour. ``default_prices`` ($ per core-hour, GiB-hour,
    GPU-hour by resource name ``cpu``, ``ram``, ``gpu``) price the resources of nodes without price series."""
    rows: list[ExpenseRow] = []
    nodes: list[NodeRow] = []
    volumes: list[VolumeRow] = []
    unpriced: list[str] = []
    for cluster_id, series in split_by_cluster(inp).items():
        book, node_rows, volume_rows = cluster_rows(ClusterHour.of_input(inp, cluster_id, series),
                                                    default_prices or {})
        rows.extend(book.rows.values())
        nodes.extend(node_rows)
        volumes.extend(volume_rows)
        unpriced.extend(book.unpriced_nodes)
    return HourResult(rows=rows, metric_samples=hourly_metric_samples(inp), samples_seen=inp.values_read(),
                      unpriced_nodes=unpriced, nodes=nodes, volumes=volumes)


def cluster_rows(ctx: ClusterHour, default_prices: Mapping[str, float]
                 ) -> tuple[RowBook, list[NodeRow], list[VolumeRow]]:
    """Every row, node row and volume row of one cluster-hour."""
    book = RowBook(ctx)
    prices = NodePrices({r.name: ctx.node_gauges(r.price) for r in RESOURCES}, default_prices)
    pods = pod_instances(ctx)
    rows = PodRows(ctx, book)
    allocated = allocate_containers(ctx, book, pods, rows, prices)
    allocate_usage(ctx, pods, rows)
    paid = allocate_volumes(ctx, pods, rows)
    allocate_network(ctx, pods, rows)
    load_balancers(ctx, book, rows.namespace_labels)
    management(ctx, book)
    volume_rows = unmounted(ctx, book, paid)
    return book, nodes_and_idle(ctx, book, prices, pods, allocated), volume_rows


# -- Clusters ------------------------------------------------------------------------------------------------

def split_by_cluster(inp: HourInput) -> dict[str, dict[str, list[Series]]]:
    """Series grouped by their ``cluster_id`` label; unlabelled ones go to the cluster of kubecost_cluster_info."""
    default = ""
    for s in inp.of(KUBECOST_CLUSTER_INFO):
        if "cluster_id" not in s.labels:
            default = s.labels.get("id") or s.labels.get("name") or ""
            break
    clusters: dict[str, dict[str, list[Series]]] = defaultdict(lambda: defaultdict(list))
    for metric, group in inp.series.items():
        for s in group:
            clusters[s.labels.get("cluster_id") or default][metric].append(s)
    return clusters


# -- Hourly metric samples -----------------------------------------------------------------------------------

def hourly_metric_samples(inp: HourInput) -> list[MetricSample]:
    out = []
    for metric, group in sorted(inp.series.items()):
        if not metric.startswith(KEPT_PREFIX):
            continue
        for s in group:
            if isinstance(s, Summary):  # never for kubecost_* series, which the source always fetches as samples
                raise ValueError(f"{metric}: a summary where the hourly mean needs samples")
            inside = window(s.samples, inp.start, inp.end)
            if inside:
                labels = {k: v for k, v in s.labels.items() if k != "__name__"}
                out.append(MetricSample(inp.tenant, inp.start, metric, labels, timeline.mean(inside), len(inside)))
    return out
