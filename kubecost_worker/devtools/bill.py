"""A simulated cloud bill: what an AWS account's FOCUS 1.0 export would hold for a simulation's nodes and volumes,
written in the real sample's column order and value formats, with the bill's exact totals as ground truth.

Per tenant (one AWS billing account, the tenant its sub-account), hourly lines:

* nodes, as EC2 instance-hours: on-demand (``Standard``, billed at the node's list price for the hour times
  ``ON_DEMAND_RATE``, a negotiated discount); every third hour of a node covered by a savings plan (``Committed``,
  ``BilledCost`` 0, ``EffectiveCost`` the amortised ``COMMITTED_RATE`` of the list price, the plan's hourly fee a
  ``Purchase`` line of its own); the spot node at ``SPOT_RATE`` of its (spot) list price (``Dynamic``); the first
  node's first hour partial (``ConsumedQuantity`` 0.75: launched a quarter into it); a credit on the first node
  mid-simulation (``Credit``, negative); one node deliberately left out of the bill (the last on-demand one, when
  there are two or more), and one instance that is no node, tagged with the cluster;
* volumes, as EBS volume-hours (``Storage``), at ``ON_DEMAND_RATE`` of their list price: the first one's first hour
  partial, the last one left out, one foreign volume tagged with the cluster.

A node's list price for an hour is what its price series say: cores x the hour's mean CPU price + GiB x RAM + GPUs x
GPU. Nodes without a provider id (the simulation's unpriced node) have no bill. Resource ids: the instance id of an
AWS ``providerID`` (``aws:///zone/i-...``), else a stable made-up ``i-...`` (the simulator's nodes are GKE's,
``gce://``); volumes a made-up ``vol-...``. The returned ground truth says which resource is which.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Sequence

from ..hours import utc
from ..store import schema
from ..store.bill import DECLARED, LOAD_COLUMNS
from .cluster import GiB, Node, TenantSim, Volume
from .simulation import Simulation

COLUMNS = tuple(c.name for c in schema.columns(DECLARED) if c.name not in LOAD_COLUMNS)  # the sample's order
ON_DEMAND_RATE = Decimal("0.95")
COMMITTED_RATE = Decimal("0.72")
SPOT_RATE = Decimal("1.08")  # the market's spot price above the one Kubecost's series say
CREDIT_RATE = Decimal("-0.5")  # of the credited hour's list cost
TRANSFER_RATE = Decimal("0.01")  # $ per GB, AWS's regional data transfer
PARTIAL_HOUR = Decimal("0.75")
HOURS_PER_MONTH = Decimal(730)  # AWS's GB-month of storage: a GB held 730 hours
CENT = Decimal("1e-11")  # the sample's amounts have 11 decimals
QUANTITY = Decimal("1e-15")  # and its consumed quantities 15
DECIMALS = {"BilledCost", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "ListCost", "PricingQuantity",
            "ConsumedQuantity"}
AWS = "Amazon Web Services, Inc."


@dataclass
class _Tenant:
    sim: TenantSim
    start: int
    steps_per_hour: int
    account: str
    plan_arn: str

    def tags(self, **more: str) -> str:
        cluster = self.sim.cluster_name
        return json.dumps({"eks:cluster-name": cluster, f"kubernetes.io/cluster/{cluster}": "owned", **more})


def _costs_by_resource_hour() -> defaultdict:
    return defaultdict(lambda: {"EffectiveCost": Decimal(0), "BilledCost": Decimal(0)})


@dataclass
class _Bill:
    lines: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=_costs_by_resource_hour)
    transfer: dict = field(default_factory=_costs_by_resource_hour)

    def add(self, line: dict, reconciled: bool = True) -> None:
        """``reconciled``: the line counts in its resource-hour's bill (else it is data transfer, which does not)."""
        line["Id"] = len(self.lines) + 1
        self.lines.append(line)
        total = (self.totals if reconciled else self.transfer)[(line["ResourceId"],
                                                                int(line["ChargePeriodStart"].timestamp()))]
        total["EffectiveCost"] += line["EffectiveCost"]
        total["BilledCost"] += line["BilledCost"]


