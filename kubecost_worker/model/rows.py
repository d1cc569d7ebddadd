"""The model's output: ``k8s_expenses`` rows, the hourly ``kubecost_*`` samples, and what one tenant-hour gives."""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = float(2**30)
# The namespaces of the rows that are no pod's: a node's unused capacity, the cluster's fee, unclaimed volumes.
IDLE = "__idle__"
MANAGEMENT = "__cluster_management__"
UNMOUNTED = "__unmounted__"


# The costs of a row, in the order its total adds them; the quantities they price.
COST_FIELDS = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "lb_cost", "management_cost")
QUANTITY_FIELDS = ("running_minutes", "cpu_core_hours", "ram_byte_hours", "gpu_hours", "pv_byte_hours")


@dataclass
class ExpenseRow:
    """One row of ``k8s_expenses`` (without the run bookkeeping the sink adds), its fields in the table's column
    order."""

    cloud_account_id: str
    cluster_id: str
    hour: int
    namespace: str
    workload_kind: str
    workload_name: str
    pod: str
    node: str
    running_minutes: float = 0.0
    cpu_core_hours: float = 0.0
    ram_byte_hours: float = 0.0
    gpu_hours: float = 0.0
    pv_byte_hours: float = 0.0
    cpu_cost: float = 0.0
    ram_cost: float = 0.0
    gpu_cost: float = 0.0
    pv_cost: float = 0.0
    network_cost: float = 0.0
    lb_cost: float = 0.0
    management_cost: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def total_cost(self) -> float:
        # left to right, as migration 0006's ALIAS adds them: the same double as the stored total
        return sum(getattr(self, name) for name in COST_FIELDS)

    @property
    def key(self) -> tuple[str, ...]:
        return (self.cluster_id, self.namespace, self.workload_kind, self.workload_name, self.pod, self.node)


@dataclass
class HourResult:
    rows: list[ExpenseRow]
    metric_samples: list["MetricSample"]
    samples_seen: int
    unpriced_nodes: list[str]

    @property
    def total_cost(self) -> float:
        return sum(r.total_cost for r in self.rows)


@dataclass(frozen=True)
class MetricSample:
    """The hourly mean of one ``kubecost_*`` series, for the read endpoints."""

    cloud_account_id: str
    hour: int
    metric: str
    labels: dict[str, str]
    value: float
    samples: int
