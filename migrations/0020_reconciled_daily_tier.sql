-- The daily tier keeps the costs reconciled with the cloud bill (docs/reconciliation.md): a day's reconciled costs
-- outlive its hours, so the allocation API's reconcile=true, export --reconciled and export-optscale --reconciled
-- read sealed days as they read their hours. The *_reconciled sums default to the list ones: builds made before, and
-- builds of days never reconciled, read their list costs. A build's fingerprint counts the reconciliation it summed:
-- a day reconciled anew is built again. The reconciliation rule gets a view of its own
-- (k8s_current_reconciliations), installed inline where a view joins it; the views reading the changed rule and
-- columns are created again; k8s_expenses_reconciled_current reads the factors through the rule and joins ANY (the
-- same answers at about half the cost). The declarations (kubecost_worker/store/schema/) say why each choice.

ALTER TABLE k8s_expenses_by_day
    ADD COLUMN IF NOT EXISTS cpu_cost_reconciled Float64 DEFAULT cpu_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS ram_cost_reconciled Float64 DEFAULT ram_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS gpu_cost_reconciled Float64 DEFAULT gpu_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS pv_cost_reconciled Float64 DEFAULT pv_cost CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS total_cost_reconciled_exact Decimal(38, 18) DEFAULT total_cost_exact CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS cpu_cost_without_usage_reconciled Float64 DEFAULT cpu_cost_without_usage CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS ram_cost_without_usage_reconciled Float64 DEFAULT ram_cost_without_usage CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS total_cost_reconciled Float64 ALIAS toFloat64(total_cost_reconciled_exact),
    ADD COLUMN IF NOT EXISTS cpu_cost_with_usage_reconciled Float64
        ALIAS cpu_cost_reconciled - cpu_cost_without_usage_reconciled,
    ADD COLUMN IF NOT EXISTS ram_cost_with_usage_reconciled Float64
        ALIAS ram_cost_reconciled - ram_cost_without_usage_reconciled;

CREATE OR REPLACE VIEW k8s_current_reconciliations AS
SELECT cloud_account_id, bill_day,
       argMax(reconcile_id, computed_at) AS reconcile_id,
       argMax(trigger, computed_at) AS trigger,
       argMax(inputs, computed_at) AS inputs,
       argMax(list_cost, computed_at) AS list_cost,
       argMax(modelled_cost, computed_at) AS modelled_cost
FROM k8s_reconciliations
GROUP BY cloud_account_id, bill_day;

CREATE OR REPLACE VIEW k8s_reconciled_factors_current AS
SELECT f.*
FROM k8s_reconciled_factors AS f
INNER JOIN k8s_current_reconciliations AS latest
    ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id;

CREATE OR REPLACE VIEW k8s_expenses_by_day_current AS
SELECT d.*, d.total_cost, d.cpu_request_core_hours_with_usage, d.ram_request_byte_hours_with_usage,
       d.cpu_cost_with_usage, d.ram_cost_with_usage, d.total_cost_reconciled, d.cpu_cost_with_usage_reconciled,
       d.ram_cost_with_usage_reconciled, current.sealed AS sealed
FROM k8s_expenses_by_day AS d
INNER JOIN k8s_day_current_builds AS current
    ON d.cloud_account_id = current.cloud_account_id AND d.day = current.day AND d.build_id = current.build_id;

CREATE OR REPLACE VIEW k8s_expenses_reconciled_current AS
SELECT
    e.* EXCEPT (total_cost_list) REPLACE (
        e.cpu_cost * if(nf.node_found, nf.node_factor, 1.) AS cpu_cost,
        e.ram_cost * if(nf.node_found, nf.node_factor, 1.) AS ram_cost,
        e.gpu_cost * if(nf.node_found, nf.node_factor, 1.) AS gpu_cost,
        if(pf.pv_found, pf.pv_reconciled, e.pv_cost) AS pv_cost),
    e.cpu_cost * if(nf.node_found, nf.node_factor, 1.) + e.ram_cost * if(nf.node_found, nf.node_factor, 1.)
        + e.gpu_cost * if(nf.node_found, nf.node_factor, 1.) + if(pf.pv_found, pf.pv_reconciled, e.pv_cost)
        + e.network_cost + e.lb_cost + e.management_cost AS total_cost,
    e.cpu_cost AS cpu_cost_list,
    e.ram_cost AS ram_cost_list,
    e.gpu_cost AS gpu_cost_list,
    e.pv_cost AS pv_cost_list,
    e.total_cost_list AS total_cost_list
FROM
(
    SELECT d.*, d.total_cost AS total_cost_list
    FROM k8s_expenses AS d
    INNER JOIN k8s_expense_current_runs AS current
        ON d.cloud_account_id = current.cloud_account_id AND d.hour = current.hour AND d.run_id = current.run_id
) AS e
LEFT ANY JOIN
(
    SELECT f.cloud_account_id AS node_account, f.hour AS node_hour, f.cluster_id AS node_cluster,
        f.resource AS node_name, f.factor AS node_factor, true AS node_found
    FROM k8s_reconciled_factors AS f
    INNER JOIN k8s_current_reconciliations AS latest
        ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id
    WHERE f.kind = 'node' AND f.matched
) AS nf ON e.cloud_account_id = nf.node_account AND e.hour = nf.node_hour AND e.cluster_id = nf.node_cluster
    AND e.node = nf.node_name
LEFT ANY JOIN
(
    SELECT v.cloud_account_id AS pv_account, v.hour AS pv_hour, v.run_id AS pv_run_id, v.cluster_id AS pv_cluster,
        claim.namespace AS pv_namespace, claim.workload_name AS pv_workload_name, claim.pod AS pv_pod,
        claim.pod_uid AS pv_pod_uid, '' AS pv_container,
        sum(claim.pv_cost * if(vf.volume_found, vf.volume_factor, 1.)) AS pv_reconciled,
        max(vf.volume_found) AS pv_found
    FROM k8s_volumes_hourly AS v
    ARRAY JOIN v.claims AS claim
    LEFT ANY JOIN
    (
        SELECT f.cloud_account_id AS volume_account, f.hour AS volume_hour, f.cluster_id AS volume_cluster,
            f.resource AS volume_name, f.factor AS volume_factor, true AS volume_found
        FROM k8s_reconciled_factors AS f
        INNER JOIN k8s_current_reconciliations AS latest
            ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id
        WHERE f.kind = 'volume' AND f.matched
    ) AS vf ON v.cloud_account_id = vf.volume_account AND v.hour = vf.volume_hour
        AND v.cluster_id = vf.volume_cluster AND v.volume = vf.volume_name
    GROUP BY pv_account, pv_hour, pv_run_id, pv_cluster, pv_namespace, pv_workload_name, pv_pod, pv_pod_uid
) AS pf ON e.cloud_account_id = pf.pv_account AND e.hour = pf.pv_hour AND e.run_id = pf.pv_run_id
    AND e.cluster_id = pf.pv_cluster
    AND e.namespace = pf.pv_namespace AND e.workload_name = pf.pv_workload_name AND e.pod = pf.pv_pod
    AND e.pod_uid = pf.pv_pod_uid AND e.container = pf.pv_container;
