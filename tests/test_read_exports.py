"""``read/exports.py`` (``kubecost-worker export``): a tenant's current data written by ClickHouse in CSV, Parquet
and JSON lines, read back here (Parquet with pyarrow) and compared with SQL over ``k8s_expenses_current``; how the
file is written (a temporary file of its own, renamed over ``--out``) against links, a second export at once, long
names, bad paths and a full disk."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import threading
import time

import pyarrow.parquet as pq
import pytest

from kubecost_worker.read import exports
from kubecost_worker.errors import WorkerError

from .helpers import Cluster, ch_client, iso, run_worker

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["export-a", "export-b"]
HOURS = 3
END = int(time.time()) // 3600 * 3600
START = END - HOURS * 3600
SPECIAL = "('__idle__', '__cluster_management__', '__unmounted__')"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The store written by ``backfill``, then exported by the CLI in every format (each a process of its own,
    as chDB opens a path in one process at a time); the files, and the store's URL to compare with."""
    root = tmp_path_factory.mktemp("export")
    cluster = Cluster(root, TENANTS, START, HOURS, pods=12, seed=9)
    env = {**cluster.worker_env(f"chdb://{root / 'ch'}")}
    try:
        assert run_worker("migrate", env=env).returncode == 0
        backfill = run_worker("backfill", "--start", iso(START), "--end", iso(END), env=env)
        assert backfill.returncode == 0, backfill.stderr
    finally:
        cluster.prometheus.stop()
    files = {}
    for name, fmt, extra in (("rows.parquet", "parquet", ()), ("rows.csv", "csv", ()), ("rows.jsonl", "jsonl", ()),
                             ("teams.parquet", "parquet", ("--aggregate", "namespace,label:team", "--step", "day")),
                             ("pods.csv", "csv", ("--aggregate", "node,pod", "--step", "hour"))):
        out = root / name
        result = run_worker("export", "--tenant", TENANTS[0], "--start", iso(START), "--end", iso(END),
                            "--format", fmt, "--out", str(out), *extra, env=env)
        assert result.returncode == 0, result.stderr
        assert f"bytes to {out}" in result.stdout and not list(root.glob(".kcw-export-*"))  # no temporary file left
        files[name] = out
    return files, f"chdb://{root / 'ch'}", env


def sql(url: str, query: str) -> list[tuple]:
    with ch_client(url) as client:
        return client.query(query, parameters={"t": TENANTS[0]}).result_rows


