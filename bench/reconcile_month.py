"""A simulated month reconciles end to end against its FOCUS bill (docs/reconciliation.md).

    .venv/bin/python bench/reconcile_month.py [--month 2026-11] [--nodes 3] [--pods 12] [--seed 11] [--days N]
                                              [--batch-hours 24] [--keep]

One simulated EKS tenant (``devtools/bill.py``'s ``as_eks``: a spot node, an unpriced one, an on-demand one left out
of the bill, volumes) over a whole calendar month of closed hours (default: the last whole UTC month; ``--days N``
its first N days only, to try the script), written as OpenMetrics, made TSDB blocks by promtool and served by a
local Prometheus (Debian's ``prometheus`` and ``promtool``); the real pipeline runs every hour in batches of
``--batch-hours`` (``KCW_BATCH_HOURS``) into a fresh embedded ClickHouse; the month's FOCUS bill is written
(``write_focus_bill``) and loaded (``load_bill``), and every day of the month reconciled (``reconcile_days``).

Checked against the bill's ground truth (exit status 1, a line per failure, when one fails):
- every billed node-period's reconciled CPU + RAM + GPU in ``k8s_expenses_reconciled_current`` adds up to its bill,
  to 1e-9 relative, and its ``period_billed_cost`` is the bill's exactly;
- the rows of nodes the bill does not cover (and of no node) keep ``k8s_expenses_current``'s costs bit for bit (their
  ``pv_cost`` and ``total_cost`` too, where they hold no part of a billed volume); the view's ``*_list`` columns are
  ``k8s_expenses_current``'s bit for bit, and it has as many rows;
- ``__idle__`` rows scale with their node-hour's factor;
- each billed volume-period's claims times its factor add up to its bill; the view's ``pv_cost`` of the month adds up
  to the billed volumes' bill and the others' list cost;
- each namespace's total in the view equals the sum of its rows computed here from the list rows and the factors;
- the ledger's billed cost and its bill lines of no resource are the bill's, exactly;
- as many days reconciled as the month has; reconciling the month again changes nothing (every day unchanged, no
  factor written).

Printed, as markdown: the seconds of each stage, the month's totals, the largest namespace (no ``__...__`` one) per
day: at list, reconciled, and the bill's share of it (the billed cost of its nodes' and volumes' periods allotted
to it by its part of their list cost); the nodes and volumes over the month: list, billed, reconciled, factor.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubecost_worker import logs, wiring  # noqa: E402
from kubecost_worker.config import load_config  # noqa: E402
from kubecost_worker.devtools.bill import as_eks, write_focus_bill  # noqa: E402
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks  # noqa: E402
from kubecost_worker.devtools.simulation import simulate  # noqa: E402
from kubecost_worker.hours import DAY, HOUR, hour_starts, utc  # noqa: E402
from kubecost_worker.pipeline import run_hours  # noqa: E402
from kubecost_worker.store import days as days_module  # noqa: E402
from kubecost_worker.store.bill import load_bill, source_of  # noqa: E402
from kubecost_worker.store.client import query  # noqa: E402
from kubecost_worker.store.reconcile import BillSettings, reconcile_days  # noqa: E402

TENANT = "t-month"
BILL = BillSettings("focus_bill", "EffectiveCost")
REL = 1e-9
ROW_KEY = "toUnixTimestamp(hour), cluster_id, namespace, workload_kind, workload_name, pod, pod_uid, container, node"
ROW_COSTS = "cpu_cost, ram_cost, gpu_cost, pv_cost, network_cost, lb_cost, management_cost, total_cost"
LIST_COSTS = "cpu_cost_list, ram_cost_list, gpu_cost_list, pv_cost_list, total_cost_list"


class Row(NamedTuple):
    hour: int
    cluster: str
    namespace: str
    workload_kind: str
    workload: str
    pod: str
    uid: str
    container: str
    node: str
    cpu: float
    ram: float
    gpu: float
    pv: float
    network: float
    lb: float
    management: float
    total: float

    @property
    def key(self) -> tuple:
        return self[:9]

    @property
    def compute(self) -> float:
        return self.cpu + self.ram + self.gpu

    @property
    def claim_key(self) -> tuple:
        """How a volume's claim names the row (``k8s_volumes_hourly.claims``, joined as the view joins it)."""
        return self.hour, self.cluster, self.namespace, self.workload, self.pod, self.uid, self.container


