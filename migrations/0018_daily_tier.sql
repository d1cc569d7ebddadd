-- The daily tier (docs/storage.md, "The daily tier"): the day builds' ledger (k8s_day_builds) and the current-build
-- rule (k8s_day_current_builds), the daily rows of the allocation record and of the nodes with their current views,
-- and OptScale's k8s_expenses_daily reading a sealed day from its daily rows. The tables start empty:
-- `kubecost-worker rollup-days` builds the days of the hours already stored, and the worker each day it writes.
-- The declarations (kubecost_worker/store/schema/) say why each choice.

CREATE TABLE IF NOT EXISTS k8s_day_builds
(
    cloud_account_id LowCardinality(String),
    day              Date,
    build_id         UUID,
    status           Enum8('building' = 1, 'built' = 2, 'sealed' = 3, 'collected' = 4),
    hours            UInt8,
    runs_fingerprint UInt64,
    rows_written     UInt64,
    total_cost       Float64,
    recorded_at      DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (cloud_account_id, day, recorded_at);

CREATE TABLE IF NOT EXISTS k8s_expenses_by_day
(
    cloud_account_id                  LowCardinality(String),
    cluster_id                        LowCardinality(String),
    day                               Date,
    build_id                          UUID,
    namespace                         LowCardinality(String),
    workload_kind                     LowCardinality(String),
    workload_name                     String CODEC(ZSTD(3)),
    pod                               String CODEC(ZSTD(3)),
    node                              LowCardinality(String),
    container                         LowCardinality(String),
    pod_uid                           String CODEC(ZSTD(3)),
    service                           LowCardinality(String),
    labels                            Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    price_source                      LowCardinality(String),
    first_hour                        DateTime('UTC') CODEC(Delta, ZSTD(3)),
    last_hour                         DateTime('UTC') CODEC(Delta, ZSTD(3)),
    hours                             UInt8 CODEC(ZSTD(3)),
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
    total_cost_exact                  Decimal(38, 18) CODEC(ZSTD(3)),
    total_cost                        Float64 ALIAS toFloat64(total_cost_exact),
    cpu_request_core_hours            Float64 CODEC(ZSTD(3)),
    ram_request_byte_hours            Float64 CODEC(ZSTD(3)),
    cpu_usage_core_hours              Nullable(Float64) CODEC(ZSTD(3)),
    ram_usage_byte_hours              Nullable(Float64) CODEC(ZSTD(3)),
    cpu_usage_max_cores               Nullable(Float64) CODEC(ZSTD(3)),
    ram_usage_max_bytes               Nullable(Float64) CODEC(ZSTD(3)),
    cpu_request_core_hours_without_usage Float64 CODEC(ZSTD(3)),
    ram_request_byte_hours_without_usage Float64 CODEC(ZSTD(3)),
    cpu_cost_without_usage               Float64 CODEC(ZSTD(3)),
    ram_cost_without_usage               Float64 CODEC(ZSTD(3)),
    cpu_request_core_hours_with_usage    Float64 ALIAS cpu_request_core_hours - cpu_request_core_hours_without_usage,
    ram_request_byte_hours_with_usage    Float64 ALIAS ram_request_byte_hours - ram_request_byte_hours_without_usage,
    cpu_cost_with_usage                  Float64 ALIAS cpu_cost - cpu_cost_without_usage,
    ram_cost_with_usage                  Float64 ALIAS ram_cost - ram_cost_without_usage,
    network_zone_cost                 Float64 CODEC(ZSTD(3)),
    network_region_cost               Float64 CODEC(ZSTD(3)),
    network_internet_cost             Float64 CODEC(ZSTD(3)),
    network_zone_bytes                Float64 CODEC(ZSTD(3)),
    network_region_bytes              Float64 CODEC(ZSTD(3)),
    network_internet_bytes            Float64 CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (cloud_account_id, day, build_id, cluster_id, namespace, workload_kind, workload_name, pod, container);

CREATE TABLE IF NOT EXISTS k8s_nodes_by_day
(
    cloud_account_id LowCardinality(String),
    cluster_id       LowCardinality(String),
    day              Date,
    build_id         UUID,
    node             LowCardinality(String),
    provider_id      String CODEC(ZSTD(3)),
    instance_type    LowCardinality(String),
    region           LowCardinality(String),
    zone             LowCardinality(String),
    arch             LowCardinality(String),
    spot             Bool,
    price_source     LowCardinality(String),
    first_hour       DateTime('UTC') CODEC(Delta, ZSTD(3)),
    last_hour        DateTime('UTC') CODEC(Delta, ZSTD(3)),
    hours            UInt8 CODEC(ZSTD(3)),
    running_minutes  Float64 CODEC(ZSTD(3)),
    cpu_core_hours   Float64 CODEC(ZSTD(3)),
    ram_byte_hours   Float64 CODEC(ZSTD(3)),
    gpu_hours        Float64 CODEC(ZSTD(3)),
    cpu_cost         Float64 CODEC(ZSTD(3)),
    ram_cost         Float64 CODEC(ZSTD(3)),
    gpu_cost         Float64 CODEC(ZSTD(3)),
    allocated_cost   Float64 CODEC(ZSTD(3)),
    idle_cost        Float64 CODEC(ZSTD(3)),
    total_cost       Float64 ALIAS cpu_cost + ram_cost + gpu_cost
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (cloud_account_id, day, build_id, cluster_id, node);

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

CREATE OR REPLACE VIEW k8s_day_current_builds AS
SELECT cloud_account_id, day,
       argMax(build_id, (status = 'sealed', recorded_at)) AS build_id,
       argMax(hours, (status = 'sealed', recorded_at)) AS hours,
       argMax(runs_fingerprint, (status = 'sealed', recorded_at)) AS runs_fingerprint,
       argMax(rows_written, (status = 'sealed', recorded_at)) AS rows_written,
       argMax(total_cost, (status = 'sealed', recorded_at)) AS total_cost,
       max(status = 'sealed') AS sealed
FROM k8s_day_builds
WHERE status IN ('built', 'sealed')
GROUP BY cloud_account_id, day;

CREATE OR REPLACE VIEW k8s_expenses_by_day_current AS
SELECT d.*, d.total_cost, d.cpu_request_core_hours_with_usage, d.ram_request_byte_hours_with_usage,
       d.cpu_cost_with_usage, d.ram_cost_with_usage, current.sealed AS sealed
FROM k8s_expenses_by_day AS d
INNER JOIN k8s_day_current_builds AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.day = current.day AND d.build_id = current.build_id;

CREATE OR REPLACE VIEW k8s_nodes_by_day_current AS
SELECT d.*, d.total_cost, current.sealed AS sealed
FROM k8s_nodes_by_day AS d
INNER JOIN k8s_day_current_builds AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.day = current.day AND d.build_id = current.build_id;

CREATE OR REPLACE VIEW k8s_expenses_daily AS
SELECT cloud_account_id, cluster_id, day, cloud_resource_id,
       any(resource_kind) AS resource_kind,
       toFloat64(sum(cost_exact)) AS cost,
       argMax(name, last_hour) AS name,
       argMax(namespace, last_hour) AS k8s_namespace,
       argMax(node, last_hour) AS k8s_node,
       argMax(service, last_hour) AS k8s_service,
       argMax(workload_kind, last_hour) AS workload_kind,
       argMax(workload_name, last_hour) AS workload_name,
       argMax(labels, last_hour) AS labels,
       min(first_hour) AS first_seen,
       max(last_hour) AS last_seen
FROM (SELECT cloud_account_id, cluster_id, day, namespace, node, service, workload_kind, workload_name, labels,
             cost_exact, first_hour, last_hour,
             multiIf(namespace = '__idle__', 'idle',
                     namespace = '__cluster_management__', 'management',
                     namespace = '__unmounted__', 'unmounted_volume',
                     pod != '', 'pod',
                     workload_kind = 'service', 'load_balancer',
                     'other') AS resource_kind,
             multiIf(resource_kind = 'idle', concat('k8s:', cluster_id, ':idle:', node),
                     resource_kind = 'management', concat('k8s:', cluster_id, ':management'),
                     resource_kind = 'unmounted_volume', concat('k8s:', cluster_id, ':unmounted:', workload_name),
                     resource_kind = 'pod' AND pod_uid != '', toString(pod_uid),
                     resource_kind = 'pod', concat('k8s:', cluster_id, ':pod:', namespace, '/', pod),
                     resource_kind = 'load_balancer', concat('k8s:', cluster_id, ':lb:', namespace, '/', workload_name),
                     concat('k8s:', cluster_id, ':', namespace, '/', workload_kind, '/', workload_name))
                 AS cloud_resource_id,
             multiIf(resource_kind = 'idle', node, resource_kind = 'management', cluster_id,
                     resource_kind = 'pod', pod, workload_name) AS name
      FROM (SELECT cloud_account_id, cluster_id, toDate(hour) AS day, namespace, node, service, workload_kind,
                   workload_name, labels, pod, pod_uid, toDecimal128(total_cost, 18) AS cost_exact,
                   hour AS first_hour, hour AS last_hour
            FROM k8s_expenses_current
            WHERE (cloud_account_id, toDate(hour)) NOT IN
                  (SELECT cloud_account_id, day FROM k8s_day_current_builds WHERE sealed)
            UNION ALL
            SELECT cloud_account_id, cluster_id, day, namespace, node, service, workload_kind, workload_name, labels,
                   pod, pod_uid, total_cost_exact, first_hour, last_hour
            FROM k8s_expenses_by_day_current
            WHERE sealed))
GROUP BY cloud_account_id, cluster_id, day, cloud_resource_id;
