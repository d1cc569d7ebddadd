"""The priced node resources, in one table: what allocates each, what prices it, what a node has of it, and the
row fields its quantity-hours and cost go to."""

from __future__ import annotations

from dataclasses import dataclass

from .rows import GIB
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


RESOURCES = (
    Resource("cpu", CONTAINER_CPU_ALLOCATION, NODE_CPU_HOURLY_COST, KUBE_NODE_STATUS_CAPACITY_CPU_CORES,
             "cpu_core_hours", "cpu_cost", 1.0),
    Resource("ram", CONTAINER_MEMORY_ALLOCATION_BYTES, NODE_RAM_HOURLY_COST, KUBE_NODE_STATUS_CAPACITY_MEMORY_BYTES,
             "ram_byte_hours", "ram_cost", GIB),
    Resource("gpu", CONTAINER_GPU_ALLOCATION, NODE_GPU_HOURLY_COST, NODE_GPU_COUNT, "gpu_hours", "gpu_cost", 1.0),
)
