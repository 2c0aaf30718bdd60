//! Rate-limit buckets in the database, so that several instances behind a
//! balancer share one budget per client. The GCRA step is one statement:
//! the upsert only moves the bucket forward when the request is allowed,
//! and it locks the row on PostgreSQL, so racing requests are all counted.

use crate::Store;
use crate::error::StoreError;
use sqlx::Row;

impl Store {
    /// Takes one request from bucket `key`, whose requests are `interval_us`
    /// apart on average with `tolerance_us` of burst. `Ok(None)` means
    /// allowed; `Ok(Some(us))` means refused, retry after `us`.
    pub async fn take_rate_token(
        &self,
        key: &str,
        now_us: i64,
        interval_us: i64,
        tolerance_us: i64,
    ) -> Result<Option<i64>, StoreError> {
        let allowed = sqlx::query(
            "INSERT INTO rate_buckets (key, tat) VALUES ($1, $2 + $3) \
             ON CONFLICT (key) DO UPDATE SET \
               tat = (CASE WHEN rate_buckets.tat > $2 THEN rate_buckets.tat ELSE $2 END) + $3 \
             WHERE (CASE WHEN rate_buckets.tat > $2 THEN rate_buckets.tat ELSE $2 END) + $3 - $2 <= $4 \
             RETURNING tat",
        )
        .bind(key)
        .bind(now_us)
        .bind(interval_us)
        .bind(tolerance_us)
        .fetch_optional(&self.pool)
        .await?;
        if allowed.is_some() {
            return Ok(None);
        }
        let tat: i64 = sqlx::query("SELECT tat FROM rate_buckets WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("tat"))
            .transpose()?
            .unwrap_or(now_us);
        Ok(Some((tat.max(now_us) + interval_us - now_us - tolerance_us).max(1)))
    }

    /// Forgets buckets that are back to full (their arrival time passed).
    pub async fn prune_rate_buckets(&self, now_us: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM rate_buckets WHERE tat < $1").bind(now_us).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
