"""The allocation API's requests: OpenCost's aggregation, filters and sharing over the stored rows, and rightsizing.

A request is parsed once into a frozen ``AllocationRequest`` (a bad value raises ``BadParameter`` naming the
parameter, a required one absent ``MissingParameter``); ``allocation`` turns it into SQL over ``k8s_expenses`` (or
the namespace rollup where that holds every figure asked for), with every value a bound parameter, and the days
sealed in the daily tier (their hours may be gone) from their daily rows at every step but ``hour``; with sharing,
``sharing`` decides each domain's coefficients from a first query's totals and a second applies them (docs/api.md,
"Sharing"). docs/api.md is the reference, with an example per parameter.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..hours import DAY, HOUR, utc
from ..model.rows import COST_FIELDS, IDLE, MANAGEMENT, UNMOUNTED
from ..model.workload import UNALLOCATED
from ..store import days, schema
from ..store.days import SealedDay
from . import metroculus, sharing

SPECIAL_NAMESPACES = (IDLE, MANAGEMENT, UNMOUNTED)
LABEL_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class BadParameter(ValueError):
    """A request parameter that cannot be read: its name is the error's ``params``."""

    def __init__(self, name: str, why: str = ""):
        super().__init__(why or f"Invalid {name}")
        self.name = name


class MissingParameter(BadParameter):
    """A required parameter absent, or blank (which reads as absent)."""

    def __init__(self, name: str):
        super().__init__(name, f"{name} is not provided")


# OpenCost's aggregation properties, each one output field, as SQL over k8s_expenses and its rollups (which
# name their columns alike). Rows that are no pod's (idle, cluster management, unmounted volumes) take their
# namespace's name in every property but cluster and node, as OpenCost names them; a row without the property
# groups under __unallocated__.
DIMENSIONS: dict[str, str] = {
    "cluster": "cluster_id",
    "node": f"if(node = '', '{UNALLOCATED}', node)",
    "namespace": "namespace",
    "controllerKind": f"if(workload_kind IN ('', '{UNALLOCATED}'), '{UNALLOCATED}', workload_kind)",
    "controller": (f"if(workload_name IN ('', '{UNALLOCATED}'), '{UNALLOCATED}', "
                   "concat(workload_kind, ':', workload_name))"),
    "pod": f"if(pod = '', '{UNALLOCATED}', pod)",
    "container": f"if(container = '', '{UNALLOCATED}', container)",
    "service": f"if(service = '', '{UNALLOCATED}', service)",
}
# The names of the first version of this endpoint, still answered: workload is the three properties it grouped by.
ALIASES = {"workload": ("namespace", "controllerKind", "controller")}
KEEPS_ITS_NAME = ("cluster", "node")
# filter= fields: the column each compares.
FILTER_FIELDS = {"cluster": "cluster_id", "node": "node", "namespace": "namespace", "controllerKind": "workload_kind",
                 "controllerName": "workload_name", "pod": "pod", "container": "container", "service": "service"}
# What each rollup can answer (dimensions, filter fields; labels: whether label:<key> and label[<key>] are in it).
# A request is read from the smallest table that holds all it asks for (migrations 0005 and 0012).
WORKLOAD_ROLLUP = "k8s_expenses_workload_hourly"
ROLLUPS = (
    (metroculus.NAMESPACE_ROLLUP, {"cluster", "namespace"}, {"cluster", "namespace"}, False),
    (WORKLOAD_ROLLUP, {"cluster", "namespace", "controllerKind", "controller", "container", "service"},
     {"cluster", "namespace", "controllerKind", "controllerName", "container", "service"}, True),
)
STEPS = {"hour": "toUnixTimestamp(hour)", "day": "toUnixTimestamp(toStartOfDay(hour))",
         "week": "toUnixTimestamp(toDateTime(toMonday(hour), 'UTC'))",
         "month": "toUnixTimestamp(toDateTime(toStartOfMonth(hour), 'UTC'))",
         "window": "toUnixTimestamp(toStartOfHour(toDateTime({start:Int64}, 'UTC')))"}
