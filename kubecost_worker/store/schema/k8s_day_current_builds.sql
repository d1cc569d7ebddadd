-- The current-build rule: the build readers see for a tenant-day is the one its seal names once it is sealed, else
-- its latest built build by the ledger's order (k8s_day_builds). Every view of the daily tier joins this one, and
-- the store installs each with this SELECT in the place of the name, as the hourly views with
-- k8s_expense_current_runs. sealed: the day's hourly rows may be gone, so its daily rows are final and readers take
-- the day from them (docs/storage.md). The other columns are the current build's record.
CREATE OR REPLACE VIEW k8s_day_current_builds AS
SELECT cloud_account_id, day,
       argMax(build_id, (status = 'sealed', recorded_at)) AS build_id,
       argMax(hours, (status = 'sealed', recorded_at)) AS hours,
       argMax(runs_fingerprint, (status = 'sealed', recorded_at)) AS runs_fingerprint,
       argMax(rows_written, (status = 'sealed', recorded_at)) AS rows_written,
       argMax(total_cost, (status = 'sealed', recorded_at)) AS total_cost,
       max(status = 'sealed') AS sealed
FROM k8s_day_builds
WHERE status IN ('built', 'sealed')
GROUP BY cloud_account_id, day;
