//! The one typed configuration: defaults, then `storefort.toml`, then
//! `STOREFORT_*` environment variables, then command-line flags.
//!
//! Every key is documented in `docs/configuration.md`. Unknown keys are
//! errors that name the key, so a typo never silently leaves a default in
//! place. The defaults are the secure ones and a first run needs no file.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use storefort_core::{CartLimits, CountryCode, Currency, ShippingTable, TaxTable};
use storefort_web::Settings;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where the SQLite database and the server key live.
    pub data_dir: PathBuf,
    /// Empty for SQLite in `data_dir`, or `postgres://…`.
    pub database_url: String,
    /// `human` or `json`.
    pub log_format: String,
    pub store: StoreSection,
    pub shipping: ShippingSection,
    pub tax: TaxSection,
    pub jobs: JobsSection,
    pub ledger: LedgerSection,
    pub auth: AuthSection,
    pub mail: MailSection,
    pub vault: VaultSection,
    pub privacy: PrivacySection,
    /// The firewall, rate limits and load shedding (see docs/configuration.md).
    pub shield: storefort_shield::ShieldConfig,
    pub tls: TlsSection,
    pub payments: PaymentsSection,
    pub webhooks: WebhooksSection,
    /// Order risk scoring (see docs/configuration.md).
    pub risk: storefort_pay::RiskPolicy,
}

/// A secret read from the config file or environment: never printed.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "[redacted]" })
    }
}

/// Outgoing webhooks to integrations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// Allow endpoints on private, loopback and link-local addresses (and
    /// plain http there), for an integration inside your own network.
    pub allow_private_targets: bool,
    /// Per delivery attempt.
    pub timeout_seconds: u64,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        WebhooksSection { allow_private_targets: false, timeout_seconds: 10 }
    }
}

/// How the store takes money.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsSection {
    /// `stripe` or `manual`; empty: Stripe when a secret key is set, else manual.
    pub gateway: String,
    /// Better set as STOREFORT_STRIPE_SECRET_KEY, or kept in a 0600 file.
    pub stripe_secret_key: SecretString,
    pub stripe_secret_key_file: String,
    /// The webhook endpoint's signing secret(s), comma-separated while
    /// rotating. Better set as STOREFORT_STRIPE_WEBHOOK_SECRET.
    pub stripe_webhook_secret: SecretString,
    pub stripe_webhook_secret_file: String,
    /// Stripe's API; STOREFORT_STRIPE_API_BASE. Must be https except on loopback.
    pub stripe_api_base: String,
    /// How old a signed webhook may be, either way.
    pub webhook_tolerance_seconds: i64,
    /// Shown to customers paying by bank transfer or on delivery.
    pub manual_instructions: String,
    /// Payment pages open this long are checked with the gateway.
    pub reconcile_after_minutes: u64,
}

impl Default for PaymentsSection {
    fn default() -> Self {
        let demo = storefort_web::payments::PaymentSettings::demo();
        PaymentsSection {
            gateway: String::new(),
            stripe_secret_key: SecretString::default(),
            stripe_secret_key_file: String::new(),
            stripe_webhook_secret: SecretString::default(),
            stripe_webhook_secret_file: String::new(),
            stripe_api_base: storefort_pay::stripe::DEFAULT_API_BASE.into(),
            webhook_tolerance_seconds: demo.webhook_tolerance_secs,
            manual_instructions: demo.manual_instructions,
            reconcile_after_minutes: 10,
        }
    }
}

/// HTTPS: certificate files for rustls, certificates over ACME, or a
/// TLS-terminating proxy in front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain; with `key_file`, `serve` speaks HTTPS only.
    pub cert_file: String,
    /// PEM private key (keep it 0600).
    pub key_file: String,
    /// A proxy in front terminates TLS: send HSTS anyway.
    pub behind_https_proxy: bool,
    /// Names to get a certificate for over ACME; empty: no ACME.
    pub acme_domains: Vec<String>,
    pub acme_directory_url: String,
    /// An email address the CA may write to about the certificates.
    pub acme_contact: String,
    /// A root CA for the ACME directory's own HTTPS (private or test CAs).
    pub acme_ca_file: String,
    /// Where HTTP-01 challenges are answered (and HTTP redirected to HTTPS).
    pub acme_http_listen: String,
    /// Renew certificates this many days before they end (or sooner, for
    /// short-lived ones).
    pub acme_renew_days: u64,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert_file: String::new(),
            key_file: String::new(),
            behind_https_proxy: false,
            acme_domains: Vec::new(),
            acme_directory_url: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_contact: String::new(),
            acme_ca_file: String::new(),
            acme_http_listen: "0.0.0.0:80".into(),
            acme_renew_days: 30,
        }
    }
}

/// Privacy: who to contact, who else receives data, and how long data is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySection {
    /// Where people write about their data (shown in the privacy policy).
    pub contact_email: String,
    /// Outside services receiving personal data, e.g. "Stripe (payments)".
    pub processors: Vec<String>,
    /// Carts not checked out are deleted after this many days.
    pub abandoned_cart_days: u32,
    /// A guest order's personal data is erased this many days after it was
    /// fulfilled, refunded or cancelled (amounts stay for accounting).
    pub guest_data_days: u32,
    /// Security events are deleted after this many days.
    pub security_event_days: u32,
    /// How long you keep request logs (the store writes them to standard
    /// error and keeps none); stated in the record of processing.
    pub request_log_days: u32,
}

