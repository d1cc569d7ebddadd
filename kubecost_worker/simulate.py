"""Synthetic multi-tenant Kubecost cluster simulator with exact ground truth.

The simulator decides, per tenant, a cluster (nodes with price schedules, pods with start/stop steps,
requests and per-step usage, volumes, a load balancer, network counters...), writes it as an OpenMetrics
file for ``promtool tsdb create-blocks-from openmetrics`` and derives the ``k8s_expenses`` rows that
``docs/model.md`` expects from that *intent*: it never reads the file back and never calls the cost model.

Pure standard library, deterministic for a given seed. Usage values are not stored: each container
regenerates them from its own ``random.Random(key)`` both when the file is written and when the ground
truth is computed, so a 2,000-pod hour stays small in memory.

Conventions (see docs/model.md):

* the simulation covers ``[start, start + hours*3600)``, one sample every ``step`` seconds at
  ``start + k*step``; global step ``k`` stands for ``[start + k*step, start + (k+1)*step)``;
* a pod runs the steps ``[pod.start, pod.end)`` and has every per-pod sample exactly at those steps;
* node, volume, load balancer, management and network price series exist for the whole simulation.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

GiB = 1 << 30
MiB = 1 << 20

_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes
_HEX = "0123456789abcdef"

ROW_KEY = ("cloud_account_id", "hour", "namespace", "workload_kind", "workload_name", "pod", "node")
COST_FIELDS = ("cpu_cost", "ram_cost", "gpu_cost", "pv_cost", "network_cost", "lb_cost", "management_cost")
QUANTITY_FIELDS = ("cpu_core_hours", "ram_byte_hours", "gpu_hours", "pv_byte_hours")

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

    def cpu_allocations(self, count: int) -> list[float]:
        """container_cpu_allocation for the pod's ``count`` running steps: max(request, usage)."""
        rng = random.Random(self.key + "|cpu")
        req = float(self.cpu_request or 0.0)
        base = self.cpu_base
        lo, hi = self.cpu_range
        out = []
        for _ in range(count):
            u = round(base * rng.uniform(lo, hi), 4)
            out.append(u if u > req else req)
        return out

    def mem_allocations(self, count: int) -> list[float]:
        rng = random.Random(self.key + "|mem")
        req = float(self.mem_request or 0.0)
        base = self.mem_base
        lo, hi = self.mem_range
        out = []
        for _ in range(count):
            u = float(math.floor(base * rng.uniform(lo, hi)))
            out.append(u if u > req else req)
        return out

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
    price_change: list[int] = field(default_factory=list)  # spot: step offset of the change in each hour


