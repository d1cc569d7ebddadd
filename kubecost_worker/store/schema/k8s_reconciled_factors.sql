-- The factors of each reconciliation (docs/reconciliation.md), a row per node-hour and volume-hour of the tenant-day
-- (kind node, volume) and per unmatched bill period of its clusters (kind bill, resource ''): the hourly rows stay the
-- list-price truth, and a reconciled cost is a row's cost times its resource-hour's factor. period_* are the billing
-- period's (an hour, or the day where the bill is daily) and of the resource's group (an Azure scale set's nodes):
-- period_billed_cost is the same on each of its hours.
--
-- Kind claim: a row per hour of a pod's own row holding volume costs (container '', pv_cost > 0) whose node or one of
-- whose volumes was matched, with what k8s_expenses_reconciled_current needs of it in one lookup beside the node-hours:
-- resource its node, factor and matched its node's, pv_reconciled the sum over the volumes it holds a part of
-- (k8s_volumes_hourly.claims of the row's run) of that part times the volume-hour's factor, pv_matched whether one of
-- them was matched. Written by the reconciliation from its own node and volume factors (store/reconcile.py); the
-- columns other kinds leave at their defaults. Rows of a reconciliation the ledger has superseded are removed by
-- cleanup (the view reads every reconciliation's factors of a day before it keeps the current one's).
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
    reconcile_id         UUID,
    namespace            String DEFAULT '' CODEC(ZSTD(3)),
    workload_name        String DEFAULT '' CODEC(ZSTD(3)),
    pod                  String DEFAULT '' CODEC(ZSTD(3)),
    pod_uid              String DEFAULT '' CODEC(ZSTD(3)),
    pv_reconciled        Float64 DEFAULT 0 CODEC(ZSTD(3)),
    pv_matched           Bool DEFAULT false
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, reconcile_id, kind, cluster_id, resource);
