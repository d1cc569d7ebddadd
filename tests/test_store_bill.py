"""The cloud bill on chDB (``store/bill.py``, ``bill-load``): the real FOCUS sample loads with every line and column
intact, a reload changes nothing, a restated period replaces that period only, hostile files fail with their reason
and leave the bill as it was, Parquet, gzip and a URL the server reads load as the CSV does, and the simulator's bill
(``devtools/bill.py``) sums per resource-hour to its ground truth exactly."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import gzip
import http.server
import io
import threading
from collections import defaultdict
from pathlib import Path
from decimal import Decimal

import pytest

from kubecost_worker.devtools.bill import COLUMNS, write_focus_bill
from kubecost_worker.devtools.simulation import simulate
from kubecost_worker.store import bill, migrations, schema
from kubecost_worker.store.bill import BillRejected, load_bill, source_of

from .helpers import ROOT, ch_client, run_worker

pytestmark = [pytest.mark.needs_chdb]

# The FinOps Foundation's FOCUS 1.0 sample, byte-exact (CC BY 4.0; data/focus/SOURCE.md)
SAMPLE = Path(__file__).parent / "data" / "focus" / "focus_sample.csv"
SEPTEMBER_END = int(dt.datetime(2024, 10, 1, tzinfo=dt.timezone.utc).timestamp())
DECIMAL_COLUMNS = {c.name for c in schema.columns(bill.DECLARED) if "Decimal" in c.definition}


@pytest.fixture
def client(ch_url):
    with ch_client(ch_url) as client:
        migrations.migrate(client)
        yield client


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The bill of two tenants' clusters over the 6 hours around a month's end: 4 billing periods."""
    sim = simulate(["t-a", "t-b"], SEPTEMBER_END - 3 * 3600, 6, nodes=4, pods=10, seed=3)
    return write_focus_bill(sim, tmp_path_factory.mktemp("bill") / "bill.csv")


def load(client, *paths, **kwargs) -> bill.BillLoad:
    return load_bill(client, [source_of(str(p)) for p in paths], **kwargs)


def snapshot(client, without=("loaded_at",)) -> list[tuple]:
    return client.query(f"SELECT * EXCEPT ({', '.join(without)}) FROM focus_bill ORDER BY ALL").result_rows


def sums(client) -> tuple:
    return client.query("SELECT count(), sum(BilledCost), sum(EffectiveCost), sum(ListCost) FROM focus_bill"
                        ).result_rows[0]


def as_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows[0].keys())
    writer.writerows(row.values() for row in rows)
    return out.getvalue()


def test_the_real_sample_loads_with_every_line_and_every_column_intact(client):
    with open(SAMPLE, newline="", encoding="utf-8") as file:
        lines = list(csv.DictReader(file))
    loaded = load(client, SAMPLE)
    assert [(p.provider, p.lines) for p in loaded.periods] == [("AWS", 942), ("Microsoft", 51), ("Oracle", 6),
                                                               ("Oracle", 1)]
    assert sums(client) == (1000, *(sum(Decimal(line[c]) for line in lines)
                                    for c in ("BilledCost", "EffectiveCost", "ListCost")))
    names = [c for c in COLUMNS]
    stored = client.query(f"SELECT {', '.join(f'toString({c})' for c in names)} FROM focus_bill").result_rows
    by_id = {row[names.index("Id")]: dict(zip(names, row)) for row in stored}
    assert len(by_id) == 1000 and set(lines[0]) == set(names)
    for line in lines:
        row = by_id[line["Id"]]
        for column in names:
            value, text = row[column], line[column]
            if text == "NULL":
                assert value is None, (line["Id"], column)
            elif column in DECIMAL_COLUMNS:
                assert Decimal(value) == Decimal(text), (line["Id"], column)
            else:
                assert value == text, (line["Id"], column)
    instance = by_id["121035"]  # an EC2 instance-hour, as SOURCE.md describes them
    assert (instance["ResourceId"], instance["BilledCost"], instance["ConsumedUnit"], instance["ChargePeriodStart"],
            instance["BillingAccountName"]) == ("i-081360af1l266l589", "0.34", "Hours", "2024-09-26 00:00:00",
                                                "SunBird")
    oracle = [row for row in by_id.values() if row["ProviderName"] == "Oracle"]
    assert {row["BillingAccountName"] for row in oracle} == {""}  # written "", kept apart from NULL
    assert all(row["ContractedCost"] is None for row in oracle)


