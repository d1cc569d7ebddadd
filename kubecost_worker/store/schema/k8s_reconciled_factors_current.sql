-- The factors readers see: those of the latest reconciliation of each tenant-day (k8s_reconciliations).
CREATE OR REPLACE VIEW k8s_reconciled_factors_current AS
SELECT f.*
FROM k8s_reconciled_factors AS f
INNER JOIN
(
    SELECT cloud_account_id, argMax(reconcile_id, computed_at) AS reconcile_id
    FROM k8s_reconciliations
    GROUP BY cloud_account_id, bill_day
) AS latest ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id;
