//! HTTPS with rustls from certificate files (`[tls] cert_file` and
//! `key_file`, PEM). The certificate chain and key are read at start; a
//! file that is missing, unreadable or not PEM stops the start with a
//! message naming it, never a silent fall-back to plain HTTP.

use anyhow::{Context, Result};
use axum_server::tls_rustls::RustlsConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Reads the certificate chain and key.
pub async fn load(cert_file: &Path, key_file: &Path) -> Result<RustlsConfig> {
    // One crypto provider for the whole process (reqwest and lettre use
    // aws-lc-rs too); a second install attempt is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    RustlsConfig::from_pem_file(cert_file, key_file).await.with_context(|| {
        format!("cannot load the TLS certificate {} and key {}", cert_file.display(), key_file.display())
    })
}

/// Serves `app` over TLS on `listener` until `stop` fires, then drains
/// in-flight requests for up to 30 s.
pub async fn serve(
    listener: std::net::TcpListener,
    config: RustlsConfig,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let handle = axum_server::Handle::<SocketAddr>::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        stop.await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(30)));
    });
    listener.set_nonblocking(true)?;
    axum_server::from_tcp_rustls(listener, config)?
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await?;
    Ok(())
}
