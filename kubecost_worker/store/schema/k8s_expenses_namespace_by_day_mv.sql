-- The sums name the daily table's columns (d.x), not the SELECT's aliases of the same names; the *_with_usage
-- figures are the daily table's ALIAS columns.
CREATE MATERIALIZED VIEW IF NOT EXISTS k8s_expenses_namespace_by_day_mv TO k8s_expenses_namespace_by_day AS
SELECT cloud_account_id, cluster_id, day, build_id, namespace,
       min(d.first_hour) AS first_hour, max(d.last_hour) AS last_hour,
       sum(d.cpu_cost) AS cpu_cost, sum(d.ram_cost) AS ram_cost, sum(d.gpu_cost) AS gpu_cost,
       sum(d.pv_cost) AS pv_cost, sum(d.network_cost) AS network_cost, sum(d.lb_cost) AS lb_cost,
       sum(d.management_cost) AS management_cost, sum(d.total_cost) AS total_cost,
       sum(d.cpu_core_hours) AS cpu_core_hours, sum(d.ram_byte_hours) AS ram_byte_hours,
       sum(d.gpu_hours) AS gpu_hours, sum(d.cpu_request_core_hours) AS cpu_request_core_hours,
       sum(d.ram_request_byte_hours) AS ram_request_byte_hours,
       sum(d.cpu_usage_core_hours) AS cpu_usage_core_hours, sum(d.ram_usage_byte_hours) AS ram_usage_byte_hours,
       sum(d.cpu_request_core_hours_with_usage) AS cpu_request_core_hours_with_usage,
       sum(d.ram_request_byte_hours_with_usage) AS ram_request_byte_hours_with_usage,
       sum(d.cpu_cost_with_usage) AS cpu_cost_with_usage, sum(d.ram_cost_with_usage) AS ram_cost_with_usage
FROM k8s_expenses_by_day AS d
GROUP BY cloud_account_id, cluster_id, day, build_id, namespace;
