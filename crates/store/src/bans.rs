//! The shield's bans in the database, so that a client banned by one
//! instance is refused by every instance on the same PostgreSQL.

use crate::Store;
use crate::error::StoreError;
use sqlx::Row;

impl Store {
    /// Records a ban of the client whose keyed address hash is
    /// `client_key` until `until_ms` (unix ms), keeping a later end already
    /// recorded, and forgets bans that are over.
    pub async fn record_ban(&self, client_key: &str, until_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO shield_bans (client_key, until_ms) VALUES ($1, $2) \
             ON CONFLICT (client_key) DO UPDATE SET until_ms = \
               CASE WHEN shield_bans.until_ms > $2 THEN shield_bans.until_ms ELSE $2 END",
        )
        .bind(client_key)
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM shield_bans WHERE until_ms <= $1").bind(now_ms).execute(&self.pool).await?;
        Ok(())
    }

    /// Every ban in force at `now_ms`: the client's key and when the ban
    /// ends.
    pub async fn bans_in_force(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT client_key, until_ms FROM shield_bans WHERE until_ms > $1")
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("client_key")?, r.try_get("until_ms")?))).collect()
    }
}
