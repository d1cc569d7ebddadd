-- The namespace rollup of the current runs (as k8s_expenses_current).
CREATE OR REPLACE VIEW k8s_expenses_namespace_current AS
SELECT n.*
FROM k8s_expenses_namespace_hourly AS n
INNER JOIN k8s_expense_current_runs AS current
    ON n.cloud_account_id = current.cloud_account_id AND n.hour = current.hour AND n.run_id = current.run_id;
