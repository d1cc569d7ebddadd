-- Which billing periods bill which resources: a row per period (a partition of the bill: period start, provider,
-- billing account) and matching key of its lines' ResourceId, over the lines a reconciliation takes
-- (kubecost_worker/store/reconcile.py: index_bill). A tenant-day's reconciliation looks its nodes' and volumes' keys up
-- here, then reads the lines of those partitions only: the key is computed from ResourceId, so neither the bill's sort
-- key nor its partitions narrow a read to one tenant's resources, and every account's month would be read
-- (docs/benchmarks.md). Lines tagged with one of the tenant's clusters are looked for in those partitions too, not
-- here: cluster names are not unique across accounts (two customers may each have a cluster named prod).
--
-- bill-load writes a load's rows here before it replaces the periods, from its staging table: a load that dies
-- between leaves rows of periods not replaced yet, which a reconciliation reads as partitions with no such lines.
-- A row is never wrong to have; one missing would hide lines, so rows are never deleted (a restated period that
-- drops a resource keeps its row). ReplacingMergeTree folds the rows of reloads.
CREATE TABLE IF NOT EXISTS focus_bill_resources
(
    resource_key       String,
    BillingPeriodStart DateTime('UTC'),
    BillingPeriodEnd   DateTime('UTC'),
    ProviderName       LowCardinality(String),
    BillingAccountId   String
)
ENGINE = ReplacingMergeTree
ORDER BY (resource_key, BillingPeriodStart, ProviderName, BillingAccountId);
