-- The tamper-evident ledger (issue 3). Entries are canonical JSON; leaf
-- hashes are RFC 9162 leaf hashes (hex). Each entry also carries an
-- HMAC under a key that lives outside the database, so someone who can
-- write to the database still cannot forge one.

CREATE TABLE ledger_entries (
    idx       BIGINT PRIMARY KEY,
    leaf_hash TEXT NOT NULL,
    mac       TEXT NOT NULL,
    kind      TEXT NOT NULL,
    -- the first target id, to find an order's entries for receipts
    target    TEXT,
    entry     TEXT NOT NULL
);
CREATE INDEX ledger_entries_target ON ledger_entries (target, idx);

CREATE TABLE ledger_head (
    id   BIGINT PRIMARY KEY,
    size BIGINT NOT NULL
);
INSERT INTO ledger_head (id, size) VALUES (1, 0);

-- Perfect subtree hashes (level >= 1), filled in by the checkpointer, so
-- proofs need a few lookups instead of every leaf.
CREATE TABLE ledger_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE ledger_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Rows the ledger vouches for name their latest entry.
ALTER TABLE orders ADD COLUMN ledger_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE variants ADD COLUMN ledger_hash TEXT NOT NULL DEFAULT '';
-- Key of the keyed commitment to the order's personal data; deleting it
-- (erasure) leaves the ledger commitment meaningless.
ALTER TABLE orders ADD COLUMN personal_key TEXT;
