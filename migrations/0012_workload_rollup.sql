-- Per tenant, cluster, hour, run and container of a controller (namespace, workload, container, service, labels):
-- the sums of k8s_expenses, filled by a materialized view as rows are inserted, like the namespace rollup (0005).
-- The allocation API's controller, container, service and label breakdowns, and rightsizing, read it instead of
-- k8s_expenses: the replicas of a controller are one row (a simulated 2,000-pod hour: 509 rows instead of 2,762),
-- so 30 days of a 2,000-pod tenant answer in tens of milliseconds (docs/benchmarks.md). Pod and node are not kept:
-- breakdowns by them read k8s_expenses.
--
-- The usage maxima are kept whole, one value per container-hour (NULLs left out by groupArray): rightsizing takes
-- an exact quantile of them over any window, which no sum can give; their maximum is kept beside them, which
-- `algorithm=max` reads without the arrays. Each insert block adds its rows; readers always sum(), max() and
-- concatenate, so a run split over several blocks still adds up.
--
-- The key has the namespace before the hour: a namespace's rows are read alone where a request filters by it, and
-- a window still narrows each namespace's rows by hour (a tenant has a few dozen namespaces at most).
CREATE TABLE IF NOT EXISTS k8s_expenses_workload_hourly
(
    cloud_account_id                  LowCardinality(String),
    cluster_id                        LowCardinality(String),
    hour                              DateTime('UTC'),
    namespace                         LowCardinality(String),
    workload_kind                     LowCardinality(String),
    workload_name                     String CODEC(ZSTD(3)),
    container                         LowCardinality(String),
    service                           LowCardinality(String),
    labels                            Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    run_id                            UUID,
    running_minutes                   Float64 CODEC(ZSTD(3)),
    cpu_core_hours                    Float64 CODEC(ZSTD(3)),
    ram_byte_hours                    Float64 CODEC(ZSTD(3)),
    gpu_hours                         Float64 CODEC(ZSTD(3)),
    pv_byte_hours                     Float64 CODEC(ZSTD(3)),
    cpu_cost                          Float64 CODEC(ZSTD(3)),
    ram_cost                          Float64 CODEC(ZSTD(3)),
    gpu_cost                          Float64 CODEC(ZSTD(3)),
    pv_cost                           Float64 CODEC(ZSTD(3)),
    network_cost                      Float64 CODEC(ZSTD(3)),
    lb_cost                           Float64 CODEC(ZSTD(3)),
    management_cost                   Float64 CODEC(ZSTD(3)),
    total_cost                        Float64 CODEC(ZSTD(3)),
    cpu_request_core_hours            Float64 CODEC(ZSTD(3)),
    ram_request_byte_hours            Float64 CODEC(ZSTD(3)),
    cpu_usage_core_hours              Nullable(Float64) CODEC(ZSTD(3)),
    ram_usage_byte_hours              Nullable(Float64) CODEC(ZSTD(3)),
    cpu_request_core_hours_with_usage Float64 CODEC(ZSTD(3)),
    ram_request_byte_hours_with_usage Float64 CODEC(ZSTD(3)),
    cpu_cost_with_usage               Float64 CODEC(ZSTD(3)),
    ram_cost_with_usage               Float64 CODEC(ZSTD(3)),
    cpu_usage_max_cores               Nullable(Float64) CODEC(ZSTD(3)),
    ram_usage_max_bytes               Nullable(Float64) CODEC(ZSTD(3)),
    cpu_usage_maxima                  Array(Float64) CODEC(ZSTD(3)),
    ram_usage_maxima                  Array(Float64) CODEC(ZSTD(3)),
    rows                              UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, namespace, hour, run_id, cluster_id, workload_kind, workload_name, container);

