-- The daily tier of the allocation record: per tenant, cluster, UTC day, build and the hourly rows' identity
-- (namespace, workload, pod, node, container, pod uid, service, labels, price source), the sums of the day's current
-- hourly rows (k8s_expenses_current), written by a day build (kubecost_worker/store/days.py, k8s_day_builds). A row
-- whose labels or price source changed within the day is two rows, as its hours were. Readers see the rows of each
-- tenant-day's current build (k8s_day_current_builds); a day whose hourly rows expired is read from here.
--
-- Sums of every cost, quantity, request and usage; the usage maxima as the day's maximum (NULL where no hour had
-- usage, as the usage sums). Efficiency needs the requests and costs of the hours whose usage was known: they are
-- stored as their complement, the *_without_usage sums (0 on almost every row, so nearly free), and read as the
-- *_with_usage ALIAS columns. first_hour and last_hour bound the identity's hours in the day, hours counts them.
-- total_cost_exact is the day's sum of the hourly total_cost as Decimal(38, 18), as k8s_expenses_daily sums them
-- for OptScale: the same exact sum whether a day is read from its hours or from here, so the same double;
-- total_cost is that sum as a double.
--
-- The *_reconciled columns are the same sums of the costs reconciled with the cloud bill (k8s_expenses_reconciled_current)
-- once the day is reconciled (docs/reconciliation.md), so that a day keeps its reconciled costs after its hours
-- expire; the other costs are not reconciled and have no such column. They default to the list costs: a build of a
-- day never reconciled, or made before these columns were, reads its list costs as its reconciled ones.
--
-- The key starts with the tenant and the day (every read names both), then the build, which the join on the
-- current builds prunes by. Delta before ZSTD on the hours of the day; ZSTD(3) on names, labels and numbers.
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
    network_internet_bytes            Float64 CODEC(ZSTD(3)),
    cpu_cost_reconciled               Float64 DEFAULT cpu_cost CODEC(ZSTD(3)),
    ram_cost_reconciled               Float64 DEFAULT ram_cost CODEC(ZSTD(3)),
    gpu_cost_reconciled               Float64 DEFAULT gpu_cost CODEC(ZSTD(3)),
    pv_cost_reconciled                Float64 DEFAULT pv_cost CODEC(ZSTD(3)),
    total_cost_reconciled_exact       Decimal(38, 18) DEFAULT total_cost_exact CODEC(ZSTD(3)),
    cpu_cost_without_usage_reconciled Float64 DEFAULT cpu_cost_without_usage CODEC(ZSTD(3)),
    ram_cost_without_usage_reconciled Float64 DEFAULT ram_cost_without_usage CODEC(ZSTD(3)),
    total_cost_reconciled             Float64 ALIAS toFloat64(total_cost_reconciled_exact),
    cpu_cost_with_usage_reconciled    Float64 ALIAS cpu_cost_reconciled - cpu_cost_without_usage_reconciled,
    ram_cost_with_usage_reconciled    Float64 ALIAS ram_cost_reconciled - ram_cost_without_usage_reconciled
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (cloud_account_id, day, build_id, cluster_id, namespace, workload_kind, workload_name, pod, container);
