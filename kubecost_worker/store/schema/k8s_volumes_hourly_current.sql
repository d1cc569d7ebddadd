-- The volume rows of the current runs (as k8s_nodes_hourly_current).
CREATE OR REPLACE VIEW k8s_volumes_hourly_current AS
SELECT d.*
FROM k8s_volumes_hourly AS d
INNER JOIN k8s_expense_current_runs AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.hour = current.hour AND d.run_id = current.run_id;
