-- What users query: the rows of the latest successful run of each tenant-hour, and nothing else.
-- A run that is still writing, that failed, or that a rerun replaced is invisible here.
CREATE VIEW IF NOT EXISTS k8s_expense_current_runs AS
SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
FROM k8s_expense_runs
WHERE status = 'succeeded'
GROUP BY cloud_account_id, hour;

CREATE VIEW IF NOT EXISTS k8s_expenses_current AS
SELECT *
FROM k8s_expenses
WHERE (cloud_account_id, hour, run_id) IN (SELECT cloud_account_id, hour, run_id FROM k8s_expense_current_runs);

CREATE VIEW IF NOT EXISTS kubecost_metrics_current AS
SELECT *
FROM kubecost_metrics_hourly
WHERE (cloud_account_id, hour, run_id) IN (SELECT cloud_account_id, hour, run_id FROM k8s_expense_current_runs);
