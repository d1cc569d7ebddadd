"""The store: ClickHouse, its tables (schema/, migrations), the run ledger, the writer and cleanup."""
