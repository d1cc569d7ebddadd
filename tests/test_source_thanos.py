"""``source/thanos.py`` (the Thanos client) and ``source/promql.py`` (PromQL quoting) against a real Prometheus (the
local stand-in for Thanos Query, REFERENCE.md section 1 and 5).

No mocks of ``requests``: one Prometheus per module, seeded from an OpenMetrics file with promtool; faults are
injected by a small HTTP proxy (``tests/faultproxy.py``) in front of it, all on 127.0.0.1.

1. ``split_range`` and ``query_range`` over windows needing more than 11,000 points per series;
2. hostile tenant ids: one literal under ``promql.quote`` (the second defence; the first, refusing them before any
   request, and the third, dropping another tenant's series, are ``fetch_hour``'s: ``test_source_extract.py``);
3. transient faults are retried (honouring ``Retry-After``) until the data equals what Prometheus returns
   directly; rejected queries are terminal and not retried;
4. what each client's requests cost (requests, bytes, samples).

The seeded data and the fixtures here also serve ``test_source_extract.py``'s tests of ``fetch_hour``.
"""
from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from kubecost_worker.config import load_config
from kubecost_worker.errors import TerminalError, TransientError
from kubecost_worker.devtools.localprom import LocalPrometheus, create_blocks
from kubecost_worker.model.series import KEPT_PREFIX, NEEDED_METRICS
from kubecost_worker.source.promql import names_matcher, quote
from kubecost_worker.source.thanos import MAX_POINTS_PER_SERIES, ThanosClient, ThanosSettings, split_range

from .faultproxy import CLOSE, PASS, RESET, STALL, TRUNCATE, FaultProxy, Status, partial

pytestmark = [pytest.mark.needs_prometheus]

ROOT = Path(__file__).resolve().parents[1]
TENANT_LABEL = "tenant_id"

# -- the seeded data ------------------------------------------------------------------------------------

NOW_H = int(time.time()) // 3600 * 3600
T0 = NOW_H - 48 * 3600  # the hour fetched: [T0, T0 + 3600)
W_START, W_END = T0 - 2 * 3600, T0 + 2 * 3600  # the tenants' data
L0 = NOW_H - 10 * 86400  # long_series: one sample a minute over 8 days, from L0 to L_END inclusive
L_END = L0 + 8 * 86400
STOP = T0 + 20 * 60  # the "stopper" pod's last sample: minute 20 of the hour

# Tenant ids that must never enter PromQL. The non-empty ones are also seeded as real label values, so that
# the second defence (quote) is checked to match exactly that literal, and nothing else.
HOSTILE_SEEDED = [
    'x"} or {tenant_id=~".+',
    'a\\"b',
    'good-tenant"} or vector(1) or {a="',
    't\n}',
    '.*',
    'good-tenant\\',  # a trailing backslash would escape the closing quote if not itself escaped
    'good-tenant",tenant_id!="',
    'good-tenant\n',
    "good-tenant' ",
    ' good-tenant',
    'good-tenant|other-tenant',
    'ünïcode-tenant',
]
HOSTILE = [*HOSTILE_SEEDED, '', 'a' * 129, '-leading-dash', 'good-tenant\r', 'x\x00y']


def _series(name: str, labels: dict[str, str], times, value_of) -> tuple[str, dict[str, str], list[tuple[int, float]]]:
    return name, labels, [(t, float(value_of(i, t))) for i, t in enumerate(times)]


def _minutes(start: int, end: int, offset: int = 0, every: int = 60) -> list[int]:
    return list(range(start + offset, end + 1, every))


NODE = {"instance": "10.0.0.1:9003", "instance_type": "m5.large", "region": "eu-west-1", "provider_id": "i-1",
        "arch": "amd64"}

