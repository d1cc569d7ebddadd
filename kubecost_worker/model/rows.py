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
# Additive figures of a container's requests and usage (docs/model.md, "Requests and usage"): SQL sums them and
# divides afterwards. Usage is None (NULL) where no usage series was found: 0 would read as 0% efficiency.
REQUEST_FIELDS = ("cpu_request_core_hours", "ram_request_byte_hours")
USAGE_FIELDS = ("cpu_usage_core_hours", "ram_usage_byte_hours", "cpu_usage_max_cores", "ram_usage_max_bytes")
# The network cost of each egress class, and its bytes; network_cost is their sum (zone + region + internet).
NETWORK_CLASSES = ("zone", "region", "internet")
NETWORK_FIELDS = (*(f"network_{c}_cost" for c in NETWORK_CLASSES), *(f"network_{c}_bytes" for c in NETWORK_CLASSES))

# Where a row's CPU, RAM and GPU prices came from: the node's price series, the configured defaults
# (KCW_DEFAULT_*_PRICE) for a node without them, or nowhere (no price series, no default: the row costs 0 there).
PRICE_NODE = "node"
PRICE_DEFAULT = "default"
PRICE_NONE = "none"


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
    # Added by migration 0011 (docs/model.md): a row per container; '' on the pod's own row (volumes, network)
    # and on the rows that are no pod's.
    container: str = ""
    pod_uid: str = ""
    service: str = ""
    cpu_request_core_hours: float = 0.0
    ram_request_byte_hours: float = 0.0
    cpu_usage_core_hours: float | None = None
    ram_usage_byte_hours: float | None = None
    cpu_usage_max_cores: float | None = None
    ram_usage_max_bytes: float | None = None
    network_zone_cost: float = 0.0
    network_region_cost: float = 0.0
    network_internet_cost: float = 0.0
    network_zone_bytes: float = 0.0
    network_region_bytes: float = 0.0
    network_internet_bytes: float = 0.0
    price_source: str = ""  # PRICE_NODE, PRICE_DEFAULT, PRICE_NONE on rows priced by a node; '' elsewhere

    @property
    def total_cost(self) -> float:
        # left to right, as migration 0006's ALIAS adds them: the same double as the stored total
        return sum(getattr(self, name) for name in COST_FIELDS)

    @property
    def key(self) -> tuple[str, ...]:
        return (self.cluster_id, self.namespace, self.workload_kind, self.workload_name, self.pod, self.node,
                self.container, self.pod_uid)


@dataclass
class NodeRow:
    """One row of ``k8s_nodes_hourly``: a node as an asset for the hour (docs/model.md, "Nodes")."""

    cloud_account_id: str
    cluster_id: str
    hour: int
    node: str
    provider_id: str = ""
    instance_type: str = ""
    region: str = ""
    zone: str = ""
    arch: str = ""
    spot: bool = False
    running_minutes: float = 0.0  # the node's active interval in the hour
    cpu_cores: float = 0.0        # capacity, averaged over the active interval
    ram_bytes: float = 0.0
    gpu_count: float = 0.0
    cpu_price: float = 0.0        # $ per core-hour, GiB-hour, GPU-hour, time-weighted over the active interval
    ram_price: float = 0.0
    gpu_price: float = 0.0
    price_source: str = PRICE_NONE
    cpu_cost: float = 0.0         # the capacity's cost over the active interval
    ram_cost: float = 0.0
    gpu_cost: float = 0.0
    allocated_cost: float = 0.0   # of cpu + ram + gpu cost, what the node's pods were allocated
    idle_cost: float = 0.0        # what the node's __idle__ row holds

    @property
    def total_cost(self) -> float:
        return self.cpu_cost + self.ram_cost + self.gpu_cost


@dataclass
class VolumeRow:
    """One row of ``k8s_volumes_hourly``: a persistent volume as an asset for the hour (docs/model.md, "Persistent
    volumes"), with the rows that paid for it (``claims``): what reconciling it with the bill scales."""

    cloud_account_id: str
    cluster_id: str
    hour: int
    volume: str
    provider_id: str = ""         # the provider_id label of its pv_hourly_cost series: the disk's id in the bill
    running_minutes: float = 0.0  # the volume's active interval in the hour (its price samples' span)
    capacity_bytes: float = 0.0   # averaged over the active interval
    price: float = 0.0            # $ per GiB-hour, time-weighted over the active interval
    cost: float = 0.0             # capacity x price over the active interval (0 without a capacity series)
    # (namespace, workload_name, pod, pod_uid, pv_cost) of each row that holds a part of its cost: the pods' own rows
    # and its __unmounted__ row; their pv_cost adds up to what the rows hold of the volume
    claims: list[tuple[str, str, str, str, float]] = field(default_factory=list)


@dataclass
class HourResult:
    rows: list[ExpenseRow]
    metric_samples: list["MetricSample"]
    samples_seen: int
    unpriced_nodes: list[str]  # nodes whose pods were priced by the defaults or not at all (no price series)
    nodes: list[NodeRow] = field(default_factory=list)
    volumes: list[VolumeRow] = field(default_factory=list)

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
