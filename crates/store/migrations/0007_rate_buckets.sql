-- Rate limits shared by every instance (issue 6): one GCRA "theoretical
-- arrival time" per key, in unix microseconds. Keys are keyed hashes of
-- the route class and client IP or credential, never the values.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
CREATE INDEX rate_buckets_tat ON rate_buckets (tat);
