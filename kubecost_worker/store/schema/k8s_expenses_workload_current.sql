-- The workload rollup of the current runs (as k8s_expenses_current).
CREATE OR REPLACE VIEW k8s_expenses_workload_current AS
SELECT w.*
FROM k8s_expenses_workload_hourly AS w
INNER JOIN k8s_expense_current_runs AS current
    ON w.cloud_account_id = current.cloud_account_id AND w.hour = current.hour AND w.run_id = current.run_id;
