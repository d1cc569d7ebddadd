-- sum() of a Nullable column is NULL where every row of the block is NULL: a rollup row without usage reads NULL,
-- not 0. The *_with_usage sums name the table's columns (e.x), not the SELECT's aliases of the same names.
CREATE MATERIALIZED VIEW IF NOT EXISTS k8s_expenses_namespace_hourly_mv TO k8s_expenses_namespace_hourly AS
SELECT cloud_account_id, cluster_id, hour, namespace, run_id,
       sum(cpu_core_hours) AS cpu_core_hours, sum(ram_byte_hours) AS ram_byte_hours, sum(gpu_hours) AS gpu_hours,
       sum(pv_byte_hours) AS pv_byte_hours, sum(cpu_cost) AS cpu_cost, sum(ram_cost) AS ram_cost,
       sum(gpu_cost) AS gpu_cost, sum(pv_cost) AS pv_cost, sum(network_cost) AS network_cost,
       sum(network_zone_cost) AS network_zone_cost, sum(network_region_cost) AS network_region_cost,
       sum(network_internet_cost) AS network_internet_cost,
       sum(lb_cost) AS lb_cost, sum(management_cost) AS management_cost, sum(total_cost) AS total_cost,
       count() AS rows,
       sum(cpu_request_core_hours) AS cpu_request_core_hours, sum(ram_request_byte_hours) AS ram_request_byte_hours,
       sum(cpu_usage_core_hours) AS cpu_usage_core_hours, sum(ram_usage_byte_hours) AS ram_usage_byte_hours,
       sumIf(e.cpu_request_core_hours, e.cpu_usage_core_hours IS NOT NULL) AS cpu_request_core_hours_with_usage,
       sumIf(e.ram_request_byte_hours, e.ram_usage_byte_hours IS NOT NULL) AS ram_request_byte_hours_with_usage,
       sumIf(e.cpu_cost, e.cpu_usage_core_hours IS NOT NULL) AS cpu_cost_with_usage,
       sumIf(e.ram_cost, e.ram_usage_byte_hours IS NOT NULL) AS ram_cost_with_usage
FROM k8s_expenses AS e
GROUP BY cloud_account_id, cluster_id, hour, namespace, run_id;
