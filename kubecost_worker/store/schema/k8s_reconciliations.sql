-- The ledger of reconciliation with the cloud bill (docs/reconciliation.md): a row each time a tenant-day is
-- reconciled or found unchanged. The latest row of a tenant-day by computed_at (the server's clock) names the
-- reconciliation readers see (reconcile_id: its rows of k8s_reconciled_factors); a day found unchanged gets a row
-- with the same reconcile_id. trigger is what the scheduler compares each tick (the day's current runs and the load
-- ids of the bill's periods covering it); inputs what the factors were computed from (the day's current runs and the
-- bill lines taken, summed): a bill restated elsewhere changes the trigger only, and writes no factors.
-- Totals: list_cost of every node and volume of the day, modelled_cost of those matched to the bill, billed_cost
-- the bill for them (exact, KCW_BILL_COST), unmatched_billed_cost the lines of the tenant's clusters no resource is.
CREATE TABLE IF NOT EXISTS k8s_reconciliations
(
    cloud_account_id      LowCardinality(String),
    bill_day              Date,
    reconcile_id          UUID,
    trigger               UInt64,
    inputs                UInt64,
    bill_cost             LowCardinality(String),
    list_cost             Float64,
    modelled_cost         Float64,
    billed_cost           Decimal(38, 18),
    node_hours_matched    UInt32,
    node_hours_unmatched  UInt32,
    volume_hours_matched  UInt32,
    volume_hours_unmatched UInt32,
    unmatched_bill_lines  UInt32,
    unmatched_billed_cost Decimal(38, 18),
    computed_at           DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (cloud_account_id, bill_day, computed_at);
