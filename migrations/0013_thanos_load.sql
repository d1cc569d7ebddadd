-- What each run asked of Thanos: the requests it sent (retries included), the bytes and the samples of the answers
-- it received. Written with the run's final record (succeeded, refused or failed); runs recorded before this
-- migration read 0. `status` and docs/operations.md ("Sizing a Thanos for the worker") read them.
ALTER TABLE k8s_expense_runs
    ADD COLUMN IF NOT EXISTS thanos_queries UInt32 AFTER unpriced_nodes,
    ADD COLUMN IF NOT EXISTS thanos_bytes UInt64 AFTER thanos_queries,
    ADD COLUMN IF NOT EXISTS thanos_samples UInt64 AFTER thanos_bytes;

-- The view's SELECT r.* is expanded when it is created: created again, with the same text as before (0010, 0011),
-- to show the new columns.
CREATE OR REPLACE VIEW k8s_expense_current_run_records AS
SELECT r.*
FROM k8s_expense_runs AS r
INNER JOIN k8s_expense_current_runs AS current
    ON r.cloud_account_id = current.cloud_account_id AND r.hour = current.hour AND r.run_id = current.run_id
WHERE r.status = 'succeeded';
