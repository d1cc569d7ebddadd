"""The priced node resources, in one table: what allocates each, what prices it, what a node has of it, and the
row fields its quantity-hours and cost go to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .rows import GIB, PRICE_DEFAULT, PRICE_NODE, PRICE_NONE
from .series import (CONTAINER_CPU_ALLOCATION, CONTAINER_GPU_ALLOCATION, CONTAINER_MEMORY_ALLOCATION_BYTES,
                     KUBE_NODE_STATUS_CAPACITY_CPU_CORES, KUBE_NODE_STATUS_CAPACITY_MEMORY_BYTES, NODE_CPU_HOURLY_COST,
                     NODE_GPU_COUNT, NODE_GPU_HOURLY_COST, NODE_RAM_HOURLY_COST)


@dataclass(frozen=True)
class Resource:
    name: str            # as resource_kind() names a request's resource: cpu, ram, gpu
    allocation: str      # the container allocation metric
    price: str           # the node's hourly price metric, per unit
    capacity: str        # the node's capacity metric, in quantity
    quantity_field: str  # the row field of the quantity-hours
    cost_field: str      # the row field of the cost
    per_unit: float      # quantity per priced unit: 1 core, 1 GiB of bytes, 1 GPU
    request_field: str | None = None  # the row field of the requested quantity-hours


RESOURCES = (
    Resource("cpu", CONTAINER_CPU_ALLOCATION, NODE_CPU_HOURLY_COST, KUBE_NODE_STATUS_CAPACITY_CPU_CORES,
             "cpu_core_hours", "cpu_cost", 1.0, "cpu_request_core_hours"),
    Resource("ram", CONTAINER_MEMORY_ALLOCATION_BYTES, NODE_RAM_HOURLY_COST, KUBE_NODE_STATUS_CAPACITY_MEMORY_BYTES,
             "ram_byte_hours", "ram_cost", GIB, "ram_request_byte_hours"),
    Resource("gpu", CONTAINER_GPU_ALLOCATION, NODE_GPU_HOURLY_COST, NODE_GPU_COUNT, "gpu_hours", "gpu_cost", 1.0),
)


# A price source's rank: a row reports the worst source among the resources it has a quantity of.
_SOURCE_RANK = {PRICE_NODE: 0, PRICE_DEFAULT: 1, PRICE_NONE: 2}


def worst_source(sources) -> str:
    return max(sources, key=_SOURCE_RANK.__getitem__)


@dataclass(frozen=True)
class NodePrices:
    """The price of each resource on each node: its price series, else the configured default, else none (0)."""

    series: Mapping[str, Mapping[str, list[tuple[float, float]]]]  # resource -> node -> samples
    defaults: Mapping[str, float]

    def of(self, resource: str, node: str) -> tuple[list[tuple[float, float]], str]:
        """The price samples of ``resource`` on ``node`` and where they come from; a default is one sample that
        stands for the whole hour (a gauge's value before its first sample is its first sample's)."""
        samples = self.series[resource].get(node)
        if samples is not None:
            return samples, PRICE_NODE
        if resource in self.defaults:
            return [(0.0, float(self.defaults[resource]))], PRICE_DEFAULT
        return [], PRICE_NONE
