-- The ledger record of each tenant-hour's current run (its coverage, rows, cost), for refusals, the read API's piece
-- sizes and `status`. r.* is expanded when the view is created: created again when the ledger gains columns.
CREATE OR REPLACE VIEW k8s_expense_current_run_records AS
SELECT r.*
FROM k8s_expense_runs AS r
INNER JOIN k8s_expense_current_runs AS current
    ON r.cloud_account_id = current.cloud_account_id AND r.hour = current.hour AND r.run_id = current.run_id
WHERE r.status = 'succeeded';
