-- One row per container (one for the pod's own costs, one for each row that is no pod's) and run. Rows of a run
-- become visible only when the run is recorded as succeeded in k8s_expense_runs (see k8s_expenses_current).
-- ORDER BY starts with the tenant and the hour: every query users run filters on both; run_id next, so that the
-- views' join on (cloud_account_id, hour, run_id) prunes by the key too.
-- ZSTD(3) on names, labels and numbers: pod and workload names, sorted within the hour, compress from 8 to 3 bytes.
-- total_cost is computed on read: the model's additions in the model's order (ExpenseRow.total_cost), so the same
-- doubles, without storing 8 incompressible bytes a row. Usage is NULL where no usage series was found, never 0.
-- pod_uid is a LowCardinality(String): a part stores each uid once (3.8 bytes a row, 7.1 as a String, 5.8 as a UUID).
CREATE TABLE IF NOT EXISTS k8s_expenses
(
    cloud_account_id       LowCardinality(String),
    cluster_id             LowCardinality(String),
    hour                   DateTime('UTC'),
    namespace              LowCardinality(String),
    workload_kind          LowCardinality(String),
    workload_name          String CODEC(ZSTD(3)),
    pod                    String CODEC(ZSTD(3)),
    node                   LowCardinality(String),
    running_minutes        Float64 CODEC(ZSTD(3)),
    cpu_core_hours         Float64 CODEC(ZSTD(3)),
    ram_byte_hours         Float64 CODEC(ZSTD(3)),
    gpu_hours              Float64 CODEC(ZSTD(3)),
    pv_byte_hours          Float64 CODEC(ZSTD(3)),
    cpu_cost               Float64 CODEC(ZSTD(3)),
    ram_cost               Float64 CODEC(ZSTD(3)),
    gpu_cost               Float64 CODEC(ZSTD(3)),
    pv_cost                Float64 CODEC(ZSTD(3)),
    network_cost           Float64 CODEC(ZSTD(3)),
    lb_cost                Float64 CODEC(ZSTD(3)),
    management_cost        Float64 CODEC(ZSTD(3)),
    total_cost             Float64
                           ALIAS cpu_cost + ram_cost + gpu_cost + pv_cost + network_cost + lb_cost + management_cost,
    labels                 Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    container              LowCardinality(String),
    pod_uid                LowCardinality(String) CODEC(ZSTD(3)),
    service                LowCardinality(String),
    cpu_request_core_hours Float64 CODEC(ZSTD(3)),
    ram_request_byte_hours Float64 CODEC(ZSTD(3)),
    cpu_usage_core_hours   Nullable(Float64) CODEC(ZSTD(3)),
    ram_usage_byte_hours   Nullable(Float64) CODEC(ZSTD(3)),
    cpu_usage_max_cores    Nullable(Float64) CODEC(ZSTD(3)),
    ram_usage_max_bytes    Nullable(Float64) CODEC(ZSTD(3)),
    network_zone_cost      Float64 CODEC(ZSTD(3)),
    network_region_cost    Float64 CODEC(ZSTD(3)),
    network_internet_cost  Float64 CODEC(ZSTD(3)),
    network_zone_bytes     Float64 CODEC(ZSTD(3)),
    network_region_bytes   Float64 CODEC(ZSTD(3)),
    network_internet_bytes Float64 CODEC(ZSTD(3)),
    price_source           LowCardinality(String),
    run_id                 UUID,
    inserted_at            DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, run_id, cluster_id, namespace, workload_kind, workload_name, pod, node);
