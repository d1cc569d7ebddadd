-- The ledger's order is the ClickHouse server's clock: each record is stamped where it is stored, and the sink no
-- longer sends recorded_at. A worker's clock minutes fast or slow made its records later or earlier than they were,
-- so a rerun could stay hidden behind an older run (k8s_expense_current_runs takes the latest succeeded record) and
-- cleanup remove the rerun's rows. Changing a column's default changes the metadata only; stored records keep
-- their times.
ALTER TABLE k8s_expense_runs
    MODIFY COLUMN IF EXISTS recorded_at DateTime64(6, 'UTC') DEFAULT now64(6);
