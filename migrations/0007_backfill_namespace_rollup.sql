-- Migration 0005's materialized view fills the per-namespace rollup as rows are inserted: hours written before
-- 0005 had no rollup rows, so the read API's cluster costs left them out. This adds their sums, once: only rows
-- inserted before 0005 started (later ones went through the view), and only runs without rollup rows yet, so
-- running it again (`migrate --resume`) adds nothing twice.
INSERT INTO k8s_expenses_namespace_hourly
    (cloud_account_id, cluster_id, hour, namespace, run_id, cpu_core_hours, ram_byte_hours, gpu_hours,
     pv_byte_hours, cpu_cost, ram_cost, gpu_cost, pv_cost, network_cost, lb_cost, management_cost, total_cost, rows)
SELECT cloud_account_id, cluster_id, hour, namespace, run_id,
       sum(cpu_core_hours), sum(ram_byte_hours), sum(gpu_hours), sum(pv_byte_hours), sum(cpu_cost), sum(ram_cost),
       sum(gpu_cost), sum(pv_cost), sum(network_cost), sum(lb_cost), sum(management_cost), sum(total_cost), count()
FROM k8s_expenses
WHERE inserted_at < (SELECT min(at) FROM schema_migrations WHERE version = 5)
  AND (cloud_account_id, hour, run_id) NOT IN
      (SELECT cloud_account_id, hour, run_id FROM k8s_expenses_namespace_hourly)
GROUP BY cloud_account_id, cluster_id, hour, namespace, run_id;
