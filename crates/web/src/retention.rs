//! The retention job: applies the `[privacy]` retention periods and
//! records, through the spine, how much it removed (never what).

use crate::state::AppState;
use crate::vault::data_subject;
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_store::{StoreError, retention::Removed};

const DAY_MS: i64 = 86_400_000;
/// Guest orders handled per run, so one run stays short.
const BATCH: i64 = 200;

/// One pass. Returns what it removed.
pub async fn apply(state: &AppState) -> Result<Removed, StoreError> {
    let p = &state.settings().privacy;
    let now = state.now_ms();
    // Keys first: from that moment the data is unreadable everywhere.
    let due = state.store().guest_orders_due(now - i64::from(p.guest_data_days) * DAY_MS, BATCH).await?;
    let mut subjects = Vec::new();
    for (id, _) in &due {
        let order = state.store().order(id).await?;
        let subject = data_subject(&order);
        state.vault().erase(&subject, now).await.map_err(|_| StoreError::Corrupt { what: "key store" })?;
        subjects.push((id.clone(), subject));
    }
    let mut tx = state.store().begin_write(now, "system", None).await?;
    let result = async {
        let mut removed = tx
            .remove_expired(
                now - i64::from(p.abandoned_cart_days) * DAY_MS,
                now - i64::from(p.security_event_days) * DAY_MS,
                now - 3_600_000,
            )
            .await?;
        for (id, subject) in &subjects {
            if tx.erase_order_personal_data(id, subject).await? {
                removed.guest_orders += 1;
            }
        }
        if removed.any() {
            let counts = serde_json::json!({
                "carts": removed.carts,
                "guest_orders": removed.guest_orders,
                "security_events": removed.security_events,
                "throttle_rows": removed.throttle_rows,
            });
            tx.append("retention_applied", vec!["retention".into()], counts).await?;
        }
        Ok::<_, StoreError>(removed)
    }
    .await;
    match result {
        Ok(removed) if removed.any() => {
            let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let event = SecurityEvent::new(EventKind::RetentionApplied, Actor::System)
                .with("carts", as_i64(removed.carts))
                .with("guest_orders", as_i64(removed.guest_orders))
                .with("security_events", as_i64(removed.security_events));
            tx.commit(event).await?;
            Ok(removed)
        }
        Ok(removed) => {
            tx.rollback().await?;
            Ok(removed)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}