impl Default for PrivacySection {
    fn default() -> Self {
        PrivacySection {
            contact_email: String::new(),
            processors: Vec::new(),
            abandoned_cart_days: 30,
            guest_data_days: 365,
            security_event_days: 365,
            request_log_days: 90,
        }
    }
}

/// Where personal-data keys live.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSection {
    /// The key store's database: empty for `<data_dir>/keys.db` (SQLite),
    /// or `postgres://…` for a database *other than* the store's, so that a
    /// restored copy of the store's database never brings back a destroyed
    /// key. Required when `database_url` is PostgreSQL.
    pub key_store_url: String,
    /// File holding the master key (64 hex characters, mode 0600), created
    /// at first start; empty: `<data_dir>/master.key`. STOREFORT_MASTER_KEY
    /// or `master_key_command` take its place.
    pub master_key_file: String,
    /// A command whose output is the master key (for a KMS or a secrets
    /// manager); empty: none.
    pub master_key_command: String,
}

/// Sign-in, sessions and step-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// The URL shoppers and staff use (`https://shop.example`): the only
    /// Origin accepted on cookie-authenticated writes and the passkey
    /// origin. Empty: `http://localhost:<listen port>`.
    pub public_url: String,
    pub staff_idle_minutes: u64,
    pub staff_absolute_hours: u64,
    pub customer_idle_hours: u64,
    pub customer_absolute_days: u64,
    /// A second factor used this recently allows sensitive actions.
    pub step_up_minutes: u64,
    /// Price changes by more than this percentage need step-up.
    pub price_step_up_percent: u32,
    /// Longest lifetime of an API token.
    pub api_token_max_days: u32,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            public_url: String::new(),
            staff_idle_minutes: 30,
            staff_absolute_hours: 12,
            customer_idle_hours: 7 * 24,
            customer_absolute_days: 30,
            step_up_minutes: 5,
            price_step_up_percent: 20,
            api_token_max_days: 365,
        }
    }
}

/// Outgoing mail (verification and reset links, invitations).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSection {
    /// SMTP relay host; empty: mail is written to `outbox_dir` instead.
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_username: String,
    /// Better set as STOREFORT_MAIL__SMTP_PASSWORD than in the file.
    pub smtp_password: SecretString,
    pub from: String,
    /// `starttls` (required upgrade, port 587), `tls` (port 465), or `none`
    /// (only for a relay on loopback).
    pub smtp_tls: String,
    /// Empty: `<data_dir>/outbox`.
    pub outbox_dir: String,
}

