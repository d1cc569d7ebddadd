-- k8s_expenses_current with the costs the cloud bill pays (docs/reconciliation.md): the same columns, the node's
-- CPU, RAM and GPU costs (pods and idle) times its node-hour's factor, pv_cost the sum over the volumes a row holds
-- a part of (k8s_volumes_hourly.claims) of that part times the volume-hour's factor, total_cost their sum with the
-- other costs, which stay; the list costs beside as *_list. A row without a matched factor keeps its list costs, bit
-- for bit. A join on the factors readers see: the hourly rows are never rewritten. The joined columns have names of
-- their own: a name both sides have would come out qualified (e.node).
--
-- What it costs (bench/reconcile.py, docs/benchmarks.md): the factors are read through the reconciliation rule
-- joined by name, installed inline, rather than through k8s_reconciled_factors_current (a view named in a join is
-- planned as a query of its own); the joins are ANY: each right side holds one row per key (a reconciliation has
-- one factor per resource-hour, and pf is grouped by its key), so ANY answers what ALL would, and ClickHouse stops
-- at the first match; a row's volume claims are those its own run wrote (e.run_id), so their side needs no lookup
-- of the current runs.
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