-- The *_with_usage sums and the maxima name the table's columns (e.x), not the SELECT's aliases of the same names.
CREATE MATERIALIZED VIEW IF NOT EXISTS k8s_expenses_workload_hourly_mv TO k8s_expenses_workload_hourly AS
SELECT cloud_account_id, cluster_id, hour, namespace, workload_kind, workload_name, container, service, labels,
       run_id,
       sum(running_minutes) AS running_minutes, sum(cpu_core_hours) AS cpu_core_hours,
       sum(ram_byte_hours) AS ram_byte_hours, sum(gpu_hours) AS gpu_hours, sum(pv_byte_hours) AS pv_byte_hours,
       sum(cpu_cost) AS cpu_cost, sum(ram_cost) AS ram_cost, sum(gpu_cost) AS gpu_cost, sum(pv_cost) AS pv_cost,
       sum(network_cost) AS network_cost, sum(lb_cost) AS lb_cost, sum(management_cost) AS management_cost,
       sum(total_cost) AS total_cost,
       sum(cpu_request_core_hours) AS cpu_request_core_hours, sum(ram_request_byte_hours) AS ram_request_byte_hours,
       sum(cpu_usage_core_hours) AS cpu_usage_core_hours, sum(ram_usage_byte_hours) AS ram_usage_byte_hours,
       sumIf(e.cpu_request_core_hours, e.cpu_usage_core_hours IS NOT NULL) AS cpu_request_core_hours_with_usage,
       sumIf(e.ram_request_byte_hours, e.ram_usage_byte_hours IS NOT NULL) AS ram_request_byte_hours_with_usage,
       sumIf(e.cpu_cost, e.cpu_usage_core_hours IS NOT NULL) AS cpu_cost_with_usage,
       sumIf(e.ram_cost, e.ram_usage_byte_hours IS NOT NULL) AS ram_cost_with_usage,
       max(e.cpu_usage_max_cores) AS cpu_usage_max_cores, max(e.ram_usage_max_bytes) AS ram_usage_max_bytes,
       groupArray(e.cpu_usage_max_cores) AS cpu_usage_maxima, groupArray(e.ram_usage_max_bytes) AS ram_usage_maxima,
       count() AS rows
FROM k8s_expenses AS e
GROUP BY cloud_account_id, cluster_id, hour, namespace, workload_kind, workload_name, container, service, labels,
         run_id;

-- Hours written before this migration: their sums, once (rows inserted before it started, for runs without rollup
-- rows yet: running it again with `migrate --resume` adds nothing twice).
INSERT INTO k8s_expenses_workload_hourly
    (cloud_account_id, cluster_id, hour, namespace, workload_kind, workload_name, container, service, labels, run_id,
     running_minutes, cpu_core_hours, ram_byte_hours, gpu_hours, pv_byte_hours, cpu_cost, ram_cost, gpu_cost,
     pv_cost, network_cost, lb_cost, management_cost, total_cost, cpu_request_core_hours, ram_request_byte_hours,
     cpu_usage_core_hours, ram_usage_byte_hours, cpu_request_core_hours_with_usage,
     ram_request_byte_hours_with_usage, cpu_cost_with_usage, ram_cost_with_usage, cpu_usage_max_cores,
     ram_usage_max_bytes, cpu_usage_maxima, ram_usage_maxima, rows)
SELECT cloud_account_id, cluster_id, hour, namespace, workload_kind, workload_name, container, service, labels,
       run_id, sum(running_minutes), sum(cpu_core_hours), sum(ram_byte_hours), sum(gpu_hours), sum(pv_byte_hours),
       sum(cpu_cost), sum(ram_cost), sum(gpu_cost), sum(pv_cost), sum(network_cost), sum(lb_cost),
       sum(management_cost), sum(total_cost), sum(cpu_request_core_hours), sum(ram_request_byte_hours),
       sum(cpu_usage_core_hours), sum(ram_usage_byte_hours),
       sumIf(cpu_request_core_hours, cpu_usage_core_hours IS NOT NULL),
       sumIf(ram_request_byte_hours, ram_usage_byte_hours IS NOT NULL),
       sumIf(cpu_cost, cpu_usage_core_hours IS NOT NULL), sumIf(ram_cost, ram_usage_byte_hours IS NOT NULL),
       max(cpu_usage_max_cores), max(ram_usage_max_bytes), groupArray(cpu_usage_max_cores),
       groupArray(ram_usage_max_bytes), count()
FROM k8s_expenses
WHERE inserted_at < (SELECT min(at) FROM schema_migrations WHERE version = 12)
  AND (cloud_account_id, hour, run_id) NOT IN
      (SELECT cloud_account_id, hour, run_id FROM k8s_expenses_workload_hourly)
GROUP BY cloud_account_id, cluster_id, hour, namespace, workload_kind, workload_name, container, service, labels,
         run_id;
