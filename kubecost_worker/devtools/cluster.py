"""Synthetic multi-tenant Kubecost clusters, decided: nodes with price schedules, pods with start/stop steps,
requests and per-step usage, volumes, a load balancer, network counters... (the builder). ``simulation.py`` writes
them as OpenMetrics (``openmetrics.py``) and derives the rows ``docs/model.md`` expects (``oracle.py``).

Pure standard library, deterministic for a given seed. Usage values are not stored: each container
regenerates them from its own ``random.Random(key)`` both when the file is written and when the ground
truth is computed, so a 2,000-pod hour stays small in memory. A container's usage is the one truth its
allocation (``max(request, usage)``), its cAdvisor CPU counter and its working set are all derived from.

Conventions (see docs/model.md):

* the simulation covers ``[start, start + hours*3600)``, one sample every ``step`` seconds at
  ``start + k*step``; global step ``k`` stands for ``[start + k*step, start + (k+1)*step)``;
* a pod runs the steps ``[pod.start, pod.end)`` and has every per-pod sample exactly at those steps;
* node, volume, load balancer, management and network price series exist for the whole simulation (but
  for the one node without prices, ``Node.priced``);
* cAdvisor's CPU counter at running step ``i`` counts the CPU seconds of the steps before ``i``: step ``i``'s
  usage first shows in the sample of step ``i + 1``. A restarted container's first sample after the restart
  shows the step the new process ran before it (it restarted right after the previous scrape).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

GiB = 1 << 30
MiB = 1 << 20

_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes
_HEX = "0123456789abcdef"


# namespace -> (team, env)
NAMESPACES = {
    "frontend": ("web", "prod"),
    "backend": ("commerce", "prod"),
    "data": ("data", "prod"),
    "monitoring": ("platform", "prod"),
    "batch": ("analytics", "staging"),
    "kube-system": ("platform", "system"),
    "default": ("unknown", "dev"),
}

# node types by node index (the GPU node is an a2-highgpu-1g): (machine family, architecture)
NODE_FAMILIES = (("n2-standard", "amd64"), ("e2-standard", "amd64"), ("t2a-standard", "arm64"))

# network classes: (internet, same_zone, same_region, price key or None when free)
NETWORK_CLASSES = (
    ("true", "false", "false", "internet"),
    ("false", "false", "false", "region"),
    ("false", "false", "true", "zone"),
    ("false", "true", "true", None),
)


def escape_label_value(value: str) -> str:
    """OpenMetrics label value escaping: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in pairs)


def network_price_key(internet: str, same_zone: str, same_region: str) -> str | None:
    """Which egress price a counter series pays (docs/model.md, Network); None = free."""
    if internet == "true":
        return "internet"
    if same_region == "false":
        return "region"
    if same_zone == "false":
        return "zone"
    return None


# ---------------------------------------------------------------------------------------------------
# The simulation's intent
# ---------------------------------------------------------------------------------------------------


