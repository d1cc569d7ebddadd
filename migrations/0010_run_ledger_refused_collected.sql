-- Reruns without a delete each (docs/storage.md): a run's commit no longer removes the rows of the runs it
-- supersedes; `kubecost-worker gc` (and the scheduler's tick) removes the rows of superseded, failed and abandoned
-- runs in batches, one delete per table and monthly partition, and records each removed run as 'collected'.
-- 'refused': a run that found markedly less data than the hour's current run, recorded and not committed.
-- Adding values to an Enum8 changes the metadata only; stored records keep their values.
ALTER TABLE k8s_expense_runs
    MODIFY COLUMN IF EXISTS status
        Enum8('running' = 1, 'succeeded' = 2, 'failed' = 3, 'queued' = 4, 'refused' = 5, 'collected' = 6);

-- The ledger record of each tenant-hour's current run (its coverage, rows, cost), for refusals, the read API's
-- piece sizes and `status`. Which run is current stays defined once, in k8s_expense_current_runs (0004): that
-- view stays lean (tenant, hour, run id), so the *_current views joined with it cost what their tables cost.
CREATE OR REPLACE VIEW k8s_expense_current_run_records AS
SELECT r.*
FROM k8s_expense_runs AS r
INNER JOIN k8s_expense_current_runs AS current
    ON r.cloud_account_id = current.cloud_account_id AND r.hour = current.hour AND r.run_id = current.run_id
WHERE r.status = 'succeeded';

-- The *_current views join the current-run rule inline: the same SELECT as k8s_expense_current_runs, written here
-- instead of naming that view, because a view inside a view costs ClickHouse a query plan of its own (3 ms a query
-- in chDB 26.9, which made a query on a view 3.4 times the same query on its table beside 150 tenant-years;
-- bench/views.py). tests/test_sink.py holds each inline copy to the text of k8s_expense_current_runs.
CREATE OR REPLACE VIEW k8s_expenses_current AS
SELECT e.*, e.total_cost
FROM k8s_expenses AS e
INNER JOIN (SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
            FROM k8s_expense_runs
            WHERE status = 'succeeded'
            GROUP BY cloud_account_id, hour) AS current
    ON e.cloud_account_id = current.cloud_account_id AND e.hour = current.hour AND e.run_id = current.run_id;

CREATE OR REPLACE VIEW kubecost_metrics_current AS
SELECT m.*
FROM kubecost_metrics_hourly AS m
INNER JOIN (SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
            FROM k8s_expense_runs
            WHERE status = 'succeeded'
            GROUP BY cloud_account_id, hour) AS current
    ON m.cloud_account_id = current.cloud_account_id AND m.hour = current.hour AND m.run_id = current.run_id;

CREATE OR REPLACE VIEW k8s_expenses_namespace_current AS
SELECT n.*
FROM k8s_expenses_namespace_hourly AS n
INNER JOIN (SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
            FROM k8s_expense_runs
            WHERE status = 'succeeded'
            GROUP BY cloud_account_id, hour) AS current
    ON n.cloud_account_id = current.cloud_account_id AND n.hour = current.hour AND n.run_id = current.run_id;
