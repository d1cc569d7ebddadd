-- The factors of each reconciliation (docs/reconciliation.md), a row per node-hour and volume-hour of the tenant-day
-- (kind node, volume) and per unmatched bill period of its clusters (kind bill, resource ''): the hourly rows stay the
-- list-price truth, and a reconciled cost is a row's cost times its resource-hour's factor. period_* are the billing
-- period's (an hour, or the day where the bill is daily) and of the resource's group (an Azure scale set's nodes):
-- period_billed_cost is the same on each of its hours. Rows of a reconciliation readers no longer see stay as history.
CREATE TABLE IF NOT EXISTS k8s_reconciled_factors
(
    cloud_account_id     LowCardinality(String),
    cluster_id           LowCardinality(String),
    hour                 DateTime('UTC'),
    kind                 LowCardinality(String),
    resource             String CODEC(ZSTD(3)),
    resource_id          String CODEC(ZSTD(3)),
    period_start         DateTime('UTC'),
    period_end           DateTime('UTC'),
    modelled_cost        Float64 CODEC(ZSTD(3)),
    factor               Float64 CODEC(ZSTD(3)),
    matched              Bool,
    period_modelled_cost Float64 CODEC(ZSTD(3)),
    period_billed_cost   Decimal(38, 18),
    bill_lines           UInt32,
    reconcile_id         UUID
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, reconcile_id, kind, cluster_id, resource);
