"""Which workload (controller) a pod belongs to, OpenCost style."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from .series import Series

UNALLOCATED = "__unallocated__"
# A ReplicaSet is named <deployment>-<pod-template-hash>; the hash uses a restricted alphabet, 1-10 chars.
_TEMPLATE_HASH = re.compile(r"^(.+)-[a-z0-9]{6,10}$")
# A Job made by a CronJob is named <cronjob>-<scheduled time in minutes (8 digits) or seconds (10)>.
_CRONJOB_JOB = re.compile(r"^(.+)-(\d{8}|\d{10})$")


@dataclass
class Owners:
    pod_owner: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    replicaset_owner: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    job_owner: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def from_series(cls, pod_owner: list[Series], replicaset_owner: list[Series], job_owner: list[Series]) -> "Owners":
        owners = cls()
        of_pod: dict[tuple[str, str], list[Series]] = defaultdict(list)
        for s in pod_owner:
            of_pod[(s.labels.get("namespace", ""), s.labels.get("pod", ""))].append(s)
        for key, group in of_pod.items():
            # The controller before any other owner, so that a non-controlling owner never shadows it; then the
            # first in label order, so that the answer does not depend on the order the series came in.
            owner = group[0] if len(group) == 1 else min(group, key=lambda s: (
                s.labels.get("owner_is_controller") != "true", sorted(s.labels.items())))
            owners.pod_owner[key] = (owner.labels.get("owner_kind", ""), owner.labels.get("owner_name", ""))
        for s in replicaset_owner:
            key = (s.labels.get("namespace", ""), s.labels.get("replicaset", ""))
            owners.replicaset_owner.setdefault(key, (s.labels.get("owner_kind", ""), s.labels.get("owner_name", "")))
        for s in job_owner:
            key = (s.labels.get("namespace", ""), s.labels.get("job_name", ""))
            owners.job_owner.setdefault(key, (s.labels.get("owner_kind", ""), s.labels.get("owner_name", "")))
        return owners


def _usable(kind: str, name: str) -> bool:
    return bool(kind) and bool(name) and kind != "<none>"


def resolve_workload(owners: Owners, namespace: str, pod: str, pod_labels: dict[str, str]) -> tuple[str, str]:
    """``(workload_kind, workload_name)`` of a pod; ``__unallocated__`` for pods without a controller."""
    kind, name = owners.pod_owner.get((namespace, pod), ("", ""))
    if not _usable(kind, name) or kind == "Node":
        return UNALLOCATED, UNALLOCATED
    if kind == "ReplicaSet":
        parent_kind, parent_name = owners.replicaset_owner.get((namespace, name), ("", ""))
        if _usable(parent_kind, parent_name):
            return parent_kind.lower(), parent_name
        if (namespace, name) in owners.replicaset_owner:  # known to have no owner: a bare ReplicaSet
            return "replicaset", name
        template_hash = pod_labels.get("pod_template_hash", "")
        if template_hash and name.endswith("-" + template_hash):
            return "deployment", name[: -len(template_hash) - 1]
        match = _TEMPLATE_HASH.match(name)
        return ("deployment", match.group(1)) if match else ("replicaset", name)
    if kind == "Job":
        parent_kind, parent_name = owners.job_owner.get((namespace, name), ("", ""))
        if _usable(parent_kind, parent_name):
            return parent_kind.lower(), parent_name
        match = _CRONJOB_JOB.match(name)
        return ("cronjob", match.group(1)) if match else ("job", name)
    return kind.lower(), name
