-- Per tenant, cluster, UTC day, build and namespace: the sums of k8s_expenses_by_day, filled by
-- k8s_expenses_namespace_by_day_mv as a build inserts its rows (each insert block adds its sums; readers always
-- sum()). The daily tier's namespace and cluster reads take a month from about 300 rows instead of 12,000 a day, as
-- the hourly ones take k8s_expenses_namespace_hourly. The figures are the allocation API's (read/sharing.py), with
-- the span of the namespace's hours in the day for its averages.
CREATE TABLE IF NOT EXISTS k8s_expenses_namespace_by_day
(
    cloud_account_id                  LowCardinality(String),
    cluster_id                        LowCardinality(String),
    day                               Date,
    build_id                          UUID,
    namespace                         LowCardinality(String),
    first_hour                        DateTime('UTC'),
    last_hour                         DateTime('UTC'),
    cpu_cost                          Float64,
    ram_cost                          Float64,
    gpu_cost                          Float64,
    pv_cost                           Float64,
    network_cost                      Float64,
    lb_cost                           Float64,
    management_cost                   Float64,
    total_cost                        Float64,
    cpu_core_hours                    Float64,
    ram_byte_hours                    Float64,
    gpu_hours                         Float64,
    cpu_request_core_hours            Float64,
    ram_request_byte_hours            Float64,
    cpu_usage_core_hours              Nullable(Float64),
    ram_usage_byte_hours              Nullable(Float64),
    cpu_request_core_hours_with_usage Float64,
    ram_request_byte_hours_with_usage Float64,
    cpu_cost_with_usage               Float64,
    ram_cost_with_usage               Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (cloud_account_id, day, build_id, cluster_id, namespace);