@dataclass
class Volume:
    name: str
    claim: str | None
    capacity: float  # bytes
    price: float  # $ per GiB-hour, constant
    role: str = ""


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
        self.factor = 1.0 + 0.25 * index  # tenant price scale (exact in binary)
        self.names: set[tuple[str, str]] = set()
        self.pods: list[Pod] = []
        self.replicasets: list[ReplicaSet] = []

    # -- names ----------------------------------------------------------------------------------
    def suffix(self, k: int) -> str:
        return "".join(self.rng.choice(_ALNUM) for _ in range(k))

    def uid(self) -> str:
        h = "".join(self.rng.choice(_HEX) for _ in range(32))
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def pod_name(self, namespace: str, prefix: str) -> str:
        while True:
            name = f"{prefix}-{self.suffix(5)}"
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
        project = f"project-{idx}"
        self.node_names = [f"gke-t{idx}-pool-{i % 2 + 1}-{''.join(rng.choice(_HEX) for _ in range(8))}-{self.suffix(4)}"
                           for i in range(self.n_nodes)]
        self.gpu_node = self.node_names[1] if self.n_nodes >= 2 else None
        self.spot_node = self.node_names[-1]
        ns_labels = {ns: {"team": team, "env": env} for ns, (team, env) in NAMESPACES.items()}

        self.build_pods()
        volumes = self.build_volumes()

        # nodes: capacity above the peak of the running pods' allocation bounds
        peak_cpu: dict[str, float] = {}
        peak_mem: dict[str, float] = {}
        for name in self.node_names:
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
            peak_cpu[name] = best_c
            peak_mem[name] = best_m

        nodes = []
        f = self.factor
        for i, name in enumerate(self.node_names):
            cores = float(max(4, 2 * math.ceil((peak_cpu[name] * 1.25 + 1) / 2)))
            mem = float(max(16, math.ceil((peak_mem[name] * 1.25 + 2 * GiB) / GiB)) * GiB)
            gpus = 1 if name == self.gpu_node else 0
            spot = name == self.spot_node
            zone = zones[i % len(zones)]
            if spot:
                cpu_p, ram_p, changes = self.spot_schedule(0.00757 * f, 0.001015 * f)
            else:
                cpu_p = [round(0.031611 * f, 8)] * self.total
                ram_p = [round(0.004237 * f, 8)] * self.total
                changes = []
            gpu_p = [round(2.48 * f, 6) if gpus else 0.0] * self.total
            itype = ("a2-highgpu-1g" if gpus else "n2-custom") + f"-{int(cores)}-{int(mem // MiB)}"
            nodes.append(Node(
                name=name, instance_type=itype, region=self.region, zone=zone,
                provider_id=f"gce://{project}/{zone}/{name}", arch="amd64", spot=spot,
                cpu_cores=cores, mem_bytes=mem, gpus=gpus, cpu_price=cpu_p, ram_price=ram_p,
                gpu_price=gpu_p, price_change=changes,
            ))

        # network counters on a few pods that run the whole simulation
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

        octets = (34, 100 + idx % 100, rng.randint(0, 255), rng.randint(1, 254))
        lbs = [LoadBalancer("frontend", "web", ".".join(map(str, octets)), 0.025 * f)]
        return TenantSim(
            tenant=self.tenant, index=idx, cluster_id=f"{self.tenant}-cluster",
            cluster_name=f"{self.tenant}-cluster", region=self.region, nodes=nodes, pods=self.pods,
            volumes=volumes, namespace_labels=ns_labels, replicasets=self.replicasets,
            load_balancers=lbs, management_price=0.1,
            network_prices={"zone": 0.01 * f, "region": 0.02 * f, "internet": 0.12 * f},
            network=net, savings_key=f"{self.seed}|{idx}|savings",
        )

    def spot_schedule(self, cpu: float, ram: float) -> tuple[list[float], list[float], list[int]]:
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
        changes = []
        for h in range(self.hours):
            c = rng.randint(max(1, n // 12), max(1, n - n // 12 - 1)) if n >= 2 else 0
            changes.append(c)
            for j in range(n):
                lv = levels[h] if j < c else levels[h + 1]
                cpu_p.append(lv[0])
                ram_p.append(lv[1])
        return cpu_p, ram_p, changes

    def build_pods(self) -> None:
        n, total, rng = self.n, self.total, self.rng
        fixed = 0

        # DaemonSet: one pod per node, all the time; KSM series duplicated
        for node in self.node_names:
            uid = self.uid()
            name = self.pod_name("monitoring", "node-exporter")
            self.add_pod(namespace="monitoring", name=name, uid=uid, node=node, start=0, end=total,
                         owner=("DaemonSet", "node-exporter"), workload=("daemonset", "node-exporter"),
                         labels={"app": "node-exporter", "team": "platform"},
                         containers=[self.container(uid, "node-exporter", 0.1, 128 * MiB)],
                         duplicate=True, role="daemonset")
            fixed += 1

        # StatefulSet with volumes: postgres-0..2, each its own claim; postgres-0 and -1 share one
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
            fixed += 1
        self.volume_plan.append((f"pvc-{self.uid()}", None, 50.0 * GiB, std))  # claimed by nobody

        # the same pod name with two uids inside hour 0: A runs [0, n/3), B runs [2n/3, end)
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
        fixed += 1

        # CronJob: three short jobs inside every hour
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
        fixed += 3

        # no owner at all (no kube_pod_owner series, no labels, no memory request)
        uid = self.uid()
        self.add_pod(namespace="default", name="debug-shell", uid=uid, node=self.node_names[0], start=0,
                     end=total, owner=None, workload=("__unallocated__", "__unallocated__"), labels={},
                     containers=[self.container(uid, "shell", 0.1, None)], role="bare")
        # a static (mirror) pod owned by its node
        uid = self.uid()
        node0 = self.node_names[0]
        self.add_pod(namespace="kube-system", name=f"kube-proxy-{node0}", uid=uid, node=node0, start=0,
                     end=total, owner=("Node", node0), workload=("__unallocated__", "__unallocated__"),
                     labels={"app": "kube-proxy", "team": "platform", "tier": "node"},
                     containers=[self.container(uid, "kube-proxy", 0.1, 64 * MiB)], role="node-owned")
        fixed += 2

        # Deployments
        deployments: list[dict] = [
            dict(ns="frontend", name="web", replicas=3, sidecar=True, cpu=0.25, mem=256 * MiB),
            dict(ns="frontend", name="api-gateway", replicas=2, cpu=0.5, mem=512 * MiB),
            dict(ns="backend", name="orders", replicas=2, cpu=0.5, mem=1 * GiB, rollout=True),
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
        for di, d in enumerate(deployments):
            self.build_deployment(d, emit_owner=(di % 2 == 0), first=(di == 0))

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


def simulate(tenants: list[str], start: int, hours: int, nodes: int = 3, pods: int = 20,
             step: int = 60, seed: int = 0) -> "Simulation":
    """Decide a synthetic cluster per tenant. Nothing is written yet."""
    tenants = list(tenants)
    if not tenants:
        raise ValueError("at least one tenant is needed")
    if len(set(tenants)) != len(tenants):
        raise ValueError("tenants must be unique")
    if int(start) != start or start % 3600:
        raise ValueError("start must be a unix time on an hour boundary")
    if hours < 1:
        raise ValueError("hours must be >= 1")
    if nodes < 1:
        raise ValueError("nodes must be >= 1")
    if step <= 0 or 3600 % step:
        raise ValueError("step must divide 3600")
    sims = [_Builder(t, i, hours, nodes, pods, step, int(start), seed).build() for i, t in enumerate(tenants)]
    return Simulation(sims, int(start), hours, step, seed)


# ---------------------------------------------------------------------------------------------------
# The simulation: writing and ground truth
# ---------------------------------------------------------------------------------------------------

_Series = tuple[str, Iterable[int], "list[float] | float"]  # label string, steps, values (or a constant)


class Simulation:
    def __init__(self, tenants: list[TenantSim], start: int, hours: int, step: int, seed: int):
        self.tenants = tenants
        self.start = start
        self.hours = hours
        self.step = step
        self.seed = seed
        self.steps_per_hour = 3600 // step
        self.total_steps = hours * self.steps_per_hour
        self.series_written = 0
        self._truth: list[dict] | None = None

    # -- helpers -----------------------------------------------------------------------------------
    def timestamp(self, k: int) -> int:
        return self.start + k * self.step

    def hour_steps(self, h: int) -> range:
        n = self.steps_per_hour
        return range(h * n, (h + 1) * n)

    # -- OpenMetrics -------------------------------------------------------------------------------
    def write_openmetrics(self, path) -> int:
        """Write every series, family by family, streaming. Returns the number of samples."""
        ts = [str(self.start + k * self.step) for k in range(self.total_steps)]
        samples = 0
        series = 0
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for name, mtype, gen in self._families():
                typed = False
                for labels, steps, values in gen():
                    if not typed:
                        fh.write(f"# TYPE {name} {mtype}\n")
                        typed = True
                    prefix = f"{name}{{{labels}}} "
                    if isinstance(values, (int, float)):
                        values = float(values)
                    if isinstance(values, float):
                        mid = prefix + repr(values) + " "
                        chunk = [mid + ts[k] + "\n" for k in steps]
                    else:
                        chunk = [f"{prefix}{v!r} {ts[k]}\n" for k, v in zip(steps, values)]
                    if not chunk:
                        continue
                    fh.write("".join(chunk))
                    samples += len(chunk)
                    series += 1
            fh.write("# EOF\n")
        self.series_written = series
        return samples

    def _families(self) -> list[tuple[str, str, callable]]:
        f = []
        g = "gauge"
        f.append(("kubecost_cluster_info", g, self._gen_cluster_info))
        for metric, attr in (("node_cpu_hourly_cost", "cpu"), ("node_ram_hourly_cost", "ram"),
                             ("node_gpu_hourly_cost", "gpu"), ("node_gpu_count", "gpu_count"),
                             ("node_total_hourly_cost", "total"), ("kubecost_node_is_spot", "spot")):
            f.append((metric, g, lambda attr=attr: self._gen_node(attr)))
        f.append(("kube_node_status_capacity_cpu_cores", g, lambda: self._gen_capacity("cpu")))
        f.append(("kube_node_status_capacity_memory_bytes", g, lambda: self._gen_capacity("mem")))
        f.append(("kube_namespace_labels", g, self._gen_namespace_labels))
        f.append(("kube_pod_container_status_running", g, self._gen_running))
        f.append(("container_cpu_allocation", g, lambda: self._gen_allocation("cpu")))
        f.append(("container_memory_allocation_bytes", g, lambda: self._gen_allocation("mem")))
        f.append(("container_gpu_allocation", g, lambda: self._gen_allocation("gpu")))
        f.append(("kube_pod_container_resource_requests", g, self._gen_requests))
        f.append(("kube_pod_owner", g, self._gen_owner))
        f.append(("kube_replicaset_owner", g, self._gen_replicaset_owner))
        f.append(("kube_pod_labels", g, self._gen_pod_labels))
        f.append(("pod_pvc_allocation", g, self._gen_pvc))
        f.append(("pv_hourly_cost", g, lambda: self._gen_volume("price")))
        f.append(("kube_persistentvolume_capacity_bytes", g, lambda: self._gen_volume("capacity")))
        f.append(("kubecost_load_balancer_cost", g, self._gen_lb))
        f.append(("kubecost_cluster_management_cost", g, self._gen_management))
        for cls in ("zone", "region", "internet"):
            f.append((f"kubecost_network_{cls}_egress_cost", g, lambda cls=cls: self._gen_net_price(cls)))
        f.append(("kubecost_pod_network_egress_bytes_total", "unknown", self._gen_net_counter))
        f.append(("kubecost_savings_cpu_allocation", g, lambda: self._gen_savings("cpu")))
        f.append(("kubecost_savings_memory_allocation_bytes", g, lambda: self._gen_savings("mem")))
        return f

    @staticmethod
    def _tail(t: TenantSim, job: str = "kubecost") -> list[tuple[str, str]]:
        return [("job", job), ("tenant_id", t.tenant)]

    def _all(self) -> range:
        return range(self.total_steps)

    def _gen_cluster_info(self) -> Iterator[_Series]:
        for t in self.tenants:
            yield format_labels([("id", t.cluster_id), ("name", t.cluster_name), ("provider", "GCP"),
                                 ("provisioner", "GKE"), ("region", t.region)] + self._tail(t)), self._all(), 1.0

    def _gen_node(self, attr: str) -> Iterator[_Series]:
        for t in self.tenants:
            for nd in t.nodes:
                labels = format_labels([("node", nd.name), ("instance", nd.name),
                                        ("instance_type", nd.instance_type), ("region", nd.region),
                                        ("provider_id", nd.provider_id), ("arch", nd.arch)] + self._tail(t))
                if attr == "cpu":
                    yield labels, self._all(), nd.cpu_price
                elif attr == "ram":
                    yield labels, self._all(), nd.ram_price
                elif attr == "gpu":
                    yield labels, self._all(), nd.gpu_price
                elif attr == "gpu_count":
                    yield labels, self._all(), float(nd.gpus)
                elif attr == "spot":
                    yield labels, self._all(), 1.0 if nd.spot else 0.0
                else:
                    yield labels, self._all(), [
                        nd.cpu_cores * c + nd.mem_bytes / GiB * r + nd.gpus * g
                        for c, r, g in zip(nd.cpu_price, nd.ram_price, nd.gpu_price)]

    def _gen_capacity(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for nd in t.nodes:
                yield (format_labels([("node", nd.name)] + self._tail(t)), self._all(),
                       nd.cpu_cores if what == "cpu" else nd.mem_bytes)

    def _gen_namespace_labels(self) -> Iterator[_Series]:
        for t in self.tenants:
            for ns, labels in t.namespace_labels.items():
                pairs = [("namespace", ns)] + [(f"label_{k}", v) for k, v in sorted(labels.items())]
                yield format_labels(pairs + self._tail(t)), self._all(), 1.0

    @staticmethod
    def _jobs(p: Pod) -> tuple[str, ...]:
        return ("kube-state-metrics", "kubecost") if p.duplicate else ("kubecost",)

    def _gen_running(self) -> Iterator[_Series]:
        for t in self.tenants:
            for p in t.pods:
                if p.pending:
                    continue
                for c in p.containers:
                    for job in self._jobs(p):
                        yield (format_labels([("namespace", p.namespace), ("pod", p.name), ("container", c.name),
                                              ("uid", p.uid)] + self._tail(t, job)),
                               range(p.start, p.end), 1.0)

    @staticmethod
    def _groups(t: TenantSim) -> Iterator[list[Pod]]:
        """Running pods grouped by (namespace, name), in first-appearance order, each sorted by start.
        Series without a uid label of the pods of one group are one series."""
        groups: dict[tuple[str, str], list[Pod]] = {}
        for p in t.pods:
            if not p.pending:
                groups.setdefault((p.namespace, p.name), []).append(p)
        for g in groups.values():
            yield sorted(g, key=lambda p: p.start)

    def _merged(self, items: Iterable[tuple[str, int, int, "list[float] | float"]]) -> Iterator[_Series]:
        """Merge (labels, start, end, values) parts that share a label string into one series."""
        merged: dict[str, tuple[list[int], list[float]]] = {}
        order = []
        for labels, s, e, values in items:
            if labels not in merged:
                merged[labels] = ([], [])
                order.append(labels)
            steps, vals = merged[labels]
            steps.extend(range(s, e))
            vals.extend(values if isinstance(values, list) else [values] * (e - s))
        for labels in order:
            steps, vals = merged[labels]
            yield labels, steps, vals

    def _gen_allocation(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for group in self._groups(t):
                parts = []
                for p in group:
                    count = p.end - p.start
                    for c in p.containers:
                        labels = format_labels([("namespace", p.namespace), ("pod", p.name), ("container", c.name),
                                                ("node", p.node), ("instance", p.node)] + self._tail(t))
                        if what == "cpu":
                            values = c.cpu_allocations(count)
                        elif what == "mem":
                            values = c.mem_allocations(count)
                        else:
                            values = float(c.gpu)
                        parts.append((labels, p.start, p.end, values))
                if len(parts) == 1 or len(group) == 1:
                    for labels, s, e, values in parts:
                        yield labels, range(s, e), values
                else:
                    yield from self._merged(parts)

    def _gen_requests(self) -> Iterator[_Series]:
        for t in self.tenants:
            for p in t.pods:
                for c in p.containers:
                    for resource, unit, value in (("cpu", "core", c.cpu_request), ("memory", "byte", c.mem_request),
                                                  ("nvidia_com_gpu", "integer", float(c.gpu) if c.gpu else None)):
                        if value is None:
                            continue
                        for job in self._jobs(p):
                            pairs = [("namespace", p.namespace), ("pod", p.name), ("container", c.name)]
                            if p.node is not None:
                                pairs.append(("node", p.node))
                            pairs += [("resource", resource), ("unit", unit), ("uid", p.uid)]
                            yield format_labels(pairs + self._tail(t, job)), range(p.start, p.end), float(value)

    def _gen_owner(self) -> Iterator[_Series]:
        for t in self.tenants:
            for group in self._groups(t):
                parts = []
                for p in group:
                    if p.owner is None:
                        continue
                    for job in self._jobs(p):
                        labels = format_labels([("namespace", p.namespace), ("pod", p.name), ("owner_kind", p.owner[0]),
                                                ("owner_name", p.owner[1]), ("owner_is_controller", "true")]
                                               + self._tail(t, job))
                        parts.append((labels, p.start, p.end, 1.0))
                if len(group) == 1:
                    for labels, s, e, v in parts:
                        yield labels, range(s, e), v
                else:
                    yield from self._merged(parts)

    def _gen_replicaset_owner(self) -> Iterator[_Series]:
        for t in self.tenants:
            for rs in t.replicasets:
                if rs.emit_owner and rs.end > rs.start:
                    yield (format_labels([("namespace", rs.namespace), ("replicaset", rs.name),
                                          ("owner_kind", "Deployment"), ("owner_name", rs.deployment)]
                                         + self._tail(t)), range(rs.start, rs.end), 1.0)

    def _gen_pod_labels(self) -> Iterator[_Series]:
        for t in self.tenants:
            for p in t.pods:
                if p.pending or not p.labels:
                    continue
                pairs = [("namespace", p.namespace), ("pod", p.name), ("uid", p.uid)]
                pairs += [(f"label_{k}", v) for k, v in sorted(p.labels.items())]
                yield format_labels(pairs + self._tail(t)), range(p.start, p.end), 1.0

    def _gen_pvc(self) -> Iterator[_Series]:
        for t in self.tenants:
            for group in self._groups(t):
                parts = []
                for p in group:
                    for claim, volume, size in p.pvcs:
                        labels = format_labels([("namespace", p.namespace), ("pod", p.name),
                                                ("persistentvolumeclaim", claim), ("persistentvolume", volume)]
                                               + self._tail(t))
                        parts.append((labels, p.start, p.end, float(size)))
                yield from self._merged(parts)

    def _gen_volume(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for v in t.volumes:
                if what == "price":
                    yield (format_labels([("volumename", v.name), ("persistentvolume", v.name),
                                          ("provider_id", v.name)] + self._tail(t)), self._all(), v.price)
                else:
                    yield (format_labels([("persistentvolume", v.name)] + self._tail(t)), self._all(),
                           float(v.capacity))

    def _gen_lb(self) -> Iterator[_Series]:
        for t in self.tenants:
            for lb in t.load_balancers:
                yield (format_labels([("namespace", lb.namespace), ("service_name", lb.service),
                                      ("ingress_ip", lb.ingress_ip)] + self._tail(t)), self._all(), lb.price)

    def _gen_management(self) -> Iterator[_Series]:
        for t in self.tenants:
            yield format_labels([("provisioner_name", "GKE")] + self._tail(t)), self._all(), t.management_price

    def _gen_net_price(self, cls: str) -> Iterator[_Series]:
        for t in self.tenants:
            yield format_labels(self._tail(t)), self._all(), t.network_prices[cls]

    def _gen_net_counter(self) -> Iterator[_Series]:
        for t in self.tenants:
            for s in t.network:
                yield (format_labels([("namespace", s.namespace), ("pod_name", s.pod_name), ("internet", s.internet),
                                      ("same_zone", s.same_zone), ("same_region", s.same_region)]
                                     + self._tail(t, "kubecost-network-costs")), self._all(), s.values)

    def _gen_savings(self, what: str) -> Iterator[_Series]:
        for t in self.tenants:
            for ds in ("true", "false"):
                rng = random.Random(f"{t.savings_key}|{what}|{ds}")
                scale = 0.5 if what == "cpu" else float(GiB)
                v = scale * (1 + rng.random())
                values = []
                for _ in range(self.total_steps):
                    v = max(0.0, v + scale * rng.uniform(-0.05, 0.05))
                    values.append(round(v, 4) if what == "cpu" else float(math.floor(v)))
                yield format_labels([("daemonset", ds)] + self._tail(t)), self._all(), values

    # -- ground truth --------------------------------------------------------------------------------
    def ground_truth(self) -> list[dict]:
        """The k8s_expenses rows docs/model.md expects, from the simulation's intent."""
        if self._truth is None:
            rows: list[dict] = []
            for t in self.tenants:
                rows.extend(self._tenant_truth(t))
            self._truth = rows
        return [dict(r, labels=dict(r["labels"])) for r in self._truth]

    def write_ground_truth(self, path) -> None:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for row in self.ground_truth():
                fh.write(json.dumps(row, sort_keys=False) + "\n")

    def _row(self, t: TenantSim, h: int, namespace: str, kind: str, name: str, pod: str, node: str,
             labels: dict) -> dict:
        return {
            "cloud_account_id": t.tenant, "cluster_id": t.cluster_id, "hour": self.start + h * 3600,
            "namespace": namespace, "workload_kind": kind, "workload_name": name, "pod": pod, "node": node,
            "cpu_core_hours": 0.0, "ram_byte_hours": 0.0, "gpu_hours": 0.0, "pv_byte_hours": 0.0,
            "cpu_cost": 0.0, "ram_cost": 0.0, "gpu_cost": 0.0, "pv_cost": 0.0, "network_cost": 0.0,
            "lb_cost": 0.0, "management_cost": 0.0, "total_cost": 0.0, "labels": labels,
        }

    def _tenant_truth(self, t: TenantSim) -> list[dict]:
        n, step = self.steps_per_hour, self.step
        fsum = math.fsum
        nodes = {nd.name: nd for nd in t.nodes}
        volumes = {v.name: v for v in t.volumes}
        # key -> {field: [parts]}
        parts: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        meta: dict[tuple, tuple] = {}
        node_parts: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        vol_paid: dict[tuple[int, str], list[float]] = defaultdict(list)
        pod_rows: dict[tuple[int, str, str], list[tuple[float, tuple]]] = defaultdict(list)

        for p in t.pods:
            if p.pending:
                continue  # never ran: costs nothing
            nd = nodes[p.node]
            count = p.end - p.start
            cpu_allocs = [c.cpu_allocations(count) for c in p.containers]
            mem_allocs = [c.mem_allocations(count) for c in p.containers]
            labels = dict(t.namespace_labels.get(p.namespace, {}))
            labels.update(p.labels)
            for h in range(p.start // n, (p.end - 1) // n + 1):
                a, b = max(p.start, h * n), min(p.end, (h + 1) * n)
                cnt = b - a
                hours = cnt * step / 3600
                i0, i1 = a - p.start, b - p.start
                cpu_q, ram_q, gpu_q = [], [], []
                for c, ca, ma in zip(p.containers, cpu_allocs, mem_allocs):
                    cpu_q.append(max(fsum(ca[i0:i1]) / cnt, c.cpu_request or 0.0) * hours)
                    ram_q.append(max(fsum(ma[i0:i1]) / cnt, c.mem_request or 0.0) * hours)
                    gpu_q.append(max(float(c.gpu), float(c.gpu)) * hours)
                cpu_h, ram_h, gpu_h = fsum(cpu_q), fsum(ram_q), fsum(gpu_q)
                cpu_cost = cpu_h * (fsum(nd.cpu_price[a:b]) / cnt)
                ram_cost = ram_h / GiB * (fsum(nd.ram_price[a:b]) / cnt)
                gpu_cost = gpu_h * (fsum(nd.gpu_price[a:b]) / cnt)
                key = (h, p.namespace, p.workload[0], p.workload[1], p.name, p.node)
                meta.setdefault(key, labels)
                acc = parts[key]
                acc["cpu_core_hours"].append(cpu_h)
                acc["ram_byte_hours"].append(ram_h)
                acc["gpu_hours"].append(gpu_h)
                acc["cpu_cost"].append(cpu_cost)
                acc["ram_cost"].append(ram_cost)
                acc["gpu_cost"].append(gpu_cost)
                for _claim, volume, size in p.pvcs:
                    vol = volumes[volume]
                    bh = size * hours
                    cost = bh / GiB * vol.price
                    acc["pv_byte_hours"].append(bh)
                    acc["pv_cost"].append(cost)
                    vol_paid[(h, volume)].append(cost)
                    vol_paid[(h, volume, "bh")].append(bh)
                npart = node_parts[(h, p.node)]
                npart["cpu_core_hours"].append(cpu_h)
                npart["ram_byte_hours"].append(ram_h)
                npart["gpu_hours"].append(gpu_h)
                npart["cpu_cost"].append(cpu_cost)
                npart["ram_cost"].append(ram_cost)
                npart["gpu_cost"].append(gpu_cost)
                pod_rows[(h, p.namespace, p.name)].append((hours, key))

        # network: bytes of the hour from the last sample before it to the last one inside it
        for s in t.network:
            key_price = s.price_key
            for h in range(self.hours):
                lo = max(0, h * n - 1)
                hi = (h + 1) * n - 1
                v = s.values
                inc = [v[k] - v[k - 1] if v[k] >= v[k - 1] else v[k] for k in range(lo + 1, hi + 1)]
                gib = fsum(inc) / GiB
                cost = gib * t.network_prices[key_price] if key_price else 0.0
                candidates = pod_rows.get((h, s.namespace, s.pod_name))
                if not candidates:
                    continue  # the simulation only puts counters on pods that always run
                best = candidates[0]
                for c in candidates[1:]:
                    if c[0] > best[0]:
                        best = c
                parts[best[1]]["network_cost"].append(cost)

        by_hour: dict[int, list[tuple]] = defaultdict(list)
        for key in parts:
            by_hour[key[0]].append(key)
        out: list[dict] = []
        for h in range(self.hours):
            rows: list[dict] = []
            for key in by_hour.get(h, []):
                _, ns, kind, name, pod, node = key
                row = self._row(t, h, ns, kind, name, pod, node, dict(meta[key]))
                for fld, vals in parts[key].items():
                    row[fld] = fsum(vals)
                rows.append(row)
            hr = self.hour_steps(h)
            for nd in t.nodes:
                cap_cpu = fsum(nd.cpu_cores * nd.cpu_price[k] * step / 3600 for k in hr)
                cap_ram = fsum(nd.mem_bytes / GiB * nd.ram_price[k] * step / 3600 for k in hr)
                cap_gpu = fsum(nd.gpus * nd.gpu_price[k] * step / 3600 for k in hr)
                cap_cpu_h = fsum(nd.cpu_cores * step / 3600 for _ in hr)
                cap_ram_h = fsum(nd.mem_bytes * step / 3600 for _ in hr)
                cap_gpu_h = fsum(nd.gpus * step / 3600 for _ in hr)
                used = node_parts.get((h, nd.name), {})
                row = self._row(t, h, "__idle__", "__idle__", "__idle__", "", nd.name, {})
                row["cpu_cost"] = max(0.0, cap_cpu - fsum(used.get("cpu_cost", [])))
                row["ram_cost"] = max(0.0, cap_ram - fsum(used.get("ram_cost", [])))
                row["gpu_cost"] = max(0.0, cap_gpu - fsum(used.get("gpu_cost", [])))
                row["cpu_core_hours"] = max(0.0, cap_cpu_h - fsum(used.get("cpu_core_hours", [])))
                row["ram_byte_hours"] = max(0.0, cap_ram_h - fsum(used.get("ram_byte_hours", [])))
                row["gpu_hours"] = max(0.0, cap_gpu_h - fsum(used.get("gpu_hours", [])))
                rows.append(row)
            hours_active = n * step / 3600
            row = self._row(t, h, "__cluster_management__", "__cluster_management__", "__cluster_management__",
                            "", "", {})
            row["management_cost"] = t.management_price * hours_active
            rows.append(row)
            for lb in t.load_balancers:
                row = self._row(t, h, lb.namespace, "service", lb.service, "", "",
                                dict(t.namespace_labels.get(lb.namespace, {})))
                row["lb_cost"] = lb.price * hours_active
                rows.append(row)
            for vol in t.volumes:
                cost = vol.capacity / GiB * vol.price * hours_active
                unpaid = cost - fsum(vol_paid.get((h, vol.name), []))
                if unpaid > 1e-9 * cost:
                    row = self._row(t, h, "__unmounted__", "persistentvolume", vol.name, "", "", {})
                    row["pv_cost"] = unpaid
                    row["pv_byte_hours"] = max(0.0, vol.capacity * hours_active
                                               - fsum(vol_paid.get((h, vol.name, "bh"), [])))
                    rows.append(row)
            for row in rows:
                row["total_cost"] = fsum(row[f] for f in COST_FIELDS)
            rows.sort(key=lambda r: (r["namespace"], r["workload_kind"], r["workload_name"], r["pod"], r["node"]))
            out.extend(rows)
        return out

    # -- convenience for tests -------------------------------------------------------------------------
    def tenant(self, name: str) -> TenantSim:
        for t in self.tenants:
            if t.tenant == name:
                return t
        raise KeyError(name)


def write_simulation(out_dir, tenants, start, hours, nodes=3, pods=20, step=60, seed=0) -> dict:
    """Simulate and write ``out_dir/metrics.om`` and ``out_dir/ground_truth.jsonl``."""
    os.makedirs(out_dir, exist_ok=True)
    sim = simulate(tenants, start, hours, nodes=nodes, pods=pods, step=step, seed=seed)
    om = os.path.join(out_dir, "metrics.om")
    gt = os.path.join(out_dir, "ground_truth.jsonl")
    samples = sim.write_openmetrics(om)
    sim.write_ground_truth(gt)
    return {"openmetrics": om, "ground_truth": gt, "samples": samples, "series": sim.series_written}
