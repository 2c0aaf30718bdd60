//! The record of processing (GDPR Art. 30), as annotations on the schema:
//! for every table, what it holds, why, how long it is kept and who sees
//! it. A test checks that every table in the database is annotated here,
//! so the record cannot silently fall behind a migration.

/// How long a table's rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// As long as the described thing exists (text says what ends it).
    While(&'static str),
    /// Set in configuration: `[privacy]` key of this name, in days.
    Configured(&'static str),
}

/// One table's annotation.
#[derive(Debug, Clone, Copy)]
pub struct TableNote {
    pub table: &'static str,
    /// What the table holds.
    pub data: &'static str,
    /// Whether it holds personal data (encrypted at rest where it does).
    pub personal: bool,
    pub purpose: &'static str,
    /// GDPR Art. 6 basis for personal data; empty otherwise.
    pub legal_basis: &'static str,
    pub keep: Keep,
    /// Who can read it through the store.
    pub access: &'static str,
}

const CONTRACT: &str = "contract (Art. 6(1)(b))";
const LEGAL: &str = "legal obligation (Art. 6(1)(c))";
const INTEREST: &str = "legitimate interest in security (Art. 6(1)(f))";
const CONSENT: &str = "consent (Art. 6(1)(a))";

/// Every table of the store's database.
pub const SCHEMA: &[TableNote] = &[
    TableNote {
        table: "products",
        data: "catalog products",
        personal: false,
        purpose: "selling",
        legal_basis: "",
        keep: Keep::While("the product is sold"),
        access: "everyone",
    },
    TableNote {
        table: "collections",
        data: "catalog collections",
        personal: false,
        purpose: "selling",
        legal_basis: "",
        keep: Keep::While("the collection exists"),
        access: "everyone",
    },
    TableNote {
        table: "collection_products",
        data: "which products are in which collection",
        personal: false,
        purpose: "selling",
        legal_basis: "",
        keep: Keep::While("the collection exists"),
        access: "everyone",
    },
    TableNote {
        table: "variants",
        data: "prices and stock",
        personal: false,
        purpose: "selling",
        legal_basis: "",
        keep: Keep::While("the product is sold"),
        access: "everyone",
    },
    TableNote {
        table: "carts",
        data: "anonymous carts (by a hashed secret)",
        personal: false,
        purpose: "shopping",
        legal_basis: "",
        keep: Keep::Configured("abandoned_cart_days"),
        access: "the shopper holding the cart link",
    },
    TableNote {
        table: "cart_lines",
        data: "what is in a cart",
        personal: false,
        purpose: "shopping",
        legal_basis: "",
        keep: Keep::Configured("abandoned_cart_days"),
        access: "the shopper holding the cart link",
    },
    TableNote {
        table: "counters",
        data: "order number sequence",
        personal: false,
        purpose: "accounting",
        legal_basis: "",
        keep: Keep::While("the store exists"),
        access: "the store",
    },
    TableNote {
        table: "orders",
        data: "order totals and lines; the buyer's email and shipping address, encrypted under the buyer's data key",
        personal: true,
        purpose: "delivering and accounting for orders",
        legal_basis: CONTRACT,
        keep: Keep::Configured("guest_data_days"),
        access: "the buyer (order link or account), staff with order access",
    },
    TableNote {
        table: "order_lines",
        data: "products, prices and quantities of orders",
        personal: false,
        purpose: "accounting",
        legal_basis: LEGAL,
        keep: Keep::While("the accounting retention period of the store's country"),
        access: "the buyer, staff with order access",
    },
    TableNote {
        table: "idempotency_keys",
        data: "hashes of retry keys",
        personal: false,
        purpose: "no double orders",
        legal_basis: "",
        keep: Keep::While("24 hours"),
        access: "the store",
    },
    TableNote {
        table: "security_events",
        data: "security events: ids, codes, no personal data",
        personal: false,
        purpose: "security monitoring",
        legal_basis: INTEREST,
        keep: Keep::Configured("security_event_days"),
        access: "owners and admins",
    },
    TableNote {
        table: "settings",
        data: "store settings",
        personal: false,
        purpose: "running the store",
        legal_basis: "",
        keep: Keep::While("the store exists"),
        access: "the store",
    },
    TableNote {
        table: "ledger_entries",
        data: "tamper-evident record of every change: ids and commitments, no personal data",
        personal: false,
        purpose: "integrity and non-repudiation",
        legal_basis: INTEREST,
        keep: Keep::While("the store exists (immutable)"),
        access: "owners; receipts to buyers",
    },
    TableNote {
        table: "ledger_head",
        data: "ledger size",
        personal: false,
        purpose: "integrity",
        legal_basis: "",
        keep: Keep::While("the store exists"),
        access: "the store",
    },
    TableNote {
        table: "ledger_nodes",
        data: "ledger tree hashes",
        personal: false,
        purpose: "integrity",
        legal_basis: "",
        keep: Keep::While("the store exists"),
        access: "the store",
    },
    TableNote {
        table: "ledger_checkpoints",
        data: "signed ledger checkpoints",
        personal: false,
        purpose: "integrity",
        legal_basis: "",
        keep: Keep::While("the store exists"),
        access: "anyone with a receipt",
    },
    TableNote {
        table: "accounts",
        data: "account email (encrypted; looked up by a keyed hash), role, password hash",
        personal: true,
        purpose: "customer and staff accounts",
        legal_basis: CONTRACT,
        keep: Keep::While("the account exists or until erasure"),
        access: "the account holder; owners for staff accounts",
    },
    TableNote {
        table: "totp_credentials",
        data: "two-factor secrets (encrypted)",
        personal: true,
        purpose: "account security",
        legal_basis: INTEREST,
        keep: Keep::While("the factor is enrolled"),
        access: "the store",
    },
    TableNote {
        table: "recovery_codes",
        data: "hashed recovery codes",
        personal: true,
        purpose: "account security",
        legal_basis: INTEREST,
        keep: Keep::While("the factor is enrolled"),
        access: "the store",
    },
    TableNote {
        table: "passkeys",
        data: "passkey public keys",
        personal: true,
        purpose: "account security",
        legal_basis: INTEREST,
        keep: Keep::While("the passkey is registered"),
        access: "the account holder",
    },
    TableNote {
        table: "webauthn_challenges",
        data: "passkey ceremonies in progress",
        personal: false,
        purpose: "account security",
        legal_basis: "",
        keep: Keep::While("5 minutes"),
        access: "the store",
    },
    TableNote {
        table: "sessions",
        data: "hashed session tokens and their times",
        personal: true,
        purpose: "signing in",
        legal_basis: CONTRACT,
        keep: Keep::While("the session lasts (12 h staff, 30 days customers at most)"),
        access: "the account holder; owners for staff",
    },
    TableNote {
        table: "api_tokens",
        data: "hashed API tokens, scopes",
        personal: false,
        purpose: "integrations",
        legal_basis: "",
        keep: Keep::While("the token expires or is revoked"),
        access: "owners and admins",
    },
    TableNote {
        table: "email_tokens",
        data: "hashed verification and reset links",
        personal: true,
        purpose: "account email verification and recovery",
        legal_basis: CONTRACT,
        keep: Keep::While("1 hour (24 h for invitations)"),
        access: "the store",
    },
    TableNote {
        table: "rate_buckets",
        data: "rate-limit state by keyed hashes of route class and client IP address or credential",
        personal: true,
        purpose: "keeping the store available: rate limits",
        legal_basis: INTEREST,
        keep: Keep::While("the limit has recovered (minutes)"),
        access: "the store",
    },
    TableNote {
        table: "auth_throttle",
        data: "failure counters by keyed hashes of email and of client IP address (never the address)",
        personal: true,
        purpose: "brute-force protection",
        legal_basis: INTEREST,
        keep: Keep::While("1 hour after the last failure"),
        access: "the store",
    },
    TableNote {
        table: "consents",
        data: "consent grants and withdrawals: purpose, text version, source, time",
        personal: true,
        purpose: "proof of consent",
        legal_basis: LEGAL,
        keep: Keep::While("the account exists, and as long as proof may be required"),
        access: "the account holder (export)",
    },
    TableNote {
        table: "analytics_daily",
        data: "page views per day and path, no person",
        personal: false,
        purpose: "shop statistics",
        legal_basis: CONSENT,
        keep: Keep::While("the store exists"),
        access: "owners",
    },
];

/// Tables outside the record: the migration tool's own.
pub const NOT_STORE_DATA: &[&str] = &["_sqlx_migrations"];
