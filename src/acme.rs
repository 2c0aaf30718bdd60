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
use std::time::Duration;

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
    /// Renew when the certificate is older than this.
    pub renew_after: Duration,
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

    /// Whether there is no certificate yet, or it is due for renewal.
    pub fn due(&self) -> bool {
        match std::fs::metadata(self.cert_file()).and_then(|m| m.modified()) {
            Ok(written) => written.elapsed().map(|age| age >= self.renew_after).unwrap_or(true),
            Err(_) => true,
        }
    }
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