# A row of k8s_expenses's part of the *_with_usage figures: its request or cost where its usage is known.
WITH_USAGE_SQL = {
    "cpu_request_core_hours_with_usage": "if(cpu_usage_core_hours IS NULL, 0., cpu_request_core_hours)",
    "ram_request_byte_hours_with_usage": "if(ram_usage_byte_hours IS NULL, 0., ram_request_byte_hours)",
    "cpu_cost_with_usage": "if(cpu_usage_core_hours IS NULL, 0., cpu_cost)",
    "ram_cost_with_usage": "if(ram_usage_byte_hours IS NULL, 0., ram_cost)",
}
FIGURES_SQL = {
    **{name: f"sum({name})" for name in (*sharing.COSTS, *sharing.QUANTITIES, *sharing.USAGE)},
    **{name: f"sum({part})" for name, part in WITH_USAGE_SQL.items()},
}
# the rollups and the daily tier hold each figure's sum
ROLLUP_FIGURES_SQL = {name: f"sum({name})" for name in sharing.FIGURES}
# The daily tier's table that answers in the place of each hourly source: the namespace rollup's (about 10 rows a
# day) for what the hourly namespace rollup answers, the daily rows themselves for the rest.
DAILY_SOURCES = {metroculus.NAMESPACE_ROLLUP: days.NAMESPACE_BY_DAY}
# k8s_expenses_current's columns, the costs reconciled with the cloud bill (reconcile=true)
RECONCILED = days.RECONCILED_SOURCE
# The columns of each hourly source an answer may name (dimensions, filters, roles, idle by node), which its daily
# source has alike: a sealed day's rows join the hourly ones under these names.
SOURCE_COLUMNS = {
    metroculus.NAMESPACE_ROLLUP: ("cluster_id", "namespace"),
    WORKLOAD_ROLLUP: ("cluster_id", "namespace", "workload_kind", "workload_name", "container", "service", "labels"),
    **dict.fromkeys(("k8s_expenses", RECONCILED), ("cluster_id", "node", "namespace", "workload_kind",
                                                   "workload_name", "pod", "container", "service", "labels")),
}
ROW_SOURCES = ("k8s_expenses", RECONCILED)  # a row per container-hour: the *_with_usage figures are computed
# A sealed day's reconciled figures: the daily tier's *_reconciled column of each figure that has one.
RECONCILED_BY_DAY = {name: f"{name}_reconciled" for name in sharing.FIGURES
                     if f"{name}_reconciled" in {c.name for c in schema.columns(days.EXPENSES_BY_DAY)}}
# The figures of an answer's row after its dimensions, in order (JSON keys and CSV columns alike).
ROW_FIGURES = (*COST_FIELDS, "shared_cost", "idle_cost", "total_cost", "cpu_core_hours", "ram_byte_hours", "gpu_hours",
               "cpu_request_core_hours", "ram_request_byte_hours", "cpu_usage_core_hours", "ram_usage_byte_hours",
               "cpu_request_average_cores", "ram_request_average_bytes", "cpu_usage_average_cores",
               "ram_usage_average_bytes", "cpu_efficiency", "ram_efficiency", "total_efficiency")


@dataclass(frozen=True)
class Dimension:
    name: str  # the output field: an OpenCost property, or label:<key>
    label: str | None = None


@dataclass(frozen=True)
class Clause:
    field: str  # a FILTER_FIELDS name, or label
    label: str | None
    operator: str  # ":", "!:" or "~:"
    values: tuple[str, ...]


@dataclass(frozen=True)
class AllocationRequest:
    dimensions: tuple[Dimension, ...]
    step: str = "window"
    filters: tuple[Clause, ...] = ()
    policy: sharing.SharePolicy = field(default_factory=sharing.SharePolicy)
    share_namespaces: tuple[str, ...] = ()
    share_labels: tuple[tuple[str, str], ...] = ()
    reconcile: bool = False  # OpenCost's parameter: the costs the cloud bill pays (docs/reconciliation.md)

    @property
    def shares(self) -> bool:
        return (self.policy.share_idle or self.policy.share_tenancy or bool(self.share_namespaces)
                or bool(self.share_labels))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)


# -- parsing ---------------------------------------------------------------------------------------------------
# One rule for every parameter, as Tornado (and so Metroculus) reads its own: the blanks around a value are
# stripped, and a value blank then is as if absent: the parameter's default, or "not provided" where it is
# required (aggregate). The API and the export command read them through these functions alone.

def parameter(params, name: str) -> str | None:
    """``name``'s value in ``params`` (Starlette's ``QueryParams`` or any mapping) without the blanks around it;
    None when absent or blank."""
    value = params.get(name)
    return None if value is None else value.strip() or None


def parse_choice(name: str, value: str | None, choices: tuple[str, ...]) -> str:
    """One of ``choices``; the first when absent or blank."""
    chosen = (value or "").strip() or choices[0]
    if chosen not in choices:
        raise BadParameter(name)
    return chosen


def parse_aggregate(value: str | None) -> tuple[Dimension, ...]:
    if value is None or not value.strip():
        raise MissingParameter("aggregate")
    dimensions: list[Dimension] = []
    for item in (part.strip() for part in value.split(",")):
        if item in ALIASES:
            dimensions.extend(Dimension(name) for name in ALIASES[item])
        elif item in DIMENSIONS:
            dimensions.append(Dimension(item))
        elif item.startswith("label:") and LABEL_KEY.fullmatch(item.removeprefix("label:")):
            dimensions.append(Dimension(item, item.removeprefix("label:")))
        else:
            raise BadParameter("aggregate")
    unique = tuple(dict.fromkeys(dimensions))
    if len(unique) > 8:
        raise BadParameter("aggregate")
    return unique


def parse_step(value: str | None) -> str:
    """A ``STEPS`` name; ``window`` when absent or blank."""
    return parse_choice("step", value, ("window", *(name for name in STEPS if name != "window")))


_QUOTED = r'"(?:[^"\\]|\\.)*"'
_CLAUSE = re.compile(rf'(?P<field>[A-Za-z]+)(?:\[(?P<label>[^\]]*)\])?(?P<op>!:|~:|:)'
                     rf'(?P<values>{_QUOTED}(?:\s*,\s*{_QUOTED})*)')
