-- The cloud bill in FOCUS 1.0, loaded by `kubecost-worker bill-load` (docs/storage.md): a row per bill line under the
-- spec's column names, amounts as exact decimals, a partition per billing period of one provider's billing account
-- (what a load replaces, atomically, with REPLACE PARTITION). The declaration
-- (kubecost_worker/store/schema/focus_bill.sql) says why each choice.
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
    loaded_at                  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY (BillingPeriodStart, ProviderName, BillingAccountId)
ORDER BY (ResourceId, ChargePeriodStart)
SETTINGS allow_nullable_key = 1;
