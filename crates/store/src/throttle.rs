//! Sign-in failure counters, shared by every instance through the database.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use sqlx::Row;
use storefort_auth::ThrottlePolicy;
use storefort_auth::throttle::Block;

impl Store {
    /// Until when `key` is blocked (unix ms), 0 when it is not.
    pub async fn throttle_blocked_until(&self, key: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT blocked_until FROM auth_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("blocked_until")).transpose()?.unwrap_or(0))
    }
}

impl WriteTx {
    /// Counts a failure for `key` under `policy` and returns the resulting
    /// block. The counter is bumped by one upsert, which also locks the row
    /// on PostgreSQL, so racing failures are all counted.
    pub async fn count_failure(&mut self, key: &str, policy: &ThrottlePolicy) -> Result<Block, StoreError> {
        let now = self.now_ms;
        let failures: i64 = sqlx::query(
            "INSERT INTO auth_throttle (key, failures, last_failure_at, blocked_until) VALUES ($1, 1, $2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN auth_throttle.last_failure_at < $3 THEN 1 ELSE auth_throttle.failures + 1 END, \
               last_failure_at = $2 \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(now - policy.window_ms)
        .fetch_one(&mut *self.tx)
        .await?
        .try_get("failures")?;
        let block = policy.after_failure(failures, now);
        if block.until > 0 {
            sqlx::query("UPDATE auth_throttle SET blocked_until = $1 WHERE key = $2 AND blocked_until < $1")
                .bind(block.until)
                .bind(key)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(block)
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub async fn clear_failures(&mut self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM auth_throttle WHERE key = $1").bind(key).execute(&mut *self.tx).await?;
        Ok(())
    }
}