# What joins clauses, and may come before the first and after the last: ``+``, which reaches the parser as ``+``
# when sent encoded (%2B) and as a blank when sent as is (form decoding, Starlette's as Tornado's), so any run of
# both reads the same.
_JOINER = re.compile(r"[+\s]*")
_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"')
# Clauses a filter may have. Each is a term of the query (a prefix clause about 70 characters of SQL): 3,000 took
# ClickHouse 0.9 s to analyse, 3,500 outgrew its max_query_size; 100 take about 0.06 s against 0.05 s
# for one. The filter's length is limited too (app.MAX_LENGTH); a clause's values are one bound array.
MAX_FILTER_CLAUSES = 100


def parse_filter(value: str | None) -> tuple[Clause, ...]:
    """OpenCost's filter language, the subset docs/api.md lists: ``field:"a","b"`` (equals one of), ``!:`` (none
    of), ``~:`` (starts with one of), clauses joined by ``+`` (and); a filter of nothing but joiners is none."""
    text = value or ""
    clauses: list[Clause] = []
    position = _JOINER.match(text).end()
    while position < len(text):
        match = _CLAUSE.match(text, position)
        if match is None:
            raise BadParameter("filter")
        clauses.append(_clause(match))
        if len(clauses) > MAX_FILTER_CLAUSES:
            raise BadParameter("filter")
        position = _JOINER.match(text, match.end()).end()
        if position == match.end() < len(text):  # a clause running into the next
            raise BadParameter("filter")
    return tuple(clauses)


def _clause(match: re.Match) -> Clause:
    name, label = match["field"], match["label"]
    if name == "label":
        if label is None or not LABEL_KEY.fullmatch(label):
            raise BadParameter("filter")
    elif name not in FILTER_FIELDS or label is not None:
        raise BadParameter("filter")
    values = tuple(re.sub(r"\\(.)", r"\1", v) for v in _VALUE.findall(match["values"]))
    return Clause(name, label, match["op"], values)


def parse_flag(name: str, value: str | None) -> bool:
    """true/1/yes or false/0/no, in any case; false when absent or blank."""
    lowered = (value or "").strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("", "false", "0", "no"):
        return False
    raise BadParameter(name)


def parse_share_namespaces(value: str | None) -> tuple[str, ...]:
    namespaces = tuple(n.strip() for n in (value or "").split(",") if n.strip())
    if any(len(n) > 253 for n in namespaces):
        raise BadParameter("shareNamespaces")
    return namespaces


def parse_share_labels(value: str | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in (part.strip() for part in (value or "").split(",") if part.strip()):
        key, colon, label_value = item.partition(":")
        if not colon or not LABEL_KEY.fullmatch(key.strip()):
            raise BadParameter("shareLabels")
        pairs.append((key.strip(), label_value.strip()))
    return tuple(pairs)


def parse_request(params) -> AllocationRequest:
    """The allocation request from its parameters (Starlette's ``QueryParams`` or any mapping), checked in this
    order."""
    dimensions = parse_aggregate(params.get("aggregate"))
    step = parse_step(params.get("step"))
    filters = parse_filter(params.get("filter"))
    namespace = parameter(params, "namespace")
    if namespace is not None:  # its length is checked where it is read (app.MAX_LENGTH)
        filters += (Clause("namespace", None, ":", (namespace,)),)
    split = parse_choice("shareSplit", params.get("shareSplit"), ("weighted", "even"))
    policy = sharing.SharePolicy(share_idle=parse_flag("shareIdle", params.get("shareIdle")),
                                 idle_by_node=parse_flag("idleByNode", params.get("idleByNode")),
                                 share_tenancy=parse_flag("shareTenancyCosts", params.get("shareTenancyCosts")),
                                 split=split)
    return AllocationRequest(dimensions, step, filters, policy, parse_share_namespaces(params.get("shareNamespaces")),
                             parse_share_labels(params.get("shareLabels")),
                             parse_flag("reconcile", params.get("reconcile")))


# -- SQL -------------------------------------------------------------------------------------------------------

class BoundParams:
    """Bound parameters named in order: ``bind(value, type)`` returns the placeholder."""

    def __init__(self, base: dict[str, Any]):
        self.values = dict(base)

    def bind(self, value: Any, kind: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{kind}}}"


def source_table(request: AllocationRequest) -> str:
    """The smallest table holding every dimension and filter field the request needs (idle by node needs the
    node, shared labels the labels). Reconciled costs are in their view of the rows alone."""
    if request.reconcile:
        return RECONCILED
    for table, dimensions, fields, labels in ROLLUPS:
        if (all(d.name in dimensions or (d.label is not None and labels) for d in request.dimensions)
                and all(c.field in fields or (c.field == "label" and labels) for c in request.filters)
                and not request.policy.idle_by_node and (labels or not request.share_labels)):
            return table
    return "k8s_expenses"


def dimension_sql(dimension: Dimension, params: BoundParams) -> str:
    if dimension.label is not None:
        key = params.bind(dimension.label, "String")
        sql = f"if(mapContains(labels, {key}), labels[{key}], '{UNALLOCATED}')"
    else:
        sql = DIMENSIONS[dimension.name]
    if dimension.name in KEEPS_ITS_NAME or dimension.name == "namespace":
        return sql
    return f"if(namespace IN {params.bind(list(SPECIAL_NAMESPACES), 'Array(String)')}, namespace, {sql})"


