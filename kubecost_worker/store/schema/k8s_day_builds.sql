-- The daily tier's ledger (kubecost_worker/store/days.py): an append-only log of every day build's states. A build
-- sums a tenant's current hourly rows of one UTC day into k8s_expenses_by_day and k8s_nodes_by_day under a build id
-- of its own: 'building' before its rows are inserted, 'built' after (its rows then become the day's, by
-- k8s_day_current_builds), 'collected' once cleanup removed the rows of a superseded build. 'sealed' names the build
-- a day keeps for good: written before the day's hourly rows expire, after which no build replaces it.
-- hours, runs_fingerprint: the current runs the build summed (how many, and the sum of cityHash64(hour, run_id)),
-- read before its rows: a day whose current runs differ from its build's is built again. A day reconciled with the
-- bill adds its reconciliation's cityHash64(reconcile_id) to the fingerprint: a day reconciled anew is built again. recorded_at is stamped by
-- the server, as the run ledger's.
CREATE TABLE IF NOT EXISTS k8s_day_builds
(
    cloud_account_id LowCardinality(String),
    day              Date,
    build_id         UUID,
    status           Enum8('building' = 1, 'built' = 2, 'sealed' = 3, 'collected' = 4),
    hours            UInt8,
    runs_fingerprint UInt64,
    rows_written     UInt64,
    total_cost       Float64,
    recorded_at      DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (cloud_account_id, day, recorded_at);
