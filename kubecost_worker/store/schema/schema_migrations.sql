-- Migration tracking, created by the runner itself (kubecost_worker/store/migrations.py): a 'started' row before a
-- migration, an 'applied' row after it, each stamped by the server.
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version  UInt32,
    name     String,
    checksum String,
    status   Enum8('started' = 1, 'applied' = 2),
    at       DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (version, at);
