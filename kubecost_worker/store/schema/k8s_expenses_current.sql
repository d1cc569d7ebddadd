-- What users query: the rows of the current run of each tenant-hour. A join, not `(...) IN (subquery)`: ClickHouse
-- pushes a query's filter on the tenant and the hour through the join's equal columns into the run lookup, so a
-- query costs what its tenant and hours cost. SELECT e.* leaves the ALIAS total_cost out, so it is named; e.* is
-- expanded when the view is created: created again when k8s_expenses gains columns.
CREATE OR REPLACE VIEW k8s_expenses_current AS
SELECT e.*, e.total_cost
FROM k8s_expenses AS e
INNER JOIN k8s_expense_current_runs AS current
    ON e.cloud_account_id = current.cloud_account_id AND e.hour = current.hour AND e.run_id = current.run_id;
