"""``pipeline.py`` on faulty upstream answers: they never become stored hours (issue: hostile input and faulty
upstreams).

A simulated 2-tenant cluster in a real Prometheus, a fault proxy in front of it (``tests/faultproxy.py``) and the
real pipeline into chDB. The clean run's rows are written first, straight from Prometheus. Then each fault is put
on the kind of query it hits, every tenant-hour is run through the proxy, and either:

- the answer could be read exactly (samples out of order, a sample repeated with its value): the run succeeds
  and the hour's rows are the clean run's, row for row; or
- it could not (another result type, two values at one time, a summary or re-fetch missing series, absurd
  numbers): every run is recorded ``failed`` with a reason that names the fault, and what users see is still
  the clean run's rows.
"""

from __future__ import annotations

import dataclasses
import random
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from kubecost_worker.config import load_config
from kubecost_worker.errors import TransientError
from kubecost_worker.jobs.status import summarize
from kubecost_worker.pipeline import Pipeline, run_hours
from kubecost_worker.hours import hour_starts
from kubecost_worker.store import migrations
from kubecost_worker.store.clickhouse import ClickHouseSink
from kubecost_worker.source.extract import census
from kubecost_worker.source.thanos import ThanosClient, ThanosSettings

from .helpers import Cluster, ch_client
from .faultproxy import FaultProxy, Rewrite, Status, Trickle, When, query_of

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]
TENANTS = ["faulty-a", "faulty-b"]
HOURS = 3
START = (int(time.time()) // 3600 - 30) * 3600
TIMEOUT = 10.0


def is_samples(query: str) -> bool:
    """The raw-sample query of a tenant-hour (or of re-fetched pods): a selector with a range, no function."""
    return query.startswith("{") and query.endswith("]")


def is_refetch(query: str) -> bool:
    return is_samples(query) and "pod=~" in query


def is_summary(query: str) -> bool:
    return query.startswith(("avg_over_time(", "count_over_time({"))


def on_series(fn):
    """A rewrite of every series of a matrix answer."""
    def rewrite(body: dict) -> dict:
        for item in body["data"]["result"]:
            fn(item)
        return body
    return Rewrite(rewrite)


def on_metric(metric: str, fn):
    return on_series(lambda item: fn(item) if item["metric"].get("__name__") == metric else None)


def as_vector(body: dict) -> dict:
    body["data"] = {"resultType": "vector", "result": [{"metric": i["metric"], "value": i["values"][-1]}
                                                       for i in body["data"]["result"] if i["values"]]}
    return body


def as_matrix(body: dict) -> dict:
    body["data"] = {"resultType": "matrix", "result": [{"metric": i["metric"], "values": [i["value"]]}
                                                       for i in body["data"]["result"]]}
    return body


def as_scalar(body: dict) -> dict:
    body["data"] = {"resultType": "scalar", "result": [time.time(), "1"]}
    return body


def halved(body: dict) -> dict:
    result = body["data"]["result"]
    body["data"]["result"] = result[: len(result) // 2]
    return body


def emptied(body: dict) -> dict:
    body["data"]["result"] = []
    return body


def shuffled(item: dict) -> None:
    random.Random(len(item["values"])).shuffle(item["values"])


def doubled(item: dict) -> None:
    item["values"] = [sample for sample in item["values"] for _ in (0, 1)]


def contradicted(item: dict) -> None:
    if item["values"]:
        t, v = item["values"][0]
        item["values"].insert(1, [t, str(float(v) * 2 + 1)])


def thinned(item: dict) -> None:  # what a 5-minute downsampled block answers for 60 s samples
    item["values"] = item["values"][::5]


def priced(value: str):
    def set_price(item: dict) -> None:
        item["values"] = [[t, value] for t, _ in item["values"]]
    return set_price


def summarised_as(value: str):
    def rewrite(body: dict) -> dict:
        for item in body["data"]["result"]:
            item["value"] = [item["value"][0], value]
        return body
    return Rewrite(rewrite)


# fault -> (the queries it hits, the action, what the runs' error must say; None: the runs must store the
# clean rows)
FAULTS = {
    "raw samples answered as a vector": (is_samples, Rewrite(as_vector), "resultType 'vector'"),
    "timestamps reversed": (is_samples, on_series(lambda item: item["values"].reverse()), None),
    "timestamps shuffled": (is_samples, on_series(shuffled), None),
    "every sample twice, same value": (is_samples, on_series(doubled), None),
    "two values at one timestamp": (is_samples, on_metric("node_cpu_hourly_cost", contradicted),
                                    "two samples at"),
    "a price of -1e308": (is_samples, on_metric("node_cpu_hourly_cost", priced("-1e308")), "implausible"),
    "a price of 1e300": (is_samples, on_metric("node_ram_hourly_cost", priced("1e300")), "implausible"),
    "a summary of 1e308": (lambda q: q.startswith("avg_over_time(container_cpu_allocation"), summarised_as("1e308"),
                           "implausible"),
    "summaries answered as a matrix": (is_summary, Rewrite(as_matrix), "resultType 'matrix'"),
    "summaries answered as a scalar": (is_summary, Rewrite(as_scalar), "resultType 'scalar'"),
    "summaries with half their series": (is_summary, Rewrite(halved), "an answer is incomplete"),
    "the pod re-fetch answered empty": (is_refetch, Rewrite(emptied), "did not come back"),
    "a value that is not a number": (is_summary, summarised_as("twelve"), "not a number"),
    "samples 5 minutes apart (downsampled)": (is_samples, on_series(thinned), "a downsampled block"),
}


class Store:
    """The module's chDB store, the clean rows of every tenant-hour, and a pipeline through a fault proxy."""

    def __init__(self, root):
        self.cluster = Cluster(root, TENANTS, START, HOURS, pods=12, seed=18)
        self.proxy = FaultProxy(self.cluster.url, upstream_timeout=30)
        self.config = load_config({"KCW_THANOS_URL": self.cluster.url, "KCW_CLICKHOUSE_URL": f"chdb://{root / 'ch'}"})
        self._client_cm = ch_client(self.config.clickhouse_url)
        client = self._client_cm.__enter__()
        migrations.migrate(client)
        self.sink = ClickHouseSink(client)
        self.hours = hour_starts(START, START + HOURS * 3600)
        done = run_hours(self.pipeline(self.cluster.url), TENANTS, self.hours)
        assert done.failed == 0 and done.done == len(TENANTS) * HOURS
        self.clean = self.visible()
        assert all(self.clean[key] for key in self.clean) and len(self.clean) == len(TENANTS) * HOURS

    def pipeline(self, url: str, retries: int = 2) -> Pipeline:
        settings = ThanosSettings(url=url, retries=retries, timeout_seconds=TIMEOUT, backoff_initial_seconds=0.01,
                                  backoff_max_seconds=0.02)
        return Pipeline(self.config, ThanosClient(settings), self.sink)

    def visible(self) -> dict[tuple, dict]:
        """(tenant, hour) -> {row key: (total cost, cpu core-hours, running minutes)} of k8s_expenses_current."""
        out: dict[tuple, dict] = {}
        for tenant, hour, *key, total, cpu, minutes in self.sink.query(
                "SELECT cloud_account_id, toUnixTimestamp(hour), namespace, workload_kind, workload_name, pod, node, "
                "total_cost, cpu_core_hours, running_minutes FROM k8s_expenses_current"):
            out.setdefault((tenant, hour), {})[tuple(key)] = (total, cpu, minutes)
        return out

    def runs_since(self, recorded_after) -> list[tuple]:
        return self.sink.query("SELECT cloud_account_id, toUnixTimestamp(hour), status, error FROM k8s_expense_runs "
                               "WHERE recorded_at > {t:DateTime64(6, 'UTC')} AND status != 'running' "
                               "ORDER BY 1, 2", {"t": recorded_after})

    def close(self):
        self.proxy.close()
        self.cluster.prometheus.stop()
        self._client_cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("faulty"))
    yield store
    store.close()


def same_rows(actual: dict, expected: dict) -> bool:
    return actual.keys() == expected.keys() and all(
        a == pytest.approx(b, rel=1e-12, abs=1e-12) for key in expected for a, b in zip(actual[key], expected[key]))


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_faulty_answer_is_read_exactly_or_the_hour_fails(store, fault):
    matches, action, error = FAULTS[fault]
    store.proxy.reset_counts()
    store.proxy.default = When(matches, action)
    before = store.sink.query("SELECT now64(6, 'UTC')")[0][0]
    time.sleep(0.01)
    try:
        done = run_hours(store.pipeline(store.proxy.url), TENANTS, store.hours)
    finally:
        store.proxy.default = "pass"
    assert any(matches(query_of(path)) for path in store.proxy.seen), f"{fault}: the fault hit no query"
    runs = store.runs_since(before)
    assert len(runs) == len(TENANTS) * HOURS  # every tenant-hour was tried: no fault stopped the backfill
    if error is None:
        assert done.failed == 0 and {status for *_, status, _ in runs} == {"succeeded"}
    else:
        assert done.failed == len(runs), runs
        assert all(status == "failed" and error in reason for *_, status, reason in runs), runs
    visible = store.visible()
    assert visible.keys() == store.clean.keys()
    for key, rows in store.clean.items():
        assert same_rows(visible[key], rows), (fault, key)


@pytest.mark.parametrize("raw_only", [True, False])
def test_every_query_asks_for_raw_samples_only(store, raw_only):
    """Thanos serves downsampled blocks (5m, 1h) for old ranges unless max_source_resolution=0s is asked."""
    settings = ThanosSettings(url=store.proxy.url, retries=1, raw_only=raw_only)
    store.proxy.reset_counts()
    Pipeline(store.config, ThanosClient(settings), store.sink).run_hour(TENANTS[0], store.hours[0], "test")
    queries = [path for path in store.proxy.seen if path.startswith("/api/v1/query")]
    assert len(queries) >= 10
    assert all(("max_source_resolution=0s" in path) == raw_only for path in queries)


def test_a_trickling_answer_times_out_within_the_timeout(store):
    """requests' timeout is per read: KCW_THANOS_TIMEOUT_SECONDS bounds the whole request instead."""
    settings = ThanosSettings(url=store.proxy.url, retries=1, timeout_seconds=1.5)
    store.proxy.default = When(is_samples, Trickle(bytes_per_second=200))
    try:
        began = time.monotonic()
        with pytest.raises(TransientError, match="took longer than 1.5 s"):
            ThanosClient(settings).samples('{__name__="node_cpu_hourly_cost", tenant_id="faulty-a"}[3660s]',
                                           START + 3600 - 0.001)
        assert time.monotonic() - began < 1.5 + 1.0
    finally:
        store.proxy.default = "pass"


def test_an_unexpected_error_fails_the_hour_and_the_backfill_goes_on(store, monkeypatch):
    """A bug (an exception no check foresaw) is recorded as the hour's failure; it never leaves a run 'running'
    nor stops the other tenant-hours."""
    import kubecost_worker.pipeline as pipeline_module

    real = pipeline_module.compute_hour

    def sometimes_broken(hour_input, **options):
        if hour_input.tenant == TENANTS[0]:
            raise KeyError("values")
        return real(hour_input, **options)

    monkeypatch.setattr(pipeline_module, "compute_hour", sometimes_broken)
    before = store.sink.query("SELECT now64(6, 'UTC')")[0][0]
    time.sleep(0.01)
    done = run_hours(store.pipeline(store.cluster.url), TENANTS, store.hours)
    runs = store.runs_since(before)
    assert done.failed == HOURS and done.done == HOURS
    assert {(tenant, status) for tenant, _, status, _ in runs} == {(TENANTS[0], "failed"), (TENANTS[1], "succeeded")}
    assert all("unexpected KeyError" in error for tenant, _, _, error in runs if tenant == TENANTS[0])


def test_a_rerun_that_finds_the_history_gone_is_refused_and_force_replaces_it(store):
    """Thanos's retention dropped the raw samples (every answer empty): the rerun is recorded 'refused' with the
    reason and the stored hours stay exactly as they were; ``force`` replaces them; a run with the data back needs
    no force (it finds more than the current run)."""
    gone = When(lambda query: True, Rewrite(emptied))
    store.proxy.default = gone
    try:
        before = store.sink.query("SELECT now64(6, 'UTC')")[0][0]
        time.sleep(0.01)
        refused = run_hours(store.pipeline(store.proxy.url), TENANTS, store.hours)
        assert (refused.done, refused.failed, refused.refused) == (0, 0, len(TENANTS) * HOURS)
        assert "refused" in refused.line()
        runs = store.runs_since(before)
        assert len(runs) == len(TENANTS) * HOURS and all(
            status == "refused" and "0 sentinel samples against" in why and "--force" in why for *_, status, why in runs)
        visible = store.visible()
        assert visible.keys() == store.clean.keys() and all(same_rows(visible[k], v) for k, v in store.clean.items())
        lines = summarize(store.sink.ledger_summary(TENANTS[0])).splitlines()
        assert len(lines) == 2 and f"; refused {HOURS} h [" in lines[0] and "0 sentinel samples against" in lines[0]
        assert f"{HOURS} refused" in lines[1]  # the total line

        forced = run_hours(store.pipeline(store.proxy.url), TENANTS[:1], store.hours[:1], force=True)
        assert (forced.done, forced.rows) == (1, 0)
        assert (TENANTS[0], store.hours[0]) not in store.visible()  # the operator asked for the empty hour
    finally:
        store.proxy.default = "pass"
    restored = run_hours(store.pipeline(store.cluster.url), TENANTS, store.hours)
    assert restored.done == len(TENANTS) * HOURS and restored.refused == 0
    visible = store.visible()
    assert visible.keys() == store.clean.keys() and all(same_rows(visible[k], v) for k, v in store.clean.items())


def test_the_ledger_records_what_each_hour_asked_of_thanos(store):
    """Per tenant-hour the ledger holds the requests sent (a retried one twice), bytes and samples received, as the
    proxy saw them; a failed hour records what it asked before failing; /metrics counts the same."""
    from kubecost_worker import telemetry

    pipeline = store.pipeline(store.proxy.url, retries=3)
    pipeline.thanos.range_selector(1)  # the range-kind probe: asked once per process, by the first hour
    measured = "SELECT status, thanos_queries, thanos_bytes, thanos_samples FROM k8s_expense_runs " \
               "WHERE run_id = {r:UUID} AND status != 'running'"
    for faults in ([], [Status(503, "busy")]):
        store.proxy.reset_counts()
        store.proxy.script(*faults)
        sent_before = telemetry.THANOS_QUERIES._value.get()
        run = pipeline.run_hour(TENANTS[0], store.hours[0], "test").record
        (status, queries, received, samples), = store.sink.query(measured, {"r": run.run_id})
        assert status == "succeeded" and queries == store.proxy.count >= 10 + len(faults)
        assert telemetry.THANOS_QUERIES._value.get() - sent_before == queries
        assert received > 10_000 and samples > 1_000
        assert (run.thanos_queries, run.thanos_bytes, run.thanos_samples) == (queries, received, samples)
    store.proxy.reset_counts()
    store.proxy.default = When(is_summary, Rewrite(halved))
    try:
        failed = pipeline.run_hour(TENANTS[0], store.hours[0], "test")
        assert failed.status == "failed" and "incomplete" in failed.error
    finally:
        store.proxy.default = "pass"
    (status, queries, *_), = store.sink.query(
        "SELECT status, thanos_queries FROM k8s_expense_runs WHERE status = 'failed' ORDER BY recorded_at DESC LIMIT 1")
    assert status == "failed" and 0 < queries <= store.proxy.count


def test_a_batched_backfill_fails_only_the_hour_a_fault_hits(store):
    """The batched backfill (every hour in one batch, sized by the census asked ahead): a range answer missing
    one series at one hour's point fails that hour, whose stored data stays as it was; the others are stored as
    cleanly as ever. Each hour's ledger record holds its share of the batch's requests: together, every request
    the proxy saw."""
    last_point_of_the_last_hour = {}

    def drop_the_last_point(body: dict) -> dict:
        if body["data"]["resultType"] == "matrix" and body["data"]["result"]:
            item = body["data"]["result"][0]
            last_point_of_the_last_hour["dropped"] = item["values"].pop()
        return body

    store.proxy.reset_counts()
    store.proxy.default = When(lambda q: q.startswith("avg_over_time(container_cpu_allocation"),
                               Rewrite(drop_the_last_point))
    before = store.sink.query("SELECT now64(6, 'UTC')")[0][0]
    time.sleep(0.01)
    try:
        pipeline = store.pipeline(store.proxy.url)
        outcomes = [outcome for batch in pipeline.batches(TENANTS[0], store.hours) for outcome in batch]
    finally:
        store.proxy.default = "pass"
    assert "dropped" in last_point_of_the_last_hour  # the batch's range query was hit
    assert [(o.status, o.kind) for o in outcomes] == [("succeeded", None)] * (HOURS - 1) + [("failed", "transient")]
    assert outcomes[-1].record.error.startswith("ThanosBadAnswer: ")
    runs = store.runs_since(before)
    assert [status for *_, status, _ in runs] == ["succeeded"] * (HOURS - 1) + ["failed"]
    assert "an answer is incomplete" in runs[-1][-1]
    visible = store.visible()
    for key, rows in store.clean.items():
        assert same_rows(visible[key], rows), key
    (queries,), = store.sink.query("SELECT sum(thanos_queries) FROM k8s_expense_runs WHERE recorded_at > "
                                   "{t:DateTime64(6, 'UTC')} AND status != 'running'", {"t": before})
    assert abs(queries - store.proxy.count) <= HOURS  # the shares are rounded to whole requests


def is_census(query: str) -> bool:
    return query.startswith("label_replace(count(count_over_time(")


def census_requests(proxy) -> list[str]:
    return [path.split("?", 1)[0] for path in proxy.seen if is_census(query_of(path))]


def test_a_tenant_not_seen_yet_is_sized_by_its_census_asked_once_ahead(store):
    """A backfill of a tenant the pipeline has not seen: the census of its first hour is asked ahead (one instant
    query) and sizes its first batch, which takes it for that hour and asks the census of its other hours with its
    other queries (a range query for several, an instant query for one). With room for every hour, one batch; with
    a memory budget of two hours of the census's series, a batch of two, then the rest sized by the hour last read.
    The rows are those of the clean run, and every request is in some hour's ledger record."""
    store.proxy.reset_counts()
    before = store.sink.query("SELECT now64(6, 'UTC')")[0][0]
    time.sleep(0.01)
    pipeline = store.pipeline(store.proxy.url)
    batches = list(pipeline.batches(TENANTS[0], store.hours))
    assert [[o.status for o in batch] for batch in batches] == [["succeeded"] * HOURS]
    assert census_requests(store.proxy) == ["/api/v1/query", "/api/v1/query_range"]
    (queries,), = store.sink.query("SELECT sum(thanos_queries) FROM k8s_expense_runs WHERE recorded_at > "
                                   "{t:DateTime64(6, 'UTC')} AND status != 'running'", {"t": before})
    assert abs(queries - store.proxy.count) <= HOURS

    found = census(ThanosClient(ThanosSettings(store.cluster.url)), "tenant_id", TENANTS[0], store.hours, 60)
    assert 0 < found.series() <= pipeline.series_seen[TENANTS[0]]  # summarised series; the hour read has all
    store.proxy.reset_counts()
    tight = Pipeline(dataclasses.replace(store.config, batch_series_hours=2 * found.series() + 1),
                     store.pipeline(store.proxy.url).thanos, store.sink)
    batches = list(tight.batches(TENANTS[0], store.hours))
    assert [len(batch) for batch in batches] == [2, 1]
    assert all(o.status == "succeeded" for batch in batches for o in batch)
    # the first hour's, ahead; the second's, asked by the batch of two; the last hour's, alone
    assert census_requests(store.proxy) == ["/api/v1/query", "/api/v1/query", "/api/v1/query"]
    visible = store.visible()
    for key, rows in store.clean.items():
        assert same_rows(visible[key], rows), key


def not_a_count(body: dict) -> dict:
    for item in body["data"]["result"]:
        for point in item.get("values", [item.get("value")]):
            point[1] = "1.5"
    return body


@pytest.mark.parametrize("fault", ["unavailable", "not a count"])
def test_a_census_that_cannot_be_asked_ahead_sends_the_first_hour_alone(store, fault):
    """Where the census asked ahead fails (every attempt: the server unavailable, or a count that is no count), the
    tenant's first hour goes alone and tells the size of the rest, as before the census was asked ahead: every
    hour stored as cleanly as ever."""
    failed: list[str] = []
    # the pipeline's client makes 2 attempts where the server is unavailable; an answer is read once
    attempts, action = ((2, Status(503, {"status": "error", "errorType": "unavailable", "error": "store down"}))
                        if fault == "unavailable" else (1, Rewrite(not_a_count)))

    def the_first_attempts(query: str) -> bool:
        if is_census(query) and len(failed) < attempts:
            failed.append(query)
            return True
        return False

    store.proxy.default = When(the_first_attempts, action)
    try:
        pipeline = store.pipeline(store.proxy.url)
        batches = list(pipeline.batches(TENANTS[1], store.hours))
    finally:
        store.proxy.default = "pass"
    assert len(failed) == attempts
    assert [len(batch) for batch in batches] == [1, HOURS - 1]
    assert all(o.status == "succeeded" for batch in batches for o in batch)
    visible = store.visible()
    for key, rows in store.clean.items():
        assert same_rows(visible[key], rows), key


def hour_asked(path: str) -> int | None:
    """The hour a request asks about: its instant query's time or its range's start (each evaluated inside the hour
    it is for), else None."""
    params = parse_qs(urlsplit(path).query)
    at = params.get("time", params.get("start"))
    return int(float(at[0]) // 3600 * 3600) if at else None


@pytest.mark.parametrize("held", [2, 1])
def test_the_next_batch_is_fetched_while_one_is_priced_and_written_where_both_fit(store, held):
    """Hour by hour (batches of one), each hour's requests go out while the hour before it is priced and written
    where the series-hours budget holds two hours; where it holds one, none goes out before the hour before it is
    written. Every hour is stored as cleanly as ever either way."""
    largest = 0  # the most series an hour of the tenant has: the budget that holds one hour, not two
    probe = store.pipeline(store.cluster.url)
    for _ in probe.batches(TENANTS[0], store.hours):
        largest = max(largest, probe.series_seen[TENANTS[0]])
    budget = {2: 200_000, 1: largest}[held]
    writes: list[tuple[int, set]] = []  # each hour written, and the hours asked about by then

    def asked() -> set:
        return {hour_asked(path) for path in list(store.proxy.seen)}

    class Watched(ClickHouseSink):
        def write_hours(self, hours):
            (run, *_), = hours
            if held == 2 and run.hour != store.hours[-1]:  # asked meanwhile: waited for, not raced
                deadline = time.monotonic() + 10
                while run.hour + 3600 not in asked() and time.monotonic() < deadline:
                    time.sleep(0.01)
            writes.append((run.hour, asked()))
            return super().write_hours(hours)

    store.proxy.reset_counts()
    config = dataclasses.replace(store.config, batch_hours=1, batch_series_hours=budget)
    pipeline = Pipeline(config, store.pipeline(store.proxy.url).thanos, Watched(store.sink.client))
    batches = list(pipeline.batches(TENANTS[0], store.hours))
    assert [[o.status for o in batch] for batch in batches] == [["succeeded"]] * HOURS
    assert [hour for hour, _ in writes] == store.hours
    for hour, asked_by_then in writes:
        later = {h for h in asked_by_then if h is not None and h > hour}
        assert later == ({hour + 3600} if held == 2 and hour != store.hours[-1] else set()), (hour, later)
    visible = store.visible()
    for key, rows in store.clean.items():
        assert same_rows(visible[key], rows), key


def test_a_tenant_whose_hours_cannot_be_asked_fails_them_and_the_others_go_on(store):
    """A tenant id outside the safe alphabet, run in rounds beside a good tenant: not one of its queries is sent,
    each of its hours is recorded failed (terminal, the reason named), and the good tenant's hours are stored as
    cleanly as ever."""
    hostile = 'faulty-a"} or vector(1) #'
    store.proxy.reset_counts()
    before = store.sink.query("SELECT now64(6, 'UTC')")[0][0]
    time.sleep(0.01)
    pipeline = store.pipeline(store.proxy.url)
    ended = [(tenant, [(o.status, o.kind) for o in outcomes])
             for tenant, outcomes in pipeline.in_rounds([hostile, TENANTS[1]], store.hours, "test")]
    assert {tenant for tenant, _ in ended} == {hostile, TENANTS[1]}
    assert [o for tenant, outcomes in ended if tenant == hostile for o in outcomes] == [("failed", "terminal")] * HOURS
    assert [o for tenant, outcomes in ended if tenant != hostile for o in outcomes] == [("succeeded", None)] * HOURS
    assert not any('faulty-a"}' in query_of(path) for path in store.proxy.seen)
    failed = [run for run in store.runs_since(before) if run[0] == hostile]
    assert [(hour, status) for _, hour, status, _ in failed] == [(h, "failed") for h in store.hours]
    assert all("safe alphabet" in error for *_, error in failed)
    visible = store.visible()
    for key, rows in store.clean.items():
        assert same_rows(visible[key], rows), key


def test_an_hour_fetched_ahead_keeps_its_own_fault(store):
    """Hour by hour with each next hour fetched ahead: a summary answer of the second hour missing half its series
    fails that hour alone, when its turn comes (its stored data stays as it was); the hours before and after it are
    stored as cleanly as ever."""
    second = store.hours[1]

    def halved_in_the_second_hour(body: dict) -> dict:
        result = body["data"]["result"]
        if result and second <= float(result[0]["value"][0]) < second + 3600:
            return halved(body)
        return body

    store.proxy.default = When(is_summary, Rewrite(halved_in_the_second_hour))
    try:
        config = dataclasses.replace(store.config, batch_hours=1)
        pipeline = Pipeline(config, store.pipeline(store.proxy.url).thanos, store.sink)
        outcomes = [o for batch in pipeline.batches(TENANTS[0], store.hours) for o in batch]
    finally:
        store.proxy.default = "pass"
    assert [(o.hour, o.status, o.kind) for o in outcomes] == [
        (hour, "failed", "transient") if hour == second else (hour, "succeeded", None) for hour in store.hours]
    assert "an answer is incomplete" in outcomes[1].error
    visible = store.visible()
    for key, rows in store.clean.items():
        assert same_rows(visible[key], rows), key
