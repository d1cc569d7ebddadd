-- Each run's points of one metric and hour, joined into one JSON text (sorted by the point's text), filled by
-- kubecost_metric_points_hourly_mv: a 30-day kubecost_metrics answer moves ~7,000 texts out of ClickHouse instead of
-- ~45,000 points. A run split over several insert blocks has one text per block, which the reader joins in order.
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