SEED = [
    _series("long_series", {"job": "long"}, _minutes(L0, L_END), lambda i, t: i),
    # node prices: on the minute (n1), 7 s after the minute (n2), another tenant (n9), no tenant at all (n0)
    _series("node_cpu_hourly_cost", {**NODE, "node": "n1", "tenant_id": "good-tenant"}, _minutes(W_START, W_END),
            lambda i, t: 100 + i),
    _series("node_cpu_hourly_cost", {**NODE, "node": "n2", "tenant_id": "good-tenant"}, _minutes(W_START, W_END, 7),
            lambda i, t: 200.5 + i),
    _series("node_cpu_hourly_cost", {**NODE, "node": "n9", "tenant_id": "other-tenant"}, _minutes(W_START, W_END),
            lambda i, t: 900 + i),
    _series("node_cpu_hourly_cost", {**NODE, "node": "n0"}, _minutes(W_START, W_END), lambda i, t: 1),
    *[
        _series("node_cpu_hourly_cost", {**NODE, "node": f"probe-{k}", "tenant_id": h},
                _minutes(W_START, W_END, every=300), lambda i, t, k=k: 5000 + k)
        for k, h in enumerate(HOSTILE_SEEDED)
    ],
    # containers: one that stops at minute 20 of the hour, one that runs throughout, another tenant's
    _series("container_cpu_allocation",
            {"namespace": "shop", "pod": "stopper", "container": "app", "node": "n1", "instance": "n1",
             "tenant_id": "good-tenant"}, _minutes(T0, STOP), lambda i, t: 0.25 + i),
    _series("container_cpu_allocation",
            {"namespace": "shop", "pod": "steady", "container": "app", "node": "n2", "instance": "n2",
             "tenant_id": "good-tenant"}, _minutes(W_START, W_END), lambda i, t: 0.5),
    _series("container_cpu_allocation",
            {"namespace": "theirs", "pod": "theirs", "container": "app", "node": "n9", "instance": "n9",
             "tenant_id": "other-tenant"}, _minutes(W_START, W_END), lambda i, t: 7),
    _series("kubecost_cluster_info", {"id": "c1", "name": "good", "provider": "aws", "tenant_id": "good-tenant"},
            _minutes(W_START, W_END), lambda i, t: 1),
    _series("kubecost_cluster_info", {"id": "c9", "name": "other", "provider": "gcp", "tenant_id": "other-tenant"},
            _minutes(W_START, W_END), lambda i, t: 1),
    # not needed by the model: never fetched
    _series("unrelated_metric", {"tenant_id": "good-tenant"}, _minutes(W_START, W_END), lambda i, t: 3),
]


def _om_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_openmetrics(path: Path) -> None:
    lines: list[str] = []
    families: list[str] = []
    for name, _, _ in SEED:
        if name not in families:
            families.append(name)
    for family in families:  # one TYPE line per family, its samples contiguous
        lines.append(f"# TYPE {family} gauge")
        for name, labels, samples in SEED:
            if name != family:
                continue
            selector = ",".join(f'{k}="{_om_escape(v)}"' for k, v in sorted(labels.items()))
            lines.extend(f"{name}{{{selector}}} {v!r} {t}" for t, v in samples)
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def prom(tmp_path_factory) -> str:
    """One real Prometheus for the module (the data is read-only)."""
    directory = tmp_path_factory.mktemp("thanos")
    write_openmetrics(directory / "seed.om")
    tsdb = directory / "tsdb"
    tsdb.mkdir()
    create_blocks(directory / "seed.om", tsdb)
    prometheus = LocalPrometheus(tsdb)
    url = prometheus.start()
    try:
        yield url
    finally:
        prometheus.stop()


@pytest.fixture
def proxy(prom):
    with FaultProxy(prom, stall_seconds=3.0) as p:
        yield p


def make_client(url: str, **overrides) -> ThanosClient:
    settings = dict(url=url, timeout_seconds=10.0, retries=4, backoff_initial_seconds=0.01, backoff_max_seconds=0.05)
    settings.update(overrides)
    return ThanosClient(ThanosSettings(**settings))


