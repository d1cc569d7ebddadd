-- The factors readers see: those of the current reconciliation of each tenant-day (k8s_current_reconciliations).
CREATE OR REPLACE VIEW k8s_reconciled_factors_current AS
SELECT f.*
FROM k8s_reconciled_factors AS f
INNER JOIN k8s_current_reconciliations AS latest
    ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id;