def _filter_sql(clauses: tuple[Clause, ...], params: BoundParams) -> str:
    terms = []
    for clause in clauses:
        column = f"labels[{params.bind(clause.label, 'String')}]" if clause.field == "label" \
            else FILTER_FIELDS[clause.field]
        values = params.bind(list(clause.values), "Array(String)")
        if clause.operator == ":":
            terms.append(f"{column} IN {values}")
        elif clause.operator == "!:":
            terms.append(f"{column} NOT IN {values}")
        else:
            terms.append(f"arrayExists(prefix -> startsWith({column}, prefix), {values})")
    return " AND ".join(terms) or "1"


def _role_sql(request: AllocationRequest, params: BoundParams) -> str:
    shared = []
    if request.share_namespaces:
        shared.append(f"namespace IN {params.bind(list(request.share_namespaces), 'Array(String)')}")
    for key, value in request.share_labels:
        shared.append(f"labels[{params.bind(key, 'String')}] = {params.bind(value, 'String')}")
    shared_sql = " OR ".join(shared) or "0"
    return (f"multiIf(namespace = '{IDLE}', '{sharing.IDLE_ROLE}', namespace = '{MANAGEMENT}', "
            f"'{sharing.MANAGEMENT_ROLE}', {shared_sql}, '{sharing.SHARED}', '{sharing.OWN}')")


@dataclass(frozen=True)
class RowSource:
    """Where an answer's rows come from: ``FROM {sql} AND ...`` (it ends in its WHERE), the SQL of each figure's sum
    and of the span of their hours."""

    sql: str
    figures: dict[str, str]
    first_hour: str = "min(hour)"
    last_hour: str = "max(hour)"


def row_source(request: AllocationRequest, params: BoundParams, sealed: tuple[SealedDay, ...] = ()) -> RowSource:
    """The request's hourly source table in the window; with ``sealed`` days, its rows of the other days and the
    sealed days' daily rows (each day its sealed build), as one subquery of like columns (the daily rows alone when
    sealed days hold every hour of the window). A daily row counts as its day's first hour (every step but ``hour``
    starts on a day), and carries the span of its hours."""
    table = source_table(request)
    figures = FIGURES_SQL if table in ROW_SOURCES else ROLLUP_FIGURES_SQL
    if not sealed:
        return RowSource(f"{table} WHERE {metroculus.WINDOW}", figures)
    on_days = params.bind([utc(d.day).date() for d in sealed], "Array(Date)")
    builds = params.bind([d.build_id for d in sealed], "Array(UUID)")
    columns = ", ".join(SOURCE_COLUMNS[table])
    figures_by_day = ", ".join(f"{RECONCILED_BY_DAY[name]} AS {name}" if table == RECONCILED and name in
                               RECONCILED_BY_DAY else name for name in sharing.FIGURES)
    daily = (f"SELECT {columns}, toDateTime(day, 'UTC') AS hour, {figures_by_day}, first_hour, "
             f"last_hour FROM {DAILY_SOURCES.get(table, days.EXPENSES_BY_DAY)} "
             f"WHERE cloud_account_id = {{tenant:String}} AND day IN {on_days} AND build_id IN {builds}")
    if _sealed_throughout(sealed, params.values["start"], params.values["end"]):
        return RowSource(f"({daily}) WHERE 1", ROLLUP_FIGURES_SQL, "min(first_hour)", "max(last_hour)")
    hourly = ", ".join(f"{WITH_USAGE_SQL[name]} AS {name}" if table in ROW_SOURCES and name in WITH_USAGE_SQL
                       else name for name in sharing.FIGURES)
    sql = (f"(SELECT {columns}, hour, {hourly}, hour AS first_hour, hour AS last_hour FROM {table} "
           f"WHERE {metroculus.WINDOW} AND toDate(hour) NOT IN {on_days} UNION ALL {daily}) WHERE 1")
    return RowSource(sql, ROLLUP_FIGURES_SQL, "min(first_hour)", "max(last_hour)")


def _sealed_throughout(sealed: tuple[SealedDay, ...], start: int, end: int) -> bool:
    """Whether every hour of the window (from the hour holding ``start`` to the last before ``end``) is in one of
    the ``sealed`` days: then no hour is read."""
    first, last = start - start % HOUR, end - 1 - (end - 1) % HOUR
    return first <= last and set(range(first - first % DAY, last + 1, DAY)) <= {d.day for d in sealed}


