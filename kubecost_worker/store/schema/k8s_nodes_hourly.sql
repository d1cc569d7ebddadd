-- Each run's nodes as assets for the hour (docs/model.md, "Nodes"): join a cloud bill by provider_id. Written by the
-- run with its rows, before its commit, and removed with them by cleanup; total_cost is computed on read, the
-- model's additions in its order (NodeRow.total_cost).
CREATE TABLE IF NOT EXISTS k8s_nodes_hourly
(
    cloud_account_id LowCardinality(String),
    cluster_id       LowCardinality(String),
    hour             DateTime('UTC'),
    node             LowCardinality(String),
    provider_id      String CODEC(ZSTD(3)),
    instance_type    LowCardinality(String),
    region           LowCardinality(String),
    zone             LowCardinality(String),
    arch             LowCardinality(String),
    spot             Bool,
    running_minutes  Float64 CODEC(ZSTD(3)),
    cpu_cores        Float64 CODEC(ZSTD(3)),
    ram_bytes        Float64 CODEC(ZSTD(3)),
    gpu_count        Float64 CODEC(ZSTD(3)),
    cpu_price        Float64 CODEC(ZSTD(3)),
    ram_price        Float64 CODEC(ZSTD(3)),
    gpu_price        Float64 CODEC(ZSTD(3)),
    price_source     LowCardinality(String),
    cpu_cost         Float64 CODEC(ZSTD(3)),
    ram_cost         Float64 CODEC(ZSTD(3)),
    gpu_cost         Float64 CODEC(ZSTD(3)),
    allocated_cost   Float64 CODEC(ZSTD(3)),
    idle_cost        Float64 CODEC(ZSTD(3)),
    total_cost       Float64 ALIAS cpu_cost + ram_cost + gpu_cost,
    run_id           UUID,
    inserted_at      DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, run_id, cluster_id, node);