def write_focus_bill(sim: Simulation, path: str | os.PathLike, seed: int | None = None) -> tuple[Path, dict]:
    """Write the bill of ``sim`` (a ``Simulation``: its tenants' nodes and volumes over its hours) to ``path`` as
    FOCUS CSV; returns the path and the ground truth:

    - ``totals``: (ResourceId, ChargePeriodStart in unix seconds) -> {"EffectiveCost": Decimal, "BilledCost":
      Decimal}, the sum of that resource-hour's lines exactly as written, which its reconciled cost must be;
    - ``transfer``: the same of the instances' data-transfer lines, which are written under the instance's id and
      reconcile nothing;
    - ``resource_ids``: (tenant, "node" or "volume", name) -> its ResourceId;
    - ``unbilled``: the (tenant, kind, name) of nodes and volumes without a line; ``foreign``: (tenant, ResourceId)
      of the lines that are no simulated resource; ``lines``: how many lines the file holds."""
    seed = sim.seed if seed is None else seed
    bill, truth = _Bill(), {"resource_ids": {}, "unbilled": [], "foreign": []}
    for t in sim.tenants:
        account = str(int(_digest(seed, t.tenant, "account")[:12], 16) % 10**12).zfill(12)
        plan = f"arn:aws:savingsplans::{account}:savingsplan/{uuid.UUID(_digest(seed, t.tenant, 'plan')[:32])}"
        tenant = _Tenant(t, sim.start, sim.steps_per_hour, account, plan)
        _node_lines(bill, truth, tenant, sim.hours, seed)
        _volume_lines(bill, truth, tenant, sim.hours, seed)
    _write_csv(Path(path), bill.lines)
    truth.update(totals=dict(bill.totals), transfer=dict(bill.transfer), lines=len(bill.lines))
    return Path(path), truth


def _digest(seed: int, *parts: str) -> str:
    return hashlib.sha256("|".join([str(seed), *parts]).encode()).hexdigest()


def instance_id(node: Node, tenant: str, seed: int) -> str:
    """The node's EC2 instance id: its AWS providerID's last part, else a stable made-up one."""
    if node.provider_id.startswith("aws://"):
        return node.provider_id.rsplit("/", 1)[-1]
    return f"i-0{_digest(seed, tenant, 'node', node.name)[:16]}"


def volume_id(volume: Volume, tenant: str, seed: int) -> str:
    """The volume's EBS id: its provider id where that is one, else a stable made-up one."""
    if volume.provider_id.startswith("vol-"):
        return volume.provider_id
    return f"vol-0{_digest(seed, tenant, 'volume', volume.name)[:16]}"


def as_eks(sim: Simulation, seed: int | None = None, instance_ids: Sequence[str] | None = None) -> Simulation:
    """``sim`` as EKS clusters would send it (changed in place, before it is written): each priced node's providerID
    ``aws:///zone/i-...`` and each volume's provider id ``vol-...``, the ids its bill gives them, so the bill's
    lines match the nodes and volumes by the reconciliation's matching rule.

    ``instance_ids``: the priced nodes' instance ids, tenant by tenant and node by node, instead of made-up ones:
    the nodes of a real bill's instances."""
    seed = sim.seed if seed is None else seed
    priced = [(t, node) for t in sim.tenants for node in t.nodes if node.provider_id]
    if instance_ids is not None and len(instance_ids) != len(priced):
        raise ValueError(f"{len(instance_ids)} instance ids for {len(priced)} priced nodes")
    for k, (t, node) in enumerate(priced):
        iid = instance_id(node, t.tenant, seed) if instance_ids is None else instance_ids[k]
        node.provider_id = f"aws:///{node.zone}/{iid}"
    for t in sim.tenants:
        for volume in t.volumes:
            volume.provider_id = volume_id(volume, t.tenant, seed)
    return sim


def _node_lines(bill: _Bill, truth: dict, t: _Tenant, hours: int, seed: int) -> None:
    priced = [n for n in t.sim.nodes if n.provider_id]
    on_demand = [n for n in priced if not n.spot]
    left_out = on_demand[-1] if len(on_demand) >= 2 else None
    for node in t.sim.nodes:
        if node not in priced or node is left_out:
            truth["unbilled"].append((t.sim.tenant, "node", node.name))
            continue
        rid = truth["resource_ids"][(t.sim.tenant, "node", node.name)] = instance_id(node, t.sim.tenant, seed)
        first = node is on_demand[0] if on_demand else False
        for h in range(hours):
            price = _node_hour_price(node, h, t.steps_per_hour)
            quantity = PARTIAL_HOUR if first and h == 0 else Decimal(1)
            if node.spot:
                bill.add(_instance_line(t, h, node, rid, price, quantity, "Dynamic"))
            elif (h + on_demand.index(node)) % 3 == 2:
                bill.add(_instance_line(t, h, node, rid, price, quantity, "Committed"))
                bill.add(_plan_fee_line(t, h, bill.lines[-1]["EffectiveCost"]))
            else:
                bill.add(_instance_line(t, h, node, rid, price, quantity, "Standard"))
            if first and h == hours // 2:
                bill.add(_credit_line(t, h, rid, _amount(price * CREDIT_RATE)))
            if first:
                bill.add(_transfer_line(t, h, rid, Decimal(3 + h % 5)), reconciled=False)
    if priced:
        # an instance of the cluster's (its tags say so) that no node is: priced as the first node, mid-simulation
        foreign, h = f"i-0{_digest(seed, t.sim.tenant, 'foreign')[:16]}", hours // 2
        truth["foreign"].append((t.sim.tenant, foreign))
        price = _node_hour_price(priced[0], h, t.steps_per_hour)
        bill.add(_instance_line(t, h, priced[0], foreign, price, Decimal(1), "Standard", name="foreign"))