class Factor(NamedTuple):
    factor: float
    matched: bool
    period: int
    billed: Decimal


def close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b))


def month_bounds(month: str | None) -> tuple[int, int]:
    """The first second of ``month`` (``YYYY-MM``; default the last whole UTC month before now) and of the next."""
    if month:
        first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.timezone.utc)
    else:
        this = dt.datetime.now(dt.timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        first = (this - dt.timedelta(days=1)).replace(day=1)
    days = calendar.monthrange(first.year, first.month)[1]
    return int(first.timestamp()), int(first.timestamp()) + days * DAY


class Checks:
    """Each check's outcome, kept to be printed at the end: a failure does not stop the others."""

    def __init__(self):
        self.outcomes: list[tuple[str, list[str]]] = []

    def check(self, name: str, failures: list[str]) -> None:
        self.outcomes.append((name, failures))

    @property
    def failed(self) -> list[str]:
        return [name for name, failures in self.outcomes if failures]

    def print(self) -> None:
        print("\n## Checks\n")
        for name, failures in self.outcomes:
            print(f"- {'FAILED' if failures else 'ok'}: {name}")
            for failure in failures[:10]:
                print(f"  - {failure}")
            if len(failures) > 10:
                print(f"  - ... and {len(failures) - 10} more")


@contextlib.contextmanager
def stage(name: str, seconds: dict):
    """Adds the seconds of its body to ``seconds[name]``; says on stderr what runs, a month taking minutes."""
    print(f"{name}...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - began


def fetch_rows(client, view: str) -> tuple[dict[tuple, Row], dict[tuple, tuple], int]:
    """The tenant's rows of ``view`` by key, their ``*_list`` columns (the reconciled view's), and how many came."""
    extra = f", {LIST_COSTS}" if view == "k8s_expenses_reconciled_current" else ""
    found = query(client, f"SELECT {ROW_KEY}, {ROW_COSTS}{extra} FROM {view} WHERE cloud_account_id = {{t:String}}",
                  {"t": TENANT})
    rows, listed = {}, {}
    for values in found:
        row = Row(int(values[0]), *values[1:17])
        rows[row.key] = row
        listed[row.key] = tuple(values[17:])
    return rows, listed, len(found)


def fetch_factors(client) -> dict[tuple[str, str, int], Factor]:
    """(kind, resource, hour) -> its factor, of the reconciliations readers see."""
    return {(kind, resource, int(hour)): Factor(factor, bool(matched), int(start), Decimal(billed))
            for kind, resource, hour, factor, matched, start, billed in query(
                client, "SELECT kind, resource, toUnixTimestamp(hour), factor, matched, toUnixTimestamp(period_start), "
                        "period_billed_cost FROM k8s_reconciled_factors_current "
                        "WHERE cloud_account_id = {t:String} AND kind IN ('node', 'volume')", {"t": TENANT})}


def fetch_claims(client) -> list[tuple[str, int, tuple, float]]:
    """(volume, hour, the claim's row key, its part of the volume's cost at list) of every claim."""
    claims = []
    for volume, hour, cluster, parts in query(
            client, "SELECT volume, toUnixTimestamp(hour), cluster_id, claims FROM k8s_volumes_hourly_current "
                    "WHERE cloud_account_id = {t:String}", {"t": TENANT}):
        for part in parts:  # a named tuple comes as a dict
            key = (int(hour), cluster, part["namespace"], part["workload_name"], part["pod"], part["pod_uid"], "")
            claims.append((volume, int(hour), key, part["pv_cost"]))
    return claims


def billed_by_period(truth: dict, kind: str, factors: dict) -> tuple[dict, list[str]]:
    """(resource, period start) -> the bill's ground truth of the period (its hours' lines), of the billed resources
    of ``kind``; and the resource-hours the bill has that no matched factor covers."""
    ids = {name: rid for (_, k, name), rid in truth["resource_ids"].items() if k == kind}
    by_rid = defaultdict(list)
    for (rid, hour), total in truth["totals"].items():
        by_rid[rid].append((hour, total[BILL.cost]))
    billed, missing = defaultdict(Decimal), []
    for name, rid in ids.items():
        for hour, cost in by_rid[rid]:
            factor = factors.get((kind, name, hour))
            if factor is None or not factor.matched:
                missing.append(f"{kind} {name} {utc(hour):%Y-%m-%d %H:%M}: billed {cost}, no matched factor")
                continue
            billed[(name, factor.period)] += cost
    return dict(billed), missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--month", help="YYYY-MM (default: the last whole UTC month)")
    parser.add_argument("--days", type=int, help="only the month's first DAYS days")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--pods", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--batch-hours", type=int, default=24, help="KCW_BATCH_HOURS of the pipeline")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (printed) at the end")
    args = parser.parse_args()
    logs.configure("text", "error")  # the simulated unpriced node warns every hour
    start, end = month_bounds(args.month)
    if args.days is not None:
        if not 1 <= args.days <= (end - start) // DAY:
            parser.error(f"--days: 1 to {(end - start) // DAY}")
        end = start + args.days * DAY
    if end > time.time():
        parser.error(f"{utc(end):%Y-%m-%d %H:%M} is not past yet: every hour must be closed")
    hours = (end - start) // HOUR
    workdir = Path(tempfile.mkdtemp(prefix="kcw-bench-reconcile-month-"))
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    try:
        run(args, start, end, hours, workdir, seconds, began)
    finally:
        if args.keep:
            print(f"kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args, start: int, end: int, hours: int, workdir: Path, seconds: dict, began: float) -> None:
    with stage("simulate", seconds):
        sim = as_eks(simulate([TENANT], start, hours, nodes=args.nodes, pods=args.pods, seed=args.seed))
        openmetrics = workdir / "metrics.om"
        samples = sim.write_openmetrics(openmetrics)
    with stage("promtool", seconds):
        create_blocks(openmetrics, workdir / "tsdb")
        openmetrics.unlink()  # gigabytes for a month: the blocks hold it now
    with LocalPrometheus(workdir / "tsdb") as url, stage("pipeline", seconds):
        config = load_config({"KCW_THANOS_URL": url, "KCW_CLICKHOUSE_URL": f"chdb://{workdir / 'ch'}",
                              "KCW_BATCH_HOURS": str(args.batch_hours)})
        pipeline = wiring.build_pipeline(config)
        wiring.apply_schema(pipeline.sink, config)
        done = run_hours(pipeline, [TENANT], hour_starts(start, end), progress=sys.stderr.isatty())
    if done.failed or done.refused or done.done != hours:
        sys.exit(f"the pipeline did not run every hour: {done.line()}")
    client = pipeline.sink.client
    with stage("bill write + load", seconds):
        path, truth = write_focus_bill(sim, workdir / "bill.csv")
        loaded = load_bill(client, [source_of(str(path))])
    with stage("reconcile", seconds):
        days = reconcile_days(client, BILL, [TENANT], start, end)
    factors_written = query(client, "SELECT count() FROM k8s_reconciled_factors")[0][0]
    with stage("reconcile again", seconds):
        again = reconcile_days(client, BILL, [TENANT], start, end)
    with stage("checks", seconds):
        checks, figures = check_month(client, truth, days, again, factors_written, start, end)
    seconds["total"] = time.perf_counter() - began
    pipeline.sink.close()
    report(args, start, end, hours, samples, sim, done, loaded, truth, seconds, figures)
    checks.print()
    if checks.failed:
        sys.exit(f"{len(checks.failed)} checks failed: " + "; ".join(checks.failed))


def against_bill(kind: str, billed: dict, sums: dict, factors: dict) -> list[str]:
    """What differs from the bill for the resources of ``kind``: each billed period's reconciled sum (``sums``,
    1e-9 relative), and each matched factor's period_billed_cost (exactly)."""
    failures = [f"{kind} {name} {utc(start):%Y-%m-%d %H:%M}: reconciled {sums.get((name, start), 0.0)!r}, "
                f"billed {cost}" for (name, start), cost in billed.items()
                if not close(sums.get((name, start), 0.0), float(cost))]
    failures += [f"{kind} {name} {utc(hour):%Y-%m-%d %H:%M}: period_billed_cost {factor.billed}, the bill "
                 f"{billed.get((name, factor.period))}" for (of, name, hour), factor in factors.items()
                 if of == kind and factor.matched and billed.get((name, factor.period)) != factor.billed]
    return failures


def check_month(client, truth: dict, days: list, again: list, factors_written: int, start: int, end: int):
    checks = Checks()
    listed, _, listed_count = fetch_rows(client, "k8s_expenses_current")
    rows, rows_list, rows_count = fetch_rows(client, "k8s_expenses_reconciled_current")
    factors = fetch_factors(client)
    claims = fetch_claims(client)
    nodes = {name for (_, kind, name) in truth["resource_ids"] if kind == "node"}

    def matched(kind: str, name: str, hour: int) -> Factor | None:
        factor = factors.get((kind, name, hour))
        return factor if factor is not None and factor.matched else None

    # the view's rows are the list rows, once each, with the list columns as they are
    failures = []
    if rows_count != listed_count or len(rows) != rows_count or set(rows) != set(listed):
        failures.append(f"{rows_count} rows in the view ({len(rows)} keys), {listed_count} in "
                        f"k8s_expenses_current ({len(listed)} keys)")
    for key, row in rows.items():
        if key in listed:
            base = listed[key]
            if rows_list[key] != (base.cpu, base.ram, base.gpu, base.pv, base.total) or (
                    row.network, row.lb, row.management) != (base.network, base.lb, base.management):
                failures.append(f"{key}: list columns {rows_list[key]} against {base[9:]}")
    checks.check(f"the view has k8s_expenses_current's {listed_count:,} rows, once each, their list columns and "
                 "network, LB and management costs bit for bit", failures)

    # nodes: every billed node-period's reconciled rows add up to its bill
    node_billed, failures = billed_by_period(truth, "node", factors)
    node_sums = defaultdict(float)
    for row in rows.values():
        factor = matched("node", row.node, row.hour) if row.node in nodes else None
        if factor is not None:
            node_sums[(row.node, factor.period)] += row.compute
    failures += against_bill("node", node_billed, node_sums, factors)
    extra = set(node_sums) - set(node_billed)
    failures += [f"node {n} {utc(p):%Y-%m-%d %H:%M}: reconciled, and no line bills it" for n, p in sorted(extra)]
    checks.check(f"each of the {len(node_billed):,} billed node-periods: its rows' reconciled CPU + RAM + GPU add up "
                 f"to its bill (1e-9 relative), its period_billed_cost is the bill's exactly", failures)

    # volumes: each billed volume-period's claims times its factor add up to its bill
    volume_billed, failures = billed_by_period(truth, "volume", factors)
    volume_sums, pv_of_row, expected_pv = defaultdict(float), defaultdict(float), 0.0
    billed_claims = set()
    for volume, hour, key, part in claims:
        factor = matched("volume", volume, hour)
        if factor is not None:
            volume_sums[(volume, factor.period)] += part * factor.factor
            billed_claims.add(key)
        pv_of_row[key] += part * (factor.factor if factor is not None else 1.0)
        expected_pv += part if factor is None else 0.0
    failures += against_bill("volume", volume_billed, volume_sums, factors)
    expected_pv += float(sum(volume_billed.values(), Decimal(0)))
    view_pv = sum(row.pv for row in rows.values())
    if not close(view_pv, expected_pv):
        failures.append(f"the view's pv_cost of the month {view_pv!r}, the bill and the unbilled volumes' list cost "
                        f"{expected_pv!r}")
    checks.check(f"each of the {len(volume_billed):,} billed volume-periods: its claims' reconciled pv cost adds up "
                 "to its bill, its period_billed_cost is the bill's exactly; the view's pv_cost of the month is the "
                 "billed volumes' bill plus the others' list cost", failures)

    # rows the bill does not cover stay at list
    failures, kept = [], 0
    for key, row in rows.items():
        if row.node in nodes or key not in listed:
            continue
        base, kept = listed[key], kept + 1
        if (row.cpu, row.ram, row.gpu) != (base.cpu, base.ram, base.gpu):
            failures.append(f"{key}: CPU, RAM, GPU {row[9:12]} against {base[9:12]}")
        if row.claim_key not in billed_claims and (row.pv, row.total) != (base.pv, base.total):
            failures.append(f"{key}: pv, total {(row.pv, row.total)} against {(base.pv, base.total)}")
    unbilled = sorted(name for (_, kind, name) in truth["unbilled"] if kind == "node")
    checks.check(f"the {kept:,} rows of unbilled nodes ({', '.join(unbilled)}) and of no node: CPU, RAM, GPU as in "
                 "k8s_expenses_current bit for bit, pv_cost and total_cost too where they hold no billed volume",
                 failures)

    # idle scales with its node
    failures, scaled = [], 0
    for key, row in rows.items():
        if row.namespace != "__idle__" or key not in listed:
            continue
        factor, base = matched("node", row.node, row.hour), listed[key]
        if factor is None:
            ok = (row.cpu, row.ram, row.gpu) == (base.cpu, base.ram, base.gpu)
        else:
            scaled += 1
            ok = all(close(a, b * factor.factor) for a, b in
                     ((row.cpu, base.cpu), (row.ram, base.ram), (row.gpu, base.gpu)))
        if not ok:
            failures.append(f"{row.node} {utc(row.hour):%Y-%m-%d %H:%M}: idle {row[9:12]}, list {base[9:12]}, "
                            f"factor {factor.factor if factor else 1.0}")
    checks.check(f"__idle__ rows: the {scaled:,} on billed node-hours are their list costs times the node-hour's "
                 "factor, the others their list costs", failures)

    # namespaces follow their rows
    expected, failures = defaultdict(float), []
    for key, base in listed.items():
        factor = matched("node", base.node, base.hour)
        pv = pv_of_row[base.claim_key] if base.claim_key in billed_claims else base.pv
        expected[base.namespace] += (base.compute * (factor.factor if factor else 1.0) + pv + base.network + base.lb
                                     + base.management)
    totals = dict(query(client, "SELECT namespace, sum(total_cost) FROM k8s_expenses_reconciled_current "
                                "WHERE cloud_account_id = {t:String} GROUP BY namespace", {"t": TENANT}))
    if set(totals) != set(expected):
        failures.append(f"namespaces {sorted(totals)} in the view, {sorted(expected)} in the rows")
    failures += [f"{ns}: the view {totals[ns]!r}, its rows {expected[ns]!r}" for ns in sorted(totals)
                 if ns in expected and not close(totals[ns], expected[ns])]
    checks.check(f"the view's total of each of the {len(totals)} namespaces is the sum of its rows: list costs, the "
                 "node-hours' factors, the volume claims' factors", failures)

    # the ledger: what it says it billed is the bill
    ledger = query(client, "SELECT toUnixTimestamp(toDateTime(bill_day, 'UTC')), argMax(list_cost, computed_at), "
                           "argMax(modelled_cost, computed_at), argMax(billed_cost, computed_at), "
                           "argMax(unmatched_bill_lines, computed_at), argMax(unmatched_billed_cost, computed_at) "
                           "FROM k8s_reconciliations WHERE cloud_account_id = {t:String} GROUP BY bill_day "
                           "ORDER BY bill_day", {"t": TENANT})
    billed_total = sum(node_billed.values(), Decimal(0)) + sum(volume_billed.values(), Decimal(0))
    foreign_ids = {rid for _, rid in truth["foreign"]}
    foreign = [total[BILL.cost] for (rid, _), total in truth["totals"].items() if rid in foreign_ids]
    ledger_billed = sum((Decimal(r[3]) for r in ledger), Decimal(0))
    ledger_lines = sum(int(r[4]) for r in ledger)
    ledger_foreign = sum((Decimal(r[5]) for r in ledger), Decimal(0))
    failures = []
    if ledger_billed != billed_total:
        failures.append(f"the ledger's billed cost {ledger_billed}, the bill's for the billed resources {billed_total}")
    if (ledger_lines, ledger_foreign) != (len(foreign), sum(foreign, Decimal(0))):
        failures.append(f"the ledger's lines of no resource {ledger_lines} costing {ledger_foreign}, the bill's "
                        f"{len(foreign)} costing {sum(foreign, Decimal(0))}")
    checks.check("the ledger's billed cost of the month and its bill lines of no resource are the bill's, exactly",
                 failures)

    # every day once, and a second pass changes nothing
    month_days = list(range(start, end, DAY))
    failures = []
    if [d.day for d in days] != month_days or not all(d.changed for d in days):
        failures.append(f"reconciled {len(days)} days ({sum(d.changed for d in days)} changed) of {len(month_days)}: "
                        f"missing {[f'{utc(d):%Y-%m-%d}' for d in sorted(set(month_days) - {d.day for d in days})]}")
    checks.check(f"{len(month_days)} days in the month, {len(days)} reconciled", failures)
    failures = [f"{utc(d.day):%Y-%m-%d}: changed" for d in again if d.changed]
    if [d.day for d in again] != [d.day for d in days]:
        failures.append(f"the second pass reconciled {len(again)} days, the first {len(days)}")
    if {d.day: d.reconcile_id for d in again} != {d.day: d.reconcile_id for d in days}:
        failures.append("the second pass named other reconciliations")
    factors_after = query(client, "SELECT count() FROM k8s_reconciled_factors")[0][0]
    if factors_after != factors_written:
        failures.append(f"the second pass wrote {factors_after - factors_written} factors")
    checks.check("reconciling the month again changes nothing: every day unchanged, the same reconciliations, no "
                 "factor written", failures)

    # the daily tier: each day built again from its reconciliation, its sums those of the reconciled view
    built = {int(day): (reconciled, listed_sum) for day, reconciled, listed_sum in query(
        client, "SELECT toUnixTimestamp(toDateTime(day, 'UTC')), sum(total_cost_reconciled), sum(total_cost) "
                "FROM k8s_expenses_by_day_current GROUP BY day")}
    states = days_module.day_states(client)
    hourly = {int(day): (reconciled, listed_sum) for day, reconciled, listed_sum in query(
        client, "SELECT toUnixTimestamp(toStartOfDay(hour)), sum(total_cost), sum(total_cost_list) "
                "FROM k8s_expenses_reconciled_current GROUP BY 1")}
    failures = [f"{utc(day):%Y-%m-%d}: daily tier {built.get(day)}, the reconciled view {sums}"
                for day, sums in sorted(hourly.items())
                if day not in built or not (close(built[day][0], sums[0]) and close(built[day][1], sums[1]))]
    failures += [f"{utc(day):%Y-%m-%d}: its build is not its reconciliation's" for (_, day), state in states.items()
                 if not (state.reconciled and state.is_current)]
    checks.check(f"the daily tier's {len(built)} days, each built from its reconciliation: their reconciled and list "
                 "sums are the reconciled view's (1e-9 relative)", failures)

    figures = {"listed": listed, "rows": rows, "factors": factors, "claims": claims, "node_billed": node_billed,
               "volume_billed": volume_billed, "ledger": ledger, "billed_total": billed_total, "foreign": foreign}
    return checks, figures


def money(value) -> str:
    return f"{float(value):,.4f}"


def report(args, start, end, hours, samples, sim, done, loaded, truth, seconds, figures) -> None:
    listed, rows, factors, claims = figures["listed"], figures["rows"], figures["factors"], figures["claims"]
    tenant = sim.tenants[0]
    print("# A simulated month reconciled against its FOCUS bill\n")
    command = " ".join([".venv/bin/python bench/reconcile_month.py", *sys.argv[1:]])
    priced = sum(1 for node in tenant.nodes if node.provider_id)
    print(f"One EKS tenant ({len(tenant.nodes)} nodes, {priced} of them priced, {args.pods} pods asked, "
          f"{len(tenant.volumes)} volumes, seed {args.seed}) from {utc(start):%Y-%m-%d} to {utc(end):%Y-%m-%d} "
          f"({(end - start) // DAY} days, {hours} hours): {samples:,} samples of {sim.series_written:,} series; "
          f"{done.done} tenant-hours run in batches of {args.batch_hours}, {len(listed):,} rows; the bill "
          f"{truth['lines']:,} lines ({sum(p.lines for p in loaded.periods):,} loaded). `{command}`\n")

    print("## Stages\n")
    print("| stage | seconds |\n| --- | ---: |")
    for name, label in (("simulate", "simulate (decide, write OpenMetrics)"), ("promtool", "promtool (TSDB blocks)"),
                        ("pipeline", f"pipeline ({hours} hours, Prometheus to chDB)"),
                        ("bill write + load", "bill write + load"), ("reconcile", "reconcile"),
                        ("reconcile again", "reconcile again (nothing changed)"), ("checks", "checks"),
                        ("total", "total")):
        print(f"| {label} | {seconds.get(name, 0.0):,.1f} |")

    ledger = figures["ledger"]
    list_cost = sum(r.total for r in listed.values())
    reconciled = sum(r.total for r in rows.values())
    resources_list = sum(float(r[1]) for r in ledger)
    matched_list = sum(float(r[2]) for r in ledger)
    print("\n## The month\n")
    print("| | $ |\n| --- | ---: |")
    print(f"| every row at list (`k8s_expenses_current`) | {money(list_cost)} |")
    print(f"| every row reconciled (`k8s_expenses_reconciled_current`) | {money(reconciled)} |")
    print(f"| nodes and volumes at list | {money(resources_list)} |")
    print(f"| of them matched to bill lines, at list ({matched_list / resources_list:.1%}) | {money(matched_list)} |")
    print(f"| the bill for them (`EffectiveCost`) | {money(figures['billed_total'])} |")
    print(f"| bill lines of no resource ({len(figures['foreign'])}) | {money(sum(figures['foreign'], Decimal(0)))} |")
    transfer = [total[BILL.cost] for total in truth.get("transfer", {}).values()]
    if transfer:  # billed under an instance's id, priced per GB: network, which stays at list
        print(f"| the instances' data transfer ({len(transfer)} lines, not reconciled) | "
              f"{money(sum(transfer, Decimal(0)))} |")

    namespace_table(rows, listed, factors, claims, figures["node_billed"], figures["volume_billed"], start, end)
    resource_tables(rows, listed, factors, claims, truth)


def namespace_table(rows, listed, factors, claims, node_billed, volume_billed, start, end) -> None:
    """The largest namespace per day: list, reconciled, and the bill's share: each billed node-period's and
    volume-period's bill times the namespace's part of its list cost."""
    by_namespace = defaultdict(float)
    for row in listed.values():
        by_namespace[row.namespace] += row.total
    ordinary = {ns: cost for ns, cost in by_namespace.items() if not (ns.startswith("__") and ns.endswith("__"))}
    namespace = max(ordinary, key=ordinary.get)

    def period_of(kind: str, name: str, hour: int):
        factor = factors.get((kind, name, hour))
        return factor.period if factor is not None and factor.matched else None

    node_list, node_part = defaultdict(float), defaultdict(float)  # (node, period): all rows', the namespace's
    for row in listed.values():
        period = period_of("node", row.node, row.hour)
        if period is not None and (row.node, period) in node_billed:
            node_list[(row.node, period)] += row.compute
            if row.namespace == namespace:
                node_part[(row.node, period)] += row.compute
    volume_list, volume_part = defaultdict(float), defaultdict(float)
    for volume, hour, key, part in claims:
        period = period_of("volume", volume, hour)
        if period is not None and (volume, period) in volume_billed:
            volume_list[(volume, period)] += part
            if key[2] == namespace:
                volume_part[(volume, period)] += part

    day_of = lambda ts: ts // DAY * DAY  # noqa: E731
    figures = defaultdict(lambda: defaultdict(float))
    for row in listed.values():
        if row.namespace == namespace:
            day = figures[day_of(row.hour)]
            day["list"] += row.total
            day["resources"] += row.compute + row.pv
    for row in rows.values():
        if row.namespace == namespace:
            figures[day_of(row.hour)]["reconciled"] += row.total
    for parts, totals, billed in ((node_part, node_list, node_billed), (volume_part, volume_list, volume_billed)):
        for (name, period), part in parts.items():
            day = figures[day_of(period)]
            day["billed at list"] += part
            day["bill's share"] += float(billed[(name, period)]) * part / totals[(name, period)]

    columns = ("list", "resources", "billed at list", "bill's share", "reconciled")
    print(f"\n## Namespace `{namespace}`, per day\n")
    print("CPU + RAM + GPU + PV: its resources' cost at list; of it billed: the part on node-periods and "
          "volume-periods the bill covers; the bill's share: those periods' bill times the namespace's part of their "
          "list cost. Reconciled = list - of it billed + the bill's share (the rest, network, load balancers, "
          "management and unbilled nodes and volumes, stays at list).\n")
    print("| day | list | CPU + RAM + GPU + PV at list | of it billed, at list | the bill's share | reconciled | "
          "reconciled / list |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    month = defaultdict(float)
    for day in range(start, end, DAY):
        values = figures[day]
        for column in columns:
            month[column] += values[column]
        print(f"| {utc(day):%Y-%m-%d} | " + " | ".join(money(values[c]) for c in columns)
              + f" | {values['reconciled'] / values['list']:.4f} |")
    print("| **month** | " + " | ".join(f"**{money(month[c])}**" for c in columns)
          + f" | **{month['reconciled'] / month['list']:.4f}** |")
    identity = month["list"] - month["billed at list"] + month["bill's share"]
    if not close(identity, month["reconciled"]):
        print(f"\n(list - billed at list + the bill's share = {identity!r}, the view says {month['reconciled']!r})")


def resource_tables(rows, listed, factors, claims, truth) -> None:
    """Each node and volume over the month: list, billed (the bill's ground truth), reconciled, factor."""
    ids = {(kind, name): rid for (_, kind, name), rid in truth["resource_ids"].items()}
    billed = defaultdict(Decimal)
    for (rid, _), total in truth["totals"].items():
        billed[rid] += total[BILL.cost]
    node_list, node_reconciled = defaultdict(float), defaultdict(float)
    for key, row in rows.items():
        if row.node:
            node_list[row.node] += listed[key].compute if key in listed else 0.0
            node_reconciled[row.node] += row.compute
    volume_list, volume_reconciled = defaultdict(float), defaultdict(float)
    for volume, hour, _, part in claims:
        factor = factors.get(("volume", volume, hour))
        volume_list[volume] += part
        volume_reconciled[volume] += part * (factor.factor if factor is not None and factor.matched else 1.0)

    for kind, title, listed_cost, reconciled in (("node", "Nodes", node_list, node_reconciled),
                                                 ("volume", "Volumes", volume_list, volume_reconciled)):
        print(f"\n## {title}, the month\n")
        print(f"| {kind} | bill's resource id | list | billed | reconciled | factor (billed / list) |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        billed_list = billed_sum = billed_reconciled = 0.0
        for name in sorted(listed_cost):
            rid = ids.get((kind, name))
            if rid is None:
                print(f"| `{name}` | not billed | {money(listed_cost[name])} | - | {money(reconciled[name])} | "
                      "1 (list) |")
                continue
            billed_list += listed_cost[name]
            billed_sum += float(billed[rid])
            billed_reconciled += reconciled[name]
            print(f"| `{name}` | `{rid}` | {money(listed_cost[name])} | {money(billed[rid])} | "
                  f"{money(reconciled[name])} | {ratio(float(billed[rid]), listed_cost[name])} |")
        print(f"| **billed** | | **{money(billed_list)}** | **{money(billed_sum)}** | **{money(billed_reconciled)}** | "
              f"**{ratio(billed_sum, billed_list)}** |")
        total_list, total = sum(listed_cost.values()), sum(reconciled.values())
        print(f"| **all** | | **{money(total_list)}** | | **{money(total)}** | **{ratio(total, total_list)}** "
              "(reconciled / list) |")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.4f}" if b else "-"

if __name__ == "__main__":
    main()
