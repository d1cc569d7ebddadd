"""``config.py``: the one Config, typed, frozen, validated at once (the command line's side of it: ``test_cli.py``)."""

from __future__ import annotations

import dataclasses

import pytest

from kubecost_worker.config import load_config
from kubecost_worker.errors import ConfigError


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


def test_default_prices_are_passed_only_where_configured():
    from kubecost_worker.config import load_config

    assert load_config({}).default_prices is None
    config = load_config({"KCW_DEFAULT_CPU_PRICE": "0.031611", "KCW_DEFAULT_GPU_PRICE": "0.95"})
    assert config.default_prices == {"cpu": 0.031611, "gpu": 0.95}
    assert load_config({"KCW_DEFAULT_RAM_PRICE": "0"}).default_prices == {"ram": 0.0}  # 0 is a price: free RAM


def test_the_bill_settings_are_typed_and_checked_with_the_others():
    config = load_config({})
    assert (config.bill_table, config.bill_cost, config.bill_lag_hours) == ("focus_bill", "EffectiveCost", 48)
    config = load_config({"KCW_BILL_TABLE": "billing.focus", "KCW_BILL_COST": " billedcost ",
                          "KCW_BILL_LAG_HOURS": "0"})
    assert (config.bill_table, config.bill_cost, config.bill_lag_hours) == ("billing.focus", "BilledCost", 0)
    with pytest.raises(ConfigError) as raised:
        load_config({"KCW_BILL_TABLE": "focus_bill; DROP TABLE x", "KCW_BILL_COST": "ListCost",
                     "KCW_BILL_LAG_HOURS": "-1", "KCW_STEP_SECONDS": "7"})
    assert [p.split(":")[0] for p in raised.value.problems] == [
        "KCW_BILL_TABLE", "KCW_BILL_COST", "KCW_BILL_LAG_HOURS", "KCW_STEP_SECONDS"]


def test_the_daily_tier_must_outlive_the_hourly_rows():
    assert (load_config({}).retention_days, load_config({}).daily_retention_days) == (0, 0)
    config = load_config({"KCW_RETENTION_DAYS": "3", "KCW_DAILY_RETENTION_DAYS": "3"})
    assert (config.retention_days, config.daily_retention_days) == (3, 3)
    assert load_config({"KCW_RETENTION_DAYS": "3"}).daily_retention_days == 0  # every day, for good
    with pytest.raises(ConfigError) as raised:
        load_config({"KCW_RETENTION_DAYS": "30", "KCW_DAILY_RETENTION_DAYS": "7", "KCW_STEP_SECONDS": "7"})
    assert [p.split(":")[0] for p in raised.value.problems] == ["KCW_STEP_SECONDS", "KCW_DAILY_RETENTION_DAYS"]
    with pytest.raises(ConfigError, match="every hour"):  # hours kept for good: a daily tier kept less is refused
        load_config({"KCW_DAILY_RETENTION_DAYS": "365"})
    with pytest.raises(ConfigError, match="KCW_DAILY_RETENTION_DAYS"):
        load_config({"KCW_DAILY_RETENTION_DAYS": "-1"})
