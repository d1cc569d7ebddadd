-- The reconciled view looks each row up once (kubecost_worker/store/schema/k8s_expenses_reconciled_current.sql says
-- why): the factors get claim rows (k8s_reconciled_factors.sql says what they are), written by each reconciliation
-- (store/reconcile.py) and here for the current reconciliation of every tenant-day, from the rows, volumes and
-- factors it was computed from as the view of 0020 read them; the views over the factors are created again.

ALTER TABLE k8s_reconciled_factors
    ADD COLUMN IF NOT EXISTS namespace String DEFAULT '' CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS workload_name String DEFAULT '' CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS pod String DEFAULT '' CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS pod_uid String DEFAULT '' CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS pv_reconciled Float64 DEFAULT 0 CODEC(ZSTD(3)),
    ADD COLUMN IF NOT EXISTS pv_matched Bool DEFAULT false;

INSERT INTO k8s_reconciled_factors (cloud_account_id, cluster_id, hour, kind, resource, factor, matched, namespace,
    workload_name, pod, pod_uid, pv_reconciled, pv_matched, reconcile_id)
SELECT e.cloud_account_id, e.cluster_id, e.hour, 'claim', e.node, if(nf.node_found, nf.node_factor, 1.),
    nf.node_found, e.namespace, e.workload_name, e.pod, e.pod_uid, pv.pv_reconciled, pv.pv_found, e.reconcile_id
FROM
(
    SELECT d.cloud_account_id AS cloud_account_id, d.cluster_id AS cluster_id, d.hour AS hour, d.run_id AS run_id,
        d.node AS node, d.namespace AS namespace, d.workload_name AS workload_name, d.pod AS pod,
        d.pod_uid AS pod_uid, latest.reconcile_id AS reconcile_id
    FROM k8s_expenses_current AS d
    INNER JOIN k8s_current_reconciliations AS latest
        ON d.cloud_account_id = latest.cloud_account_id AND toDate(d.hour) = latest.bill_day
    WHERE d.container = '' AND d.pv_cost != 0
) AS e
LEFT ANY JOIN
(
    SELECT cloud_account_id AS node_account, reconcile_id AS node_reconcile, hour AS node_hour,
        cluster_id AS node_cluster, resource AS node_name, factor AS node_factor, true AS node_found
    FROM k8s_reconciled_factors
    WHERE kind = 'node' AND matched
) AS nf ON e.cloud_account_id = nf.node_account AND e.reconcile_id = nf.node_reconcile AND e.hour = nf.node_hour
    AND e.cluster_id = nf.node_cluster AND e.node = nf.node_name
LEFT ANY JOIN
(
    SELECT v.cloud_account_id AS pv_account, v.hour AS pv_hour, v.run_id AS pv_run_id, v.cluster_id AS pv_cluster,
        claim.namespace AS pv_namespace, claim.workload_name AS pv_workload_name, claim.pod AS pv_pod,
        claim.pod_uid AS pv_pod_uid, sum(claim.pv_cost * if(vf.volume_found, vf.volume_factor, 1.)) AS pv_reconciled,
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
) AS pv ON e.cloud_account_id = pv.pv_account AND e.hour = pv.pv_hour AND e.run_id = pv.pv_run_id
    AND e.cluster_id = pv.pv_cluster AND e.namespace = pv.pv_namespace AND e.workload_name = pv.pv_workload_name
    AND e.pod = pv.pv_pod AND e.pod_uid = pv.pv_pod_uid
WHERE (nf.node_found OR pv.pv_found)
    AND (e.cloud_account_id, e.reconcile_id, e.hour, e.namespace, e.workload_name, e.pod, e.pod_uid) NOT IN
        (SELECT cloud_account_id, reconcile_id, hour, namespace, workload_name, pod, pod_uid FROM k8s_reconciled_factors);

CREATE OR REPLACE VIEW k8s_reconciled_factors_current AS
SELECT f.*
FROM k8s_reconciled_factors AS f
INNER JOIN k8s_current_reconciliations AS latest
    ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id;

CREATE OR REPLACE VIEW k8s_expenses_reconciled_current AS
SELECT
    e.* EXCEPT (total_cost_list, holds_volumes) REPLACE (
        e.cpu_cost * if(rf.found, rf.node_factor, 1.) AS cpu_cost,
        e.ram_cost * if(rf.found, rf.node_factor, 1.) AS ram_cost,
        e.gpu_cost * if(rf.found, rf.node_factor, 1.) AS gpu_cost,
        if(rf.pv_found, rf.pv_reconciled, e.pv_cost) AS pv_cost),
    e.cpu_cost * if(rf.found, rf.node_factor, 1.) + e.ram_cost * if(rf.found, rf.node_factor, 1.)
        + e.gpu_cost * if(rf.found, rf.node_factor, 1.) + if(rf.pv_found, rf.pv_reconciled, e.pv_cost)
        + e.network_cost + e.lb_cost + e.management_cost AS total_cost,
    e.cpu_cost AS cpu_cost_list,
    e.ram_cost AS ram_cost_list,
    e.gpu_cost AS gpu_cost_list,
    e.pv_cost AS pv_cost_list,
    e.total_cost_list AS total_cost_list
FROM
(
    SELECT d.*, d.total_cost AS total_cost_list, d.container = '' AND d.pv_cost != 0 AS holds_volumes
    FROM k8s_expenses AS d
    INNER JOIN k8s_expense_current_runs AS current
        ON d.cloud_account_id = current.cloud_account_id AND d.hour = current.hour AND d.run_id = current.run_id
) AS e
LEFT ANY JOIN
(
    SELECT f.cloud_account_id AS r_account, f.hour AS r_hour, f.cluster_id AS r_cluster, f.resource AS r_node,
        f.namespace AS r_namespace, f.workload_name AS r_workload_name, f.pod AS r_pod, f.pod_uid AS r_pod_uid,
        if(f.matched, f.factor, 1.) AS node_factor, f.pv_reconciled AS pv_reconciled, f.pv_matched AS pv_found,
        true AS found
    FROM k8s_reconciled_factors AS f
    INNER JOIN k8s_current_reconciliations AS latest
        ON f.cloud_account_id = latest.cloud_account_id AND f.reconcile_id = latest.reconcile_id
    WHERE (f.kind = 'node' AND f.matched) OR f.kind = 'claim'
) AS rf ON e.cloud_account_id = rf.r_account AND e.hour = rf.r_hour AND e.cluster_id = rf.r_cluster
    AND e.node = rf.r_node AND if(e.holds_volumes, e.namespace, '') = rf.r_namespace
    AND if(e.holds_volumes, e.workload_name, '') = rf.r_workload_name AND if(e.holds_volumes, e.pod, '') = rf.r_pod
    AND if(e.holds_volumes, e.pod_uid, '') = rf.r_pod_uid;
