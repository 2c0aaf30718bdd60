//! Storefort's integration tests: one binary, a module per area. Each test
//! gets a fresh database (SQLite, or PostgreSQL when
//! STOREFORT_TEST_POSTGRES_URL is set).

mod accounts;
mod acme;
mod api;
mod cli;
mod concurrency;
mod consent;
mod crash;
mod fake_stripe;
mod hostile;
mod identity;
mod ledger;
mod mail;
mod passkeys;
mod payments;
mod privacy;
mod proxy;
mod shield;
mod support;
mod tls;
mod webhooks;
