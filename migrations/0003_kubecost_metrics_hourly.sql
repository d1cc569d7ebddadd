-- Hourly means of every kubecost_* series with its labels (savings series included), for the read API.
CREATE TABLE IF NOT EXISTS kubecost_metrics_hourly
(
    cloud_account_id LowCardinality(String),
    hour             DateTime('UTC'),
    metric           LowCardinality(String),
    labels           Map(LowCardinality(String), String),
    value            Float64,
    samples          UInt32,
    run_id           UUID
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, metric, hour, run_id);
