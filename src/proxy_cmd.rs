//! `storefort proxy`: the shield in front of another store (a WooCommerce
//! site, say). No database: limits and bans live in memory, refusals and
//! findings go to the log.

use crate::config::Config;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use storefort_shield::proxy::{LogObserver, PlainResponder, Upstream};

pub async fn proxy(cfg: Config, listen: &str, upstream: &str) -> Result<()> {
    crate::serve::init_logging(&cfg.log_format);
    let mut shield = cfg.settings()?.shield;
    // Uploads to the store behind the proxy may be large: inspect their
    // first part and stream the rest, unless the owner chose otherwise.
    shield.oversized_bodies.get_or_insert(storefort_shield::config::Oversized::InspectPrefix);
    let upstream = Upstream::new(upstream, shield.trusted_proxies.clone(), Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("--upstream: {e}"))?;
    let limiter = Arc::new(storefort_shield::limit::MemoryLimiter::default());
    let state = storefort_shield::ShieldState::new(
        shield,
        limiter,
        Arc::new(LogObserver),
        Arc::new(PlainResponder),
        // Cookies that carry a signed-in shopper on common shop software.
        vec!["__Host-storefort_session".into()],
    );
    let app =
        storefort_shield::proxy::app(upstream, state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let addr: std::net::SocketAddr =
        listen.parse().with_context(|| format!("--listen {listen:?} is not an address"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(address = %addr, "storefort proxy listening on http://{addr}");
    axum::serve(listener, app).with_graceful_shutdown(crate::serve::shutdown_signal()).await?;
    Ok(())
}