def direct(prom: str, path: str, **params) -> dict:
    """What Prometheus itself answers, with no client and no proxy."""
    response = requests.get(prom + path, params=params, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success" and not body.get("warnings"), body
    return body["data"]


def by_labels(result: list[dict]) -> dict[tuple, list]:
    out = {}
    for item in result:
        key = tuple(sorted(item["metric"].items()))
        assert key not in out, f"series returned twice: {key}"
        out[key] = [(float(t), v) for t, v in item.get("values", [item.get("value")])]
    return out


# =====================================================================================================
# 1. split_range and query_range over long windows
# =====================================================================================================

SPLIT_CASES = [
    (0, 0, 60),
    (0, 59, 60),
    (0, 60, 60),
    (1_700_000_000, 1_700_000_000 + (MAX_POINTS_PER_SERIES - 1) * 60, 60),  # exactly 11,000 points
    (1_700_000_000, 1_700_000_000 + MAX_POINTS_PER_SERIES * 60, 60),  # 11,001 points
    (1_700_000_000, 1_700_000_000 + MAX_POINTS_PER_SERIES * 60 - 1, 60),  # 11,000 points, end off the grid
    (L0, L_END, 60),
    (L0 + 17.5, L_END - 5, 60),
    (1_700_000_000.25, 1_700_000_000 + 40 * 86400 + 0.125, 30),  # several chunks, fractional bounds
    (1_700_000_000, 1_700_000_000 + 365 * 86400, 300),
    (1_700_000_000, 1_700_000_000 + 3 * 86400, 1),
    (1_700_000_000, 1_700_000_000 + 90 * 86400, 7),  # a step that divides nothing
]


def grid(start: float, end: float, step: int) -> list[int]:
    """Indices k of the evaluation points start + k * step within [start, end]."""
    return list(range(0, int(math.floor((end - start) / step + 1e-9)) + 1))


@pytest.mark.parametrize("start,end,step", SPLIT_CASES)
def test_split_range_chunks_cover_the_window_exactly_within_the_point_limit(start, end, step):
    chunks = split_range(start, end, step)
    assert chunks, "at least one chunk"
    assert chunks[0][0] == start
    points: list[int] = []
    for i, (chunk_start, chunk_end) in enumerate(chunks):
        assert start <= chunk_start <= chunk_end <= end
        k0 = (chunk_start - start) / step
        assert abs(k0 - round(k0)) < 1e-6, "every chunk starts on the window's evaluation grid"
        k0 = round(k0)
        n = len(grid(chunk_start, chunk_end, step))
        assert n <= MAX_POINTS_PER_SERIES, f"chunk {i} asks {n} points"
        points.extend(range(k0, k0 + n))
        if i:
            assert chunk_start == pytest.approx(chunks[i - 1][1] + step, abs=1e-6), "no overlap, no gap"
    assert points == grid(start, end, step), "every evaluation point exactly once, in order"
    # as few requests as the limit allows
    assert len(chunks) == math.ceil(len(points) / MAX_POINTS_PER_SERIES)


def test_split_range_rejects_end_before_start():
    with pytest.raises(ValueError):
        split_range(100, 99, 60)


def test_split_range_rejects_a_non_positive_step():
    # In a subprocess with a memory limit and a timeout: without the check the loop never advances and
    # appends to a list forever.
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (768 << 20, 768 << 20))\n"
        "from kubecost_worker.source.thanos import split_range\n"
        "for step in (0, -60):\n"
        "    try:\n"
        "        split_range(0, 3600, step)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    raise SystemExit(f'no ValueError for step={step}')\n"
    )
    try:
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=3)
    except subprocess.TimeoutExpired:
        pytest.fail("split_range(0, 3600, 0) did not return within 3 s")
    assert result.returncode == 0, (result.stderr or result.stdout)[-300:]


def test_prometheus_refuses_the_unsplit_window(prom):
    """The premise: one request over the long window is refused, so the client must split it."""
    response = requests.get(prom + "/api/v1/query_range", timeout=30,
                            params={"query": "long_series", "start": L0, "end": L_END, "step": 60})
    assert response.status_code == 400
    assert "11,000" in response.json()["error"] or "11000" in response.json()["error"]


@pytest.mark.parametrize("start,end,step", [
    (L0, L_END, 60),  # 11,521 points: two requests
    (L0 + 17, L_END - 5, 60),  # off the samples' grid: each point takes the sample before it
    (L0, L0 + 4 * 86400, 30),  # 11,521 points at 30 s: each sample seen at two points
    (L0 + 3600, L_END, 41),  # a step coprime with the scrape interval, three requests
])
def test_query_range_over_more_than_11000_points_returns_every_point_once(prom, proxy, start, end, step):
    client = make_client(proxy.url)
    result = client.query_range("long_series", start, end, step)

    expected_times = [start + k * step for k in grid(start, end, step)]
    assert len(expected_times) > MAX_POINTS_PER_SERIES
    assert client.requests_made == len(split_range(start, end, step)) > 1
    assert proxy.count == client.requests_made
    assert len(result) == 1
    assert result[0]["metric"] == {"__name__": "long_series", "job": "long"}
    times = [float(t) for t, _ in result[0]["values"]]
    assert len(times) == len(set(times)), "no point twice"
    assert times == pytest.approx(expected_times, abs=1e-3)
    # the sample in force at each point: long_series is i at L0 + 60 i (the 5-minute lookback covers the gaps)
    values = [float(v) for _, v in result[0]["values"]]
    assert values == [float(math.floor((t - L0) / 60 + 1e-9)) for t in expected_times]


