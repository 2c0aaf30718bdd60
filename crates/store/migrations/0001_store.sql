-- Storefort's first schema: catalog, inventory, carts, orders, idempotency and
-- security events. Portable SQL only (TEXT, BIGINT, BYTEA; times as unix ms;
-- money as BIGINT minor units) so the same file runs on SQLite and PostgreSQL.

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    handle      TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    -- lower-cased title, description and SKUs, for portable LIKE search
    search_text TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE collections (
    id     TEXT PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    title  TEXT NOT NULL
);

CREATE TABLE collection_products (
    collection_id TEXT NOT NULL REFERENCES collections (id),
    product_id    TEXT NOT NULL REFERENCES products (id),
    PRIMARY KEY (collection_id, product_id)
);
CREATE INDEX collection_products_product ON collection_products (product_id);

-- available + reserved + sold is the stock ever put on sale; the CHECKs make
-- the database itself refuse any change that would drive one below zero.
CREATE TABLE variants (
    id           TEXT PRIMARY KEY,
    product_id   TEXT NOT NULL REFERENCES products (id),
    sku          TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    price_amount BIGINT NOT NULL CHECK (price_amount >= 0),
    currency     TEXT NOT NULL,
    available    BIGINT NOT NULL CHECK (available >= 0),
    reserved     BIGINT NOT NULL CHECK (reserved >= 0),
    sold         BIGINT NOT NULL CHECK (sold >= 0),
    position     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX variants_product ON variants (product_id);

-- Carts are addressed by a random secret; only its SHA-256 is stored, so a
-- reader of the database cannot take over a shopper's cart.
CREATE TABLE carts (
    id_hash    TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX carts_updated ON carts (updated_at);

CREATE TABLE cart_lines (
    cart_id_hash TEXT NOT NULL REFERENCES carts (id_hash) ON DELETE CASCADE,
    variant_id   TEXT NOT NULL REFERENCES variants (id),
    quantity     BIGINT NOT NULL CHECK (quantity > 0),
    added_at     BIGINT NOT NULL,
    PRIMARY KEY (cart_id_hash, variant_id)
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('order_number', 1000);

-- An order is a snapshot: titles, prices and totals are copied at checkout
-- and never recomputed from the catalog.
CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    number           BIGINT NOT NULL UNIQUE,
    cart_id_hash     TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    subtotal         BIGINT NOT NULL CHECK (subtotal >= 0),
    shipping         BIGINT NOT NULL CHECK (shipping >= 0),
    tax              BIGINT NOT NULL CHECK (tax >= 0),
    total            BIGINT NOT NULL CHECK (total >= 0),
    email            TEXT NOT NULL,
    shipping_address TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX orders_status_expiry ON orders (status, expires_at);

CREATE TABLE order_lines (
    order_id   TEXT NOT NULL REFERENCES orders (id),
    position   BIGINT NOT NULL,
    variant_id TEXT NOT NULL,
    sku        TEXT NOT NULL,
    title      TEXT NOT NULL,
    unit_price BIGINT NOT NULL CHECK (unit_price >= 0),
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    line_total BIGINT NOT NULL CHECK (line_total >= 0),
    PRIMARY KEY (order_id, position)
);

-- Idempotency-Key replays: the key and request are stored hashed.
CREATE TABLE idempotency_keys (
    key_hash     TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Security events: ids and hashes only, never personal data or secrets.
CREATE TABLE security_events (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    target     TEXT,
    request_id TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX security_events_at ON security_events (at);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