def _select(request: AllocationRequest, tenant: str, start: int, end: int,
            sealed: tuple[SealedDay, ...] = ()) -> tuple[str, dict[str, Any]]:
    """The answer without sharing: each group's figures, by total cost within each step."""
    params = BoundParams(metroculus.bound_params(tenant, start, end))
    source = row_source(request, params, sealed)
    dims = [f"{dimension_sql(d, params)} AS d{i}" for i, d in enumerate(request.dimensions)]
    keys = [f"d{i}" for i in range(len(dims))]
    sums = [f"{source.figures[name]} AS f_{name}" for name in sharing.FIGURES]
    span = [f"toUnixTimestamp({source.first_hour})", f"toUnixTimestamp({source.last_hour})"]
    sql = (f"SELECT {STEPS[request.step]} AS ts, {', '.join([*dims, *sums, *span])} FROM {source.sql} "
           f"AND {_filter_sql(request.filters, params)} "
           f"GROUP BY ts, {', '.join(keys)} ORDER BY ts, f_total_cost DESC, {', '.join(keys)}")
    return sql, params.values


# A shared piece of at most this many parts is shared in Python (``sharing.share`` on the parts one query returns,
# about 2 kB each: 10 MB at most); a larger one in SQL, on the same coefficients. SQL takes two more queries, about
# 50 ms in chDB however small the answer: a small answer (30 days per namespace and day: 310 parts) comes in one.
MAX_PARTS = 5_000
# Idle domains one shared answer's query binds at most: the coefficients travel as parameters, in the request's URL
# to a ClickHouse server (http_max_uri_size, 1 MiB by default), about 150 bytes a domain. More (small tenants asked
# per hour over many months) are answered a run of whole steps at a time.
MAX_BOUND_DOMAINS = 2_000
_IDLE_COEFFICIENTS = "Array(Tuple(Int64, String, String, Float64, Float64, Float64, UInt8, UInt8, UInt8))"


def _parts_sql(request: AllocationRequest, params: BoundParams, sealed: tuple[SealedDay, ...] = ()) -> str:
    """The window's rows summed into ``sharing.Part``s: per step, cluster, idle domain (the node with idle by node),
    role, whether the filter keeps them, and group."""
    source = row_source(request, params, sealed)
    dims = [f"{dimension_sql(d, params)} AS d{i}" for i, d in enumerate(request.dimensions)]
    node = "node" if request.policy.idle_by_node else "''"
    return (f"SELECT {STEPS[request.step]} AS ts, cluster_id AS share_cluster, {node} AS share_node, "
            f"{_role_sql(request, params)} AS role, {_filter_sql(request.filters, params)} AS kept, "
            f"{', '.join(dims)}, {', '.join(f'{source.figures[name]} AS f_{name}' for name in sharing.FIGURES)}, "
            f"toUnixTimestamp({source.first_hour}) AS first_hour, toUnixTimestamp({source.last_hour}) AS last_hour "
            f"FROM {source.sql} "
            f"GROUP BY ts, share_cluster, share_node, role, kept, {', '.join(f'd{i}' for i in range(len(dims)))}")


def _parts_select(request: AllocationRequest, tenant: str, start: int, end: int,
                  sealed: tuple[SealedDay, ...] = ()) -> tuple[str, dict[str, Any]]:
    """The parts in a total order (their keys), at most ``MAX_PARTS + 1`` of them."""
    params = BoundParams(metroculus.bound_params(tenant, start, end))
    keys = ", ".join(f"d{i}" for i in range(len(request.dimensions)))
    return (f"{_parts_sql(request, params, sealed)} ORDER BY ts, share_cluster, share_node, role, kept, {keys} "
            f"LIMIT {MAX_PARTS + 1}"), params.values


def _totals_select(request: AllocationRequest, tenant: str, start: int, end: int,
                   sealed: tuple[SealedDay, ...] = ()) -> tuple[str, dict[str, Any]]:
    """Pass 1 of a shared answer: per step, ``sharing.Totals`` (the weighed figures per cluster, idle domain and role;
    with the even split, the number of taking groups per cluster, in rows of their own: ``grouping(role)`` 1)."""
    params = BoundParams(metroculus.bound_params(tenant, start, end))
    source = row_source(request, params, sealed)
    node = "node" if request.policy.idle_by_node else "''"
    selected = [f"{STEPS[request.step]} AS ts", "cluster_id AS share_cluster", f"{node} AS share_node",
                f"{_role_sql(request, params)} AS role", *(source.figures[name] for name in sharing.WEIGHED)]
    if request.policy.split == "even":
        dims = [dimension_sql(d, params) for d in request.dimensions]
        selected += [f"uniqExactIf({', '.join(dims)}, role = '{sharing.TAKER}')", "grouping(role)"]
        group = "GROUPING SETS ((ts, share_cluster, share_node, role), (ts, share_cluster))"
    else:
        selected += ["0", "0"]
        group = "ts, share_cluster, share_node, role"
    sql = f"SELECT {', '.join(selected)} FROM {source.sql} GROUP BY {group} ORDER BY ts"
    return sql, params.values


