-- The allocation record (docs/model.md): a row per container, with its requests and usage, its service, the pod's
-- uid, the network cost by egress class and what priced it; the nodes of each hour as assets; the unpriced nodes of
-- each run in the ledger. Idempotent: ADD COLUMN IF NOT EXISTS, CREATE ... IF NOT EXISTS, CREATE OR REPLACE VIEW,
-- MODIFY QUERY (each states a definition; applying it twice is applying it once).
--
-- Hours written before this migration read: container = '' (one row per pod), pod_uid = service = price_source = '',
-- requests 0, usage NULL (unknown, never 0: 0 would read as 0% efficiency), and their network cost in network_cost
-- only (the class columns read 0).
--
-- Codecs, measured by bench/storage.py on a 2,000-pod day with every column populated: ZSTD(3) as in 0006 on the
-- numbers. The usage figures are measurements at full precision, the bulk of the new bytes (about 19 of them a
-- row); ZSTD alone stores them smaller than Gorilla or FPC before it (these are not series of neighbours: one
-- container after another). pod_uid is a LowCardinality(String), not a String (7.1 bytes a row) or a UUID (5.8):
-- a part stores each uid once in its dictionary and a small index a row (3.8); a String, since it is '' on the rows
-- that are no pod's and on pods known only from their allocations.
ALTER TABLE k8s_expenses
    ADD COLUMN IF NOT EXISTS container LowCardinality(String) AFTER labels,
    ADD COLUMN IF NOT EXISTS pod_uid LowCardinality(String) CODEC(ZSTD(3)) AFTER container,
    ADD COLUMN IF NOT EXISTS service LowCardinality(String) AFTER pod_uid,
    ADD COLUMN IF NOT EXISTS cpu_request_core_hours Float64 CODEC(ZSTD(3)) AFTER service,
    ADD COLUMN IF NOT EXISTS ram_request_byte_hours Float64 CODEC(ZSTD(3)) AFTER cpu_request_core_hours,
    ADD COLUMN IF NOT EXISTS cpu_usage_core_hours Nullable(Float64) CODEC(ZSTD(3)) AFTER ram_request_byte_hours,
    ADD COLUMN IF NOT EXISTS ram_usage_byte_hours Nullable(Float64) CODEC(ZSTD(3)) AFTER cpu_usage_core_hours,
    ADD COLUMN IF NOT EXISTS cpu_usage_max_cores Nullable(Float64) CODEC(ZSTD(3)) AFTER ram_usage_byte_hours,
    ADD COLUMN IF NOT EXISTS ram_usage_max_bytes Nullable(Float64) CODEC(ZSTD(3)) AFTER cpu_usage_max_cores,
    ADD COLUMN IF NOT EXISTS network_zone_cost Float64 CODEC(ZSTD(3)) AFTER ram_usage_max_bytes,
    ADD COLUMN IF NOT EXISTS network_region_cost Float64 CODEC(ZSTD(3)) AFTER network_zone_cost,
    ADD COLUMN IF NOT EXISTS network_internet_cost Float64 CODEC(ZSTD(3)) AFTER network_region_cost,
    ADD COLUMN IF NOT EXISTS network_zone_bytes Float64 CODEC(ZSTD(3)) AFTER network_internet_cost,
    ADD COLUMN IF NOT EXISTS network_region_bytes Float64 CODEC(ZSTD(3)) AFTER network_zone_bytes,
    ADD COLUMN IF NOT EXISTS network_internet_bytes Float64 CODEC(ZSTD(3)) AFTER network_region_bytes,
    ADD COLUMN IF NOT EXISTS price_source LowCardinality(String) AFTER network_internet_bytes;

