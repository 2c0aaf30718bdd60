-- The key store: per-subject data keys, wrapped by the master key, kept in
-- a database of their own. A copy of the store's database restored from a
-- backup therefore brings back no key destroyed since: erased customers
-- stay unreadable in it.

CREATE TABLE data_keys (
    subject_id TEXT PRIMARY KEY,
    -- id of the master key that wrapped it (rotation re-wraps)
    key_id     TEXT NOT NULL,
    wrapped    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX data_keys_key_id ON data_keys (key_id);

-- Tombstones: a subject erased once stays erased, even if an older copy of
-- this table is restored (they are re-applied from the ledger at start).
CREATE TABLE erasures (
    subject_id TEXT PRIMARY KEY,
    erased_at  BIGINT NOT NULL
);

-- The master key this store was set up with, to refuse a wrong one.
CREATE TABLE key_store_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