def test_reloading_the_same_file_changes_nothing_but_its_load(client, simulated):
    path, _ = simulated
    first = load(client, path)
    before, totals = snapshot(client, ("loaded_at", "load_id")), sums(client)
    second = load(client, path)
    assert snapshot(client, ("loaded_at", "load_id")) == before and sums(client) == totals
    assert [p.lines for p in second.periods] == [p.lines for p in first.periods] and len(first.periods) == 4
    assert client.query("SELECT DISTINCT load_id FROM focus_bill").result_rows == [(second.load_id,)]


def test_a_restated_period_replaces_exactly_that_period(client, simulated, tmp_path):
    path, _ = simulated
    load(client, path)
    with open(path, newline="") as file:
        lines = list(csv.DictReader(file))
    restated = [dict(line, BilledCost=f"{Decimal(line['BilledCost']) * 2:.11f}") for line in lines
                if line["SubAccountId"] == "t-a" and line["BillingPeriodStart"] == "2024-09-01 00:00:00"][1:]
    (tmp_path / "restated.csv").write_text(as_text(restated))
    others = "SubAccountId != 't-a' OR BillingPeriodStart != '2024-09-01 00:00:00'"
    untouched = client.query(f"SELECT * FROM focus_bill WHERE {others} ORDER BY ALL").result_rows

    loaded = load(client, tmp_path / "restated.csv")
    assert [(p.billing_account, utc_day(p.start), p.lines) for p in loaded.periods] == [
        (restated[0]["BillingAccountId"], "2024-09-01", len(restated))]
    assert client.query(f"SELECT * FROM focus_bill WHERE {others} ORDER BY ALL").result_rows == untouched
    period = client.query("SELECT Id, BilledCost FROM focus_bill WHERE NOT (" + others + ") ORDER BY toUInt64(Id)")
    assert period.result_rows == [(line["Id"], Decimal(line["BilledCost"])) for line in restated]


def utc_day(ts: int) -> str:
    return f"{dt.datetime.fromtimestamp(ts, dt.timezone.utc):%Y-%m-%d}"


def raw_fields(line: str) -> list[str]:
    """A CSV line's fields as written (quotes kept): split at the commas outside quotes."""
    fields, start, quoted = [], 0, False
    for at, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append(line[start:at])
            start = at + 1
    return [*fields, line[start:]]


def _edit(line_no: int, column: str, value: str):
    """The bill's text with one line's field written as ``value`` (``line_no`` counts the header as 0)."""
    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        fields = raw_fields(lines[line_no].rstrip("\n"))
        fields[COLUMNS.index(column)] = value
        lines[line_no] = ",".join(fields) + "\n"
        return "".join(lines)
    return edit


