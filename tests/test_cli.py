"""``cli/``: the command line as its users meet it, through the installed ``kubecost-worker`` in a subprocess: every
setting a flag and the flag winning over the environment, configuration errors reported at once, exit codes (2 for
invalid usage or configuration, 1 for work that failed) with a one-line reason, the commands that need RabbitMQ or a
ClickHouse server saying so, ``sql``, ``simulate``. What a command does with the data is tested with the module that
does it (``export``: ``test_read_exports.py``, ``export-optscale``: ``test_read_optscale.py``, ``run --serve``:
``test_jobs.py``, ``backfill``: ``test_end_to_end.py``)."""

from __future__ import annotations

import pytest

from kubecost_worker.config import SETTINGS

from .helpers import run_worker

pytestmark = [pytest.mark.needs_chdb]


def test_cli_reports_configuration_errors_all_at_once(tmp_path):
    result = run_worker("backfill", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T02:00:00Z",
                        env={"KCW_THANOS_DEDUP": "perhaps", "KCW_CLICKHOUSE_URL": "chdb://relative",
                             "KCW_STEP_SECONDS": "0"})
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    for problem in ("KCW_THANOS_URL is required", "KCW_THANOS_DEDUP", "KCW_CLICKHOUSE_URL", "KCW_STEP_SECONDS"):
        assert problem in line
    bad_time = run_worker("backfill", "--start", "yesterday", "--end", "1", env={"KCW_THANOS_URL": "http://x"})
    assert bad_time.returncode == 2 and "ISO-8601" in bad_time.stderr


def test_every_setting_is_a_flag():
    help_text = run_worker("--help").stdout
    for setting in SETTINGS.values():
        assert setting.flag in help_text, setting.flag


def test_a_flag_wins_over_the_environment(tmp_path):
    result = run_worker("--step-seconds", "7", "migrate", env={"KCW_STEP_SECONDS": "60",
                                                                "KCW_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "KCW_STEP_SECONDS: must divide an hour evenly, got 7" in result.stderr


def test_sql_command_and_its_errors(tmp_path):
    env = {"KCW_DATA_DIR": str(tmp_path)}
    assert run_worker("migrate", env=env).returncode == 0
    ok = run_worker("sql", "SELECT count() AS n FROM k8s_expenses_current", "--format", "tsv", env=env)
    assert ok.returncode == 0 and ok.stdout.split() == ["n", "0"]
    bad = run_worker("sql", "SELECT nonsense", env=env)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "UNKNOWN_IDENTIFIER" in bad.stderr


def test_backfill_refuses_an_unmigrated_schema(tmp_path):
    result = run_worker("backfill", "--tenant", "a", "--start", "0", "--end", "3600",
                        env={"KCW_DATA_DIR": str(tmp_path), "KCW_THANOS_URL": "http://127.0.0.1:9"})
    assert result.returncode == 1 and "kubecost-worker migrate" in result.stderr


def test_commands_that_need_shared_components_say_so(tmp_path):
    env = {"KCW_DATA_DIR": str(tmp_path), "KCW_THANOS_URL": "http://127.0.0.1:9"}
    for args in (["schedule"], ["consume"], ["rerun", "--tenant", "a", "--start", "0", "--end", "3600"],
                 ["dlq", "list"], ["dlq", "replay"]):
        result = run_worker(*args, env=env)
        assert result.returncode == 2 and "KCW_BROKER_URL=amqp://" in result.stderr, args
    result = run_worker("schedule", env={**env, "KCW_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"})
    assert result.returncode == 2 and "needs a ClickHouse server" in result.stderr
    result = run_worker("serve", env=env)
    assert result.returncode == 2 and "KCW_CLUSTER_SECRET is required" in result.stderr


def test_a_taken_metrics_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_worker("consume", env={"KCW_DATA_DIR": str(tmp_path), "KCW_THANOS_URL": "http://127.0.0.1:9",
                                            "KCW_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
                                            "KCW_METRICS_PORT": str(port)})
    assert result.returncode == 2 and f"cannot serve /metrics on 127.0.0.1:{port}" in result.stderr


def test_consume_before_migrate_refuses_to_start(tmp_path):
    """Every job would fail on the missing tables and be dead-lettered as terminal: refused at start instead."""
    result = run_worker("consume", env={"KCW_DATA_DIR": str(tmp_path), "KCW_THANOS_URL": "http://127.0.0.1:9",
                                        "KCW_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
                                        "KCW_METRICS_PORT": "0"}, timeout=60)
    assert result.returncode == 1 and "run `kubecost-worker migrate` first" in result.stderr, result.stderr


def test_simulate_command_writes_openmetrics_and_ground_truth(tmp_path):
    result = run_worker("simulate", "--out", str(tmp_path / "sim"), "--tenants", "1", "--hours", "1", "--pods", "5",
                        "--end", "2026-01-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "sim" / "metrics.om").read_text()
    assert text.endswith("# EOF\n") and 'tenant_id="sim-tenant-0001"' in text
    assert (tmp_path / "sim" / "ground_truth.jsonl").read_text().count("\n") > 5
