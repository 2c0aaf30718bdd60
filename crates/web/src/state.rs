//! What every handler shares: the store, the settings, the clock and the key.

use crate::cache::ResponseCache;
use crate::clock::Clock;
use crate::ledger::LedgerSigner;
use crate::secrets::ServerKey;
use std::sync::Arc;
use std::time::Duration;
use storefort_core::{CartLimits, Currency, ShippingTable, TaxTable};
use storefort_store::Store;

/// The store's business settings, validated at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub store_name: String,
    /// The one currency the store sells in.
    pub currency: Currency,
    pub shipping: ShippingTable,
    pub tax: TaxTable,
    pub cart_limits: CartLimits,
    /// How long an unpaid order holds its stock.
    pub order_expiry: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may run before it is answered 503.
    pub request_timeout: Duration,
    /// How long catalog responses are served from memory; zero disables.
    pub catalog_cache_ttl: Duration,
}

impl Settings {
    /// Settings fit for tests and a first run: EUR, a few shipping zones.
    pub fn demo() -> Self {
        Settings {
            store_name: "Storefort Demo Store".into(),
            currency: Currency::parse("EUR").unwrap_or_else(|_| unreachable!("EUR is in the currency table")),
            shipping: ShippingTable {
                by_country: [("DE", 490), ("AT", 590), ("FR", 690), ("NL", 590)]
                    .into_iter()
                    .map(|(c, r)| (c.to_owned(), r))
                    .collect(),
                rest_of_world: Some(1490),
                free_from: Some(10_000),
            },
            tax: TaxTable {
                by_country: [("DE", 1900), ("AT", 2000), ("FR", 2000), ("NL", 2100)]
                    .into_iter()
                    .map(|(c, r)| (c.to_owned(), r))
                    .collect(),
                default_bp: 0,
            },
            cart_limits: CartLimits::default(),
            order_expiry: Duration::from_secs(30 * 60),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            catalog_cache_ttl: Duration::from_secs(1),
        }
    }
}

/// Shared application state. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    settings: Settings,
    clock: Arc<dyn Clock>,
    key: ServerKey,
    catalog_cache: ResponseCache,
    ledger: Arc<LedgerSigner>,
}

impl AppState {
    pub fn new(
        store: Store,
        settings: Settings,
        clock: Arc<dyn Clock>,
        key: ServerKey,
        ledger: Arc<LedgerSigner>,
    ) -> Self {
        let catalog_cache = ResponseCache::new(settings.catalog_cache_ttl);
        AppState(Arc::new(Inner { store, settings, clock, key, catalog_cache, ledger }))
    }

    /// The ledger's signing side.
    pub fn ledger(&self) -> &Arc<LedgerSigner> {
        &self.0.ledger
    }

    /// The injected clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.0.clock.clone()
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn now_ms(&self) -> i64 {
        self.0.clock.now_ms()
    }

    pub fn key(&self) -> &ServerKey {
        &self.0.key
    }

    /// Serialized catalog responses (see [`ResponseCache`]).
    pub fn catalog_cache(&self) -> &ResponseCache {
        &self.0.catalog_cache
    }
}
