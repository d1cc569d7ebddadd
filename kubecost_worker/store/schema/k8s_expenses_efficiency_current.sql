-- Efficiency per tenant, cluster, hour and namespace (docs/model.md, "Efficiency"), from the namespace rollup of the
-- current runs: Kubecost's cost-weighted definition on the sums, with the sums beside it, so that a longer window
-- sums them and applies the same formula (docs/sql.md has it for any grouping; never average these ratios).
-- Over the rows whose usage is known (the *_with_usage sums): a container without cAdvisor series neither lowers nor
-- raises the efficiency. No request: 1 where the resource was used and cost something, else 0. No known usage: NULL;
-- the total weighs the known ones; 0 for a namespace with no CPU and RAM cost.
CREATE OR REPLACE VIEW k8s_expenses_efficiency_current AS
SELECT cloud_account_id, cluster_id, hour, namespace, cpu_cost, ram_cost, cpu_request_core_hours,
       ram_request_byte_hours, cpu_usage_core_hours, ram_usage_byte_hours, cpu_request_core_hours_with_usage,
       ram_request_byte_hours_with_usage, cpu_cost_with_usage, ram_cost_with_usage,
       multiIf(cpu_usage_core_hours IS NULL, NULL, cpu_request_core_hours_with_usage > 0,
               cpu_usage_core_hours / cpu_request_core_hours_with_usage,
               cpu_usage_core_hours > 0 AND cpu_cost_with_usage > 0, 1., 0.) AS cpu_efficiency,
       multiIf(ram_usage_byte_hours IS NULL, NULL, ram_request_byte_hours_with_usage > 0,
               ram_usage_byte_hours / ram_request_byte_hours_with_usage,
               ram_usage_byte_hours > 0 AND ram_cost_with_usage > 0, 1., 0.) AS ram_efficiency,
       if(cpu_efficiency IS NULL, 0., cpu_cost_with_usage) + if(ram_efficiency IS NULL, 0., ram_cost_with_usage)
           AS weighed_cost,
       multiIf(cpu_cost + ram_cost = 0, 0., cpu_efficiency IS NULL AND ram_efficiency IS NULL, NULL,
               weighed_cost = 0, 0.,
               (ifNull(cpu_efficiency * cpu_cost_with_usage, 0.) + ifNull(ram_efficiency * ram_cost_with_usage, 0.))
                   / weighed_cost) AS total_efficiency
FROM (
    SELECT n.cloud_account_id AS cloud_account_id, n.cluster_id AS cluster_id, n.hour AS hour,
           n.namespace AS namespace, sum(n.cpu_cost) AS cpu_cost, sum(n.ram_cost) AS ram_cost,
           sum(n.cpu_request_core_hours) AS cpu_request_core_hours,
           sum(n.ram_request_byte_hours) AS ram_request_byte_hours,
           sum(n.cpu_usage_core_hours) AS cpu_usage_core_hours, sum(n.ram_usage_byte_hours) AS ram_usage_byte_hours,
           sum(n.cpu_request_core_hours_with_usage) AS cpu_request_core_hours_with_usage,
           sum(n.ram_request_byte_hours_with_usage) AS ram_request_byte_hours_with_usage,
           sum(n.cpu_cost_with_usage) AS cpu_cost_with_usage, sum(n.ram_cost_with_usage) AS ram_cost_with_usage
    FROM k8s_expenses_namespace_hourly AS n
    INNER JOIN k8s_expense_current_runs AS current
        ON n.cloud_account_id = current.cloud_account_id AND n.hour = current.hour AND n.run_id = current.run_id
    GROUP BY n.cloud_account_id, n.cluster_id, n.hour, n.namespace
);
