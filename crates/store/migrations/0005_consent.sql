-- Consent (issue 5): every grant and withdrawal, kept as history. The
-- subject is an account id, or `visitor:<hash>` for a shopper without an
-- account (the hash of a random id in their consent cookie). No personal
-- data: ids, purposes, text versions, sources and times.
CREATE TABLE consents (
    id           TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    granted      BIGINT NOT NULL,
    text_version TEXT NOT NULL,
    source       TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX consents_subject ON consents (subject, purpose, at);

-- Page views per day and path, counted only with analytics consent. Counts,
-- never who.
CREATE TABLE analytics_daily (
    day   TEXT NOT NULL,
    path  TEXT NOT NULL,
    views BIGINT NOT NULL,
    PRIMARY KEY (day, path)
);