def test_query_range_retries_one_failed_chunk_without_duplicating_points(prom, proxy):
    clean = make_client(prom).query_range("long_series", L0, L_END, 60)
    client = make_client(proxy.url)
    proxy.script(PASS, Status(503, "busy"), RESET)  # the second chunk fails twice
    result = client.query_range("long_series", L0, L_END, 60)
    assert result == clean
    assert len(result[0]["values"]) == L_END // 60 - L0 // 60 + 1
    assert client.requests_made == proxy.count == 4


# =====================================================================================================
# 2. hostile tenant ids
# =====================================================================================================

def test_hostile_ids_are_really_stored_as_label_values(prom):
    """The premise of the next test: the seeded hostile ids exist as literal tenant ids next to the real ones."""
    tenants = set(direct(prom, f"/api/v1/label/{TENANT_LABEL}/values"))
    assert tenants == {"good-tenant", "other-tenant", *HOSTILE_SEEDED}


@pytest.mark.parametrize("hostile", [*HOSTILE_SEEDED, '', 'x\x00y', 'good-tenant\r', 'not-seeded"} or {a=~".*'],
                         ids=repr)
def test_quote_alone_keeps_a_hostile_id_one_literal(prom, hostile):
    """The second defence: even unvalidated, the id is one string literal in an equality matcher."""
    selector = "{" + names_matcher(NEEDED_METRICS, [KEPT_PREFIX]) + f", {TENANT_LABEL}={quote(hostile)}" + "}"
    client = make_client(prom)
    for ask, promql, at in ((client.query, selector, T0 + 1800),
                            (client.samples, f"{selector}[3600s]", T0 + 3600 - 0.001)):
        result = ask(promql, at)
        tenants = {item["metric"].get(TENANT_LABEL, "") for item in result}
        assert tenants <= {hostile}, f"another tenant's series leaked: {tenants - {hostile}}"
        if hostile in HOSTILE_SEEDED:
            k = HOSTILE_SEEDED.index(hostile)
            assert [item["metric"]["node"] for item in result] == [f"probe-{k}"]
        elif hostile == "":
            # An empty id is the empty matcher: it selects the series *without* a tenant label. No other
            # tenant's series, but only the first defence (refusing '') keeps those out of a tenant's hour.
            assert {item["metric"]["node"] for item in result} == {"n0"}
        else:
            assert result == []


# =====================================================================================================
# 3. fault injection
# =====================================================================================================

FAULT_QUERY = '{__name__=~"node_cpu_hourly_cost|container_cpu_allocation", tenant_id=~"good-tenant|other-tenant"}'
WARNINGS = ["No StoreAPIs matched for this query", "store 10.0.0.7:10901: rpc error: code = Unavailable"]

TRANSIENT_CASES = {
    "503 three times": ([Status(503, "upstream busy")] * 3, 4),
    "503 with a Prometheus error body": ([Status(503, {"status": "error", "errorType": "unavailable",
                                                       "error": "no store"})], 2),
    "502 html from a load balancer": ([Status(502, "<html><body>Bad Gateway</body></html>")], 2),
    "500 internal": ([Status(500, {"status": "error", "errorType": "internal", "error": "boom"})], 2),
    "200 that is not the API": ([Status(200, "<html>sign in</html>")], 2),
    "connection closed without a response": ([CLOSE], 2),
    "connection reset": ([RESET], 2),
    "partial response with warnings": ([partial(WARNINGS)], 2),
    "success without data": ([Status(200, {"status": "success"})], 2),
    "a body cut short": ([TRUNCATE], 2),
    "a bit of everything": ([Status(503), RESET, CLOSE, partial(WARNINGS)], 5),
}


@pytest.mark.parametrize("name", list(TRANSIENT_CASES))
def test_transient_faults_are_retried_until_the_data_is_complete(prom, proxy, name):
    actions, attempts = TRANSIENT_CASES[name]
    expected = by_labels(direct(prom, "/api/v1/query_range", query=FAULT_QUERY, start=W_START, end=W_END,
                                step=60)["result"])
    assert len(expected) == 6

    client = make_client(proxy.url, retries=5)
    proxy.script(*actions)
    result = client.query_range(FAULT_QUERY, W_START, W_END, 60)

    assert by_labels(result) == expected
    assert proxy.pending == 0
    assert client.requests_made == proxy.count == attempts


