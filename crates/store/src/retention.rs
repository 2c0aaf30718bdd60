//! Retention: data kept no longer than its policy says. The store removes
//! what is due and records *how much* it removed, never what.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use sqlx::Row;

/// What one retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub carts: u64,
    pub guest_orders: u64,
    pub security_events: u64,
    pub throttle_rows: u64,
}

impl Removed {
    pub fn any(&self) -> bool {
        self.carts + self.guest_orders + self.security_events + self.throttle_rows > 0
    }
}

impl Store {
    /// Guest orders whose personal data is due for erasure: finished
    /// (fulfilled, refunded or cancelled) before `cutoff_ms` and not yet
    /// erased. Returns (order id, data key subject) pairs.
    pub async fn guest_orders_due(
        &self,
        cutoff_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, data_subject FROM orders WHERE customer_id IS NULL AND personal_key IS NOT NULL \
             AND status IN ('fulfilled', 'refunded', 'cancelled') AND updated_at < $1 ORDER BY updated_at LIMIT $2",
        )
        .bind(cutoff_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("data_subject")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

impl WriteTx {
    /// Deletes abandoned carts and old security events and throttle rows;
    /// returns the counts. (Guest orders are erased one by one by the
    /// caller, after their keys are destroyed.)
    pub async fn remove_expired(
        &mut self,
        cart_cutoff_ms: i64,
        event_cutoff_ms: i64,
        throttle_cutoff_ms: i64,
    ) -> Result<Removed, StoreError> {
        // cart_lines go with their cart (ON DELETE CASCADE).
        let carts = sqlx::query("DELETE FROM carts WHERE status = 'open' AND updated_at < $1")
            .bind(cart_cutoff_ms)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let security_events = sqlx::query("DELETE FROM security_events WHERE at < $1")
            .bind(event_cutoff_ms)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let throttle_rows = sqlx::query("DELETE FROM auth_throttle WHERE last_failure_at < $1 AND blocked_until < $2")
            .bind(throttle_cutoff_ms)
            .bind(self.now_ms)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok(Removed { carts, guest_orders: 0, security_events, throttle_rows })
    }
}
