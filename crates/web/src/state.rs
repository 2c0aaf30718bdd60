//! What every handler shares: the store, the settings, the clock and the key.

use crate::cache::ResponseCache;
use crate::clock::Clock;
use crate::hashing::HashingPool;
use crate::identity::AuthSettings;
use crate::identity::mailer::Mailer;
use crate::identity::passkey::Passkeys;
use crate::ledger::LedgerSigner;
use crate::secrets::ServerKey;
use crate::vault::Vault;
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
    pub auth: AuthSettings,
    pub privacy: crate::routes::privacy_page::PrivacySettings,
    /// Where mail goes when no SMTP relay is configured.
    pub outbox_dir: std::path::PathBuf,
    /// The firewall, rate limits and load shedding.
    pub shield: storefort_shield::ShieldConfig,
    /// Served over HTTPS (directly or behind a TLS proxy): send HSTS.
    pub https: bool,
    /// Gateways, webhook secrets and order risk scoring.
    pub payments: crate::payments::PaymentSettings,
    /// Outgoing webhooks to integrations.
    pub webhooks: crate::webhooks::WebhookSettings,
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
            auth: AuthSettings::demo(),
            privacy: crate::routes::privacy_page::PrivacySettings::demo(),
            outbox_dir: "./storefort-data/outbox".into(),
            shield: storefort_shield::ShieldConfig::default(),
            https: false,
            payments: crate::payments::PaymentSettings::demo(),
            webhooks: crate::webhooks::WebhookSettings::default(),
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
    hashing: HashingPool,
    mailer: Mailer,
    passkeys: Option<Passkeys>,
    vault: Arc<Vault>,
    gateways: crate::payments::Gateways,
    event_sampler: crate::sampler::EventSampler,
}

impl AppState {
    pub fn new(
        store: Store,
        settings: Settings,
        clock: Arc<dyn Clock>,
        key: ServerKey,
        ledger: Arc<LedgerSigner>,
        vault: Arc<Vault>,
    ) -> Self {
        let mailer = Mailer::Outbox(settings.outbox_dir.clone());
        Self::with_mailer(store, settings, clock, key, ledger, vault, mailer)
    }

    /// As [`AppState::new`], with mail going through `mailer`.
    pub fn with_mailer(
        store: Store,
        settings: Settings,
        clock: Arc<dyn Clock>,
        key: ServerKey,
        ledger: Arc<LedgerSigner>,
        vault: Arc<Vault>,
        mailer: Mailer,
    ) -> Self {
        let catalog_cache = ResponseCache::new(settings.catalog_cache_ttl);
        let hashing = HashingPool::for_sign_ins(storefort_auth::PasswordHasher::owasp());
        let passkeys = match Passkeys::new(&settings.auth.public_origin, &settings.store_name) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "passkeys are unavailable");
                None
            }
        };
        let gateways = crate::payments::Gateways::from_settings(&settings.payments).unwrap_or_else(|e| {
            // Building a reqwest client only fails without a TLS backend,
            // which this binary always has; fall back to manual payment.
            tracing::error!(error = %e, "the payment gateway is unavailable; taking manual payment");
            let manual = crate::payments::PaymentSettings { stripe: None, ..settings.payments.clone() };
            crate::payments::Gateways::from_settings(&manual).unwrap_or_else(|_| unreachable!())
        });
        AppState(Arc::new(Inner {
            store,
            settings,
            clock,
            key,
            catalog_cache,
            ledger,
            hashing,
            mailer,
            passkeys,
            vault,
            gateways,
            event_sampler: crate::sampler::EventSampler::default(),
        }))
    }

    /// Password hashing, off the async workers.
    pub fn hashing(&self) -> &HashingPool {
        &self.0.hashing
    }

    /// Shared by everything that records refusals, so floods stay cheap.
    pub fn event_sampler(&self) -> &crate::sampler::EventSampler {
        &self.0.event_sampler
    }

    /// Records a refusal's `event`, naming the client (`ClientIp`'s text),
    /// unless that client had an event of this kind in the last minute.
    pub async fn record_refusal(&self, client_ip: &str, event: storefort_core::SecurityEvent) {
        let now = self.now_ms();
        let client = client_ip.parse().unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if !self.event_sampler().first_in_a_while(client, event.kind, now) {
            return;
        }
        let event = event.with("client_ip", client_ip.to_owned());
        if let Err(e) = self.store().record_event(&event, now).await {
            tracing::warn!(error = %e, "could not record security event");
        }
    }

    /// The payment gateways.
    pub fn gateways(&self) -> &crate::payments::Gateways {
        &self.0.gateways
    }

    /// Keys for personal data.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.0.vault
    }

    pub fn mailer(&self) -> &Mailer {
        &self.0.mailer
    }

    /// The WebAuthn relying party, if the public URL allows one.
    pub fn passkeys(&self) -> Option<&Passkeys> {
        self.0.passkeys.as_ref()
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