impl Default for MailSection {
    fn default() -> Self {
        MailSection {
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_username: String::new(),
            smtp_password: SecretString::default(),
            from: "Storefort <no-reply@localhost>".into(),
            smtp_tls: "starttls".into(),
            outbox_dir: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// Name of the log in checkpoints; empty: `storefort.local/<random>`,
    /// chosen at first start and kept.
    pub origin: String,
    /// Sign a checkpoint at least this often while entries arrive.
    pub checkpoint_interval_seconds: u64,
    /// ... or as soon as this many entries arrived since the last one.
    pub checkpoint_every_entries: u64,
    /// Directory that receives a copy of every checkpoint; empty:
    /// `<data_dir>/witness`. Put it on storage the database host cannot
    /// rewrite for the strongest guarantee.
    pub witness_dir: String,
    /// Hours between full verifications of the ledger while serving.
    pub full_verify_hours: u64,
    /// An HTTP witness (`storefort witness serve` on another machine) that
    /// receives every checkpoint; empty: none.
    pub witness_url: String,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            origin: String::new(),
            checkpoint_interval_seconds: 10,
            checkpoint_every_entries: 1000,
            witness_dir: String::new(),
            full_verify_hours: 24,
            witness_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub name: String,
    /// ISO 4217 code of the currency the store sells in.
    pub currency: String,
    /// Minutes an unpaid order holds its stock.
    pub order_expiry_minutes: u64,
    pub max_body_bytes: usize,
    pub request_timeout_seconds: u64,
    pub max_cart_lines: usize,
    pub max_quantity_per_line: u32,
    /// Most database connections per instance.
    pub max_db_connections: u32,
    /// Milliseconds catalog responses are served from memory; 0 disables.
    pub catalog_cache_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShippingSection {
    /// Flat rate in minor units by ISO 3166 country code.
    pub rates: BTreeMap<String, i64>,
    /// Rate for countries not listed.
    pub rest_of_world: Option<i64>,
    /// Refuse destinations not in `rates`, whatever `rest_of_world` says.
    pub only_listed_countries: bool,
    /// Subtotal (minor units) from which shipping is free.
    pub free_from: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaxSection {
    /// Tax rate in basis points (1900 = 19%) by country code.
    pub rates: BTreeMap<String, u32>,
    /// Rate for countries not listed.
    pub default_bp: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    /// Seconds between sweeps for expired unpaid orders.
    pub expiry_interval_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        let demo = Settings::demo();
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./storefort-data"),
            database_url: String::new(),
            log_format: "human".into(),
            store: StoreSection::default(),
            shipping: ShippingSection {
                rates: demo.shipping.by_country,
                rest_of_world: demo.shipping.rest_of_world,
                only_listed_countries: false,
                free_from: None,
            },
            tax: TaxSection { rates: demo.tax.by_country, default_bp: demo.tax.default_bp },
            jobs: JobsSection::default(),
            auth: AuthSection::default(),
            mail: MailSection::default(),
            vault: VaultSection::default(),
            privacy: PrivacySection::default(),
            ledger: LedgerSection::default(),
            shield: storefort_shield::ShieldConfig::default(),
            tls: TlsSection::default(),
            payments: PaymentsSection::default(),
            webhooks: WebhooksSection::default(),
            risk: storefort_pay::RiskPolicy::default(),
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        let limits = CartLimits::default();
        StoreSection {
            name: "Storefort Demo Store".into(),
            currency: "EUR".into(),
            order_expiry_minutes: 30,
            max_body_bytes: 1024 * 1024,
            request_timeout_seconds: 30,
            max_cart_lines: limits.max_lines,
            max_quantity_per_line: limits.max_quantity,
            max_db_connections: 16,
            catalog_cache_ms: 1000,
        }
    }
}

impl Default for ShippingSection {
    fn default() -> Self {
        Config::default().shipping
    }
}

impl Default for TaxSection {
    fn default() -> Self {
        Config::default().tax
    }
}

impl Default for JobsSection {
    fn default() -> Self {
        JobsSection { expiry_interval_seconds: 30 }
    }
}

/// Environment variables under the STOREFORT_ prefix that are not config keys.
const NOT_CONFIG: &[&str] =
    &["STOREFORT_LOG", "STOREFORT_SERVER_KEY", "STOREFORT_LEDGER_KEY", "STOREFORT_MASTER_KEY", "STOREFORT_CONFIG"];

/// The names Stripe's own documentation leads people to expect, as aliases
/// of `payments.*` keys.
const STRIPE_ENV: &[(&str, &str)] = &[
    ("STOREFORT_STRIPE_SECRET_KEY", "stripe_secret_key"),
    ("STOREFORT_STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret"),
    ("STOREFORT_STRIPE_API_BASE", "stripe_api_base"),
];

/// Turns `STOREFORT_STORE__CURRENCY` into `["store", "currency"]`.
fn env_key(name: &str) -> Option<Vec<String>> {
    if let Some((_, key)) = STRIPE_ENV.iter().find(|(env, _)| *env == name) {
        return Some(vec!["payments".into(), (*key).into()]);
    }
    let rest = name.strip_prefix("STOREFORT_")?;
    if NOT_CONFIG.contains(&name) || rest.starts_with("TEST_") {
        return None;
    }
    Some(rest.split("__").map(str::to_ascii_lowercase).collect())
}

/// Parses an environment value as a TOML value where it is one (numbers),
/// and as a string otherwise.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_str())
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<()> {
    match path {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => bail!("`{first}` is not a section"),
            }
        }
    }
}

/// Flag values that override file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
}

/// Reads the file (if any) and the environment into one config.
pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>, flags: &Overrides) -> Result<Config> {
    let default_file = Path::new("storefort.toml");
    let mut table = match file {
        Some(path) => read_table(path)?,
        None if default_file.exists() => read_table(default_file)?,
        None => toml::Table::new(),
    };
    let mut env: Vec<_> = env.collect();
    env.sort();
    for (name, raw) in env {
        if let Some(path) = env_key(&name) {
            set_path(&mut table, &path, env_value(&raw)).with_context(|| format!("environment variable {name}"))?;
        }
    }
    let flag_values = [
        ("listen", flags.listen.clone()),
        ("data_dir", flags.data_dir.as_ref().map(|p| p.display().to_string())),
        ("database_url", flags.database_url.clone()),
        ("log_format", flags.log_format.clone()),
    ];
    for (key, value) in flag_values {
        if let Some(v) = value {
            table.insert(key.into(), toml::Value::String(v));
        }
    }
    let config: Config = Config::deserialize(table).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(config)
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.parse::<toml::Table>().map_err(|e| anyhow::anyhow!("{} is not valid TOML: {e}", path.display()))
}

fn key_error(key: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid configuration: `{key}` {message}")
}

