-- Payments (issue 7). The store keeps gateway ids, amounts, statuses and the
-- card brand and last four digits the gateway reports: never card data.

-- One payment per order: what the gateway was asked for and what it says.
CREATE TABLE payments (
    order_id        TEXT PRIMARY KEY REFERENCES orders (id),
    gateway         TEXT NOT NULL,
    -- the current hosted page (a Checkout Session for Stripe)
    session_id      TEXT UNIQUE,
    session_url     TEXT,
    -- how many pages were opened: the idempotency key's attempt number
    attempts        BIGINT NOT NULL DEFAULT 0,
    payment_intent  TEXT UNIQUE,
    status          TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    currency        TEXT NOT NULL,
    amount_received BIGINT NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
    -- refunds the gateway confirmed, in total
    amount_refunded BIGINT NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    card_brand      TEXT,
    card_last4      TEXT,
    failures        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX payments_status ON payments (status, updated_at);

-- Verified gateway events, by the gateway's id: a replay is a no-op.
CREATE TABLE gateway_events (
    event_id    TEXT PRIMARY KEY,
    gateway     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    order_id    TEXT,
    outcome     TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- Refunds asked for, each once per idempotency key.
CREATE TABLE refunds (
    id                TEXT PRIMARY KEY,
    order_id          TEXT NOT NULL REFERENCES orders (id),
    key_hash          TEXT NOT NULL UNIQUE,
    amount            BIGINT NOT NULL CHECK (amount > 0),
    currency          TEXT NOT NULL,
    status            TEXT NOT NULL,
    gateway_refund_id TEXT,
    failure           TEXT,
    requested_by      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX refunds_order ON refunds (order_id, status);

-- The risk verdict of every order. ip_hash and device_hash are keyed
-- hashes (never the address), kept for the counting windows only.
CREATE TABLE order_risk (
    order_id    TEXT PRIMARY KEY REFERENCES orders (id),
    decision    TEXT NOT NULL,
    score       BIGINT NOT NULL,
    reasons     TEXT NOT NULL,
    -- held | approved | rejected, for orders sent to review
    review      TEXT,
    reviewed_by TEXT,
    ip_hash     TEXT,
    device_hash TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX order_risk_ip ON order_risk (ip_hash, created_at);
CREATE INDEX order_risk_device ON order_risk (device_hash, created_at);

-- Payment attempts and their failures, for the risk windows.
CREATE TABLE payment_attempts (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    ip_hash     TEXT,
    device_hash TEXT,
    customer_id TEXT,
    failed      BIGINT NOT NULL DEFAULT 0,
    at          BIGINT NOT NULL
);
CREATE INDEX payment_attempts_ip ON payment_attempts (ip_hash, at);
CREATE INDEX payment_attempts_order ON payment_attempts (order_id);
