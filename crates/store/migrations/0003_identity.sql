-- Identity and access (issue 4): accounts, second factors, sessions, API
-- tokens, one-time email tokens and sign-in throttles. Every secret a client
-- presents (session, API token, email token, recovery code) is stored only as
-- its SHA-256, so a reader of the database cannot sign in with what it finds.

-- email_index is a keyed blind index (HMAC) of the normalized address: the
-- only way accounts are looked up by email.
CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    email_index       TEXT NOT NULL UNIQUE,
    email             TEXT NOT NULL,
    role              TEXT NOT NULL,
    status            TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    email_verified_at BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    -- leaf hash of the latest ledger entry about role, status or password
    ledger_hash       TEXT NOT NULL
);
CREATE INDEX accounts_role ON accounts (role);

-- last_step makes each code single-use: a code is accepted only by a
-- conditional update that moves last_step forward.
CREATE TABLE totp_credentials (
    account_id   TEXT PRIMARY KEY REFERENCES accounts (id),
    secret       TEXT NOT NULL,
    confirmed_at BIGINT,
    last_step    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    credential_id TEXT NOT NULL UNIQUE,
    passkey       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_account ON passkeys (account_id);

-- WebAuthn ceremony state between its two requests, kept in the database so
-- any instance can finish what another started.
CREATE TABLE webauthn_challenges (
    id_hash    TEXT PRIMARY KEY,
    account_id TEXT,
    purpose    TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- stage: 'second_factor' (password checked, second factor owed),
-- 'enroll' (staff without a second factor: may only enroll), 'full'.
CREATE TABLE sessions (
    id_hash          TEXT PRIMARY KEY,
    public_id        TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    stage            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    idle_timeout_ms  BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    second_factor_at BIGINT
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);

-- purpose: 'verify_email' or 'reset_password'.
CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    purpose    TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- key: 'account:<email index>' or 'ip:<address>'. Unknown emails get a row
-- too, so throttling says nothing about which accounts exist.
CREATE TABLE auth_throttle (
    key             TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    blocked_until   BIGINT NOT NULL
);

-- The bootstrap admin token is replaced by owner accounts.
DELETE FROM settings WHERE name = 'bootstrap_admin_token_sha256';
