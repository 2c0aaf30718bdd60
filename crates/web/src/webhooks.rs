//! Delivering outgoing webhooks: each queued event is POSTed to its
//! endpoint, signed like Stripe's (`Storefort-Signature: t=…,v1=…`, HMAC-
//! SHA256 over `"<t>.<body>"` with the endpoint's secret), and retried with
//! backoff until it is acknowledged with a 2xx or runs out of attempts.
//!
//! Endpoints are integrations an admin registered, but a URL is still a way
//! to make the store send requests: every attempt resolves the host and
//! refuses private, loopback and link-local addresses (cloud metadata
//! lives there), then connects to the address it checked, so DNS cannot be
//! switched between the check and the connection.

use crate::state::AppState;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_store::{AttemptOutcome, DeliveryRow};

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Allow endpoints on private and loopback addresses, and plain http
    /// there: for an integration on the same machine or network (and tests).
    pub allow_private_targets: bool,
    /// Per attempt.
    pub timeout: Duration,
    /// Waits between attempts; after the last, the delivery has failed.
    pub backoff: Vec<Duration>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        WebhookSettings {
            allow_private_targets: false,
            timeout: Duration::from_secs(10),
            // About a day in all, as payment gateways do.
            backoff: vec![minutes(1), minutes(5), minutes(30), minutes(120), minutes(360), minutes(720)],
        }
    }
}

/// True for addresses anyone on the internet could reach.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || (s[0] == 0x2001 && s[1] == 0xdb8))
        }
    }
}

/// Why an endpoint URL is refused, in words for the admin.
pub fn check_url(url: &str, settings: &WebhookSettings) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL".to_owned())?;
    if url.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials; the signature authenticates the store".into());
    }
    let host = parsed.host_str().ok_or("has no host")?;
    match parsed.scheme() {
        "https" => {}
        "http" if settings.allow_private_targets => {}
        _ => return Err("must be https".into()),
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
        && !is_public(ip)
        && !settings.allow_private_targets
    {
        return Err("points at a private, loopback or link-local address".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    Ok(parsed)
}

/// Resolves the endpoint's host to one allowed address.
async fn resolve(url: &reqwest::Url, settings: &WebhookSettings) -> Result<SocketAddr, String> {
    let host = url.host_str().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().ok_or("no port")?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| "the host does not resolve".to_owned())?
        .collect();
    // Every address must be allowed: a name that also resolves to a private
    // address is refused rather than raced.
    if !settings.allow_private_targets && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err("the host resolves to a private, loopback or link-local address".into());
    }
    addrs.first().copied().ok_or_else(|| "the host does not resolve".into())
}

/// One attempt at one delivery; the outcome to record.
async fn attempt(state: &AppState, delivery: &DeliveryRow) -> (AttemptOutcome, bool) {
    let settings = &state.settings().webhooks;
    let now = state.now_ms();
    let retry_or_fail = |status: Option<i64>, error: String| {
        let attempts = usize::try_from(delivery.attempts).unwrap_or(usize::MAX);
        match settings.backoff.get(attempts) {
            Some(wait) => (
                AttemptOutcome::Retry {
                    status,
                    error,
                    next_attempt_at: now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2),
                },
                false,
            ),
            None => (AttemptOutcome::Failed { status, error }, true),
        }
    };
    let endpoint = match state.store().webhook_endpoint(&delivery.endpoint_id).await {
        Ok(Some(e)) if e.status == "active" => e,
        Ok(_) => return (AttemptOutcome::Failed { status: None, error: "endpoint disabled".into() }, false),
        Err(e) => return retry_or_fail(None, format!("store: {e}")),
    };
    let secret = match state.key().open("webhook-secret", &endpoint.id, &endpoint.secret_sealed) {
        Ok(s) => s,
        Err(_) => {
            return (
                AttemptOutcome::Failed { status: None, error: "the endpoint secret cannot be opened".into() },
                true,
            );
        }
    };
    let url = match check_url(&endpoint.url, settings) {
        Ok(u) => u,
        Err(e) => return (AttemptOutcome::Failed { status: None, error: format!("refused: the URL {e}") }, true),
    };
    let addr = match resolve(&url, settings).await {
        Ok(a) => a,
        Err(e) => return retry_or_fail(None, format!("refused: {e}")),
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .build()
    {
        Ok(c) => c,
        Err(e) => return retry_or_fail(None, format!("client: {e}")),
    };
    let signature = storefort_pay::signature::sign(delivery.payload.as_bytes(), &secret, now / 1000);
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Storefort-Webhooks/1")
        .header("storefort-signature", signature)
        .header("storefort-event-id", delivery.event_id.as_str())
        .body(delivery.payload.clone())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            (AttemptOutcome::Delivered { status: i64::from(r.status().as_u16()) }, false)
        }
        Ok(r) => retry_or_fail(Some(i64::from(r.status().as_u16())), format!("answered {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => retry_or_fail(None, "timed out".into()),
        Err(_) => retry_or_fail(None, "could not connect".into()),
    }
}

/// Sends every due delivery once. Returns how many were attempted.
pub async fn deliver_once(state: &AppState) -> Result<usize, storefort_store::StoreError> {
    let lease = i64::try_from(state.settings().webhooks.timeout.as_millis()).unwrap_or(10_000) * 3;
    let due = state.store().claim_due_deliveries(state.now_ms(), lease, 20).await?;
    let count = due.len();
    // Concurrently, so one slow endpoint does not hold up the others.
    let results = futures_util::future::join_all(due.iter().map(|d| attempt(state, d))).await;
    for (delivery, (outcome, gave_up)) in due.iter().zip(results) {
        state.store().record_delivery_attempt(&delivery.id, state.now_ms(), &outcome).await?;
        if gave_up {
            let event = SecurityEvent::new(EventKind::WebhookDeliveryFailed, Actor::System)
                .target(delivery.endpoint_id.clone())
                .with("event_type", delivery.event_type.clone())
                .with("attempts", delivery.attempts + 1);
            state.store().record_event(&event, state.now_ms()).await?;
        }
    }
    Ok(count)
}

/// Delivers due webhooks every `every` until `shutdown` changes.
pub async fn run(state: AppState, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = deliver_once(&state).await {
                    tracing::warn!(error = %e, "webhook delivery failed; will retry");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "1.1.1.1"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn endpoint_urls_must_be_https_public_and_without_credentials() {
        let strict = WebhookSettings::default();
        assert!(check_url("https://hooks.example.com/storefort", &strict).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://user:pw@hooks.example.com/",
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1:8080/",
            "https://[::1]/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(check_url(bad, &strict).is_err(), "{bad}");
        }
        let local = WebhookSettings { allow_private_targets: true, ..WebhookSettings::default() };
        assert!(check_url("http://127.0.0.1:9000/hook", &local).is_ok());
    }
}
