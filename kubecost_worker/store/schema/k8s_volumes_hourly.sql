-- Each run's persistent volumes as assets for the hour (docs/model.md, "Persistent volumes"): join a cloud bill by
-- provider_id (the disk's id). Written by the run with its rows, before its commit, and removed with them by cleanup,
-- as k8s_nodes_hourly. claims names the rows that hold the volume's cost (the pods' own rows and its __unmounted__
-- row, by their key within the cluster-hour) with the part each holds: what reconciling the volume with the bill
-- scales, since a pod's row adds up the costs of all the volumes it mounts.
CREATE TABLE IF NOT EXISTS k8s_volumes_hourly
(
    cloud_account_id LowCardinality(String),
    cluster_id       LowCardinality(String),
    hour             DateTime('UTC'),
    volume           String CODEC(ZSTD(3)),
    provider_id      String CODEC(ZSTD(3)),
    running_minutes  Float64 CODEC(ZSTD(3)),
    capacity_bytes   Float64 CODEC(ZSTD(3)),
    price            Float64 CODEC(ZSTD(3)),
    cost             Float64 CODEC(ZSTD(3)),
    claims           Array(Tuple(namespace String, workload_name String, pod String, pod_uid String, pv_cost Float64))
                     CODEC(ZSTD(3)),
    run_id           UUID,
    inserted_at      DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (cloud_account_id, hour, run_id, cluster_id, volume);
