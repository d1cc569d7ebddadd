-- The daily node rows of each tenant-day's current build (as k8s_expenses_by_day_current).
CREATE OR REPLACE VIEW k8s_nodes_by_day_current AS
SELECT d.*, d.total_cost, current.sealed AS sealed
FROM k8s_nodes_by_day AS d
INNER JOIN k8s_day_current_builds AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.day = current.day AND d.build_id = current.build_id;
