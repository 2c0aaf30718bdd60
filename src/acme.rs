//! Automatic certificates over ACME (RFC 8555) with HTTP-01 challenges,
//! through instant-acme. The store answers challenges on a plain-HTTP
//! listener (`[tls] acme_http_listen`, port 80 by default) that otherwise
//! only redirects the configured domains to HTTPS. The account key and the
//! certificate's private key are kept in `<data_dir>/acme/`, mode 0600.

use anyhow::{Context, Result, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `[tls]` says about ACME.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    pub directory_url: String,
    pub contact: Option<String>,
    /// A root CA for the directory's HTTPS (a private or test CA).
    pub ca_file: Option<PathBuf>,
    pub http_listen: std::net::SocketAddr,
    /// `<data_dir>/acme`.
    pub dir: PathBuf,
    /// Renew at the latest this long before the certificate ends (sooner
    /// for short-lived certificates: see [`renewal_due`]).
    pub renew_before: Duration,
}

impl AcmeSettings {
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn account_file(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// Whether there is no usable certificate yet, or it is due for
    /// renewal.
    pub fn due(&self) -> bool {
        match std::fs::read(self.cert_file()) {
            Ok(pem) => renewal_due(&pem, self.renew_before, SystemTime::now()),
            Err(_) => true,
        }
    }
}

/// Whether the certificate (the first of a PEM chain) is due for renewal
/// at `now`: once it has less than a third of its lifetime left, but no
/// later than `renew_before` before it ends. A 90-day certificate is renewed
/// 30 days before its end, as Let's Encrypt advises; a 6-day one 2 days
/// before, where a fixed age would let it lapse. One that cannot be read
/// is due: obtaining a new one is the way out.
pub fn renewal_due(pem: &[u8], renew_before: Duration, now: SystemTime) -> bool {
    let Some((not_before, not_after)) = validity(pem) else { return true };
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let margin = renew_before.min(lifetime / 3);
    not_after.checked_sub(margin).is_none_or(|due_at| now >= due_at)
}

/// The validity period of the first certificate in `pem`.
fn validity(pem: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let certificate = pem.parse_x509().ok()?;
    let at = |t: x509_parser::time::ASN1Time| {
        let seconds = u64::try_from(t.timestamp()).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    };
    let validity = certificate.validity();
    Some((at(validity.not_before)?, at(validity.not_after)?))
}

/// Challenge tokens being answered: token → key authorization.
#[derive(Clone, Default)]
pub struct Challenges(Arc<Mutex<HashMap<String, String>>>);

impl Challenges {
    fn set(&self, token: &str, key_authorization: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(token.into(), key_authorization.into());
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(token).cloned()
    }
}

/// The plain-HTTP listener: challenge answers, and redirects to HTTPS for
/// the configured domains only (no open redirect through the Host header).
pub fn http_app(challenges: Challenges, domains: Vec<String>) -> axum::Router {
    async fn answer(State(state): State<(Challenges, Arc<Vec<String>>)>, Path(token): Path<String>) -> Response {
        match state.0.get(&token) {
            Some(key_authorization) => key_authorization.into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    async fn redirect(State(state): State<(Challenges, Arc<Vec<String>>)>, headers: HeaderMap, uri: Uri) -> Response {
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
        let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host).to_ascii_lowercase();
        match state.1.iter().find(|d| **d == name) {
            Some(domain) => {
                let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                Redirect::permanent(&format!("https://{domain}{path}")).into_response()
            }
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    axum::Router::new()
        .route("/.well-known/acme-challenge/{token}", axum::routing::get(answer))
        .fallback(redirect)
        .with_state((challenges, Arc::new(domains)))
}

async fn account(settings: &AcmeSettings) -> Result<Account> {
    // The ACME client's TLS uses the process-wide provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let builder = || -> Result<instant_acme::AccountBuilder> {
        Ok(match &settings.ca_file {
            Some(ca) => Account::builder_with_root(ca).context("the ACME directory's CA file")?,
            None => Account::builder().context("the ACME HTTP client")?,
        })
    };
    if let Ok(saved) = std::fs::read(settings.account_file()) {
        let credentials: AccountCredentials = serde_json::from_slice(&saved).context("the saved ACME account")?;
        return builder()?.from_credentials(credentials).await.context("restoring the ACME account");
    }
    let contact = settings.contact.as_ref().map(|c| format!("mailto:{c}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder()?
        .create(&new, settings.directory_url.clone(), None)
        .await
        .with_context(|| format!("creating an ACME account at {}", settings.directory_url))?;
    crate::keyfile::write_new_secret(&settings.account_file(), serde_json::to_string(&credentials)?.as_bytes())?;
    Ok(account)
}

/// Orders a certificate for the configured domains, answers the HTTP-01
/// challenges, and writes the chain and key (0600).
pub async fn obtain(settings: &AcmeSettings, challenges: &Challenges) -> Result<()> {
    std::fs::create_dir_all(&settings.dir).with_context(|| format!("creating {}", settings.dir.display()))?;
    let account = account(settings).await?;
    let identifiers: Vec<Identifier> = settings.domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.context("placing the ACME order")?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.context("reading an ACME authorization")?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => bail!("ACME authorization is {other:?}"),
        }
        let mut challenge =
            authorization.challenge(ChallengeType::Http01).context("the ACME server offers no http-01 challenge")?;
        challenges.set(&challenge.token, challenge.key_authorization().as_str());
        challenge.set_ready().await.context("telling the ACME server the challenge is ready")?;
    }
    let status = order.poll_ready(&RetryPolicy::default()).await.context("waiting for the ACME order")?;
    if status != OrderStatus::Ready {
        challenges.clear();
        bail!("the ACME order ended {status:?}: is {} reachable on port 80 at these names?", settings.http_listen);
    }
    let key_pem = order.finalize().await.context("finalizing the ACME order")?;
    let chain_pem = order.poll_certificate(&RetryPolicy::default()).await.context("downloading the certificate")?;
    challenges.clear();
    // Key first: a crash between the two leaves a new key with the old
    // certificate, which fails to load and is obtained again.
    crate::keyfile::replace_secret(&settings.key_file(), key_pem.as_bytes())?;
    crate::keyfile::replace_secret(&settings.cert_file(), chain_pem.as_bytes())?;
    tracing::info!(target: "security", domains = ?settings.domains, "obtained a certificate over ACME");
    Ok(())
}

/// Checks twice a day and renews when due, then swaps the certificate into
/// the running server.
pub async fn renew_forever(
    settings: AcmeSettings,
    challenges: Challenges,
    config: axum_server::tls_rustls::RustlsConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(12 * 3600)) => {}
            _ = stop.changed() => return,
        }
        if !settings.due() {
            continue;
        }
        match obtain(&settings, &challenges).await {
            Ok(()) => {
                if let Err(e) = config.reload_from_pem_file(settings.cert_file(), settings.key_file()).await {
                    tracing::error!(target: "security", error = %e, "renewed certificate could not be loaded");
                }
            }
            Err(e) => tracing::error!(target: "security", error = %format!("{e:#}"), "certificate renewal failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    /// A self-signed certificate valid from `from` for `days` days, as PEM.
    fn certificate(from: (i32, u8, u8), days: u64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["shop.example".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = params.not_before + DAY * u32::try_from(days).expect("days");
        params.self_signed(&key).expect("certificate").pem().into_bytes()
    }

    fn day(n: u64) -> SystemTime {
        // 2026-01-01T00:00:00Z plus n days.
        UNIX_EPOCH + Duration::from_secs(1_767_225_600) + DAY * u32::try_from(n).expect("days")
    }

    #[test]
    fn a_ninety_day_certificate_is_renewed_thirty_days_before_it_ends() {
        let pem = certificate((2026, 1, 1), 90);
        assert!(!renewal_due(&pem, DAY * 30, day(0)));
        assert!(!renewal_due(&pem, DAY * 30, day(59)));
        assert!(renewal_due(&pem, DAY * 30, day(60)));
        assert!(renewal_due(&pem, DAY * 30, day(120)), "an expired one too");
        // A shorter margin from the configuration holds.
        assert!(!renewal_due(&pem, DAY * 10, day(79)));
        assert!(renewal_due(&pem, DAY * 10, day(80)));
    }

    #[test]
    fn a_short_lived_certificate_is_renewed_with_a_third_of_its_life_left() {
        // Six days: a fixed 30 days would mean renewing at every check, and
        // the old rule (renew when older than 30 days) let it lapse.
        let pem = certificate((2026, 1, 1), 6);
        assert!(!renewal_due(&pem, DAY * 30, day(3)));
        assert!(renewal_due(&pem, DAY * 30, day(4)));
    }

    #[test]
    fn what_is_not_a_certificate_is_due() {
        assert!(renewal_due(b"", DAY * 30, day(0)));
        assert!(renewal_due(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", DAY * 30, day(0)));
    }
}