def test_the_row_exports_hold_the_current_rows(exported):
    files, url, _ = exported
    (rows, total, cpu_usage), = sql(url, "SELECT count(), sum(total_cost), sum(cpu_usage_core_hours) "
                                         "FROM k8s_expenses_current WHERE cloud_account_id = {t:String}")
    table = pq.read_table(files["rows.parquet"])
    assert table.num_rows == rows > 0
    assert math.fsum(table.column("total_cost").to_pylist()) == pytest.approx(total, rel=1e-12)
    usage = [u for u in table.column("cpu_usage_core_hours").to_pylist() if u is not None]  # NULL stays NULL
    assert math.fsum(usage) == pytest.approx(cpu_usage, rel=1e-12) and len(usage) < rows
    assert {"labels", "container", "pod_uid", "service", "price_source"} <= set(table.column_names)
    assert not {"run_id", "inserted_at"} & set(table.column_names)
    assert set(table.column("cloud_account_id").to_pylist()) == {TENANTS[0]}  # the other tenant's rows stay out
    with open(files["rows.csv"], newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == rows and math.fsum(float(r["total_cost"]) for r in lines) == pytest.approx(total, rel=1e-12)
    records = [json.loads(line) for line in files["rows.jsonl"].read_text().splitlines()]
    assert len(records) == rows and records[0].keys() == set(table.column_names)


def test_an_aggregated_export_groups_as_the_api_does(exported):
    files, url, _ = exported
    expected = {(day, ns, team): total for day, ns, team, total in sql(
        url, f"SELECT toStartOfDay(hour), namespace, multiIf(namespace IN {SPECIAL}, namespace, "
             "mapContains(labels, 'team'), labels['team'], '__unallocated__'), sum(total_cost) "
             "FROM k8s_expenses_current WHERE cloud_account_id = {t:String} GROUP BY ALL")}
    table = pq.read_table(files["teams.parquet"]).to_pylist()
    assert table and list(table[0])[:3] == ["start", "namespace", "label:team"]
    got = {(r["start"].replace(tzinfo=None), r["namespace"], r["label:team"]): r["total_cost"] for r in table}
    assert got.keys() == {(d.replace(tzinfo=None), n, t) for d, n, t in expected}
    for (day, ns, team), total in expected.items():
        assert got[(day.replace(tzinfo=None), ns, team)] == pytest.approx(total, rel=1e-9)
    with open(files["pods.csv"], newline="") as f:
        pods = list(csv.DictReader(f))
    (total,), = sql(url, "SELECT sum(total_cost) FROM k8s_expenses_current WHERE cloud_account_id = {t:String}")
    assert list(pods[0])[:3] == ["start", "node", "pod"]
    assert math.fsum(float(r["total_cost"]) for r in pods) == pytest.approx(total, rel=1e-9)
    assert len({r["start"] for r in pods}) == HOURS


def test_a_bad_aggregate_is_refused_and_writes_nothing(exported, tmp_path):
    _, _, env = exported
    out = tmp_path / "never.csv"
    result = run_worker("export", "--tenant", TENANTS[0], "--start", iso(START), "--end", iso(END), "--format", "csv",
                        "--out", str(out), "--aggregate", "namespace,owner", env=env)
    assert result.returncode == 2 and "--aggregate" in result.stderr and not out.exists()


def test_aggregate_and_step_are_read_as_the_api_reads_them(exported, tmp_path):
    """The read API's parser: blanks around a value stripped, a step it refuses refused here, before any query."""
    files, _, env = exported
    out = tmp_path / "pods.csv"
    result = run_worker("export", "--tenant", TENANTS[0], "--start", iso(START), "--end", iso(END), "--format", "csv",
                        "--out", str(out), "--aggregate", " node, pod ", "--step", " hour ", env=env)
    assert result.returncode == 0, result.stderr
    with open(files["pods.csv"], newline="") as f, open(out, newline="") as g:
        expected, got = list(csv.reader(f)), list(csv.reader(g))

    def figures(line: list[str]) -> list[float | None]:
        return [None if v == "\\N" else float(v) for v in line[3:]]  # \N: NULL

    assert [line[:3] for line in got] == [line[:3] for line in expected] and len(got) > 1
    for got_line, expected_line in zip(got[1:], expected[1:]):  # sums to the last bits: another query's SQL
        assert figures(got_line) == [v if v is None else pytest.approx(v, rel=1e-12) for v in figures(expected_line)]
    for option, value in (("--step", "year"), ("--step", "hour,day"), ("--aggregate", " ")):
        out = tmp_path / "never.csv"
        result = run_worker("export", "--tenant", TENANTS[0], "--start", iso(START), "--end", iso(END), "--format",
                            "csv", "--out", str(out), "--aggregate", "namespace", option, value, env=env)
        assert result.returncode == 2 and option in result.stderr and not out.exists(), (option, value, result.stderr)


# -- how the file is written ----------------------------------------------------------------------------------
PAUSE_AT = 4096


class PausedStream(io.RawIOBase):
    """An export's result, read whole from ClickHouse beforehand, served with one pause after its first 4 kB:
    ``at_pause()`` runs there, with the export's file half written (fault injection: what another process, or a
    second export, does meanwhile)."""

    def __init__(self, data: bytes, at_pause):
        super().__init__()
        self.data, self.at, self.at_pause = data, 0, at_pause

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.at >= PAUSE_AT and self.at_pause is not None:
            at_pause, self.at_pause = self.at_pause, None
            at_pause()
        chunk = self.data[self.at:self.at + min(len(buf), PAUSE_AT)]
        buf[:len(chunk)] = chunk
        self.at += len(chunk)
        return len(chunk)


class PausingClient:
    def __init__(self, client, at_pause):
        self.client, self.at_pause = client, at_pause

    def raw_stream(self, *args, **kwargs):
        stream = self.client.raw_stream(*args, **kwargs)
        try:
            data = stream.read()
        finally:
            stream.close()
        assert len(data) > 2 * PAUSE_AT
        return PausedStream(data, self.at_pause)


def export_rows(client, out, fmt: str = "csv") -> int:
    return exports.export(client, out, fmt, TENANTS[0], START, END)


def cli_export(env: dict, out: str, fmt: str = "csv") -> subprocess.CompletedProcess:
    return run_worker("export", "--tenant", TENANTS[0], "--start", iso(START), "--end", iso(END), "--format", fmt,
                      "--out", out, env=env)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr and "unexpected" not in stderr, stderr
    return lines[0]


def test_two_exports_to_one_file_at_once_leave_one_whole_file(exported, tmp_path):
    files, url, _ = exported
    out = tmp_path / "report"
    paused, resume, results = threading.Event(), threading.Event(), {}

    def run(fmt, client):
        try:
            results[fmt] = export_rows(client, out, fmt)
        except BaseException as exc:  # noqa: BLE001  (the outcome is what is tested)
            results[fmt] = exc

    def pause():
        paused.set()
        assert resume.wait(120)

    with ch_client(url) as first, ch_client(url) as second:
        slow = threading.Thread(target=run, args=("jsonl", PausingClient(first, pause)))
        slow.start()
        try:
            assert paused.wait(120)  # the JSON lines export is half written: the CSV export runs whole meanwhile
            fast = threading.Thread(target=run, args=("csv", second))
            fast.start()
            fast.join(120)
            assert not fast.is_alive()
        finally:
            resume.set()
            slow.join(120)
    assert not slow.is_alive()
    assert results == {"jsonl": files["rows.jsonl"].stat().st_size, "csv": files["rows.csv"].stat().st_size}
    assert out.read_bytes() == files["rows.jsonl"].read_bytes()  # the last to finish, whole; never a mix
    assert os.listdir(tmp_path) == ["report"]


def test_links_where_the_temporary_file_goes_are_never_written_through(exported, tmp_path, monkeypatch):
    files, url, _ = exported
    victim = tmp_path / "victim.txt"
    victim.write_text("not the export's\n")
    out = tmp_path / "report.csv"
    planted = [out.with_name(out.name + ".partial"), tmp_path / ".planted-1", tmp_path / ".planted-2"]
    for link in planted:
        link.symlink_to(victim)
    # the names the export draws for its temporary file: the first ones are taken by links to the victim
    names = iter([".planted-1", ".planted-2"])
    draw = exports.temp_name
    monkeypatch.setattr(exports, "temp_name", lambda: next(names, None) or draw())
    with ch_client(url) as client:
        assert export_rows(client, out) == files["rows.csv"].stat().st_size
    assert victim.read_text() == "not the export's\n"
    assert not out.is_symlink() and out.read_bytes() == files["rows.csv"].read_bytes()
    assert all(link.is_symlink() and link.resolve() == victim for link in planted)  # not the export's to delete
    assert sorted(os.listdir(tmp_path)) == sorted([out.name, victim.name, *(link.name for link in planted)])


def test_a_temporary_file_swapped_for_a_link_is_neither_published_nor_deleted(exported, tmp_path):
    _, url, _ = exported
    victim = tmp_path / "victim.txt"
    victim.write_text("not the export's\n")
    out = tmp_path / "report.csv"
    out.write_text("the previous report\n")

    def swap():  # mid-export, another user replaces the export's temporary file with a link to the victim
        temp, = set(os.listdir(tmp_path)) - {out.name, victim.name}
        os.unlink(tmp_path / temp)
        (tmp_path / temp).symlink_to(victim)
        swapped.append(tmp_path / temp)

    swapped: list = []
    with ch_client(url) as client, pytest.raises(WorkerError, match="temporary file"):
        export_rows(PausingClient(client, swap), out)
    link, = swapped
    assert victim.read_text() == "not the export's\n" and out.read_text() == "the previous report\n"
    assert not out.is_symlink() and link.is_symlink()


def test_a_link_at_out_is_replaced_by_the_file_its_target_untouched(exported, tmp_path):
    files, url, _ = exported
    victim = tmp_path / "victim.txt"
    victim.write_text("not the export's\n")
    out = tmp_path / "report.csv"
    out.symlink_to(victim)
    with ch_client(url) as client:
        export_rows(client, out)
    assert not out.is_symlink() and out.read_bytes() == files["rows.csv"].read_bytes()
    assert victim.read_text() == "not the export's\n"


def test_a_file_name_of_255_bytes_is_written(exported, tmp_path):
    files, url, _ = exported
    out = tmp_path / ("r" * 251 + ".csv")
    with ch_client(url) as client:
        export_rows(client, out)
    assert out.read_bytes() == files["rows.csv"].read_bytes() and os.listdir(tmp_path) == [out.name]
    with ch_client(url) as client, pytest.raises(exports.BadOutput, match="longer than 255 bytes"):
        export_rows(client, tmp_path / ("r" * 252 + ".csv"))


def test_a_failed_export_leaves_the_previous_file_and_no_temporary_file(exported, tmp_path):
    _, url, _ = exported
    out = tmp_path / "report.csv"
    out.write_text("the previous report\n")

    def fail():
        raise ConnectionResetError("ClickHouse went away")

    with ch_client(url) as client, pytest.raises(ConnectionResetError):
        export_rows(PausingClient(client, fail), out)
    assert out.read_text() == "the previous report\n" and os.listdir(tmp_path) == [out.name]


def test_an_out_that_names_no_writable_file_is_invalid_usage(exported, tmp_path):
    _, _, env = exported
    for out, reason in (("", "--out"), (str(tmp_path / "missing" / "report.csv"), "does not exist"),
                        (str(tmp_path), "is a directory")):
        result = cli_export(env, out)
        line = one_line(result.stderr)
        assert result.returncode == 2 and "--out" in line and reason in line, (out, result.stderr)
    assert os.listdir(tmp_path) == [] and not (tmp_path / "missing").exists()


def test_a_full_disk_fails_the_export_with_its_reason(exported, tmp_path):
    files, _, env = exported
    assert files["rows.jsonl"].stat().st_size > 64 * 1024  # more than the file system below holds
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        out = disk / "report.jsonl"
        out.write_text("the previous report\n")
        result = cli_export(env, str(out), "jsonl")
        line = one_line(result.stderr)
        assert result.returncode == 1 and f"no space left on device writing {out}" in line, result.stderr
        assert out.read_text() == "the previous report\n" and os.listdir(disk) == [out.name]
    finally:
        subprocess.run(["umount", str(disk)], check=True)
