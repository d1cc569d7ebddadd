-- The cloud bill in FOCUS 1.0 (the FinOps Open Cost and Usage Specification), loaded by `kubecost-worker bill-load`
-- (kubecost_worker/store/bill.py, docs/storage.md): one row per bill line, the spec's column names and order as
-- providers export them, plus Id (a line id FOCUS exports carry beside the spec's columns) and the load's own two.
--
-- Amounts, unit prices and quantities are Decimal(38, 18), not Float64: a sum of decimals is exact and does not
-- depend on the order ClickHouse reads the lines in, so the sum of a resource's lines is the bill's figure to the
-- last digit the export wrote (exports write 10 to 15 decimals; the 20 integer digits hold any bill). A value
-- written with more than 18 decimals loses the digits past the 18th (ClickHouse's parser), 1e-18 a line at most.
-- Nullable where FOCUS allows null, and ContractedCost too: the spec requires it but Oracle's exports leave it null.
--
-- A billing period of one provider's billing account is one partition: `bill-load` replaces the periods a file
-- holds with REPLACE PARTITION from a staging table, one atomic step per period, and leaves every other period
-- (other months, other accounts, other providers) alone. Within a period the lines are ordered by resource and
-- charge period, for per-resource lookups. load_id names the load that wrote a period (every line of a period
-- comes from one load); loaded_at is the server's time of that load.
--
-- bill_periods: each period's last charge and load, kept in every part (an aggregate projection: written with the
-- lines and swapped with them by REPLACE PARTITION, so never behind them). A reconciliation's trigger reads them
-- for the periods billing a tenant (focus_bill_resources) without reading those periods' lines.
CREATE TABLE IF NOT EXISTS focus_bill
(
    AvailabilityZone           Nullable(String),
    BilledCost                 Decimal(38, 18),
    BillingAccountId           String,
    BillingAccountName         Nullable(String),
    BillingCurrency            LowCardinality(String),
    BillingPeriodEnd           DateTime('UTC'),
    BillingPeriodStart         DateTime('UTC'),
    ChargeCategory             LowCardinality(String),
    ChargeClass                LowCardinality(Nullable(String)),
    ChargeDescription          Nullable(String) CODEC(ZSTD(3)),
    ChargeFrequency            LowCardinality(String),
    ChargePeriodEnd            DateTime('UTC'),
    ChargePeriodStart          DateTime('UTC'),
    CommitmentDiscountCategory LowCardinality(Nullable(String)),
    CommitmentDiscountId       Nullable(String),
    CommitmentDiscountName     Nullable(String),
    CommitmentDiscountStatus   LowCardinality(Nullable(String)),
    CommitmentDiscountType     LowCardinality(Nullable(String)),
    ConsumedQuantity           Nullable(Decimal(38, 18)),
    ConsumedUnit               LowCardinality(Nullable(String)),
    ContractedCost             Nullable(Decimal(38, 18)),
    ContractedUnitPrice        Nullable(Decimal(38, 18)),
    EffectiveCost              Decimal(38, 18),
    InvoiceIssuerName          LowCardinality(String),
    ListCost                   Decimal(38, 18),
    ListUnitPrice              Nullable(Decimal(38, 18)),
    PricingCategory            LowCardinality(Nullable(String)),
    PricingQuantity            Nullable(Decimal(38, 18)),
    PricingUnit                LowCardinality(Nullable(String)),
    ProviderName               LowCardinality(String),
    PublisherName              LowCardinality(String),
    RegionId                   LowCardinality(Nullable(String)),
    RegionName                 LowCardinality(Nullable(String)),
    ResourceId                 Nullable(String) CODEC(ZSTD(3)),
    ResourceName               Nullable(String) CODEC(ZSTD(3)),
    ResourceType               LowCardinality(Nullable(String)),
    ServiceCategory            LowCardinality(String),
    Id                         Nullable(String) CODEC(ZSTD(3)),
    ServiceName                LowCardinality(String),
    SkuId                      Nullable(String),
    SkuPriceId                 Nullable(String),
    SubAccountId               Nullable(String),
    SubAccountName             Nullable(String),
    Tags                       Nullable(String) CODEC(ZSTD(3)),
    load_id                    UUID,
    loaded_at                  DateTime64(3, 'UTC') DEFAULT now64(3),
    PROJECTION bill_periods
    (
        SELECT BillingPeriodStart, BillingPeriodEnd, ProviderName, BillingAccountId, max(ChargePeriodEnd), any(load_id)
        GROUP BY BillingPeriodStart, BillingPeriodEnd, ProviderName, BillingAccountId
    )
)
ENGINE = MergeTree
PARTITION BY (BillingPeriodStart, ProviderName, BillingAccountId)
ORDER BY (ResourceId, ChargePeriodStart)
SETTINGS allow_nullable_key = 1;