def _node_hour_price(node: Node, h: int, n: int) -> Decimal:
    """$ for the hour at the node's price series (the hour's mean price of each resource times its capacity)."""
    steps = range(h * n, (h + 1) * n)
    cpu = sum(node.cpu_price[k] for k in steps) / n
    ram = sum(node.ram_price[k] for k in steps) / n
    gpu = sum(node.gpu_price[k] for k in steps) / n
    return Decimal(repr(node.cpu_cores * cpu + node.mem_bytes / GiB * ram + node.gpus * gpu)).quantize(CENT)


def _amount(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def _base(t: _Tenant, h: int, service_category: str) -> dict:
    """What every line of the tenant's hour ``h`` says: account, periods, provider, region."""
    start = utc(t.start + h * 3600)
    month = start.replace(day=1, hour=0, minute=0, second=0)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    return {
        "BillingAccountId": t.account, "BillingAccountName": "simulated", "BillingCurrency": "USD",
        "BillingPeriodEnd": next_month, "BillingPeriodStart": month, "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based", "ChargePeriodEnd": start + dt.timedelta(hours=1), "ChargePeriodStart": start,
        "InvoiceIssuerName": AWS, "ProviderName": "AWS", "PublisherName": AWS, "RegionId": t.sim.region,
        "RegionName": t.sim.region, "ServiceCategory": service_category, "ServiceName": "Amazon Elastic Compute Cloud",
        "SubAccountId": t.sim.tenant, "SubAccountName": t.sim.cluster_name,
    }


def _instance_line(t: _Tenant, h: int, node: Node, rid: str, price: Decimal, quantity: Decimal, pricing: str,
                   name: str | None = None) -> dict:
    """An instance-hour: ``pricing`` Standard (on demand), Committed (a savings plan's) or Dynamic (spot)."""
    rate = {"Standard": ON_DEMAND_RATE, "Committed": COMMITTED_RATE, "Dynamic": SPOT_RATE}[pricing]
    effective = _amount(price * rate * quantity)
    kind = "Spot" if pricing == "Dynamic" else "On Demand"
    line = {
        **_base(t, h, "Compute"), "AvailabilityZone": node.zone,
        "BilledCost": Decimal(0) if pricing == "Committed" else effective, "EffectiveCost": effective,
        "ChargeDescription": f"${price.normalize():f} per {kind} Linux {node.instance_type} Instance Hour",
        "ConsumedQuantity": quantity, "ConsumedUnit": "Hours", "PricingQuantity": quantity, "PricingUnit": "Hours",
        "ContractedCost": _amount(price * ON_DEMAND_RATE * quantity),
        "ContractedUnitPrice": _amount(price * ON_DEMAND_RATE), "ListCost": _amount(price * quantity),
        "ListUnitPrice": price, "PricingCategory": pricing, "ResourceId": rid, "ResourceType": "instance",
        "SkuId": _sku(node.instance_type, kind), "Tags": t.tags(Name=name or node.name),
    }
    if pricing == "Committed":
        line.update(CommitmentDiscountCategory="Spend", CommitmentDiscountId=t.plan_arn,
                    CommitmentDiscountStatus="Used", CommitmentDiscountType="Savings Plan")
    line["SkuPriceId"] = f"{line['SkuId']}.JRTCKXETXF.6YS6EN2CT7"
    return line


def _sku(instance_type: str, kind: str) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    number = int(hashlib.sha256(f"{instance_type}|{kind}".encode()).hexdigest(), 16)
    return "".join(alphabet[(number >> (5 * i)) & 31] for i in range(16))


def _plan_fee_line(t: _Tenant, h: int, covered: Decimal) -> dict:
    """The savings plan's fee for what it covered in the hour: billed here, amortised onto the covered line."""
    return {**_base(t, h, "Compute"), "BilledCost": covered, "EffectiveCost": Decimal(0), "ListCost": Decimal(0),
            "ContractedCost": covered, "ChargeCategory": "Purchase", "ChargeFrequency": "Recurring",
            "ChargeDescription": "Savings Plan recurring fee", "CommitmentDiscountCategory": "Spend",
            "CommitmentDiscountId": t.plan_arn, "CommitmentDiscountType": "Savings Plan",
            "PricingCategory": "Committed", "PricingQuantity": Decimal(1), "PricingUnit": "Hours",
            "ResourceId": t.plan_arn, "ServiceName": "Savings Plans for AWS Compute usage"}


def _transfer_line(t: _Tenant, h: int, rid: str, gigabytes: Decimal) -> dict:
    """The instance's data transfer in the hour, billed as Compute usage under its id, as AWS writes it."""
    cost = _amount(TRANSFER_RATE * gigabytes)
    return {**_base(t, h, "Compute"), "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost,
            "ContractedCost": cost, "ContractedUnitPrice": TRANSFER_RATE, "ListUnitPrice": TRANSFER_RATE,
            "ChargeDescription": f"${TRANSFER_RATE} per GB - regional data transfer - in/out/between EC2 AZs or "
                                 "using elastic IPs or ELB",
            "ConsumedQuantity": gigabytes, "ConsumedUnit": "GB", "PricingQuantity": gigabytes, "PricingUnit": "GB",
            "PricingCategory": "Standard", "ResourceId": rid, "SkuId": _sku("transfer", "GB"), "Tags": t.tags()}


def _credit_line(t: _Tenant, h: int, rid: str, amount: Decimal) -> dict:
    return {**_base(t, h, "Compute"), "BilledCost": amount, "EffectiveCost": amount, "ListCost": amount,
            "ContractedCost": amount, "ChargeCategory": "Credit", "ChargeFrequency": "One-Time",
            "ChargeDescription": "Simulated promotional credit", "PricingCategory": "Other",
            "PricingQuantity": Decimal(0), "PricingUnit": "Hours", "ResourceId": rid, "Tags": t.tags()}


def _volume_lines(bill: _Bill, truth: dict, t: _Tenant, hours: int, seed: int) -> None:
    volumes = list(t.sim.volumes)
    for volume in volumes:
        rid = volume_id(volume, t.sim.tenant, seed)
        if volume is volumes[-1]:
            truth["unbilled"].append((t.sim.tenant, "volume", volume.name))
            continue
        truth["resource_ids"][(t.sim.tenant, "volume", volume.name)] = rid
        for h in range(hours):
            quantity = Decimal("0.5") if volume is volumes[0] and h == 0 else Decimal(1)
            bill.add(_volume_line(t, h, volume, rid, quantity))
    if volumes:
        foreign = f"vol-0{_digest(seed, t.sim.tenant, 'foreign-volume')[:16]}"
        truth["foreign"].append((t.sim.tenant, foreign))
        bill.add(_volume_line(t, hours // 2, volumes[0], foreign, Decimal(1)))


def _volume_line(t: _Tenant, h: int, volume: Volume, rid: str, quantity: Decimal) -> dict:
    """A gp3 volume's hour: its list price the volume's price per GiB-hour times its GiB."""
    gib = Decimal(repr(volume.capacity / GiB))
    hourly = Decimal(repr(volume.price))
    month_price = (hourly * HOURS_PER_MONTH).quantize(CENT)
    cost = _amount(gib * hourly * quantity * ON_DEMAND_RATE)
    gb_months = (gib * quantity / HOURS_PER_MONTH).quantize(QUANTITY)
    return {
        **_base(t, h, "Storage"), "BilledCost": cost, "EffectiveCost": cost,
        "ChargeDescription": f"${month_price.normalize():f} per GB-month of General Purpose (gp3) provisioned storage",
        "ConsumedQuantity": gb_months, "ConsumedUnit": "GB-Months", "PricingQuantity": gb_months,
        "PricingUnit": "GB-Months", "ContractedCost": cost,
        "ContractedUnitPrice": _amount(month_price * ON_DEMAND_RATE),
        "ListCost": _amount(gib * hourly * quantity), "ListUnitPrice": month_price, "PricingCategory": "Standard",
        "ResourceId": rid, "ResourceType": "volume", "SkuId": _sku("gp3", "volume"),
        "Tags": t.tags(**{"kubernetes.io/created-for/pv/name": volume.name}),
    }


def _write_csv(path: Path, lines: list[dict]) -> None:
    """As the sample writes it: every name and text quoted, NULL and numbers bare (but ListUnitPrice, quoted),
    amounts with 11 decimals and consumed quantities with 15, times ``YYYY-MM-DD HH:MM:SS`` UTC, Unix line ends."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(_quoted(c) for c in COLUMNS) + "\n")
        for line in lines:
            out.write(",".join(_value(column, line.get(column)) for column in COLUMNS) + "\n")


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _value(column: str, value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dt.datetime):
        return _quoted(f"{value:%Y-%m-%d %H:%M:%S}")
    if column == "ListUnitPrice":
        return _quoted(f"{value.normalize():f}")
    if column in DECIMALS:
        return f"{value:.15f}" if column == "ConsumedQuantity" else f"{value:.11f}"
    if column == "Id":
        return str(value)
    return _quoted(str(value))
