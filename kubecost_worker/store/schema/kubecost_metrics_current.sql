-- The metric samples of the current runs (as k8s_expenses_current).
CREATE OR REPLACE VIEW kubecost_metrics_current AS
SELECT m.*
FROM kubecost_metrics_hourly AS m
INNER JOIN k8s_expense_current_runs AS current
    ON m.cloud_account_id = current.cloud_account_id AND m.hour = current.hour AND m.run_id = current.run_id;
