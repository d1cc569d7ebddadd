-- One row per (tenant, cluster, hour, namespace, workload, pod, node) and run. Rows of a run become
-- visible only when the run is recorded as succeeded in k8s_expense_runs (see k8s_expenses_current).
-- ORDER BY starts with the tenant and the hour: every query users run filters on both.
CREATE TABLE IF NOT EXISTS k8s_expenses
(
    cloud_account_id LowCardinality(String),
    cluster_id       LowCardinality(String),
    hour             DateTime('UTC'),
    namespace        LowCardinality(String),
    workload_kind    LowCardinality(String),
    workload_name    String,
    pod              String,
    node             LowCardinality(String),
    running_minutes  Float64,
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
    labels           Map(LowCardinality(String), String),
    run_id           UUID,
    inserted_at      DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, run_id, cluster_id, namespace, workload_kind, workload_name, pod, node);