impl Config {
    /// The listen address, checked.
    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|_| key_error("listen", "must be an address such as 127.0.0.1:8080"))
    }

    /// The witness directory.
    pub fn witness_dir(&self) -> PathBuf {
        if self.ledger.witness_dir.is_empty() {
            self.data_dir.join("witness")
        } else {
            PathBuf::from(&self.ledger.witness_dir)
        }
    }

    /// The configured origin, if any.
    pub fn ledger_origin(&self) -> Option<&str> {
        (!self.ledger.origin.is_empty()).then_some(self.ledger.origin.as_str())
    }

    /// The database URL, defaulting to SQLite in the data dir.
    pub fn database_url(&self) -> Result<String> {
        if self.database_url.is_empty() {
            let path = self.data_dir.join("storefort.db");
            return Ok(format!("sqlite://{}?mode=rwc", path.display()));
        }
        if self.database_url.starts_with("postgres://") || self.database_url.starts_with("postgresql://") {
            return Ok(self.database_url.clone());
        }
        Err(key_error("database_url", "must be empty (SQLite in data_dir) or start with postgres://"))
    }

    /// Checks every value and builds the store's business settings.
    pub fn settings(&self) -> Result<Settings> {
        self.listen_addr()?;
        self.database_url()?;
        if !matches!(self.log_format.as_str(), "human" | "json") {
            return Err(key_error("log_format", "must be `human` or `json`"));
        }
        let s = &self.store;
        let currency = Currency::parse(&s.currency)
            .map_err(|_| key_error("store.currency", "must be an ISO 4217 code such as EUR"))?;
        let name = storefort_core::text::clean(&s.name, 100).map_err(|e| key_error("store.name", e))?;
        if !(1..=24 * 60).contains(&s.order_expiry_minutes) {
            return Err(key_error("store.order_expiry_minutes", "must be 1 to 1440"));
        }
        if !(1024..=16 * 1024 * 1024).contains(&s.max_body_bytes) {
            return Err(key_error("store.max_body_bytes", "must be 1024 to 16777216"));
        }
        if !(1..=300).contains(&s.request_timeout_seconds) {
            return Err(key_error("store.request_timeout_seconds", "must be 1 to 300"));
        }
        if !(1..=500).contains(&s.max_cart_lines) {
            return Err(key_error("store.max_cart_lines", "must be 1 to 500"));
        }
        if !(1..=10_000).contains(&s.max_quantity_per_line) {
            return Err(key_error("store.max_quantity_per_line", "must be 1 to 10000"));
        }
        if !(1..=200).contains(&s.max_db_connections) {
            return Err(key_error("store.max_db_connections", "must be 1 to 200"));
        }
        if !(1..=3600).contains(&self.ledger.checkpoint_interval_seconds) {
            return Err(key_error("ledger.checkpoint_interval_seconds", "must be 1 to 3600"));
        }
        let url = &self.ledger.witness_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(key_error("ledger.witness_url", "must start with http:// or https://"));
        }
        if !(1..=24 * 30).contains(&self.ledger.full_verify_hours) {
            return Err(key_error("ledger.full_verify_hours", "must be 1 to 720"));
        }
        if !(1..=1_000_000).contains(&self.ledger.checkpoint_every_entries) {
            return Err(key_error("ledger.checkpoint_every_entries", "must be 1 to 1000000"));
        }
        if !self.ledger.origin.is_empty()
            && (self.ledger.origin.len() > 200
                || self.ledger.origin.contains(|c: char| c == '+' || c.is_whitespace() || c.is_control()))
        {
            return Err(key_error("ledger.origin", "must be up to 200 characters without spaces or '+'"));
        }
        if s.catalog_cache_ms > 60_000 {
            return Err(key_error("store.catalog_cache_ms", "must be 0 to 60000"));
        }
        if !(1..=3600).contains(&self.jobs.expiry_interval_seconds) {
            return Err(key_error("jobs.expiry_interval_seconds", "must be 1 to 3600"));
        }
        for (country, rate) in &self.shipping.rates {
            CountryCode::parse(country).map_err(|e| key_error(&format!("shipping.rates.{country}"), e))?;
            check_amount(&format!("shipping.rates.{country}"), *rate)?;
        }
        if let Some(r) = self.shipping.rest_of_world {
            check_amount("shipping.rest_of_world", r)?;
        }
        if let Some(r) = self.shipping.free_from {
            check_amount("shipping.free_from", r)?;
        }
        for (country, bp) in &self.tax.rates {
            CountryCode::parse(country).map_err(|e| key_error(&format!("tax.rates.{country}"), e))?;
            check_rate(&format!("tax.rates.{country}"), *bp)?;
        }
        check_rate("tax.default_bp", self.tax.default_bp)?;
        let auth = self.auth_settings()?;
        let privacy = self.privacy_settings()?;
        self.check_mail()?;
        self.key_store_url()?;
        Ok(Settings {
            auth,
            privacy,
            outbox_dir: self.outbox_dir(),
            shield: self.shield_settings()?,
            payments: self.payment_settings()?,
            webhooks: self.webhook_settings()?,
            https: self.tls_files()?.is_some() || self.acme()?.is_some() || self.tls.behind_https_proxy,
            store_name: name,
            currency,
            shipping: ShippingTable {
                by_country: self.shipping.rates.clone(),
                rest_of_world: if self.shipping.only_listed_countries { None } else { self.shipping.rest_of_world },
                free_from: self.shipping.free_from,
            },
            tax: TaxTable { by_country: self.tax.rates.clone(), default_bp: self.tax.default_bp },
            cart_limits: CartLimits { max_lines: s.max_cart_lines, max_quantity: s.max_quantity_per_line },
            order_expiry: Duration::from_secs(s.order_expiry_minutes * 60),
            max_body_bytes: s.max_body_bytes,
            request_timeout: Duration::from_secs(s.request_timeout_seconds),
            catalog_cache_ttl: Duration::from_millis(s.catalog_cache_ms),
        })
    }
}

