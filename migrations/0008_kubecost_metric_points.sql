-- Each run's points of one metric and hour, joined into one JSON text (sorted by the point's text), filled by a
-- materialized view as the samples are inserted. A 30-day kubecost_metrics answer then moves ~7,000 texts out
-- of ClickHouse instead of ~45,000 points and sorts nothing but them (bench/api.py, docs/benchmarks.md).
-- A run's samples arrive in one insert block (a few hundred rows an hour); should a very large one be split,
-- its hour gets one text per block, which the reader joins in order.
CREATE TABLE IF NOT EXISTS kubecost_metric_points_hourly
(
    cloud_account_id LowCardinality(String),
    metric           LowCardinality(String),
    hour             DateTime('UTC'),
    run_id           UUID,
    points_json      String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, metric, hour, run_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS kubecost_metric_points_hourly_mv TO kubecost_metric_points_hourly AS
SELECT cloud_account_id, metric, hour, run_id, arrayStringConcat(arraySort(groupArray(point_json)), ',') AS points_json
FROM kubecost_metrics_hourly
GROUP BY cloud_account_id, metric, hour, run_id;

-- The samples written before this migration, once: runs without points yet. A run being written while this
-- runs can end up here twice (view and backfill); the reader skips a repeated text.
INSERT INTO kubecost_metric_points_hourly (cloud_account_id, metric, hour, run_id, points_json)
SELECT cloud_account_id, metric, hour, run_id, arrayStringConcat(arraySort(groupArray(point_json)), ',')
FROM kubecost_metrics_hourly
WHERE (cloud_account_id, metric, hour, run_id) NOT IN
      (SELECT cloud_account_id, metric, hour, run_id FROM kubecost_metric_points_hourly)
GROUP BY cloud_account_id, metric, hour, run_id;
