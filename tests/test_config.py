"""Configuration: typed, frozen, validated at once; and the CLI's exit codes and one-line reasons."""

from __future__ import annotations

import dataclasses

import pytest

from kubecost_worker.config import SETTINGS, load_config
from kubecost_worker.errors import ConfigError

from .helpers import run_worker

pytestmark = [pytest.mark.needs_chdb]


@pytest.mark.parametrize("raw, expected", [("true", True), ("1", True), ("YES", True), ("on", True),
                                           ("false", False), ("0", False), ("no", False), ("Off", False)])
def test_booleans_are_parsed_properly(raw, expected):
    assert load_config({"KCW_THANOS_PARTIAL_RESPONSE": raw}).thanos_partial_response is expected
    assert load_config({"KCW_THANOS_DEDUP": raw}).thanos_dedup is expected


def test_defaults_and_frozen():
    config = load_config({})
    assert config.tenant_label == "tenant_id" and config.tenants == () and config.thanos_dedup is None
    assert config.clickhouse_url.startswith("chdb:///") and config.clickhouse_url.endswith("/.kcw-data/clickhouse")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.tenant_label = "x"


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        load_config({"KCW_THANOS_DEDUP": "maybe", "KCW_TENANTS": 'ok,bad"}', "KCW_CLICKHOUSE_URL": "mysql://x",
                     "KCW_STEP_SECONDS": "7", "KCW_THANOS_HEADERS": "no-separator", "KCW_TENANT_LABEL": "1x",
                     "KCW_THANOS_TIMEOUT_SECONDS": "-1", "KCW_LOG_FORMAT": "xml"}, require=("KCW_THANOS_URL",))
    problems = raised.value.problems
    assert len(problems) == 9
    for name in ("KCW_THANOS_URL", "KCW_THANOS_DEDUP", "KCW_TENANTS", "KCW_CLICKHOUSE_URL", "KCW_STEP_SECONDS",
                 "KCW_THANOS_HEADERS", "KCW_TENANT_LABEL", "KCW_THANOS_TIMEOUT_SECONDS", "KCW_LOG_FORMAT"):
        assert any(p.startswith(name) for p in problems), name


def test_values_are_typed():
    config = load_config({"KCW_THANOS_URL": "https://thanos.example:9090/", "KCW_TENANTS": " a-1 , b:2 ,",
                          "KCW_THANOS_HEADERS": "THANOS-TENANT=acme, X-Scope-OrgID: acme",
                          "KCW_CLICKHOUSE_URL": "https://u:p@ch:8443/costs", "KCW_STEP_SECONDS": "30"})
    assert config.thanos_url == "https://thanos.example:9090"
    assert config.tenants == ("a-1", "b:2")
    assert config.thanos_headers == (("THANOS-TENANT", "acme"), ("X-Scope-OrgID", "acme"))
    assert config.step_seconds == 30 and not config.is_embedded_clickhouse


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


def test_simulate_command_writes_openmetrics_and_ground_truth(tmp_path):
    result = run_worker("simulate", "--out", str(tmp_path / "sim"), "--tenants", "1", "--hours", "1", "--pods", "5",
                        "--end", "2026-01-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "sim" / "metrics.om").read_text()
    assert text.endswith("# EOF\n") and 'tenant_id="sim-tenant-0001"' in text
    assert (tmp_path / "sim" / "ground_truth.jsonl").read_text().count("\n") > 5


def test_health_endpoints_report_readiness():
    import requests

    from kubecost_worker.devtools.localprom import free_port
    from kubecost_worker.telemetry import TENANT_HOURS, serve_health

    state = {"ready": False}

    def ready():
        if state["ready"] is None:
            raise ConnectionError("ClickHouse is down")
        return state["ready"]

    port = free_port()
    server = serve_health("127.0.0.1", port, ready)
    try:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 503
        state["ready"] = None
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 503
        state["ready"] = True
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        TENANT_HOURS.labels("succeeded").inc(0)
        assert "kcw_tenant_hours_total" in requests.get(f"{base}/metrics", timeout=5).text
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    finally:
        server.shutdown()


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


def test_default_prices_are_optional_non_negative_and_bad_ones_reported_with_the_others():
    config = load_config({})
    assert (config.default_cpu_price, config.default_ram_price, config.default_gpu_price) == (None, None, None)
    assert config.default_prices is None  # a node without price series: its pods cost 0, and the ledger says so
    opencost = load_config({"KCW_DEFAULT_CPU_PRICE": "0.031611", "KCW_DEFAULT_RAM_PRICE": " 0.004237 ",
                            "KCW_DEFAULT_GPU_PRICE": "0.95"})
    assert opencost.default_prices == {"cpu": 0.031611, "ram": 0.004237, "gpu": 0.95}
    assert load_config({"KCW_DEFAULT_GPU_PRICE": "2.48"}).default_prices == {"gpu": 2.48}  # only what is set
    with pytest.raises(ConfigError) as raised:
        load_config({"KCW_DEFAULT_CPU_PRICE": "-0.1", "KCW_DEFAULT_RAM_PRICE": "nan", "KCW_DEFAULT_GPU_PRICE": "cheap",
                     "KCW_STEP_SECONDS": "7"})
    problems = raised.value.problems
    assert len(problems) == 4
    for name in ("KCW_DEFAULT_CPU_PRICE", "KCW_DEFAULT_RAM_PRICE", "KCW_DEFAULT_GPU_PRICE", "KCW_STEP_SECONDS"):
        assert any(p.startswith(name) for p in problems), name
    with pytest.raises(ConfigError, match="KCW_DEFAULT_CPU_PRICE"):
        load_config({"KCW_DEFAULT_CPU_PRICE": "inf"})


def test_the_optscale_target_is_checked_with_the_other_settings():
    with pytest.raises(ConfigError) as raised:
        load_config({"KCW_CLICKHOUSE_URL": "chdb:///data/ours", "KCW_OPTSCALE_CLICKHOUSE_URL": "chdb:///data/theirs",
                     "KCW_OPTSCALE_TABLE": "optscale.expenses; DROP TABLE x"})
    assert [p.split(":")[0] for p in raised.value.problems] == ["KCW_OPTSCALE_TABLE", "KCW_OPTSCALE_CLICKHOUSE_URL"]
    config = load_config({"KCW_CLICKHOUSE_URL": "chdb:///data/ours", "KCW_OPTSCALE_CLICKHOUSE_URL": "chdb:///data/ours",
                          "KCW_OPTSCALE_TABLE": "optscale.expenses"})
    assert config.optscale_table == "optscale.expenses"
