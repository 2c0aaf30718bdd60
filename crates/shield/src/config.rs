//! The shield's settings, as read from the `[shield]` section of the
//! config file. Every default is the secure one: blocking on, paranoia 1,
//! rate limits and load shedding on.

use crate::net::Cidr;
use crate::score::{DEFAULT_THRESHOLD, Paranoia};
use serde::Deserialize;

/// What the firewall does with a request whose score reaches the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No inspection at all (rate limits and shedding still apply).
    Off,
    /// Inspect, record and let through: for tuning a new installation.
    Detect,
    /// Inspect and refuse with 403.
    Block,
}

/// What the shield does with a body larger than it inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversized {
    Refuse,
    InspectPrefix,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShieldConfig {
    pub mode: Mode,
    pub paranoia: Paranoia,
    /// Anomaly score at which a request is blocked (5 = one critical finding).
    pub threshold: u32,
    /// Largest body read for inspection.
    pub max_inspected_body_bytes: usize,
    /// What happens to a larger body: `refuse` (413; the default of
    /// `serve`, whose own limit is no larger) or `inspect_prefix` (the
    /// default of `proxy`: the first `max_inspected_body_bytes` are
    /// inspected and the rest streams through, for uploads).
    pub oversized_bodies: Option<Oversized>,
    /// Peers whose X-Forwarded-For is believed (a load balancer, a CDN).
    pub trusted_proxies: Vec<Cidr>,
    /// Clients never blocked by the firewall, limits or bans (monitoring).
    pub allow: Vec<Cidr>,
    /// Clients always refused.
    pub deny: Vec<Cidr>,
    pub ban: BanConfig,
    pub limits: LimitsConfig,
    pub shedding: SheddingConfig,
    /// False positives fixed without turning the firewall off.
    pub exclusions: Vec<Exclusion>,
}

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig {
            mode: Mode::Block,
            paranoia: 1,
            threshold: DEFAULT_THRESHOLD,
            max_inspected_body_bytes: 1024 * 1024,
            oversized_bodies: None,
            trusted_proxies: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            ban: BanConfig::default(),
            limits: LimitsConfig::default(),
            shedding: SheddingConfig::default(),
            exclusions: Vec::new(),
        }
    }
}

/// A temporary ban after repeated firewall blocks from one client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanConfig {
    /// Blocks within `window_seconds` that earn a ban; 0 disables bans.
    pub after_blocks: u32,
    pub window_seconds: u64,
    pub ban_seconds: u64,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig { after_blocks: 10, window_seconds: 600, ban_seconds: 900 }
    }
}

/// A rate: `per_minute` on average, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_minute: u32, burst: u32) -> Rate {
        Rate { per_minute, burst }
    }
}

/// Limits per client IP for all requests, and per IP and per credential
/// (session cookie or bearer token) for each sensitive route class.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub enabled: bool,
    /// Every request from one IP.
    pub per_ip: Rate,
    /// Every request made with one credential.
    pub per_account: Rate,
    pub sign_in: Rate,
    pub checkout: Rate,
    pub search: Rate,
    pub coupon: Rate,
    pub api_tokens: Rate,
    /// Which requests belong to which class. The defaults name Storefort's
    /// routes; in proxy mode, name the upstream store's.
    pub routes: Vec<RouteRule>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: true,
            // Generous: a shop page pulls a few dozen assets, and many
            // shoppers can share one carrier-grade NAT address.
            per_ip: Rate::new(1200, 300),
            per_account: Rate::new(600, 120),
            sign_in: Rate::new(10, 10),
            checkout: Rate::new(20, 10),
            search: Rate::new(120, 40),
            coupon: Rate::new(10, 5),
            api_tokens: Rate::new(5, 5),
            routes: RouteRule::storefort_defaults(),
        }
    }
}

impl LimitsConfig {
    pub fn rate(&self, class: RouteClass) -> Rate {
        match class {
            RouteClass::SignIn => self.sign_in,
            RouteClass::Checkout => self.checkout,
            RouteClass::Search => self.search,
            RouteClass::Coupon => self.coupon,
            RouteClass::ApiTokens => self.api_tokens,
        }
    }

    /// The class of a request, if one of the rules names it.
    pub fn classify(&self, method: &str, path: &str, query: &str) -> Option<RouteClass> {
        self.routes.iter().find(|r| r.matches(method, path, query)).map(|r| r.class)
    }
}

/// The sensitive route classes with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteClass {
    SignIn,
    Checkout,
    Search,
    Coupon,
    ApiTokens,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::SignIn => "sign_in",
            RouteClass::Checkout => "checkout",
            RouteClass::Search => "search",
            RouteClass::Coupon => "coupon",
            RouteClass::ApiTokens => "api_tokens",
        }
    }
}

/// Requests whose method is one of `methods` (any when empty), whose path
/// starts with `path_prefix`, and whose query has the argument `query_arg`
/// (when set; `name` or `name=value`) belong to `class`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    pub class: RouteClass,
    #[serde(default)]
    pub methods: Vec<String>,
    pub path_prefix: String,
    #[serde(default)]
    pub query_arg: Option<String>,
}

impl RouteRule {
    fn new(class: RouteClass, methods: &[&str], path_prefix: &str, query_arg: Option<&str>) -> RouteRule {
        RouteRule {
            class,
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            path_prefix: path_prefix.to_owned(),
            query_arg: query_arg.map(str::to_owned),
        }
    }