impl Config {
    /// The public origin: configured, or localhost on the listen port.
    pub fn public_origin(&self) -> Result<String> {
        if self.auth.public_url.is_empty() {
            return Ok(format!("http://localhost:{}", self.listen_addr()?.port()));
        }
        let url = self.auth.public_url.trim_end_matches('/');
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('/') => Ok(url.to_owned()),
            _ => Err(key_error("auth.public_url", "must be an origin such as https://shop.example (no path)")),
        }
    }

    fn privacy_settings(&self) -> Result<storefort_web::routes::privacy_page::PrivacySettings> {
        let p = &self.privacy;
        for (key, days, max) in [
            ("privacy.abandoned_cart_days", p.abandoned_cart_days, 3650),
            ("privacy.guest_data_days", p.guest_data_days, 3650),
            ("privacy.security_event_days", p.security_event_days, 3650),
            ("privacy.request_log_days", p.request_log_days, 3650),
        ] {
            if !(1..=max).contains(&days) {
                return Err(key_error(key, format!("must be 1 to {max}")));
            }
        }
        let contact = if p.contact_email.is_empty() {
            String::new()
        } else {
            storefort_core::Email::parse(&p.contact_email)
                .map_err(|e| key_error("privacy.contact_email", e))?
                .as_str()
                .to_owned()
        };
        let mut processors = Vec::new();
        for (i, name) in p.processors.iter().enumerate() {
            processors.push(
                storefort_core::text::clean(name, 200)
                    .map_err(|e| key_error(&format!("privacy.processors[{i}]"), e))?,
            );
        }
        Ok(storefort_web::routes::privacy_page::PrivacySettings {
            contact_email: contact,
            processors,
            abandoned_cart_days: p.abandoned_cart_days,
            guest_data_days: p.guest_data_days,
            security_event_days: p.security_event_days,
            request_log_days: p.request_log_days,
        })
    }

    fn check_mail(&self) -> Result<()> {
        use storefort_web::identity::mailer::{SmtpTls, is_loopback};
        let tls = SmtpTls::parse(&self.mail.smtp_tls)
            .ok_or_else(|| key_error("mail.smtp_tls", "must be starttls, tls or none"))?;
        if !self.mail.smtp_host.is_empty() && tls == SmtpTls::LoopbackPlain && !is_loopback(&self.mail.smtp_host) {
            return Err(key_error("mail.smtp_tls", "may be none only for a loopback smtp_host"));
        }
        Ok(())
    }

    /// The key store's URL (see [`VaultSection::key_store_url`]).
    pub fn key_store_url(&self) -> Result<String> {
        let url = &self.vault.key_store_url;
        if url.is_empty() {
            if !self.database_url.is_empty() {
                return Err(key_error(
                    "vault.key_store_url",
                    "must be set (to another database than database_url) when the store runs on PostgreSQL",
                ));
            }
            return Ok(format!("sqlite://{}?mode=rwc", self.data_dir.join("keys.db").display()));
        }
        if url == &self.database_url {
            return Err(key_error("vault.key_store_url", "must not be the store's own database"));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:") {
            return Ok(url.clone());
        }
        Err(key_error("vault.key_store_url", "must be empty, sqlite:… or postgres://…"))
    }

    /// Where the master key comes from.
    pub fn master_key_source(&self) -> storefort_vault::KeySource {
        use storefort_vault::KeySource;
        if std::env::var_os("STOREFORT_MASTER_KEY").is_some() {
            KeySource::Env("STOREFORT_MASTER_KEY".into())
        } else if !self.vault.master_key_command.is_empty() {
            KeySource::Command(self.vault.master_key_command.clone())
        } else if !self.vault.master_key_file.is_empty() {
            KeySource::File(PathBuf::from(&self.vault.master_key_file))
        } else {
            KeySource::File(self.data_dir.join("master.key"))
        }
    }

    /// The certificate and key files, when HTTPS is configured; one
    /// without the other is a mistake worth stopping for.
    pub fn tls_files(&self) -> Result<Option<(PathBuf, PathBuf)>> {
        match (self.tls.cert_file.is_empty(), self.tls.key_file.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Ok(Some((PathBuf::from(&self.tls.cert_file), PathBuf::from(&self.tls.key_file)))),
            (true, false) => Err(key_error("tls.cert_file", "is needed with tls.key_file")),
            (false, true) => Err(key_error("tls.key_file", "is needed with tls.cert_file")),
        }
    }

    /// ACME settings, when `[tls] acme_domains` names any.
    pub fn acme(&self) -> Result<Option<crate::acme::AcmeSettings>> {
        let t = &self.tls;
        if t.acme_domains.is_empty() {
            return Ok(None);
        }
        if !t.cert_file.is_empty() || !t.key_file.is_empty() {
            return Err(key_error("tls.acme_domains", "cannot be used with tls.cert_file and tls.key_file"));
        }
        for d in &t.acme_domains {
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !d.starts_with(['.', '-']);
            if !ok {
                return Err(key_error("tls.acme_domains", format!("{d:?} is not a domain name")));
            }
        }
        if !t.acme_directory_url.starts_with("https://") {
            return Err(key_error("tls.acme_directory_url", "must be an https:// URL"));
        }
        if !(1..=365).contains(&t.acme_renew_days) {
            return Err(key_error("tls.acme_renew_days", "must be 1 to 365"));
        }
        let http_listen = t
            .acme_http_listen
            .parse()
            .map_err(|_| key_error("tls.acme_http_listen", "must be an address such as 0.0.0.0:80"))?;
        Ok(Some(crate::acme::AcmeSettings {
            domains: t.acme_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            directory_url: t.acme_directory_url.clone(),
            contact: (!t.acme_contact.is_empty()).then(|| t.acme_contact.clone()),
            ca_file: (!t.acme_ca_file.is_empty()).then(|| PathBuf::from(&t.acme_ca_file)),
            http_listen,
            dir: self.data_dir.join("acme"),
            renew_before: std::time::Duration::from_secs(t.acme_renew_days * 86_400),
        }))
    }

    fn webhook_settings(&self) -> Result<storefort_web::webhooks::WebhookSettings> {
        let w = &self.webhooks;
        if !(1..=60).contains(&w.timeout_seconds) {
            return Err(key_error("webhooks.timeout_seconds", "must be 1 to 60"));
        }
        Ok(storefort_web::webhooks::WebhookSettings {
            allow_private_targets: w.allow_private_targets,
            timeout: Duration::from_secs(w.timeout_seconds),
            ..storefort_web::webhooks::WebhookSettings::default()
        })
    }

    fn payment_settings(&self) -> Result<storefort_web::payments::PaymentSettings> {
        let p = &self.payments;
        let secret_key = secret_value("payments.stripe_secret_key", &p.stripe_secret_key, &p.stripe_secret_key_file)?;
        let webhook =
            secret_value("payments.stripe_webhook_secret", &p.stripe_webhook_secret, &p.stripe_webhook_secret_file)?;
        let use_stripe = match p.gateway.as_str() {
            "" => !secret_key.is_empty(),
            "stripe" => true,
            "manual" => false,
            _ => return Err(key_error("payments.gateway", "must be `stripe` or `manual`")),
        };
        let stripe = if use_stripe {
            // A publishable key (pk_) here would fail every call; say so now.
            if !(secret_key.starts_with("sk_") || secret_key.starts_with("rk_")) {
                return Err(key_error(
                    "payments.stripe_secret_key",
                    "must be a Stripe secret or restricted key (sk_… or rk_…; set STOREFORT_STRIPE_SECRET_KEY)",
                ));
            }
            check_api_base(&p.stripe_api_base)?;
            let mut config = storefort_pay::stripe::StripeConfig::new(zeroize::Zeroizing::new(secret_key.to_string()));
            config.api_base = p.stripe_api_base.trim_end_matches('/').to_owned();
            Some(config)
        } else {
            None
        };
        let secrets: Vec<zeroize::Zeroizing<String>> = webhook
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| zeroize::Zeroizing::new(w.to_owned()))
            .collect();
        if secrets.iter().any(|w| !w.starts_with("whsec_")) {
            return Err(key_error("payments.stripe_webhook_secret", "must be Stripe signing secrets (whsec_…)"));
        }
        if stripe.is_some() && secrets.is_empty() {
            return Err(key_error(
                "payments.stripe_webhook_secret",
                "is required with Stripe: orders become paid only on signed events (set STOREFORT_STRIPE_WEBHOOK_SECRET)",
            ));
        }
        if !(1..=3600).contains(&p.webhook_tolerance_seconds) {
            return Err(key_error("payments.webhook_tolerance_seconds", "must be 1 to 3600"));
        }
        if p.reconcile_after_minutes == 0 {
            return Err(key_error("payments.reconcile_after_minutes", "must be at least 1"));
        }
        self.risk.validate().map_err(|e| key_error("risk", e))?;
        // A configured database that cannot be read stops the start: the
        // owner asked for the country rule and would not notice it missing.
        let geoip = match self.risk.geoip_database.trim() {
            "" => None,
            path => Some(std::sync::Arc::new(
                storefort_pay::CountryDb::open(Path::new(path)).map_err(|e| key_error("risk.geoip_database", e))?,
            )),
        };
        Ok(storefort_web::payments::PaymentSettings {
            stripe,
            stripe_webhook_secrets: secrets,
            webhook_tolerance_secs: p.webhook_tolerance_seconds,
            manual_instructions: p.manual_instructions.clone(),
            risk: self.risk.clone(),
            geoip,
            reconcile_after: Duration::from_secs(p.reconcile_after_minutes * 60),
        })
    }

    fn shield_settings(&self) -> Result<storefort_shield::ShieldConfig> {
        let s = &self.shield;
        if !(1..=4).contains(&s.paranoia) {
            return Err(key_error("shield.paranoia", "must be 1 to 4"));
        }
        if s.threshold == 0 {
            return Err(key_error("shield.threshold", "must be at least 1"));
        }
        let l = &s.limits;
        for (name, rate) in [
            ("per_ip", l.per_ip),
            ("per_account", l.per_account),
            ("sign_in", l.sign_in),
            ("checkout", l.checkout),
            ("search", l.search),
            ("coupon", l.coupon),
            ("api_tokens", l.api_tokens),
        ] {
            if rate.per_minute == 0 || rate.burst == 0 {
                return Err(key_error(&format!("shield.limits.{name}"), "per_minute and burst must be at least 1"));
            }
        }
        if s.shedding.max_in_flight == 0 {
            return Err(key_error("shield.shedding.max_in_flight", "must be at least 1"));
        }
        Ok(s.clone())
    }

    pub fn outbox_dir(&self) -> PathBuf {
        if self.mail.outbox_dir.is_empty() {
            self.data_dir.join("outbox")
        } else {
            PathBuf::from(&self.mail.outbox_dir)
        }
    }

    fn auth_settings(&self) -> Result<storefort_web::identity::AuthSettings> {
        let a = &self.auth;
        let minutes = |key: &str, v: u64, max: u64| -> Result<Duration> {
            if (1..=max).contains(&v) {
                Ok(Duration::from_secs(v * 60))
            } else {
                Err(key_error(key, format!("must be 1 to {max}")))
            }
        };
        if !(1..=1000).contains(&a.price_step_up_percent) {
            return Err(key_error("auth.price_step_up_percent", "must be 1 to 1000"));
        }
        if !(1..=3650).contains(&a.api_token_max_days) {
            return Err(key_error("auth.api_token_max_days", "must be 1 to 3650"));
        }
        Ok(storefort_web::identity::AuthSettings {
            public_origin: self.public_origin()?,
            staff_idle: minutes("auth.staff_idle_minutes", a.staff_idle_minutes, 24 * 60)?,
            staff_absolute: minutes("auth.staff_absolute_hours", a.staff_absolute_hours, 7 * 24)? * 60,
            customer_idle: minutes("auth.customer_idle_hours", a.customer_idle_hours, 90 * 24)? * 60,
            customer_absolute: minutes("auth.customer_absolute_days", a.customer_absolute_days, 365)? * 60 * 24,
            step_up_window: minutes("auth.step_up_minutes", a.step_up_minutes, 60)?,
            price_step_up_percent: a.price_step_up_percent,
            email_token_ttl: Duration::from_secs(3600),
            api_token_max_days: a.api_token_max_days,
        })
    }
}

