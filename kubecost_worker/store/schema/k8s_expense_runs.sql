-- The run ledger: an append-only log of every tenant-hour run's states (kubecost_worker/store/ledger.py has the
-- rules). The latest succeeded run of a tenant-hour is the one readers see (k8s_expense_current_runs).
-- samples_seen counts every sample read; coverage the samples of the sentinel series the scheduler re-counts in
-- Thanos to notice late data; thanos_* what the run asked of Thanos. recorded_at is stamped by the server, never
-- sent: the ledger's order is one clock's, whatever the workers' clocks say.
CREATE TABLE IF NOT EXISTS k8s_expense_runs
(
    cloud_account_id LowCardinality(String),
    hour             DateTime('UTC'),
    run_id           UUID,
    status           Enum8('running' = 1, 'succeeded' = 2, 'failed' = 3, 'queued' = 4, 'refused' = 5, 'collected' = 6),
    reason           LowCardinality(String),
    started_at       DateTime64(3, 'UTC'),
    finished_at      Nullable(DateTime64(3, 'UTC')),
    rows_written     UInt64,
    total_cost       Float64,
    samples_seen     UInt64,
    coverage         UInt64,
    error            String,
    recorded_at      DateTime64(6, 'UTC') DEFAULT now64(6),
    unpriced_nodes   Array(String),
    thanos_queries   UInt32,
    thanos_bytes     UInt64,
    thanos_samples   UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, recorded_at);