def test_a_stalled_request_times_out_and_is_retried(prom, proxy):
    expected = by_labels(direct(prom, "/api/v1/query_range", query=FAULT_QUERY, start=W_START, end=W_END,
                                step=60)["result"])
    client = make_client(proxy.url, timeout_seconds=0.5)
    proxy.script(STALL)  # silent for 3 s, far beyond the client's 0.5 s
    started = time.monotonic()
    result = client.query_range(FAULT_QUERY, W_START, W_END, 60)
    elapsed = time.monotonic() - started

    assert by_labels(result) == expected
    assert client.requests_made == proxy.count == 2
    assert 0.45 <= elapsed < 2.5, elapsed  # gave up on the stall after its timeout, did not wait it out


def test_retry_after_is_honoured(prom, proxy):
    expected = by_labels(direct(prom, "/api/v1/query", query=f"{FAULT_QUERY}[3600s]", time=T0 + 3600)["result"])
    client = make_client(proxy.url)  # its own backoff is at most 0.05 s
    proxy.script(Status(429, {"status": "error", "errorType": "unavailable", "error": "too many requests"},
                        {"Retry-After": "1"}))
    started = time.monotonic()
    result = client.samples(f"{FAULT_QUERY}[3600s]", T0 + 3600)
    elapsed = time.monotonic() - started

    assert by_labels(result) == expected
    assert client.requests_made == proxy.count == 2
    assert proxy.seen_at[1] - proxy.seen_at[0] >= 0.9
    assert 0.9 <= elapsed < 5, elapsed


def test_bad_data_is_terminal_and_not_retried(proxy):
    client = make_client(proxy.url)
    proxy.default = Status(400, {"status": "error", "errorType": "bad_data",
                                 "error": '1:1: parse error: unexpected "}"'})
    with pytest.raises(TerminalError, match="bad_data") as raised:
        client.query_range(FAULT_QUERY, W_START, W_END, 60)
    assert not isinstance(raised.value, TransientError)
    assert client.requests_made == proxy.count == 1


@pytest.mark.parametrize("promql,error_type", [
    ("sum(", "bad_data"),  # the real Prometheus: 400
    ('node_cpu_hourly_cost{tenant_id="good-tenant"} + on(tenant_id) node_cpu_hourly_cost', "execution"),  # 422
])
def test_a_query_the_real_server_rejects_is_terminal_and_not_retried(proxy, promql, error_type):
    client = make_client(proxy.url)
    with pytest.raises(TerminalError, match=error_type):
        client.query(promql, T0 + 1800)
    assert client.requests_made == proxy.count == 1


def test_a_nan_retry_after_falls_back_to_the_backoff(prom, proxy):
    expected = by_labels(direct(prom, "/api/v1/query", query=FAULT_QUERY, time=T0 + 1800)["result"])
    client = make_client(proxy.url)
    proxy.script(Status(503, "busy", {"Retry-After": "nan"}))
    assert by_labels(client.query(FAULT_QUERY, T0 + 1800)) == expected
    assert client.requests_made == proxy.count == 2


@pytest.mark.parametrize("body", [{"status": "success", "data": {}}, {"status": "success", "data": None},
                                  {"status": "success", "data": {"resultType": "matrix", "result": None}}],
                         ids=["data without result", "data null", "result null"])
def test_a_malformed_success_body_is_transient(prom, proxy, body):
    expected = by_labels(direct(prom, "/api/v1/query", query=FAULT_QUERY, time=T0 + 1800)["result"])
    client = make_client(proxy.url)
    proxy.script(Status(200, body))
    assert by_labels(client.query(FAULT_QUERY, T0 + 1800)) == expected
    assert client.requests_made == proxy.count == 2


@pytest.mark.parametrize("url", ["127.0.0.1:9", "htp://127.0.0.1:9", "http://"])
def test_a_misconfigured_url_is_terminal_and_not_retried(url):
    client = make_client(url)
    with pytest.raises(TerminalError) as raised:
        client.query("up", T0)
    assert not isinstance(raised.value, TransientError)
    assert client.requests_made == 1