def _shared_select(request: AllocationRequest, tenant: str, start: int, end: int,
                   found: dict[int, sharing.Coefficients],
                   sealed: tuple[SealedDay, ...] = ()) -> tuple[str, dict[str, Any]]:
    """Pass 2 of a shared answer: the stored rows summed into parts (per step, cluster, idle domain, role, filter and
    group), each part's share from its domain's coefficients (``found``, per step, bound as parameters), and the
    parts summed into the answer's groups, by total cost (shares included) within each step. The same arithmetic as
    ``sharing.share`` on the same coefficients: the rule itself is decided in ``sharing.coefficients``."""
    policy = request.policy
    params = BoundParams(metroculus.bound_params(tenant, start, end))
    keys = ", ".join(f"d{i}" for i in range(len(request.dimensions)))
    parts = _parts_sql(request, params, sealed)
    resources = sharing.IDLE_RESOURCES
    idle = [(ts, cluster, node_name, *(share.factor[r] for r in resources),
             *(int(r in share.stays) for r in resources))
            for ts, step in found.items() for (cluster, node_name), share in step.idle.items()]
    shared = [(ts, cluster, rate) for ts, step in found.items() for cluster, rate in step.shared.items()]
    idle_table = ("SELECT toUInt32(c.1) AS ts, c.2 AS share_cluster, c.3 AS share_node, "
                  + ", ".join(f"c.{4 + i} AS factor_{r}, c.{7 + i} AS stays_{r}" for i, r in enumerate(resources))
                  + f" FROM (SELECT arrayJoin({params.bind(idle, _IDLE_COEFFICIENTS)}) AS c)")
    shared_table = ("SELECT toUInt32(c.1) AS ts, c.2 AS share_cluster, c.3 AS rate, 1 AS gives FROM (SELECT "
                    f"arrayJoin({params.bind(shared, 'Array(Tuple(Int64, String, Float64))')}) AS c)")
    receivers = params.bind(list(sharing.IDLE_RECEIVERS), "Array(String)")
    givers = params.bind(list(sharing.giver_roles(policy)), "Array(String)")
    taker, idle_role = params.bind(sharing.TAKER, "String"), params.bind(sharing.IDLE_ROLE, "String")
    joins = (f"LEFT JOIN ({idle_table}) AS idle USING (ts, share_cluster, share_node) "
             f"LEFT JOIN ({shared_table}) AS shared USING (ts, share_cluster)")
    if policy.split == "even":  # sharing.within_group, over each group's taking parts in its cluster
        within = "if(group_cost > 0, f_total_cost / group_cost, 1 / group_parts)"
        source = (f"SELECT *, sumIf(f_total_cost, role = {taker}) OVER w AS group_cost, countIf(role = {taker}) "
                  f"OVER w AS group_parts FROM ({parts}) AS parts {joins} "
                  f"WINDOW w AS (PARTITION BY ts, share_cluster, {keys})")
    else:
        within, source = "f_total_cost", f"SELECT * FROM ({parts}) AS parts {joins}"
    leftover = " OR ".join(f"(stays_{r} AND f_{r} != 0)" for r in resources)
    # sharing.received_idle, staying (1: whole, 2: an idle part's leftover, 0: shared away) and received_shared
    shared_parts = (f"SELECT *, if(role IN {receivers}, {' + '.join(f'f_{r} * factor_{r}' for r in resources)}, 0) "
                    f"AS idle_share, multiIf(role = {idle_role} AND {int(policy.share_idle)}, if({leftover}, 2, 0), "
                    f"role IN {givers} AND gives, 0, 1) AS staying, "
                    f"if(role = {taker} AND gives, rate * {within}, 0) AS shared_share FROM ({source})")
    summed = []
    for name in sharing.FIGURES:
        if name in resources:
            value = f"if(staying = 1 OR stays_{name}, f_{name}, 0)"
        elif name == "total_cost":
            value = f"if(staying = 1, f_total_cost, {' + '.join(f'if(stays_{r}, f_{r}, 0)' for r in resources)})"
        else:
            value = f"if(staying = 1, f_{name}, {'NULL' if name in sharing.USAGE else '0'})"
        summed.append(f"sum({value}) AS s_{name}")
    sql = (f"SELECT ts, {keys}, {', '.join(summed)}, min(first_hour), max(last_hour), sum(idle_share) AS idle_cost, "
           "sum(shared_share) AS shared_cost, s_total_cost + idle_cost + shared_cost AS total "
           f"FROM ({shared_parts}) WHERE kept AND staying > 0 GROUP BY ts, {keys} ORDER BY ts, total DESC, {keys}")
    return sql, params.values


def _pieces(reader, request: AllocationRequest, tenant: str, start: int, end: int,
            sealed: tuple[SealedDay, ...]) -> list[tuple[int, int]]:
    """The sub-windows an answer is asked in: pieces of whole steps where it can grow with the window (hour and day
    steps over ``k8s_expenses`` or the workload rollup: metroculus.ROWS_PER_PIECE, counted in stored rows, the
    sealed days' daily rows among them)."""
    if source_table(request) == metroculus.NAMESPACE_ROLLUP or request.step not in ("hour", "day"):
        return [(start, end)]
    return metroculus.window_pieces(reader, tenant, start, end, request.step,
                                    {d.day: d.rows_written for d in sealed})


def sealed_in(query_rows, step: str, tenant: str, start: int, end: int) -> tuple[SealedDay, ...]:
    """The sealed days an answer at ``step`` takes from the daily tier (``query_rows(sql, parameters)`` asks): at
    every step but ``hour``, which answers the hours stored (docs/api.md)."""
    return () if step == "hour" else tuple(days.sealed_days(query_rows, tenant, start, end))