/// A secret given inline or in a file (not both), trimmed.
fn secret_value(key: &str, inline: &SecretString, file: &str) -> Result<zeroize::Zeroizing<String>> {
    match (inline.0.is_empty(), file.is_empty()) {
        (_, true) => Ok(zeroize::Zeroizing::new(inline.0.trim().to_owned())),
        (true, false) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| key_error(&format!("{key}_file"), format!("cannot be read: {e}")))?;
            Ok(zeroize::Zeroizing::new(text.trim().to_owned()))
        }
        (false, false) => Err(key_error(key, "is set both inline and as a file; keep one")),
    }
}

/// The gateway's API must be reached over TLS, except a test server on loopback.
fn check_api_base(base: &str) -> Result<()> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    let ok = base.starts_with("https://")
        || loopback
            .iter()
            .any(|l| base.strip_prefix(l).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/'])));
    if ok {
        Ok(())
    } else {
        Err(key_error("payments.stripe_api_base", "must be an https:// URL (http only on loopback)"))
    }
}

fn check_amount(key: &str, amount: i64) -> Result<()> {
    if (0..=100_000_000).contains(&amount) { Ok(()) } else { Err(key_error(key, "must be 0 to 100000000 minor units")) }
}

fn check_rate(key: &str, bp: u32) -> Result<()> {
    if bp <= 10_000 { Ok(()) } else { Err(key_error(key, "must be 0 to 10000 basis points")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml_text: &str, env: &[(&str, &str)]) -> Result<Config> {
        let dir = std::env::temp_dir().join(format!("storefort-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.toml", toml_text.len()));
        std::fs::write(&path, toml_text)?;
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        load(Some(&path), env, &Overrides::default())
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        assert!(c.settings().is_ok());
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert!(c.database_url().expect("url").starts_with("sqlite://"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load_str("lisen = \"0.0.0.0:1\"\n", &[]).expect_err("typo");
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = load_str("[store]\ncurrancy = \"EUR\"\n", &[]).expect_err("typo");
        assert!(e.to_string().contains("currancy"), "{e}");
        let e = load_str("", &[("STOREFORT_STORE__NAMEE", "x")]).expect_err("env typo");
        assert!(e.to_string().contains("namee"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = load_str("[store]\ncurrency = \"EURO\"\n", &[]).expect("parses");
        assert!(c.settings().expect_err("bad").to_string().contains("store.currency"));
        let c = load_str("[tax.rates]\nXX = 100\n", &[]).expect("parses");
        assert!(c.settings().expect_err("bad").to_string().contains("tax.rates.XX"));
        let c = load_str("[shipping]\nonly_listed_countries = true\n", &[]).expect("parses");
        let settings = c.settings().expect("valid");
        assert_eq!((settings.shipping.rest_of_world, settings.shipping.by_country.len()), (None, 4));
        let c = load_str("database_url = \"mysql://x\"\n", &[]).expect("parses");
        assert!(c.settings().expect_err("bad").to_string().contains("database_url"));
    }

    #[test]
    fn the_smtp_password_never_prints() {
        let file = "[mail]\nsmtp_host = \"smtp.example\"\nsmtp_password = \"file-secret-1\"\n";
        let config = load_str(file, &[]).expect("loads");
        assert_eq!(config.mail.smtp_password.0, "file-secret-1");
        assert!(!format!("{config:?}").contains("file-secret-1"));
        let config = load_str("", &[("STOREFORT_MAIL__SMTP_PASSWORD", "env-secret-2")]).expect("loads");
        assert_eq!(config.mail.smtp_password.0, "env-secret-2", "taken from its variable");
        assert!(!format!("{config:?}").contains("env-secret-2"));
    }

    #[test]
    fn stripe_comes_from_its_documented_variables_and_is_checked() {
        let stripe = [
            ("STOREFORT_STRIPE_SECRET_KEY", "sk_test_abc"),
            ("STOREFORT_STRIPE_WEBHOOK_SECRET", "whsec_one, whsec_two"),
            ("STOREFORT_STRIPE_API_BASE", "http://127.0.0.1:12111/"),
        ];
        let settings = load_str("", &stripe).expect("loads").settings().expect("valid");
        let p = &settings.payments;
        let config = p.stripe.as_ref().expect("stripe chosen by its key");
        assert_eq!((config.secret_key.as_str(), config.api_base.as_str()), ("sk_test_abc", "http://127.0.0.1:12111"));
        assert_eq!(p.stripe_webhook_secrets.len(), 2);
        assert!(!format!("{:?}", load_str("", &stripe).expect("loads")).contains("sk_test_abc"), "secrets never print");
        assert!(!format!("{p:?}").contains("whsec_one"));
        // No key: manual payment, and no webhook needed.
        assert!(load_str("", &[]).expect("loads").settings().expect("valid").payments.stripe.is_none());
        let refused = [
            (vec![("STOREFORT_STRIPE_SECRET_KEY", "pk_live_publishable")], "payments.stripe_secret_key"),
            (vec![("STOREFORT_STRIPE_SECRET_KEY", "sk_live_x")], "payments.stripe_webhook_secret"),
            (
                vec![
                    ("STOREFORT_STRIPE_SECRET_KEY", "sk_live_x"),
                    ("STOREFORT_STRIPE_WEBHOOK_SECRET", "whsec_x"),
                    ("STOREFORT_STRIPE_API_BASE", "http://api.stripe.evil"),
                ],
                "payments.stripe_api_base",
            ),
            (vec![("STOREFORT_PAYMENTS__GATEWAY", "paypal")], "payments.gateway"),
            (vec![("STOREFORT_RISK__BLOCK_SCORE", "10")], "risk"),
        ];
        for (env, key) in refused {
            let e = load_str("", &env).expect("loads").settings().expect_err("refused");
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn a_geoip_database_is_loaded_at_start_and_a_bad_one_stops_the_start() {
        use mmdb_writer::{Value, Writer};
        let dir = tempfile::tempdir().expect("dir");
        let good = dir.path().join("GeoLite2-Country.mmdb");
        let mut w = Writer::new("GeoLite2-Country");
        let record = Value::map([("country", Value::map([("iso_code", Value::from("GB"))]))]);
        w.insert_value("81.2.69.0/24".parse::<mmdb_writer::ipnet::IpNet>().expect("net"), record).expect("insert");
        std::fs::write(&good, w.to_bytes().expect("bytes")).expect("write");
        let env = [("STOREFORT_RISK__GEOIP_DATABASE", good.to_str().expect("utf-8"))];
        let settings = load_str("", &env).expect("loads").settings().expect("valid");
        let db = settings.payments.geoip.expect("loaded");
        assert_eq!(db.country("81.2.69.160".parse().expect("ip")).as_deref(), Some("GB"));
        assert!(load_str("", &[]).expect("loads").settings().expect("valid").payments.geoip.is_none());

        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"not a database").expect("write");
        for path in [junk, dir.path().join("missing.mmdb")] {
            let file = format!("[risk]\ngeoip_database = {:?}\n", path.to_str().expect("utf-8"));
            let e = load_str(&file, &[]).expect("loads").settings().expect_err("refused");
            assert!(e.to_string().contains("risk.geoip_database"), "{e}");
        }
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let c = load_str(
            "[store]\norder_expiry_minutes = 10\n",
            &[("STOREFORT_STORE__ORDER_EXPIRY_MINUTES", "15"), ("STOREFORT_TEST_POSTGRES_URL", "x")],
        )
        .expect("loads");
        assert_eq!(c.store.order_expiry_minutes, 15);
        let flags = Overrides { listen: Some("127.0.0.1:9999".into()), ..Default::default() };
        let env = [("STOREFORT_LISTEN".to_owned(), "127.0.0.1:1".to_owned())].into_iter();
        let c = load(Some(Path::new("/nonexistent-but-not-read")), env, &flags);
        assert!(c.is_err(), "a named file that does not exist is an error");
        let env = [("STOREFORT_LISTEN".to_owned(), "127.0.0.1:1".to_owned())].into_iter();
        let c = load(None, env, &flags).expect("loads");
        assert_eq!(c.listen, "127.0.0.1:9999");
    }
}
