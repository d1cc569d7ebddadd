-- k8s_expenses_current with the costs the cloud bill pays (docs/reconciliation.md): the same columns, the node's
-- CPU, RAM and GPU costs (pods and idle) times its node-hour's factor, pv_cost the sum over the volumes a row holds
-- a part of (k8s_volumes_hourly.claims) of that part times the volume-hour's factor, total_cost their sum with the
-- other costs, which stay; the list costs beside as *_list. A row without a matched factor keeps its list costs, bit
-- for bit. A join on the factors readers see: the hourly rows are never rewritten. The joined columns have names of
-- their own: a name both sides have would come out qualified (e.node).
--
-- One lookup per row (bench/reconcile.py, docs/benchmarks.md: each table a view reads costs ClickHouse 1.5-2 ms of
-- planning, each join 1-2 ms): a pod's own row holding volume costs (container '', pv_cost > 0) finds its claim row,
-- which carries its node's factor and its reconciled volume parts, every other row its node-hour's row; both kinds are
-- factors of the current reconciliation of the tenant-day, read through the reconciliation rule installed inline.
-- The claim rows are the reconciliation's (store/reconcile.py): a rerun hour keeps the reconciliation of the runs it
-- replaced until the day is reconciled again, as its node factors do. ANY: the right side holds one row per key.
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
