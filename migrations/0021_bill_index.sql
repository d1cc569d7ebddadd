-- A tenant-day's reconciliation reads only the bill's partitions that bill its resources, and
-- their periods' last charge and load without their lines (kubecost_worker/store/schema/focus_bill_resources.sql and
-- focus_bill.sql say why): the index of the periods by lookup key, filled here for the periods already loaded (the
-- keys as kubecost_worker/store/reconcile.py's index_bill computes them), and the periods' projection.

CREATE TABLE IF NOT EXISTS focus_bill_resources
(
    resource_key       String,
    BillingPeriodStart DateTime('UTC'),
    BillingPeriodEnd   DateTime('UTC'),
    ProviderName       LowCardinality(String),
    BillingAccountId   String
)
ENGINE = ReplacingMergeTree
ORDER BY (resource_key, BillingPeriodStart, ProviderName, BillingAccountId);

INSERT INTO focus_bill_resources (resource_key, BillingPeriodStart, BillingPeriodEnd, ProviderName, BillingAccountId)
SELECT DISTINCT
    multiIf(ifNull(ResourceId, '') = '', '', positionCaseInsensitive(ifNull(ResourceId, ''), '/subscriptions/') > 0,
        replaceRegexpOne(lower(substring(ifNull(ResourceId, ''),
            positionCaseInsensitive(ifNull(ResourceId, ''), '/subscriptions/'))),
            '(/virtualmachinescalesets/[^/]+)/virtualmachines/.*$', '\\1'),
        splitByChar('/', ifNull(ResourceId, ''))[-1]) AS resource_key,
    BillingPeriodStart, BillingPeriodEnd, ProviderName, BillingAccountId
FROM focus_bill
WHERE ((ChargeCategory = 'Usage' AND (ServiceCategory = 'Storage' OR (ServiceCategory = 'Compute'
        AND lower(ifNull(PricingUnit, '')) NOT IN ('gb', 'gib', 'tb', 'tib', 'bytes'))))
    OR ChargeCategory IN ('Credit', 'Adjustment'))
    AND resource_key != ''
    AND (resource_key, BillingPeriodStart, ProviderName, BillingAccountId) NOT IN
        (SELECT resource_key, BillingPeriodStart, ProviderName, BillingAccountId FROM focus_bill_resources);

ALTER TABLE focus_bill ADD PROJECTION IF NOT EXISTS bill_periods
(
    SELECT BillingPeriodStart, BillingPeriodEnd, ProviderName, BillingAccountId, max(ChargePeriodEnd), any(load_id)
    GROUP BY BillingPeriodStart, BillingPeriodEnd, ProviderName, BillingAccountId
);

ALTER TABLE focus_bill MATERIALIZE PROJECTION bill_periods SETTINGS mutations_sync = 1;
