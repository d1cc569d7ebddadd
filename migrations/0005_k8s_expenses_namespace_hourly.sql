-- Per tenant, cluster, hour, namespace and run: the sums of k8s_expenses, filled by a materialized view as the
-- rows are inserted (each insert block adds its sums; readers always sum(), so a run split over several
-- blocks still adds up). The cluster-level and namespace-level reads need ~10 rows an hour instead of one per
-- pod. Obsolete runs are deleted here together with their rows in k8s_expenses.
CREATE TABLE IF NOT EXISTS k8s_expenses_namespace_hourly
(
    cloud_account_id LowCardinality(String),
    cluster_id       LowCardinality(String),
    hour             DateTime('UTC'),
    namespace        LowCardinality(String),
    run_id           UUID,
    cpu_core_hours   Float64,
    ram_byte_hours   Float64,
    gpu_hours        Float64,
    pv_byte_hours    Float64,
    cpu_cost         Float64,
    ram_cost         Float64,
    gpu_cost         Float64,
    pv_cost          Float64,
    network_cost     Float64,
    lb_cost          Float64,
    management_cost  Float64,
    total_cost       Float64,
    rows             UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, run_id, cluster_id, namespace);

CREATE MATERIALIZED VIEW IF NOT EXISTS k8s_expenses_namespace_hourly_mv TO k8s_expenses_namespace_hourly AS
SELECT cloud_account_id, cluster_id, hour, namespace, run_id,
       sum(cpu_core_hours) AS cpu_core_hours, sum(ram_byte_hours) AS ram_byte_hours, sum(gpu_hours) AS gpu_hours,
       sum(pv_byte_hours) AS pv_byte_hours, sum(cpu_cost) AS cpu_cost, sum(ram_cost) AS ram_cost,
       sum(gpu_cost) AS gpu_cost, sum(pv_cost) AS pv_cost, sum(network_cost) AS network_cost,
       sum(lb_cost) AS lb_cost, sum(management_cost) AS management_cost, sum(total_cost) AS total_cost,
       count() AS rows
FROM k8s_expenses
GROUP BY cloud_account_id, cluster_id, hour, namespace, run_id;

CREATE VIEW IF NOT EXISTS k8s_expenses_namespace_current AS
SELECT *
FROM k8s_expenses_namespace_hourly
WHERE (cloud_account_id, hour, run_id) IN (SELECT cloud_account_id, hour, run_id FROM k8s_expense_current_runs);