-- The namespace rollup sums the network classes (the read API's cluster-cost breakdown) and the requests and usage
-- (efficiency per namespace and hour, below). Rows written before this migration read 0 and NULL, as their
-- k8s_expenses rows do, so every stored sum stays right without a backfill.
ALTER TABLE k8s_expenses_namespace_hourly
    ADD COLUMN IF NOT EXISTS network_zone_cost Float64 AFTER network_cost,
    ADD COLUMN IF NOT EXISTS network_region_cost Float64 AFTER network_zone_cost,
    ADD COLUMN IF NOT EXISTS network_internet_cost Float64 AFTER network_region_cost,
    ADD COLUMN IF NOT EXISTS cpu_request_core_hours Float64 AFTER total_cost,
    ADD COLUMN IF NOT EXISTS ram_request_byte_hours Float64 AFTER cpu_request_core_hours,
    ADD COLUMN IF NOT EXISTS cpu_usage_core_hours Nullable(Float64) AFTER ram_request_byte_hours,
    ADD COLUMN IF NOT EXISTS ram_usage_byte_hours Nullable(Float64) AFTER cpu_usage_core_hours,
    ADD COLUMN IF NOT EXISTS cpu_request_core_hours_with_usage Float64 AFTER ram_usage_byte_hours,
    ADD COLUMN IF NOT EXISTS ram_request_byte_hours_with_usage Float64 AFTER cpu_request_core_hours_with_usage,
    ADD COLUMN IF NOT EXISTS cpu_cost_with_usage Float64 AFTER ram_request_byte_hours_with_usage,
    ADD COLUMN IF NOT EXISTS ram_cost_with_usage Float64 AFTER cpu_cost_with_usage;

-- MODIFY QUERY changes the materialized view's SELECT in place (not experimental since ClickHouse 23.12): inserts
-- go on through it, none is summed twice or missed, as a drop and create would risk. sum() of a Nullable column is
-- NULL where every row of the block is NULL: a rollup row without usage reads NULL, not 0. The *_with_usage sums name
-- the table's columns (e.x), not the SELECT's aliases of the same names.
ALTER TABLE k8s_expenses_namespace_hourly_mv MODIFY QUERY
SELECT cloud_account_id, cluster_id, hour, namespace, run_id,
       sum(cpu_core_hours) AS cpu_core_hours, sum(ram_byte_hours) AS ram_byte_hours, sum(gpu_hours) AS gpu_hours,
       sum(pv_byte_hours) AS pv_byte_hours, sum(cpu_cost) AS cpu_cost, sum(ram_cost) AS ram_cost,
       sum(gpu_cost) AS gpu_cost, sum(pv_cost) AS pv_cost, sum(network_cost) AS network_cost,
       sum(network_zone_cost) AS network_zone_cost, sum(network_region_cost) AS network_region_cost,
       sum(network_internet_cost) AS network_internet_cost,
       sum(lb_cost) AS lb_cost, sum(management_cost) AS management_cost, sum(total_cost) AS total_cost,
       count() AS rows,
       sum(cpu_request_core_hours) AS cpu_request_core_hours, sum(ram_request_byte_hours) AS ram_request_byte_hours,
       sum(cpu_usage_core_hours) AS cpu_usage_core_hours, sum(ram_usage_byte_hours) AS ram_usage_byte_hours,
       sumIf(e.cpu_request_core_hours, e.cpu_usage_core_hours IS NOT NULL) AS cpu_request_core_hours_with_usage,
       sumIf(e.ram_request_byte_hours, e.ram_usage_byte_hours IS NOT NULL) AS ram_request_byte_hours_with_usage,
       sumIf(e.cpu_cost, e.cpu_usage_core_hours IS NOT NULL) AS cpu_cost_with_usage,
       sumIf(e.ram_cost, e.ram_usage_byte_hours IS NOT NULL) AS ram_cost_with_usage
FROM k8s_expenses AS e
GROUP BY cloud_account_id, cluster_id, hour, namespace, run_id;

-- Each run's nodes as assets for the hour (docs/model.md, "Nodes"): join a cloud bill by provider_id. Written by
-- the run with its rows, before its commit, and removed with them by cleanup; total_cost is computed on read, the
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

-- The ledger: the nodes a run priced by the configured defaults or not at all (no price series).
ALTER TABLE k8s_expense_runs
    ADD COLUMN IF NOT EXISTS unpriced_nodes Array(String);

-- A view's SELECT * (e.*) is expanded when the view is created: each view over a table that gained columns is
-- created again, with the same text as before (0010), to show them. The current-run rule stays inline (0010).
CREATE OR REPLACE VIEW k8s_expenses_current AS
SELECT e.*, e.total_cost
FROM k8s_expenses AS e
INNER JOIN (SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
            FROM k8s_expense_runs
            WHERE status = 'succeeded'
            GROUP BY cloud_account_id, hour) AS current
    ON e.cloud_account_id = current.cloud_account_id AND e.hour = current.hour AND e.run_id = current.run_id;

CREATE OR REPLACE VIEW k8s_expenses_namespace_current AS
SELECT n.*
FROM k8s_expenses_namespace_hourly AS n
INNER JOIN (SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
            FROM k8s_expense_runs
            WHERE status = 'succeeded'
            GROUP BY cloud_account_id, hour) AS current
    ON n.cloud_account_id = current.cloud_account_id AND n.hour = current.hour AND n.run_id = current.run_id;

CREATE OR REPLACE VIEW k8s_nodes_hourly_current AS
SELECT d.*, d.total_cost
FROM k8s_nodes_hourly AS d
INNER JOIN (SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
            FROM k8s_expense_runs
            WHERE status = 'succeeded'
            GROUP BY cloud_account_id, hour) AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.hour = current.hour AND d.run_id = current.run_id;

CREATE OR REPLACE VIEW k8s_expense_current_run_records AS
SELECT r.*
FROM k8s_expense_runs AS r
INNER JOIN k8s_expense_current_runs AS current
    ON r.cloud_account_id = current.cloud_account_id AND r.hour = current.hour AND r.run_id = current.run_id
WHERE r.status = 'succeeded';

-- Efficiency per tenant, cluster, hour and namespace (docs/model.md, "Efficiency"), from the namespace rollup of the
-- current runs: Kubecost's cost-weighted definition on the sums, with the sums beside it, so that a longer window
-- sums them and applies the same formula (docs/sql.md has it for any grouping; never average these ratios).
-- Over the rows whose usage is known (the *_with_usage sums): a container without cAdvisor series neither lowers nor
-- raises the efficiency. No request: 1 where the resource was used and cost something, else 0. No known usage: NULL;
-- the total weighs the known ones; 0 for a namespace with no CPU and RAM cost.
CREATE OR REPLACE VIEW k8s_expenses_efficiency_current AS
SELECT cloud_account_id, cluster_id, hour, namespace, cpu_cost, ram_cost, cpu_request_core_hours,
       ram_request_byte_hours, cpu_usage_core_hours, ram_usage_byte_hours, cpu_request_core_hours_with_usage,
       ram_request_byte_hours_with_usage, cpu_cost_with_usage, ram_cost_with_usage,
       multiIf(cpu_usage_core_hours IS NULL, NULL, cpu_request_core_hours_with_usage > 0,
               cpu_usage_core_hours / cpu_request_core_hours_with_usage,
               cpu_usage_core_hours > 0 AND cpu_cost_with_usage > 0, 1., 0.) AS cpu_efficiency,
       multiIf(ram_usage_byte_hours IS NULL, NULL, ram_request_byte_hours_with_usage > 0,
               ram_usage_byte_hours / ram_request_byte_hours_with_usage,
               ram_usage_byte_hours > 0 AND ram_cost_with_usage > 0, 1., 0.) AS ram_efficiency,
       if(cpu_efficiency IS NULL, 0., cpu_cost_with_usage) + if(ram_efficiency IS NULL, 0., ram_cost_with_usage)
           AS weighed_cost,
       multiIf(cpu_cost + ram_cost = 0, 0., cpu_efficiency IS NULL AND ram_efficiency IS NULL, NULL,
               weighed_cost = 0, 0.,
               (ifNull(cpu_efficiency * cpu_cost_with_usage, 0.) + ifNull(ram_efficiency * ram_cost_with_usage, 0.))
                   / weighed_cost) AS total_efficiency
FROM (
    SELECT n.cloud_account_id AS cloud_account_id, n.cluster_id AS cluster_id, n.hour AS hour,
           n.namespace AS namespace, sum(n.cpu_cost) AS cpu_cost, sum(n.ram_cost) AS ram_cost,
           sum(n.cpu_request_core_hours) AS cpu_request_core_hours,
           sum(n.ram_request_byte_hours) AS ram_request_byte_hours,
           sum(n.cpu_usage_core_hours) AS cpu_usage_core_hours, sum(n.ram_usage_byte_hours) AS ram_usage_byte_hours,
           sum(n.cpu_request_core_hours_with_usage) AS cpu_request_core_hours_with_usage,
           sum(n.ram_request_byte_hours_with_usage) AS ram_request_byte_hours_with_usage,
           sum(n.cpu_cost_with_usage) AS cpu_cost_with_usage, sum(n.ram_cost_with_usage) AS ram_cost_with_usage
    FROM k8s_expenses_namespace_hourly AS n
    INNER JOIN (SELECT cloud_account_id, hour, argMax(run_id, recorded_at) AS run_id
                FROM k8s_expense_runs
                WHERE status = 'succeeded'
                GROUP BY cloud_account_id, hour) AS current
        ON n.cloud_account_id = current.cloud_account_id AND n.hour = current.hour AND n.run_id = current.run_id
    GROUP BY n.cloud_account_id, n.cluster_id, n.hour, n.namespace
);
