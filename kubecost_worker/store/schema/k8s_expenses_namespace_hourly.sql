-- Per tenant, cluster, hour, namespace and run: the sums of k8s_expenses, filled by
-- k8s_expenses_namespace_hourly_mv as rows are inserted (each insert block adds its sums; readers always sum(), so a
-- run split over several blocks still adds up). The cluster-level and namespace-level reads need ~10 rows an hour
-- instead of one per pod. The *_with_usage sums cover the rows whose usage is known: efficiency is computed on them.
CREATE TABLE IF NOT EXISTS k8s_expenses_namespace_hourly
(
    cloud_account_id                  LowCardinality(String),
    cluster_id                        LowCardinality(String),
    hour                              DateTime('UTC'),
    namespace                         LowCardinality(String),
    run_id                            UUID,
    cpu_core_hours                    Float64,
    ram_byte_hours                    Float64,
    gpu_hours                         Float64,
    pv_byte_hours                     Float64,
    cpu_cost                          Float64,
    ram_cost                          Float64,
    gpu_cost                          Float64,
    pv_cost                           Float64,
    network_cost                      Float64,
    network_zone_cost                 Float64,
    network_region_cost               Float64,
    network_internet_cost             Float64,
    lb_cost                           Float64,
    management_cost                   Float64,
    total_cost                        Float64,
    cpu_request_core_hours            Float64,
    ram_request_byte_hours            Float64,
    cpu_usage_core_hours              Nullable(Float64),
    ram_usage_byte_hours              Nullable(Float64),
    cpu_request_core_hours_with_usage Float64,
    ram_request_byte_hours_with_usage Float64,
    cpu_cost_with_usage               Float64,
    ram_cost_with_usage               Float64,
    rows                              UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, run_id, cluster_id, namespace);
