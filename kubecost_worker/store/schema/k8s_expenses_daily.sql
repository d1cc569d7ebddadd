-- OptScale's view of the expenses (docs/optscale.md): one row per tenant, resource and UTC day, the day's cost of
-- the current data, and the resource's Kubernetes fields as OptScale keeps them on a resource.
--
-- A pod is its uid (OptScale's Kubernetes adapter keys a pod so); the rows that are no pod's get stable synthetic
-- ids: k8s:<cluster>:idle:<node>, k8s:<cluster>:management, k8s:<cluster>:unmounted:<volume>,
-- k8s:<cluster>:lb:<namespace>/<service>, and a pod known only by its name (pod_uid '': a pod without a uid series,
-- hours written before uids were stored) k8s:<cluster>:pod:<namespace>/<pod>.
--
-- The cost is summed as Decimal128(18): an exact sum, so it does not depend on the order ClickHouse happens to read
-- the rows in, and a day whose data did not change reads the same double bit for bit (export-optscale compares
-- costs exactly: an unchanged day writes nothing). Rounding each hourly cost to 1e-18 is far below the 1e-9 the
-- model is held to. The fields that can change within a day (a pod's labels, its service) are the last hour's.
--
-- A day is read from its current hourly rows until it is sealed, then from its daily rows (k8s_expenses_by_day, the
-- sealed build): their total_cost_exact is the same exact sum of the same hourly costs, so a day reads the same
-- before and after its hours expire. Hourly rows of a sealed day (an hour written again after the seal) are left out:
-- the day is final.
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