@dataclass
class Container:
    name: str
    cpu_request: float | None  # cores; None = no request series
    mem_request: float | None  # bytes; None = no request series
    gpu: int  # GPUs requested (also the allocation)
    cpu_base: float  # usage = round(cpu_base * uniform(*cpu_range), 4)
    cpu_range: tuple[float, float]
    mem_base: float  # usage = floor(mem_base * uniform(*mem_range))
    mem_range: tuple[float, float]
    key: str  # seed of the usage generators
    # cAdvisor's series of the container (container_cpu_usage_seconds_total, container_memory_working_set_bytes);
    # without one, the ground truth's usage of that kind is None (NULL)
    cpu_usage_series: bool = True
    mem_usage_series: bool = True
    restart: int | None = None  # running step (from the pod's start) of the first sample after a restart
    restart_new_series: bool = True  # True: a new cgroup (new ``id``); False: no ``id`` label, the counter drops
    cpu_counter_start: float = 0.0  # CPU seconds the counter shows at the first running sample
    image: str = ""

    def cpu_usage(self, count: int) -> list[float]:
        """Cores used in each of the pod's ``count`` running steps."""
        rng = random.Random(self.key + "|cpu")
        base = self.cpu_base
        lo, hi = self.cpu_range
        return [round(base * rng.uniform(lo, hi), 4) for _ in range(count)]

    def cpu_allocations(self, count: int, usage: list[float] | None = None) -> list[float]:
        """container_cpu_allocation for the pod's ``count`` running steps: max(request, usage)."""
        req = float(self.cpu_request or 0.0)
        return [u if u > req else req for u in (usage if usage is not None else self.cpu_usage(count))]

    def mem_usage(self, count: int) -> list[float]:
        """Working-set bytes at each running step; a restarted process starts small."""
        rng = random.Random(self.key + "|mem")
        base = self.mem_base
        lo, hi = self.mem_range
        out = [float(math.floor(base * rng.uniform(lo, hi))) for _ in range(count)]
        if self.restart is not None and self.restart < count:
            out[self.restart] = float(math.floor(out[self.restart] / 4))
        return out

    def mem_allocations(self, count: int, usage: list[float] | None = None) -> list[float]:
        req = float(self.mem_request or 0.0)
        return [u if u > req else req for u in (usage if usage is not None else self.mem_usage(count))]

    def cpu_counter(self, usage: list[float], step: int) -> list[float]:
        """container_cpu_usage_seconds_total at each running step (see the module's conventions)."""
        out = []
        v = self.cpu_counter_start
        for i, u in enumerate(usage):
            out.append(v)
            v = v + u * step
            if self.restart is not None and i + 1 == self.restart:
                v = u * step  # the new process ran the rest of this step
        return out

    def cgroup_ids(self, pod_uid: str) -> tuple[str, str]:
        """The cgroup path of the container before and after its restart (equal without a restart)."""
        rng = random.Random(self.key + "|id")
        first = f"{rng.getrandbits(256):064x}"
        second = f"{rng.getrandbits(256):064x}" if self.restart is not None else first
        root = f"/kubepods/burstable/pod{pod_uid}"
        return f"{root}/{first}", f"{root}/{second}"

    def cpu_bound(self) -> float:
        return max(self.cpu_request or 0.0, self.cpu_base * self.cpu_range[1] + 0.001)

    def mem_bound(self) -> float:
        return max(self.mem_request or 0.0, self.mem_base * self.mem_range[1] + 1.0)


@dataclass
class Pod:
    namespace: str
    name: str
    uid: str
    node: str | None  # None only for the pending pod
    start: int  # first running step (global index)
    end: int  # exclusive
    owner: tuple[str, str] | None  # (owner_kind, owner_name) of kube_pod_owner, None = no series
    workload: tuple[str, str]  # expected (workload_kind, workload_name)
    labels: dict[str, str]  # pod labels without the label_ prefix ({} = no kube_pod_labels)
    containers: list[Container]
    pvcs: list[tuple[str, str, float]] = field(default_factory=list)  # (claim, volume, bytes)
    duplicate: bool = False  # KSM series also emitted with job="kube-state-metrics"
    pending: bool = False  # requests only, never runs
    role: str = ""  # what the pod is in the simulation (for tests and humans)


@dataclass
class Node:
    name: str
    instance_type: str
    region: str
    zone: str
    provider_id: str
    arch: str
    spot: bool
    cpu_cores: float
    mem_bytes: float
    gpus: int
    cpu_price: list[float]  # $ per core-hour at each global step
    ram_price: list[float]  # $ per GiB-hour
    gpu_price: list[float]  # $ per GPU-hour
    # False: the node has no price series at all (cpu, ram, gpu, total, gpu count, spot); its price lists are 0
    priced: bool = True
    # kube_node_labels of the node without the label_ prefix; None: no such series
    labels: dict[str, str] | None = None


@dataclass
class Volume:
    name: str
    claim: str | None
    capacity: float  # bytes
    price: float  # $ per GiB-hour, constant
    role: str = ""
    provider_id: str = ""  # the disk's id in the cloud; '' writes the volume's name as its provider_id label


@dataclass
class ReplicaSet:
    namespace: str
    name: str
    deployment: str
    template_hash: str
    emit_owner: bool
    start: int = 0
    end: int = 0


@dataclass
class NetSeries:
    namespace: str
    pod_name: str
    internet: str
    same_zone: str
    same_region: str
    values: list[float]  # counter value at each global step

    @property
    def price_key(self) -> str | None:
        return network_price_key(self.internet, self.same_zone, self.same_region)


@dataclass
class LoadBalancer:
    namespace: str
    service: str
    ingress_ip: str
    price: float  # $ per hour


