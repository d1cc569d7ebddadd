-- The reconciliation-with-the-bill rule: the reconciliation readers see for a tenant-day is its latest row in the
-- ledger (k8s_reconciliations) by computed_at, the server's clock. The factors' view, the day builds and the
-- scheduler's trigger check all name this view; views that join it are installed with this SELECT in its place,
-- as with the current-run rule.
CREATE OR REPLACE VIEW k8s_current_reconciliations AS
SELECT cloud_account_id, bill_day,
       argMax(reconcile_id, computed_at) AS reconcile_id,
       argMax(trigger, computed_at) AS trigger,
       argMax(inputs, computed_at) AS inputs,
       argMax(list_cost, computed_at) AS list_cost,
       argMax(modelled_cost, computed_at) AS modelled_cost
FROM k8s_reconciliations
GROUP BY cloud_account_id, bill_day;
