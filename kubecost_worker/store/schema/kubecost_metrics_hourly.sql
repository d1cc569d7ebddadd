-- Hourly means of every kubecost_* series with its labels (savings series included), for the read API.
-- point_json is the point as the API sends it ({"timestamp","value","labels"}), written once at insert time:
-- a 30-day answer holds 10^5 points, and serialising them on every request was most of its time.
CREATE TABLE IF NOT EXISTS kubecost_metrics_hourly
(
    cloud_account_id LowCardinality(String),
    hour             DateTime('UTC'),
    metric           LowCardinality(String),
    labels           Map(LowCardinality(String), String),
    value            Float64,
    samples          UInt32,
    point_json       String CODEC(ZSTD(3)),
    run_id           UUID
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, metric, hour, run_id);