    /// Storefort's own sensitive routes.
    pub fn storefort_defaults() -> Vec<RouteRule> {
        use RouteClass::*;
        vec![
            RouteRule::new(SignIn, &["POST"], "/api/v1/auth/sign-in", None),
            RouteRule::new(SignIn, &["POST"], "/api/v1/auth/second-factor", None),
            RouteRule::new(SignIn, &["POST"], "/api/v1/auth/password-reset", None),
            RouteRule::new(SignIn, &["POST"], "/api/v1/auth/sign-up", None),
            RouteRule::new(SignIn, &["POST"], "/api/v1/auth/passkey/", None),
            RouteRule::new(SignIn, &["POST"], "/api/v1/auth/step-up", None),
            RouteRule::new(Checkout, &["POST"], "/api/v1/checkout", None),
            RouteRule::new(Coupon, &["POST"], "/api/v1/coupons", None),
            RouteRule::new(ApiTokens, &["POST"], "/api/v1/account/api-tokens", None),
            RouteRule::new(Search, &["GET"], "/api/v1/products", Some("q")),
            // WooCommerce and WordPress, for proxy mode (no such paths in
            // Storefort, so the rules cost nothing there).
            RouteRule::new(SignIn, &["POST"], "/wp-login.php", None),
            RouteRule::new(SignIn, &["POST"], "/xmlrpc.php", None),
            RouteRule::new(SignIn, &["POST"], "/my-account", None),
            RouteRule::new(Checkout, &["POST"], "/", Some("wc-ajax=checkout")),
            RouteRule::new(Checkout, &["POST"], "/checkout", None),
            RouteRule::new(Coupon, &["POST"], "/", Some("wc-ajax=apply_coupon")),
            RouteRule::new(Search, &["GET"], "/", Some("s")),
        ]
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
            && path.starts_with(&self.path_prefix)
            && self.query_arg.as_deref().is_none_or(|arg| {
                query.split('&').any(|pair| match arg.contains('=') {
                    true => pair == arg,
                    false => pair.split('=').next().is_some_and(|name| name == arg),
                })
            })
    }
}

/// Bounded concurrency with a bounded queue in front of the application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SheddingConfig {
    pub enabled: bool,
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// Share of `max_in_flight` kept for priority routes (checkout,
    /// payment webhooks), in percent: browsing can never take it.
    pub priority_reserve_percent: u8,
    /// Requests waiting for a slot; past this, 503 at once.
    pub max_queue: usize,
    /// Longest a request waits in the queue before a 503.
    pub queue_timeout_ms: u64,
    /// Path prefixes that keep priority when overloaded.
    pub priority_paths: Vec<String>,
}

impl Default for SheddingConfig {
    fn default() -> Self {
        SheddingConfig {
            enabled: true,
            max_in_flight: 256,
            priority_reserve_percent: 25,
            max_queue: 512,
            queue_timeout_ms: 2000,
            priority_paths: vec!["/api/v1/checkout".into(), "/api/v1/webhooks/".into()],
        }
    }
}

/// Findings to ignore: for requests whose path starts with `path_prefix`,
/// in the field named `field` (as events name it: `query:q`, `body:note`,
/// `header:user-agent`, `cookie:theme`; any field when unset), of the
/// rule families listed (all when empty).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub path_prefix: String,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub families: Vec<u16>,
}

impl Exclusion {
    pub fn covers(&self, path: &str, field_label: &str, family: u16) -> bool {
        path.starts_with(&self.path_prefix)
            && self.field.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(field_label))
            && (self.families.is_empty() || self.families.contains(&family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_block_and_classify_storefort_routes() {
        let c = ShieldConfig::default();
        assert_eq!(c.mode, Mode::Block);
        assert_eq!(c.limits.classify("POST", "/api/v1/auth/sign-in", ""), Some(RouteClass::SignIn));
        assert_eq!(c.limits.classify("GET", "/api/v1/auth/sign-in", ""), None);
        assert_eq!(c.limits.classify("GET", "/api/v1/products", "q=shoe&page=2"), Some(RouteClass::Search));
        assert_eq!(c.limits.classify("GET", "/api/v1/products", "qq=shoe"), None);
        assert_eq!(c.limits.classify("POST", "/", "wc-ajax=checkout"), Some(RouteClass::Checkout));
        assert_eq!(c.limits.classify("POST", "/", "wc-ajax=get_refreshed_fragments"), None);
    }

    #[test]
    fn a_config_section_reads_with_cidrs_rules_and_exclusions() {
        let text = r#"
            mode = "detect"
            trusted_proxies = ["10.0.0.0/8", "::1"]
            [limits]
            sign_in = { per_minute = 5, burst = 2 }
            routes = [{ class = "sign_in", methods = ["POST"], path_prefix = "/wp-login.php" }]
            [[exclusions]]
            path_prefix = "/api/v1/products"
            field = "query:q"
            families = [942]
        "#;
        let c: ShieldConfig = toml::from_str(text).expect("parse");
        assert_eq!(c.mode, Mode::Detect);
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.limits.classify("POST", "/wp-login.php", ""), Some(RouteClass::SignIn));
        assert!(c.exclusions[0].covers("/api/v1/products", "query:q", 942));
        assert!(!c.exclusions[0].covers("/api/v1/products", "query:q", 941));
        assert!(toml::from_str::<ShieldConfig>("modes = \"block\"").is_err(), "unknown keys are refused");
    }
}
