-- The daily tier of the node rows (k8s_nodes_hourly): per tenant, cluster, UTC day, build and node (with its
-- provider id, instance type, region, zone, architecture, spot flag and price source: a node that changed one of them
-- within the day is two rows), the sums of the day's current hourly rows, written by the same day build as
-- k8s_expenses_by_day. The capacity is kept as capacity-hours (each hour's averaged capacity times its running
-- hours), so the day's average price of a resource is its cost over them; costs are sums, total_cost computed on
-- read as in k8s_nodes_hourly.
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