@dataclass
class Service:
    namespace: str
    name: str
    selector: dict[str, str]  # pod labels without the label_ prefix; {} selects nothing


@dataclass
class TenantSim:
    tenant: str
    index: int
    cluster_id: str
    cluster_name: str
    region: str
    nodes: list[Node]
    pods: list[Pod]
    volumes: list[Volume]
    namespace_labels: dict[str, dict[str, str]]  # without the label_ prefix
    replicasets: list[ReplicaSet]
    load_balancers: list[LoadBalancer]
    management_price: float
    network_prices: dict[str, float]  # zone/region/internet, $ per GiB
    network: list[NetSeries]
    savings_key: str
    services: list[Service] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# Building a tenant
# ---------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, tenant: str, index: int, hours: int, nodes: int, pods: int, step: int,
                 start: int, seed: int):
        self.tenant = tenant
        self.index = index
        self.hours = hours
        self.n_nodes = nodes
        self.n_pods = pods
        self.step = step
        self.start = start
        self.n = 3600 // step
        self.total = hours * self.n
        self.seed = seed
        self.rng = random.Random(f"kcw-sim|{seed}|{index}|{tenant}")
        # usage, restarts, services and the unpriced node draw from a generator of their own, so that the other
        # series keep their values for a given seed whatever those draw
        self.extra_rng = random.Random(f"kcw-sim-extra|{seed}|{index}|{tenant}")
        self.factor = 1.0 + 0.25 * index  # tenant price scale (exact in binary)
        self.names: set[tuple[str, str]] = set()
        self.pods: list[Pod] = []
        self.replicasets: list[ReplicaSet] = []

    # -- names ----------------------------------------------------------------------------------
    def suffix(self, k: int, rng: random.Random | None = None) -> str:
        return "".join((rng or self.rng).choice(_ALNUM) for _ in range(k))

    def uid(self, rng: random.Random | None = None) -> str:
        h = "".join((rng or self.rng).choice(_HEX) for _ in range(32))
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def pod_name(self, namespace: str, prefix: str, rng: random.Random | None = None) -> str:
        while True:
            name = f"{prefix}-{self.suffix(5, rng)}"
            if (namespace, name) not in self.names:
                self.names.add((namespace, name))
                return name

    def container(self, pod_uid: str, name: str, cpu_req: float | None, mem_req: float | None,
                  gpu: int = 0) -> Container:
        cpu_base = cpu_req if cpu_req else 0.05
        mem_base = mem_req if mem_req else 64 * MiB
        return Container(
            name=name, cpu_request=None if cpu_req is None else float(cpu_req),
            mem_request=None if mem_req is None else float(mem_req), gpu=gpu,
            cpu_base=cpu_base, cpu_range=(0.2, 1.5), mem_base=mem_base, mem_range=(0.5, 1.3),
            key=f"{self.seed}|{self.index}|{pod_uid}|{name}",
        )

    def add_pod(self, **kw) -> Pod:
        p = Pod(**kw)
        self.names.add((p.namespace, p.name))
        self.pods.append(p)
        return p

    def random_node(self) -> str:
        return self.rng.choice(self.node_names)

    # -- the cluster ----------------------------------------------------------------------------
    def build(self) -> TenantSim:
        rng = self.rng
        idx = self.index
        regions = ["us-central1", "europe-west1", "asia-east1", "us-east4"]
        self.region = regions[idx % len(regions)]
        zones = [f"{self.region}-a", f"{self.region}-b", f"{self.region}-c"]
        self.node_names = [f"gke-t{idx}-pool-{i % 2 + 1}-{''.join(rng.choice(_HEX) for _ in range(8))}-{self.suffix(4)}"
                           for i in range(self.n_nodes)]
        self.gpu_node = self.node_names[1] if self.n_nodes >= 2 else None
        self.spot_node = self.node_names[-1]
        # a node the cost-model has no prices for (no node_*_hourly_cost at all), running pods all the same
        self.unpriced_node = f"byo-t{idx}-{self.suffix(8, self.extra_rng)}"
        ns_labels = {ns: {"team": team, "env": env} for ns, (team, env) in NAMESPACES.items()}

        self.build_pods()
        self.build_unpriced_node_pods()
        self.plan_usage()
        volumes = self.build_volumes()
        nodes = self.build_nodes(zones, f"project-{idx}")
        net = self.build_network()

        f = self.factor
        octets = (34, 100 + idx % 100, rng.randint(0, 255), rng.randint(1, 254))
        lbs = [LoadBalancer("frontend", "web", ".".join(map(str, octets)), 0.025 * f)]  # "web" selects pods too
        return TenantSim(
            tenant=self.tenant, index=idx, cluster_id=f"{self.tenant}-cluster",
            cluster_name=f"{self.tenant}-cluster", region=self.region, nodes=nodes, pods=self.pods,
            volumes=volumes, namespace_labels=ns_labels, replicasets=self.replicasets,
            load_balancers=lbs, management_price=0.1,
            network_prices={"zone": 0.01 * f, "region": 0.02 * f, "internet": 0.12 * f},
            network=net, savings_key=f"{self.seed}|{idx}|savings", services=self.build_services(),
        )

    def peak_bounds(self, name: str) -> tuple[float, float]:
        """The highest sum of the allocation bounds (CPU cores, memory bytes) of the pods running on a node at once."""
        events: list[tuple[int, float, float]] = []
        for p in self.pods:
            if p.node == name and not p.pending:
                c = sum(x.cpu_bound() for x in p.containers)
                m = sum(x.mem_bound() for x in p.containers)
                events.append((p.start, c, m))
                events.append((p.end, -c, -m))
        events.sort(key=lambda e: (e[0], e[1]))  # ends before starts at the same step
        cur_c = cur_m = best_c = best_m = 0.0
        for _, c, m in events:
            cur_c += c
            cur_m += m
            best_c = max(best_c, cur_c)
            best_m = max(best_m, cur_m)
        return best_c, best_m

    def build_nodes(self, zones: list[str], project: str) -> list[Node]:
        """The priced nodes, then the unpriced one; each with capacity above the peak of its pods' bounds."""
        def capacity(name: str) -> tuple[float, float]:
            peak_cpu, peak_mem = peaks[name]
            return (float(max(4, 2 * math.ceil((peak_cpu * 1.25 + 1) / 2))),
                    float(max(16, math.ceil((peak_mem * 1.25 + 2 * GiB) / GiB)) * GiB))

        peaks = {name: self.peak_bounds(name) for name in [*self.node_names, self.unpriced_node]}
        nodes = []
        f = self.factor
        for i, name in enumerate(self.node_names):
            cores, mem = capacity(name)
            gpus = 1 if name == self.gpu_node else 0
            spot = name == self.spot_node
            zone = zones[i % len(zones)]
            if spot:
                cpu_p, ram_p = self.spot_schedule(0.00757 * f, 0.001015 * f)
            else:
                cpu_p = [round(0.031611 * f, 8)] * self.total
                ram_p = [round(0.004237 * f, 8)] * self.total
            gpu_p = [round(2.48 * f, 6) if gpus else 0.0] * self.total
            family, arch = NODE_FAMILIES[i % len(NODE_FAMILIES)]
            itype = "a2-highgpu-1g" if gpus else f"{family}-{int(cores)}"
            nodes.append(Node(
                name=name, instance_type=itype, region=self.region, zone=zone,
                provider_id=f"gce://{project}/{zone}/{name}", arch=arch, spot=spot,
                cpu_cores=cores, mem_bytes=mem, gpus=gpus, cpu_price=cpu_p, ram_price=ram_p,
                gpu_price=gpu_p, labels=self.node_labels(i, name, zone, arch),
            ))
        name = self.unpriced_node
        cores, mem = capacity(name)
        zero = [0.0] * self.total
        nodes.append(Node(
            name=name, instance_type="", region="", zone=zones[0], provider_id="", arch="amd64", spot=False,
            cpu_cores=cores, mem_bytes=mem, gpus=0, cpu_price=zero, ram_price=zero, gpu_price=zero, priced=False,
            labels={"kubernetes_io_hostname": name, "kubernetes_io_arch": "amd64"},  # no zone label
        ))
        return nodes

    def build_network(self) -> list[NetSeries]:
        """Egress counters of every class on a few pods that run the whole simulation."""
        rng = self.rng
        net = []
        net_pods = [p for p in self.pods if p.role in ("postgres", "gpu")
                    and p.start == 0 and p.end == self.total][:3]
        increments = {"internet": 20_000_000, "region": 5_000_000, "zone": 50_000_000, None: 100_000_000}
        for p in net_pods:
            for internet, same_zone, same_region, key in NETWORK_CLASSES:
                v = float(rng.randint(0, 10 ** 9))
                values = []
                for _ in range(self.total):
                    values.append(v)
                    v += float(rng.randint(1, increments[key]))
                net.append(NetSeries(p.namespace, p.name, internet, same_zone, same_region, values))
        return net

    def node_labels(self, i: int, name: str, zone: str, arch: str) -> dict[str, str] | None:
        """kube_node_labels of a priced node: the zone under today's label, under the deprecated one only (node 1),
        under both (node 0, as older clusters label), or no series at all (node 3)."""
        labels = {"kubernetes_io_hostname": name, "kubernetes_io_arch": arch}
        if i == 3:
            return None
        if i != 1:
            labels["topology_kubernetes_io_zone"] = zone
        if i in (0, 1):
            labels["failure_domain_beta_kubernetes_io_zone"] = zone
        return labels

    def build_services(self) -> list[Service]:
        """Services and their selectors: overlapping ones (the first by name wins), one matching nothing, one with
        an empty selector, one whose labels are only the namespace's, one in the wrong namespace."""
        services = [
            Service("frontend", "web", {"app": "web"}),  # the load balancer's; beats web-all on web's pods
            Service("frontend", "web-all", {"team": "web"}),  # web's and api-gateway's pods: wins the latter
            Service("backend", "backend", {"team": "commerce"}),  # beats the more specific "orders" by name
            Service("backend", "orders", {"app": "orders"}),
            Service("data", "postgres", {"app": "postgres", "team": "data"}),
            Service("data", "legacy", {"app": "legacy"}),  # matches no pod
            Service("data", "external-db", {}),  # an empty selector selects nothing
            Service("default", "web", {"app": "web"}),  # web's pods are in frontend: nothing here
            Service("monitoring", "prod", {"env": "prod"}),  # env is a namespace label, not the pods'
            Service("monitoring", "node-exporter", {"app": "node-exporter"}),
            Service("default", "ci-runner", {"app": "ci-runner"}),  # on the unpriced node
        ]
        generated = sorted({(p.namespace, p.workload[1]) for p in self.pods
                            if p.workload[0] == "deployment" and p.workload[1].startswith("svc-")})
        services += [Service(ns, name, {"app": name}) for ns, name in generated[::3]]
        return services

    def spot_schedule(self, cpu: float, ram: float) -> tuple[list[float], list[float]]:
        """Prices per step; in every hour the price changes once, at a step strictly inside it."""
        n = self.n
        rng = self.rng
        levels: list[tuple[float, float]] = []
        while len(levels) < self.hours + 1:
            lv = (round(cpu * rng.uniform(0.8, 1.2), 8), round(ram * rng.uniform(0.8, 1.2), 8))
            if not levels or (lv[0] != levels[-1][0] and lv[1] != levels[-1][1]):
                levels.append(lv)
        cpu_p: list[float] = []
        ram_p: list[float] = []
        for h in range(self.hours):
            c = rng.randint(max(1, n // 12), max(1, n - n // 12 - 1)) if n >= 2 else 0
            for j in range(n):
                lv = levels[h] if j < c else levels[h + 1]
                cpu_p.append(lv[0])
                ram_p.append(lv[1])
        return cpu_p, ram_p

    def build_pods(self) -> None:
        fixed = self.build_daemonset_pods()
        fixed += self.build_postgres_pods()
        fixed += self.build_reused_name_pods()
        fixed += self.build_cronjob_pods()
        fixed += self.build_ownerless_pods()
        deployments = self.deployment_plan(fixed)
        for di, d in enumerate(deployments):
            self.build_deployment(d, emit_owner=(di % 2 == 0), first=(di == 0))

    def build_daemonset_pods(self) -> int:
        """DaemonSet: one pod per node, all the time; KSM series duplicated. Returns the pods it counts."""
        for node in self.node_names:
            uid = self.uid()
            name = self.pod_name("monitoring", "node-exporter")
            self.add_pod(namespace="monitoring", name=name, uid=uid, node=node, start=0, end=self.total,
                         owner=("DaemonSet", "node-exporter"), workload=("daemonset", "node-exporter"),
                         labels={"app": "node-exporter", "team": "platform"},
                         containers=[self.container(uid, "node-exporter", 0.1, 128 * MiB)],
                         duplicate=True, role="daemonset")
        return len(self.node_names)

    def build_postgres_pods(self) -> int:
        """StatefulSet with volumes: postgres-0..2, each its own claim; postgres-0 and -1 share one; and a volume
        claimed by nobody. Plans the volumes (``volume_plan``); returns the pods it counts."""
        total = self.total
        self.volume_plan: list[tuple[str, str, float, float]] = []  # (pv, claim, capacity, price)
        std = 115.0 / (1 << 21) * self.factor  # ~ $0.04 per GiB-month, exact in binary
        ssd = 4 * std
        shared_pv = f"pvc-{self.uid()}"
        shared_cap = 20.0 * GiB
        self.volume_plan.append((shared_pv, "shared-media", shared_cap, std))
        for i in range(3):
            uid = self.uid()
            name = f"postgres-{i}"
            pv = f"pvc-{self.uid()}"
            cap = float((10 * (i + 1)) * GiB)
            self.volume_plan.append((pv, f"data-postgres-{i}", cap, ssd))
            pvcs = [(f"data-postgres-{i}", pv, cap)]
            if i < 2:
                pvcs.append(("shared-media", shared_pv, shared_cap / 2))
            self.add_pod(namespace="data", name=name, uid=uid, node=self.node_names[i % len(self.node_names)],
                         start=0, end=total, owner=("StatefulSet", "postgres"),
                         workload=("statefulset", "postgres"),
                         labels={"app": "postgres", "team": "data"},
                         containers=[self.container(uid, "postgres", 0.5, 1 * GiB),
                                     self.container(uid, "metrics-exporter", 0.05, 32 * MiB)],
                         pvcs=pvcs, role="postgres")
        self.volume_plan.append((f"pvc-{self.uid()}", None, 50.0 * GiB, std))  # claimed by nobody
        return 3

    def build_reused_name_pods(self) -> int:
        """The same pod name with two uids inside hour 0: A runs [0, n/3), B runs [2n/3, end). Counts as one."""
        n, total = self.n, self.total
        node = self.random_node()
        a_end = max(1, n // 3)
        b_start = min(max(a_end + 1, (2 * n) // 3), total - 1) if total > a_end + 1 else a_end
        for start, end, role in ((0, a_end, "reused-a"), (b_start, total, "reused-b")):
            if start >= end:
                continue
            uid = self.uid()
            self.add_pod(namespace="data", name="cache-0", uid=uid, node=node, start=start, end=end,
                         owner=("StatefulSet", "cache"), workload=("statefulset", "cache"),
                         labels={"app": "cache", "team": "data"},
                         containers=[self.container(uid, "redis", 0.25, 512 * MiB)], role=role)
        return 1

    def build_cronjob_pods(self) -> int:
        """CronJob: three short jobs inside every hour. Counts as three."""
        n, rng = self.n, self.rng
        for h in range(self.hours):
            for j in range(3):
                s = (j * n) // 3 + rng.randint(0, max(0, n // 20))
                d = rng.randint(1, max(1, n // 6))
                s = min(s, n - 1)
                e = min(n, s + d)
                t0 = self.start + (h * n + s) * self.step
                job = f"report-{(t0 // 60) % 10 ** 8:08d}"
                uid = self.uid()
                name = self.pod_name("batch", job)
                self.add_pod(namespace="batch", name=name, uid=uid, node=self.random_node(),
                             start=h * n + s, end=h * n + e, owner=("Job", job),
                             workload=("cronjob", "report"),
                             labels={"app": "report", "team": "reporting", "job_name": job},
                             containers=[self.container(uid, "report", 1.0, 2 * GiB)], role="cronjob")
        return 3

    def build_ownerless_pods(self) -> int:
        """A pod without any owner (no kube_pod_owner series, no labels, no memory request) and a static (mirror)
        pod owned by its node."""
        total = self.total
        uid = self.uid()
        self.add_pod(namespace="default", name="debug-shell", uid=uid, node=self.node_names[0], start=0,
                     end=total, owner=None, workload=("__unallocated__", "__unallocated__"), labels={},
                     containers=[self.container(uid, "shell", 0.1, None)], role="bare")
        uid = self.uid()
        node0 = self.node_names[0]
        self.add_pod(namespace="kube-system", name=f"kube-proxy-{node0}", uid=uid, node=node0, start=0,
                     end=total, owner=("Node", node0), workload=("__unallocated__", "__unallocated__"),
                     labels={"app": "kube-proxy", "team": "platform", "tier": "node"},
                     containers=[self.container(uid, "kube-proxy", 0.1, 64 * MiB)], role="node-owned")
        return 2

    def deployment_plan(self, fixed: int) -> list[dict]:
        """The named Deployments, then generated ones of up to 5 replicas until the tenant has its pods (``fixed``:
        the pods planned so far)."""
        rng = self.rng
        deployments: list[dict] = [
            dict(ns="frontend", name="web", replicas=3, sidecar=True, cpu=0.25, mem=256 * MiB),
            dict(ns="frontend", name="api-gateway", replicas=2, cpu=0.5, mem=512 * MiB, burst=True),
            dict(ns="backend", name="orders", replicas=2, cpu=0.5, mem=1 * GiB, rollout=True, oversized=True),
            dict(ns="backend", name="payments", replicas=2, cpu=0.25, mem=512 * MiB, pending=True),
        ]
        if self.gpu_node is not None:
            deployments.append(dict(ns="data", name="trainer", replicas=1, cpu=4.0, mem=16 * GiB, gpu=1,
                                    team="ml", stable=True))
        fixed += sum(d["replicas"] for d in deployments)
        extra = max(0, self.n_pods - fixed)
        namespaces = ["frontend", "backend", "data"]
        i = 0
        while extra > 0:
            r = min(5, extra)
            deployments.append(dict(ns=namespaces[i % 3], name=f"svc-{i:03d}", replicas=r,
                                    cpu=rng.choice([0.1, 0.25, 0.5, 1.0]),
                                    mem=float(rng.choice([128, 256, 512, 1024]) * MiB),
                                    sidecar=(i % 4 == 0)))
            extra -= r
            i += 1
        return deployments

    def build_unpriced_node_pods(self) -> None:
        """The unpriced node's pods: its node-exporter and a CI runner, running the whole simulation."""
        rng, node, total = self.extra_rng, self.unpriced_node, self.total
        uid = self.uid(rng)
        self.add_pod(namespace="monitoring", name=self.pod_name("monitoring", "node-exporter", rng), uid=uid,
                     node=node, start=0, end=total, owner=("DaemonSet", "node-exporter"),
                     workload=("daemonset", "node-exporter"), labels={"app": "node-exporter", "team": "platform"},
                     containers=[self.container(uid, "node-exporter", 0.1, 128 * MiB)], duplicate=True,
                     role="unpriced")  # as every node-exporter pod: its KSM series also come re-emitted
        uid = self.uid(rng)
        self.add_pod(namespace="default", name="ci-runner-0", uid=uid, node=node, start=0, end=total,
                     owner=("StatefulSet", "ci-runner"), workload=("statefulset", "ci-runner"),
                     labels={"app": "ci-runner", "team": "unknown"},
                     containers=[self.container(uid, "runner", 0.5, 1 * GiB)], role="unpriced")

    def plan_usage(self) -> None:
        """cAdvisor's view of the containers: image, counter start, which have no usage series, which restart.

        Restarts are mid-hour, on pods running since before the simulation (their counter is far above one
        step's usage, so a reset in the same series is a visible drop) whose name is theirs alone."""
        rng, n, step = self.extra_rng, self.n, self.step
        names = defaultdict(int)
        for p in self.pods:
            names[(p.namespace, p.name)] += 1
        first_exporter = next(p for p in self.pods if p.role == "daemonset")
        for p in self.pods:
            count = p.end - p.start
            for c in p.containers:
                c.image = f"{p.workload[1]}/{c.name}:1.{rng.randint(0, 9)}"
                if p.start == 0:
                    c.cpu_counter_start = round(c.cpu_base * step * rng.uniform(10, 100), 3)
                if p.role == "bare":
                    c.cpu_usage_series = c.mem_usage_series = False  # the debug shell: no cAdvisor series
                elif p.role == "node-owned":
                    c.mem_usage_series = False  # kube-proxy: a CPU counter only
                elif p.role == "deployment" and rng.random() < 0.04:
                    c.cpu_usage_series = c.mem_usage_series = False
                if p.start != 0 or names[(p.namespace, p.name)] > 1 or n < 8 or p.pending or not c.cpu_usage_series:
                    continue
                if p.name == "postgres-0" and c.name == "metrics-exporter":
                    restart, new_series = n // 2 + 3, False  # a reset inside the series: no id label
                elif p is first_exporter:
                    restart, new_series = n // 3 + 1, True
                elif p.role in ("deployment", "daemonset", "postgres") and rng.random() < 0.05:
                    restart, new_series = rng.randint(2, count - 1) if count > 2 else 0, rng.random() < 0.5
                else:
                    continue
                if 2 <= restart < count and restart % n >= 2:
                    c.restart, c.restart_new_series = restart, new_series

    def build_deployment(self, d: dict, emit_owner: bool, first: bool) -> None:
        n, total, rng = self.n, self.total, self.rng
        ns, deploy = d["ns"], d["name"]
        # ReplicaSet epochs: one, or two when the deployment rolls out mid-simulation (mid-hour)
        cut = total // 2 + n // 4 if d.get("rollout") else None
        if cut is not None and not (0 < cut < total):
            cut = None
        epochs = [(0, cut if cut is not None else total)]
        if cut is not None:
            epochs.append((cut, total))
        rss = []
        for s, e in epochs:
            h = self.suffix(10)
            rs = ReplicaSet(ns, f"{deploy}-{h}", deploy, h, emit_owner, s, e)
            rss.append(rs)
            self.replicasets.append(rs)
        team = d.get("team", NAMESPACES[ns][0])
        gpu = d.get("gpu", 0)
        node_choice = (lambda: self.gpu_node) if gpu else self.random_node
        for slot in range(d["replicas"]):
            node = node_choice()
            for rs in rss:
                k = rs.start
                life_first = True
                while k < rs.end:
                    if d.get("stable"):
                        end = rs.end
                    elif first and slot == 0 and k == 0:
                        end = max(1, n // 2)  # web's first pod is replaced at the middle of hour 0
                    elif life_first and rs.start == 0:
                        end = k + rng.randint(1, 12 * n)  # already running before the simulation
                    else:
                        end = k + rng.randint(max(1, n // 2), 12 * n)
                    end = min(end, rs.end)
                    life_first = False
                    uid = self.uid()
                    name = self.pod_name(ns, rs.name)
                    containers = [self.container(uid, deploy, d["cpu"], d["mem"], gpu)]
                    if d.get("burst"):  # uses more CPU than it requests all the time: an efficiency above 1
                        containers[0].cpu_range = (1.1, 1.6)
                    if d.get("oversized"):  # asks for far more than it uses: rightsizing recommends less
                        containers[0].cpu_range, containers[0].mem_range = (0.05, 0.3), (0.2, 0.45)
                    if d.get("sidecar"):
                        containers.append(self.container(uid, "istio-proxy", 0.1, 128 * MiB))
                    self.add_pod(namespace=ns, name=name, uid=uid, node=node, start=k, end=end,
                                 owner=("ReplicaSet", rs.name), workload=("deployment", deploy),
                                 labels={"app": deploy, "team": team, "pod_template_hash": rs.template_hash},
                                 containers=containers, duplicate=(first and slot == 0 and k == 0),
                                 role="gpu" if gpu else "deployment")
                    k = end
                    if not d.get("stable"):
                        node = node_choice()
        if d.get("pending"):
            rs = rss[-1]
            uid = self.uid()
            self.add_pod(namespace=ns, name=self.pod_name(ns, rs.name), uid=uid, node=None, start=0, end=total,
                         owner=None, workload=("deployment", deploy),
                         labels={"app": deploy, "team": team, "pod_template_hash": rs.template_hash},
                         containers=[self.container(uid, deploy, 8.0, 32 * GiB)], pending=True, role="pending")

    def build_volumes(self) -> list[Volume]:
        out = []
        for pv, claim, cap, price in self.volume_plan:
            role = "unclaimed" if claim is None else ("shared" if claim == "shared-media" else "claimed")
            out.append(Volume(name=pv, claim=claim, capacity=cap, price=price, role=role))
        return out
