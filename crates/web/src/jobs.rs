//! Scheduled work: releasing the stock of unpaid orders that expired, and
//! reconciling payments and refunds with the gateway.
//!
//! Safe to run on several instances at once: each cancellation is a
//! conditional update, so an order is expired exactly once.

use crate::routes::admin::change_order_status;
use crate::state::AppState;
use std::time::Duration;
use storefort_core::{Actor, OrderStatus};
use storefort_store::StoreError;
use tokio::sync::watch;

/// Cancels every unpaid order past its deadline, releasing its stock.
/// Returns how many were cancelled.
pub async fn expire_orders_once(state: &AppState) -> Result<usize, StoreError> {
    let mut cancelled = 0;
    loop {
        let ids = state.store().expired_order_ids(state.now_ms(), 100).await?;
        if ids.is_empty() {
            return Ok(cancelled);
        }
        let batch = ids.len();
        for id in ids {
            match change_order_status(state, &id, OrderStatus::Cancelled, Actor::System, None).await {
                Ok(()) => cancelled += 1,
                // Paid or cancelled meanwhile (here or on another instance).
                Err(StoreError::Transition(_) | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if batch < 100 {
            return Ok(cancelled);
        }
    }
}

/// How long an Idempotency-Key is remembered (as Stripe does).
pub const IDEMPOTENCY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// How long the hashed origins of orders and payment attempts are kept for
/// risk scoring (its windows are an hour; 30 days covers slow abuse).
pub const RISK_ORIGIN_RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// One sweep of the housekeeping jobs.
async fn sweep(state: &AppState) {
    match expire_orders_once(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(cancelled = n, "expired unpaid orders"),
        Err(e) => tracing::warn!(error = %e, "order expiry failed; will retry"),
    }
    match state.store().purge_idempotency_keys(state.now_ms() - IDEMPOTENCY_RETENTION_MS).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "forgot old idempotency keys"),
        Err(e) => tracing::warn!(error = %e, "idempotency key purge failed; will retry"),
    }
    match state.store().purge_risk_origins(state.now_ms() - RISK_ORIGIN_RETENTION_MS).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(changed = n, "forgot old risk origin hashes"),
        Err(e) => tracing::warn!(error = %e, "risk origin purge failed; will retry"),
    }
    match state.store().purge_webhook_deliveries(state.now_ms() - RISK_ORIGIN_RETENTION_MS).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "forgot old webhook deliveries"),
        Err(e) => tracing::warn!(error = %e, "webhook delivery purge failed; will retry"),
    }
    match crate::payments::reconcile_once(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(changed = n, "reconciled payments and refunds with the gateway"),
        Err(e) => tracing::warn!(error = ?e, "payment reconciliation failed; will retry"),
    }
    match state.store().purge_expired_credentials(state.now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed expired sessions, links and passkey challenges"),
        Err(e) => tracing::warn!(error = %e, "credential purge failed; will retry"),
    }
}

/// Runs the housekeeping jobs every `every` until `shutdown` changes.
pub async fn run_expiry(state: AppState, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                sweep(&state).await;
                // Retention runs hourly: its periods are days.
                if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                    last_retention = Some(tokio::time::Instant::now());
                    match crate::retention::apply(&state).await {
                        Ok(r) if r.any() => tracing::info!(carts = r.carts, guest_orders = r.guest_orders,
                            security_events = r.security_events, "retention applied"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "retention failed; will retry"),
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
