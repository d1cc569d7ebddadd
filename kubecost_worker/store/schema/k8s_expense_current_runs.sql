-- The current-run rule: the current run of a tenant-hour is its latest succeeded run by the ledger's order. What
-- users query shows that run's rows and nothing else: a run still writing, failed, refused or replaced by a rerun is
-- invisible. Every view of current data joins this one, and the store installs each with this SELECT in the place of
-- the name (kubecost_worker/store/schema: a view named in a join costs ClickHouse a query plan of its own).
CREATE OR REPLACE VIEW k8s_expense_current_runs AS
SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
FROM k8s_expense_runs
WHERE status = 'succeeded'
GROUP BY cloud_account_id, hour;
