-- Privacy (issue 5). Orders placed by a signed-in customer belong to their
-- account: their personal data is encrypted under the account's data key,
-- so erasing the account reaches every order at once.
ALTER TABLE orders ADD COLUMN customer_id TEXT;
CREATE INDEX orders_customer ON orders (customer_id);

-- A legal hold keeps an account's data despite an erasure request, which
-- waits (erasure_requested_at) until the hold is lifted.
ALTER TABLE accounts ADD COLUMN legal_hold TEXT;
ALTER TABLE accounts ADD COLUMN erasure_requested_at BIGINT;
