-- Temporary bans shared by every instance (issue 6): a client the shield
-- banned on one instance is refused by all. Clients are named by a keyed
-- hash of their address, never the address, and rows are deleted once the
-- ban is over.
CREATE TABLE shield_bans (
    client_key TEXT PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
CREATE INDEX shield_bans_until ON shield_bans (until_ms);
