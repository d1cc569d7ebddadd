-- The views of current data name k8s_expense_current_runs, the one statement of the current-run rule, and the
-- migration runner installs each with that view's SELECT in the place of the name (kubecost_worker/store/schema):
-- ClickHouse plans a view named in a join as a query of its own, 3.5 to 4 ms a query in chDB 26.9. The ledger record
-- of the current runs, which named the view and was planned so, is created again to be installed with the rule
-- inline (same rows, same columns). The workload rollup of the current runs is new: the dashboards read it.
CREATE OR REPLACE VIEW k8s_expense_current_run_records AS
SELECT r.*
FROM k8s_expense_runs AS r
INNER JOIN k8s_expense_current_runs AS current
    ON r.cloud_account_id = current.cloud_account_id AND r.hour = current.hour AND r.run_id = current.run_id
WHERE r.status = 'succeeded';

CREATE OR REPLACE VIEW k8s_expenses_workload_current AS
SELECT w.*
FROM k8s_expenses_workload_hourly AS w
INNER JOIN k8s_expense_current_runs AS current
    ON w.cloud_account_id = current.cloud_account_id AND w.hour = current.hour AND w.run_id = current.run_id;
