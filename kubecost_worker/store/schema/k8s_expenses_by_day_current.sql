-- The daily rows of each tenant-day's current build (k8s_day_current_builds), with whether the day is sealed (its
-- hourly rows may be gone: these rows are then all that tells the day). total_cost named: SELECT d.* leaves the
-- ALIAS columns out; d.* is expanded when the view is created: created again when k8s_expenses_by_day gains columns.
CREATE OR REPLACE VIEW k8s_expenses_by_day_current AS
SELECT d.*, d.total_cost, d.cpu_request_core_hours_with_usage, d.ram_request_byte_hours_with_usage,
       d.cpu_cost_with_usage, d.ram_cost_with_usage, d.total_cost_reconciled, d.cpu_cost_with_usage_reconciled,
       d.ram_cost_with_usage_reconciled, current.sealed AS sealed
FROM k8s_expenses_by_day AS d
INNER JOIN k8s_day_current_builds AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.day = current.day AND d.build_id = current.build_id;
