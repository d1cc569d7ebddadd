-- The daily tier keeps the costs reconciled with the cloud bill (docs/reconciliation.md): a day's reconciled costs
-- outlive its hours, so the allocation API's reconcile=true, export --reconciled and export-optscale --reconciled
-- read sealed days as they read their hours. The *_reconciled sums default to the list ones: builds made before, and
-- builds of days never reconciled, read their list costs. A build's fingerprint counts the reconciliation it summed:
-- a day reconciled anew is built again. The reconciliation rule gets a view of its own
-- (k8s_current_reconciliations), installed inline where a view joins it; the views reading the changed rule and
-- columns are created again. The declarations (kubecost_worker/store/schema/) say why each choice.

ALTER TABLE k8s_expenses_by_day
    ADD COLUMN IF NOT EXISTS cpu_cost_reconciled Float64 DEFAULT cpu_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS ram_cost_reconciled Float64 DEFAULT ram_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS gpu_cost_reconciled Float64 DEFAULT gpu_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS pv_cost_reconciled Float64 DEFAULT pv_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS total_cost_reconciled_exact Decimal(38, 18) DEFAULT total_cost_exact CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS cpu_cost_without_usage_reconciled Float64 DEFAULT cpu_cost_without_usage CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS ram_cost_without_usage_reconciled Float64 DEFAULT ram_cost_without_usage CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS total_cost_reconciled Float64 ALIAS toFloat64(total_cost_reconciled_exact),
    ADD COLUMN IF NOT EXISTS cpu_cost_with_usage_reconciled Float64
        ALIAS cpu_cost_reconciled - cpu_cost_without_usage_reconciled,
    ADD COLUMN IF NOT EXISTS ram_cost_with_usage_reconciled Float64
        ALIAS ram_cost_reconciled - ram_cost_without_usage_reconciled;

CREATE OR REPLACE VIEW k8s_current_reconciliations AS
SELECT cloud_account_id, bill_day,
       argMax(reconcile_id, computed_at) AS reconcile_id,
       argMax(trigger, computed_at) AS trigger,
       argMax(inputs, computed_at) AS inputs,
       argMax(list_cost, computed_at) AS list_cost,
       argMax(modelled_cost, computed_at) AS modelled_cost
FROM k8s_reconciliations
GROUP BY cloud_account_id, bill_day;

CREATE OR REPLACE VIEW k8s_reconciled_factors_current AS
SELECT f.*
FROM k8s_reconciled_factors AS f
INNER JOIN k8s_current_reconciliations AS latest
    ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id;

CREATE OR REPLACE VIEW k8s_expenses_by_day_current AS
SELECT d.*, d.total_cost, d.cpu_request_core_hours_with_usage, d.ram_request_byte_hours_with_usage,
       d.cpu_cost_with_usage, d.ram_cost_with_usage, d.total_cost_reconciled, d.cpu_cost_with_usage_reconciled,
       d.ram_cost_with_usage_reconciled, current.sealed AS sealed
FROM k8s_expenses_by_day AS d
INNER JOIN k8s_day_current_builds AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.day = current.day AND d.build_id = current.build_id;
