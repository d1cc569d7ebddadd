CREATE MATERIALIZED VIEW IF NOT EXISTS kubecost_metric_points_hourly_mv TO kubecost_metric_points_hourly AS
SELECT cloud_account_id, metric, hour, run_id, arrayStringConcat(arraySort(groupArray(point_json)), ',') AS points_json
FROM kubecost_metrics_hourly
GROUP BY cloud_account_id, metric, hour, run_id;
