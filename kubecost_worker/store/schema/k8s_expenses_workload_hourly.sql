-- Per tenant, cluster, hour, run and container of a controller (namespace, workload, container, service, labels):
-- the sums of k8s_expenses, filled by k8s_expenses_workload_hourly_mv as rows are inserted. The allocation API's
-- controller, container, service and label breakdowns, and rightsizing, read it instead of k8s_expenses: the
-- replicas of a controller are one row (a simulated 2,000-pod hour: 509 rows instead of 2,762). Pod and node are not
-- kept: breakdowns by them read k8s_expenses.
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
