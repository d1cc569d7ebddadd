-- The run ledger: an append-only log of every tenant-hour run's states (queued by the scheduler, running,
-- then succeeded or failed). The latest 'succeeded' run of a tenant-hour is the one readers see.
-- samples_seen counts every sample read; coverage counts the samples of the sentinel series the
-- scheduler re-counts in Thanos to notice late data.
CREATE TABLE IF NOT EXISTS k8s_expense_runs
(
    cloud_account_id LowCardinality(String),
    hour             DateTime('UTC'),
    run_id           UUID,
    status           Enum8('running' = 1, 'succeeded' = 2, 'failed' = 3, 'queued' = 4),
    reason           LowCardinality(String),
    started_at       DateTime64(3, 'UTC'),
    finished_at      Nullable(DateTime64(3, 'UTC')),
    rows_written     UInt64,
    total_cost       Float64,
    samples_seen     UInt64,
    coverage         UInt64,
    error            String,
    recorded_at      DateTime64(6, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, recorded_at);