def test_connection_refused_is_transient():
    from kubecost_worker.devtools.localprom import free_port

    client = make_client(f"http://127.0.0.1:{free_port()}", retries=2)
    with pytest.raises(TransientError):
        client.query("up", T0)
    assert client.requests_made == 2


@pytest.mark.parametrize("retries", [1, 3])
def test_always_503_gives_transient_error_after_the_configured_attempts(proxy, retries):
    client = make_client(proxy.url, retries=retries)
    proxy.default = Status(503, {"status": "error", "errorType": "unavailable", "error": "down"})
    started = time.monotonic()
    with pytest.raises(TransientError, match="503"):
        client.query(FAULT_QUERY, T0 + 1800)
    assert client.requests_made == proxy.count == retries
    assert time.monotonic() - started < 2  # the small backoff was used


def test_a_body_cut_short_is_transient(prom, proxy):
    """Headers with the full Content-Length, half the body, then EOF: requests raises ChunkedEncodingError,
    which is not a ConnectionError but must still be retried."""
    expected = by_labels(direct(prom, "/api/v1/query_range", query=FAULT_QUERY, start=W_START, end=W_END,
                                step=60)["result"])
    client = make_client(proxy.url)
    proxy.script(TRUNCATE)
    result = client.query_range(FAULT_QUERY, W_START, W_END, 60)
    assert by_labels(result) == expected
    assert client.requests_made == proxy.count == 2


# =====================================================================================================
# 4. the load: what each client's requests cost
# =====================================================================================================

def test_the_load_counts_every_request_its_bytes_and_its_samples(prom, proxy):
    """What the ledger records per tenant-hour: requests sent (the failed ones too), bytes and samples received,
    each counted by the client that sent them (``counting``), not by its parent."""
    parent = make_client(proxy.url)
    client = parent.counting()
    asked_before = proxy.count
    proxy.script(Status(503, "busy"))  # a failed request is a request
    vector = client.query("long_series", L0 + 3600)
    matrix = client.query_range("long_series", L0, L0 + 3600, 60)
    raw = [requests.get(prom + "/api/v1/query", params={"query": "long_series", "time": f"{L0 + 3600:.3f}",
                                                        "partial_response": "false", "max_source_resolution": "0s"},
                        timeout=30),
           requests.get(prom + "/api/v1/query_range", params={"query": "long_series", "start": f"{L0:.3f}",
                                                              "end": f"{L0 + 3600:.3f}", "step": "60",
                                                              "partial_response": "false",
                                                              "max_source_resolution": "0s"}, timeout=30)]
    assert client.load.queries == proxy.count - asked_before == 3
    assert client.load.samples == len(vector) + sum(len(s["values"]) for s in matrix) == 1 + 61
    assert client.load.bytes == sum(len(r.content) for r in raw) + len("busy")
    assert parent.load.queries == 0
    client.range_selector(60)
    sibling = parent.counting()
    sibling.range_selector(60)  # the server's kind of range was asked once, by the first client that needed it
    assert sibling.load.queries == 0 and client.load.queries == 4


@pytest.mark.parametrize("env, sent_as", [({}, None), ({"KCW_THANOS_COMPRESSED": "false"}, None),
                                          ({"KCW_THANOS_COMPRESSED": "true"}, "gzip"),
                                          ({"KCW_THANOS_HEADERS": "Accept-Encoding=gzip"}, "gzip")])
def test_answers_come_compressed_only_when_asked(prom, env, sent_as):
    """Prometheus gzips an answer the client accepts gzipped, at its own CPU's cost: by default the client does
    not accept it (``KCW_THANOS_COMPRESSED``; a header the operator sets wins). The answers are the same either
    way."""
    client = ThanosClient(ThanosSettings.from_config(load_config({"KCW_THANOS_URL": prom, **env})))
    encodings = []
    client.session.hooks["response"].append(lambda r, *_, **__: encodings.append(r.headers.get("Content-Encoding")))
    matrix = client.query_range("long_series", L0, L0 + 3600, 60)
    samples = client.samples("long_series[1h]", L0 + 3600)
    assert encodings == [sent_as, sent_as]
    answered = by_labels(matrix)
    assert answered == by_labels(direct(prom, "/api/v1/query_range", query="long_series", start=L0, end=L0 + 3600,
                                        step=60)["result"])
    assert by_labels(samples) == by_labels(direct(prom, "/api/v1/query", query="long_series[1h]",
                                                   time=L0 + 3600)["result"])
    assert [len(points) for points in answered.values()] == [61]
