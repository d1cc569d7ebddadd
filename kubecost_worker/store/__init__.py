"""Sink: ClickHouse tables, migrations and the run ledger."""