def _within(sealed: tuple[SealedDay, ...], start: int, end: int) -> tuple[SealedDay, ...]:
    """The sealed days of a piece or run of whole steps of the window: those starting in it (a step starts on a day,
    so a sealed day, wholly in the window, is wholly in the one piece it starts in)."""
    return tuple(d for d in sealed if start - start % HOUR <= d.day < end)


def _rows(reader, request: AllocationRequest, tenant: str, start: int, end: int) -> Iterator[tuple]:
    """The answer's rows, finished (shares included) and in order, piece by piece: a row is the step, the group's
    key, its figures, first and last hour and, shared, its idle and shared costs. A shared piece of at most
    ``MAX_PARTS`` parts is shared in Python; a larger one takes two more queries: its steps' totals, from which
    ``sharing.coefficients`` decides each domain's coefficients, then the groups with the coefficients applied (at
    most ``MAX_BOUND_DOMAINS`` a query). Python holds a page of rows, ``MAX_PARTS`` parts and the coefficients,
    never all of a step's parts or groups."""
    sealed = sealed_in(reader.query, request.step, tenant, start, end)
    for piece_start, piece_end in _pieces(reader, request, tenant, start, end, sealed):
        inside = _within(sealed, piece_start, piece_end)
        if not request.shares:
            yield from reader.stream(*_select(request, tenant, piece_start, piece_end, inside))
            continue
        parts = reader.query(*_parts_select(request, tenant, piece_start, piece_end, inside))
        if len(parts) <= MAX_PARTS:
            yield from _shared_in_python(request, parts)
            continue
        del parts
        found: dict[int, sharing.Coefficients] = {}
        for ts, rows in itertools.groupby(reader.query(*_totals_select(request, tenant, piece_start, piece_end,
                                                                       inside)), key=lambda row: row[0]):
            sums, takers = {}, {}
            for _, cluster, node, role, *weighed, groups, cluster_row in rows:
                if cluster_row:
                    takers[cluster] = groups
                else:
                    sums[(cluster, node, role)] = dict(zip(sharing.WEIGHED, weighed))
            found[int(ts)] = sharing.coefficients(sharing.Totals(sums, takers), request.policy)
        for run_start, run_end, run in _runs_of_steps(found, piece_start, piece_end, request.step):
            yield from reader.stream(*_shared_select(request, tenant, run_start, run_end, run,
                                                     _within(inside, run_start, run_end)))


def _shared_in_python(request: AllocationRequest, rows: list[tuple]) -> Iterator[tuple]:
    """The rows of ``_shared_select`` from the parts' rows, by ``sharing.share``."""
    count = len(request.dimensions)
    for ts, step_rows in itertools.groupby(rows, key=lambda row: row[0]):
        parts = [sharing.Part(tuple(str(v) for v in rest[:count]), cluster, node, role, bool(kept),
                              dict(zip(sharing.FIGURES, rest[count:count + len(sharing.FIGURES)])),
                              first, last)
                 for _, cluster, node, role, kept, *rest, first, last in step_rows]
        groups = sharing.share(parts, request.policy)
        groups.sort(key=lambda g: -g.total_cost)  # stable: equal totals stay in key order
        for g in groups:
            yield (ts, *g.key, *(g.figures[name] for name in sharing.FIGURES), g.first_hour, g.last_hour,
                   g.idle_cost, g.shared_cost)


def _runs_of_steps(found: dict[int, sharing.Coefficients], start: int, end: int,
                   step: str) -> Iterator[tuple[int, int, dict[int, sharing.Coefficients]]]:
    """Consecutive steps with at most ``MAX_BOUND_DOMAINS`` domains' coefficients together (one step at least), each
    run with its sub-window: from its first step's start (the window's start at most) to the next run's first step."""
    steps = sorted(found)
    if step == "window" and found:  # one step, whose timestamp is the window's start
        yield start, end, found
        return
    runs: list[list[int]] = []
    held = 0
    for ts in steps:
        domains = len(found[ts].idle) + len(found[ts].shared)
        if runs and held + domains <= MAX_BOUND_DOMAINS:
            runs[-1].append(ts)
            held += domains
        else:
            runs.append([ts])
            held = domains
    for i, run in enumerate(runs):
        yield (max(start, run[0]), runs[i + 1][0] if i + 1 < len(runs) else end, {ts: found[ts] for ts in run})


def _finished(request: AllocationRequest, ts: int, group: sharing.Group) -> dict[str, Any]:
    figures = group.figures
    cpu, ram, total = sharing.efficiency(figures)
    row: dict[str, Any] = {"timestamp": int(ts), **dict(zip(request.field_names, group.key))}
    values = {**figures, "shared_cost": group.shared_cost, "idle_cost": group.idle_cost,
              "total_cost": group.total_cost, **sharing.averages(figures, group.first_hour, group.last_hour),
              "cpu_efficiency": cpu, "ram_efficiency": ram, "total_efficiency": total}
    for name in ROW_FIGURES:
        value = values.get(name)
        row[name] = None if value is None else float(value)
    return row


