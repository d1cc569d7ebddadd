-- The ids OptScale assigned to our resources (docs/optscale.md): filled by whoever creates the resources in
-- OptScale, read by export-optscale. A resource may be mapped again: the latest row (updated_at) is its id.
CREATE TABLE IF NOT EXISTS optscale_resource_ids
(
    cloud_account_id  LowCardinality(String),
    cloud_resource_id String,
    resource_id       String,
    updated_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (cloud_account_id, cloud_resource_id);