HOSTILE = {
    "a misspelt column": (lambda t: t.replace('"ResourceId"', '"ResourceID"', 1),
                          "the header lacks the FOCUS columns ResourceId"),
    "no header": (lambda t: t.split("\n", 1)[1], "names no FOCUS column"),
    "a non-numeric cost": (_edit(5, "BilledCost", "abc"), "row 5, BilledCost (Decimal(38, 18)): garbage after"),
    "a cost in dollars": (_edit(3, "EffectiveCost", '"$1.00"'), "row 3, EffectiveCost (Decimal(38, 18))"),
    "a NULL cost": (_edit(7, "ListCost", "NULL"), "ListCost has no value on a line (FOCUS requires one)"),
    "an empty cost": (_edit(2, "BilledCost", ""), "BilledCost has no value on a line"),
    "a cost past Decimal(38, 18)": (_edit(4, "BilledCost", "1e30"), "row 4, BilledCost (Decimal(38, 18)): "),
    "a date that is none": (_edit(6, "ChargePeriodStart", '"yesterday"'), "row 6, ChargePeriodStart"),
    "an unknown charge category": (_edit(1, "ChargeCategory", '"Refund"'),
                                   "1 line whose ChargeCategory is none of Usage, Purchase"),
    "Tags that are no JSON object": (lambda t: t.replace('"}"\n', '""\n', 1), "1 line whose Tags are no JSON object"),
    "an empty file": (lambda t: "", "the file is empty"),
    "a header alone": (lambda t: t.split("\n", 1)[0] + "\n", "no bill lines"),
    "a line short of its last field": (lambda t: t.replace(',"t-a-cluster","{', ',"t-a-cluster"\n"{', 1), "row "),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_fails_with_its_reason_and_changes_nothing(client, simulated, tmp_path, case):
    path, _ = simulated
    load(client, path)
    before = snapshot(client)
    spoil, reason = HOSTILE[case]
    hostile = tmp_path / "hostile.csv"
    hostile.write_text(spoil(path.read_text()))
    with pytest.raises(BillRejected) as raised:
        load(client, hostile)
    assert reason in str(raised.value) and "\n" not in str(raised.value), str(raised.value)
    assert snapshot(client) == before
    assert client.query("SELECT count() FROM system.tables WHERE name LIKE 'focus_bill_load_%'").result_rows == [(0,)]


def test_huge_files_and_a_bad_file_beside_good_ones_change_nothing(client, simulated, tmp_path):
    path, _ = simulated
    load(client, path)
    before = snapshot(client)
    size = path.stat().st_size
    with pytest.raises(BillRejected, match=f"{size:,} bytes, more than the load's limit of 10,000"):
        load(client, path, max_bytes=10_000)
    packed = tmp_path / "bill.csv.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert packed.stat().st_size < 20_000 < size  # small on disk, refused as it is read
    with pytest.raises(BillRejected, match="more than 20,000 bytes"):
        load(client, packed, max_bytes=20_000)
    bad = tmp_path / "bad.csv"
    bad.write_text(_edit(5, "BilledCost", "abc")(path.read_text()))
    with pytest.raises(BillRejected, match="bad.csv: row 5"):
        load(client, path, bad)  # the good file's periods are not replaced either
    assert snapshot(client) == before


@contextlib.contextmanager
def served(directory):
    """A plain HTTP server on 127.0.0.1 serving ``directory``: a URL the embedded server can read."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_gzip_and_a_url_load_as_the_file_does(client, simulated, tmp_path):
    path, _ = simulated
    load(client, path)
    expected = snapshot(client, ("loaded_at", "load_id"))
    (tmp_path / "bill.csv.gz").write_bytes(gzip.compress(path.read_bytes()))
    (tmp_path / "bill.csv").write_bytes(path.read_bytes())
    with served(tmp_path) as base:
        for source in (tmp_path / "bill.csv.gz", f"{base}/bill.csv", f"{base}/bill.csv.gz"):
            client.command("TRUNCATE TABLE focus_bill")
            load(client, source)
            assert snapshot(client, ("loaded_at", "load_id")) == expected, source
        with pytest.raises(BillRejected, match="missing.csv: .*404") as raised:
            load(client, f"{base}/missing.csv")
        assert "\n" not in str(raised.value)
        (tmp_path / "renamed.csv").write_text(path.read_text().replace('"ResourceId"', '"ResourceID"', 1))
        with pytest.raises(BillRejected, match="renamed.csv: the header lacks the FOCUS columns ResourceId"):
            load(client, f"{base}/renamed.csv")
        with pytest.raises(BillRejected, match="more than the load's limit of 100"):
            load(client, f"{base}/bill.csv", max_bytes=100)
    assert snapshot(client, ("loaded_at", "load_id")) == expected


def write_parquet(path, lines: list[dict], leave_out: tuple[str, ...] = ()) -> None:
    """The sample as a provider's Parquet export types it: decimals, UTC timestamps, texts, the line id a number."""
    pa = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")

    def typed(column: schema.Column):
        if "Decimal" in column.definition:
            return pa.decimal128(38, 18), Decimal
        if "DateTime" in column.definition:
            return pa.timestamp("s", tz="UTC"), lambda v: dt.datetime.fromisoformat(v + "+00:00")
        return (pa.int64(), int) if column.name == "Id" else (pa.string(), str)

    arrays = {}
    for column in schema.columns(bill.DECLARED):
        if column.name in COLUMNS and column.name not in leave_out:
            kind, convert = typed(column)
            arrays[column.name] = pa.array([None if line[column.name] == "NULL" else convert(line[column.name])
                                            for line in lines], type=kind)
    parquet.write_table(pa.table(arrays), path)


def test_a_parquet_export_loads_as_the_csv_does(client, tmp_path):
    with open(SAMPLE, newline="", encoding="utf-8") as file:
        lines = list(csv.DictReader(file))
    write_parquet(tmp_path / "sample.parquet", lines)
    load(client, SAMPLE)
    expected = snapshot(client, ("loaded_at", "load_id"))
    client.command("TRUNCATE TABLE focus_bill")
    loaded = load(client, tmp_path / "sample.parquet")
    assert snapshot(client, ("loaded_at", "load_id")) == expected and sum(p.lines for p in loaded.periods) == 1000
    write_parquet(tmp_path / "short.parquet", lines, leave_out=("RegionId",))
    with pytest.raises(BillRejected, match="short.parquet: the file has no column RegionId"):
        load(client, tmp_path / "short.parquet")
    write_parquet(tmp_path / "unbilled.parquet", lines, leave_out=("BilledCost",))
    with pytest.raises(BillRejected, match="BilledCost has no value on a line"):
        load(client, tmp_path / "unbilled.parquet")
    assert snapshot(client, ("loaded_at", "load_id")) == expected


def test_the_simulated_bill_sums_to_its_ground_truth_per_resource_hour(client, simulated):
    path, truth = simulated
    load(client, path)
    stored = client.query("SELECT ResourceId, toUnixTimestamp(ChargePeriodStart), sum(EffectiveCost), "
                          "sum(BilledCost) FROM focus_bill GROUP BY ALL").result_rows
    lines = defaultdict(lambda: {"EffectiveCost": Decimal(0), "BilledCost": Decimal(0)})
    for part in (truth["totals"], truth["transfer"]):
        for key, total in part.items():
            for column, cost in total.items():
                lines[key][column] += cost
    assert truth["transfer"] and {(rid, hour): {"EffectiveCost": effective, "BilledCost": billed}
                                  for rid, hour, effective, billed in stored} == lines
    assert sums(client)[0] == truth["lines"]


def test_the_simulated_bill_holds_every_kind_of_line(simulated):
    path, truth = simulated
    with open(path, newline="") as file:
        lines = list(csv.DictReader(file))
    if SAMPLE.is_file():
        assert path.read_text().split("\n", 1)[0] == SAMPLE.read_text().split("\n", 1)[0]
    ids = truth["resource_ids"]
    nodes = {rid for (_, kind, _), rid in ids.items() if kind == "node"}
    of = {kind: [line for line in lines if cond(line)] for kind, cond in {
        "committed": lambda l: l["PricingCategory"] == "Committed" and l["ChargeCategory"] == "Usage",
        "spot": lambda l: l["PricingCategory"] == "Dynamic",
        "partial": lambda l: Decimal(l["ConsumedQuantity"] if l["ConsumedQuantity"] != "NULL" else 1) < 1,
        "credit": lambda l: l["ChargeCategory"] == "Credit",
        "volume": lambda l: l["ServiceCategory"] == "Storage",
        "transfer": lambda l: l["PricingUnit"] == "GB" and l["ServiceCategory"] == "Compute",
    }.items()}
    assert all(of.values()), {kind: len(found) for kind, found in of.items()}
    assert all(Decimal(l["BilledCost"]) == 0 < Decimal(l["EffectiveCost"]) for l in of["committed"])
    assert all(Decimal(l["BilledCost"]) < 0 and l["ResourceId"] in nodes for l in of["credit"])
    assert all(l["ResourceId"].startswith("vol-") for l in of["volume"])
    assert all(l["ResourceId"] in nodes for l in of["transfer"])  # under an instance's id: not its compute
    billed = {line["ResourceId"] for line in lines}
    left_out = [name for _, kind, name in truth["unbilled"] if kind == "node"]
    assert len(left_out) == 4  # per tenant: one left out on purpose, and the node without a provider id
    assert not [name for name in left_out if any(f'"Name": "{name}"' in line["Tags"] for line in lines)]
    for tenant, foreign in truth["foreign"]:
        assert foreign in billed and foreign not in ids.values()
        assert f'"kubernetes.io/cluster/{tenant}-cluster": "owned"' in next(
            l["Tags"] for l in lines if l["ResourceId"] == foreign)


def test_the_simulated_bill_is_decided_by_its_seed(tmp_path):
    sim = simulate(["t-a"], SEPTEMBER_END - 3 * 3600, 3, nodes=3, pods=5, seed=1)
    first, truth = write_focus_bill(sim, tmp_path / "a.csv")
    again, _ = write_focus_bill(sim, tmp_path / "b.csv")
    other, other_truth = write_focus_bill(sim, tmp_path / "c.csv", seed=2)
    assert first.read_bytes() == again.read_bytes() != other.read_bytes()
    assert set(truth["resource_ids"]) == set(other_truth["resource_ids"])
    assert not set(truth["resource_ids"].values()) & set(other_truth["resource_ids"].values())


def test_the_bill_load_command(tmp_path, simulated):
    """Through the installed command: the one-line summary; exit 2 for arguments that name no bill, 1 for a file
    that is no bill, each with one line on stderr."""
    path, truth = simulated
    env = {"KCW_DATA_DIR": str(tmp_path)}
    assert run_worker("migrate", env=env).returncode == 0
    ok = run_worker("bill-load", str(path), env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"bill-load: replaced 4 billing periods, {truth['lines']} lines: AWS ")
    assert ok.stdout.count("\n") == 1
    (tmp_path / "bill.txt").write_bytes(path.read_bytes())
    (tmp_path / "wrong.csv").write_text(path.read_text().replace('"ResourceId"', '"ResourceID"', 1))
    for args, code, reason in (
            (["bill-load", str(tmp_path / "none.csv")], 2, "no such file"),
            (["bill-load", str(tmp_path / "bill.txt")], 2, "give --format csv or parquet"),
            (["bill-load", "ftp://example.invalid/bill.csv"], 2, "not a local file, http(s):// or s3:// URL"),
            (["bill-load", str(path), str(path)], 2, "named twice"),
            (["bill-load", "--format", "xml", str(path)], 2, "'xml' is not one of"),
            (["bill-load", str(tmp_path / "wrong.csv")], 1, "the header lacks the FOCUS columns ResourceId"),
            (["bill-load", "--max-bytes", "1000", str(path)], 1, "more than the load's limit of 1,000"),
            (["--bill-table", "nowhere", "bill-load", str(path)], 1, "no table nowhere")):
        result = run_worker(*args, env=env)
        assert result.returncode == code and reason in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert run_worker("bill-load", "--format", "csv", str(tmp_path / "bill.txt"), env=env).returncode == 0
    count = run_worker("sql", "SELECT count(), uniqExact(load_id) FROM focus_bill", "--format", "tsv", env=env)
    assert count.stdout.split() == ["count()", "uniqExact(load_id)", str(truth["lines"]), "1"]


def test_the_index_of_the_bills_periods_is_written_by_each_load_and_by_the_migration_alike(client, simulated):
    """bill-load indexes the periods it loads by their lines' matching keys (``reconcile.index_bill``); migration
    0021 indexes the periods loaded before it with its own copy of that SQL, which must give the same rows."""
    path, _ = simulated
    load(client, SAMPLE)
    load(client, path)
    index = "SELECT DISTINCT * FROM focus_bill_resources ORDER BY ALL"
    loaded = client.query(index).result_rows
    keys = {key for key, *_ in loaded}
    with open(path, newline="") as file:
        volumes = {line["ResourceId"] for line in csv.DictReader(file) if line["ResourceId"].startswith("vol-")}
    assert volumes and volumes <= keys and "i-081360af1l266l589" in keys  # the simulated volumes, the sample's EC2
    periods = client.query("SELECT DISTINCT BillingPeriodStart, BillingPeriodEnd, ProviderName, BillingAccountId "
                           "FROM focus_bill ORDER BY ALL").result_rows
    assert sorted({tuple(row[1:]) for row in loaded}) == periods  # every period billing a resource: all of them here
    backfill, = [s for m in migrations.load_migrations(ROOT / "migrations") if m.name == "bill_index"
                 for s in m.statements if s.startswith("INSERT")]
    client.command("TRUNCATE TABLE focus_bill_resources")
    client.command(backfill)
    assert client.query(index).result_rows == loaded
    client.command(backfill)  # twice is once
    assert client.query(index).result_rows == loaded