def allocation(reader, request: AllocationRequest, tenant: str, start: int, end: int) -> Iterator[dict[str, Any]]:
    """The answer's rows, step by step: within a step by total cost (shares included), highest first, then by
    the group's key. Streamed as SQL answers them: memory does not grow with the window, shared or not."""
    count, width = len(request.dimensions), len(sharing.FIGURES)
    for ts, *rest in _rows(reader, request, tenant, start, end):
        figures = dict(zip(sharing.FIGURES, rest[count:count + width]))
        first, last = rest[count + width:count + width + 2]
        group = sharing.Group(tuple(str(v) for v in rest[:count]), figures, first, last)
        if request.shares:
            group.idle_cost, group.shared_cost = rest[count + width + 2:count + width + 4]
        yield _finished(request, ts, group)


# -- rightsizing -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RightsizingRequest:
    target_cpu: float = 0.7
    target_ram: float = 0.8
    algorithm: str = "max"
    q: float = 0.95


def _fraction(params, name: str, default: float, low_open: bool = True) -> float:
    raw = parameter(params, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter(name) from None
    if not math.isfinite(value) or value > 1 or value < 0 or (low_open and value == 0):
        raise BadParameter(name)
    return value


def parse_rightsizing(params) -> RightsizingRequest:
    """The rightsizing request from its parameters, read by the rule of ``parameter``, in this order."""
    algorithm = parse_choice("algorithm", params.get("algorithm"), ("max", "quantile"))
    return RightsizingRequest(_fraction(params, "targetCPUUtilization", 0.7),
                              _fraction(params, "targetRAMUtilization", 0.8), algorithm,
                              _fraction(params, "q", 0.95, low_open=False))


RIGHTSIZING_FIELDS = ("cluster", "namespace", "controllerKind", "controller", "container", "replicas",
                      "current_cpu", "current_memory", "usage_cpu", "usage_memory", "recommended_cpu",
                      "recommended_memory", "cpu_saving", "memory_saving", "saving")


def rightsizing(reader, request: RightsizingRequest, tenant: str, start: int, end: int) -> list[dict[str, Any]]:
    """Per cluster, namespace, controller and container (from the workload rollup, migration 0012): the average request
    while running, the chosen statistic of its container-hours' usage maxima, the request that statistic recommends and what the change saves a month.
    Highest saving first."""
    params = metroculus.bound_params(tenant, start, end, specials=list(SPECIAL_NAMESPACES), q=request.q)
    if request.algorithm == "max":
        statistics = "max(cpu_usage_max_cores), max(ram_usage_max_bytes), "
    else:
        statistics = ("quantileExactInclusiveArray({q:Float64})(cpu_usage_maxima), "
                      "quantileExactInclusiveArray({q:Float64})(ram_usage_maxima), ")
    sql = (
        "SELECT cluster_id, namespace, workload_kind, workload_name, container, sum(cpu_request_core_hours), "
        f"sum(ram_request_byte_hours), sum(running_minutes) / 60, {statistics}"
        "countIf(cpu_usage_max_cores IS NOT NULL), countIf(ram_usage_max_bytes IS NOT NULL), "
        "sum(cpu_cost), sum(cpu_core_hours), sum(ram_cost), sum(ram_byte_hours), "
        "toUnixTimestamp(min(hour)), toUnixTimestamp(max(hour)) "
        f"FROM {WORKLOAD_ROLLUP} WHERE {metroculus.WINDOW} AND container != '' "
        "AND namespace NOT IN {specials:Array(String)} "
        "GROUP BY cluster_id, namespace, workload_kind, workload_name, container "
        "ORDER BY cluster_id, namespace, workload_kind, workload_name, container")
    answer = []
    for (cluster, namespace, kind, name, container, cpu_request, ram_request, running_hours, cpu_stat, ram_stat,
         cpu_known, ram_known, cpu_cost, cpu_hours, ram_cost, ram_hours, first, last) in reader.query(sql, params):
        if running_hours <= 0:
            continue
        span_hours = (last - first) / HOUR + 1
        replicas = running_hours / span_hours
        current_cpu, current_ram = cpu_request / running_hours, ram_request / running_hours
        usage_cpu = float(cpu_stat) if cpu_known else None
        usage_ram = float(ram_stat) if ram_known else None
        recommended_cpu = sharing.recommend(usage_cpu, request.target_cpu, sharing.MIN_CPU_CORES)
        recommended_ram = sharing.recommend(usage_ram, request.target_ram, sharing.MIN_RAM_BYTES)
        cpu_saving = sharing.monthly_saving(current_cpu, recommended_cpu, cpu_cost / cpu_hours if cpu_hours else 0.0,
                                            replicas)
        ram_saving = sharing.monthly_saving(current_ram, recommended_ram, ram_cost / ram_hours if ram_hours else 0.0,
                                            replicas)
        known = [s for s in (cpu_saving, ram_saving) if s is not None]
        answer.append(dict(zip(RIGHTSIZING_FIELDS, (
            cluster, namespace, kind, name, container, replicas, current_cpu, current_ram, usage_cpu, usage_ram,
            recommended_cpu, recommended_ram, cpu_saving, ram_saving, math.fsum(known) if known else None))))
    answer.sort(key=lambda row: (row["saving"] is None, -(row["saving"] or 0.0)))
    return answer
