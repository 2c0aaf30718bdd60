//! Registered passkeys and the state of WebAuthn ceremonies in flight.
//!
//! Both are opaque JSON made by webauthn-rs in the web crate; this module
//! only stores them. Ceremony state lives in the database, not in memory, so
//! a ceremony started on one instance can finish on another.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use sqlx::Row;

/// A stored passkey.
#[derive(Debug, Clone)]
pub struct PasskeyRow {
    pub id: String,
    pub account_id: String,
    /// The credential id, base64url.
    pub credential_id: String,
    /// webauthn-rs's serialized `Passkey`.
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

fn passkey_row(r: &sqlx::any::AnyRow) -> Result<PasskeyRow, sqlx::Error> {
    Ok(PasskeyRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        credential_id: r.try_get("credential_id")?,
        passkey: r.try_get("passkey")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

const COLUMNS: &str = "id, account_id, credential_id, passkey, created_at, last_used_at";

impl Store {
    pub async fn passkeys_of(&self, account_id: &str) -> Result<Vec<PasskeyRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE account_id = $1 ORDER BY created_at");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(passkey_row).collect::<Result<_, _>>()?)
    }

    pub async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<PasskeyRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(credential_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(passkey_row).transpose()?)
    }

    /// Saves ceremony state under the hash of a random challenge id.
    pub async fn insert_webauthn_challenge(
        &self,
        id_hash: &str,
        account_id: Option<&str>,
        purpose: &str,
        state: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let writer = self.lock_writer().await;
        sqlx::query(
            "INSERT INTO webauthn_challenges (id_hash, account_id, purpose, state, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(account_id)
        .bind(purpose)
        .bind(state)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        drop(writer);
        Ok(())
    }
}

impl WriteTx {
    /// Takes ceremony state out (each challenge answers once): the account
    /// it was started for and the state, if unexpired and for `purpose`.
    pub async fn take_webauthn_challenge(
        &mut self,
        id_hash: &str,
        purpose: &str,
    ) -> Result<Option<(Option<String>, String)>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM webauthn_challenges WHERE id_hash = $1 AND purpose = $2 AND expires_at > $3 \
             RETURNING account_id, state",
        )
        .bind(id_hash)
        .bind(purpose)
        .bind(self.now_ms)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("account_id")?, r.try_get("state")?)),
            None => None,
        })
    }

    pub async fn insert_passkey(&mut self, p: &PasskeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO passkeys (id, account_id, credential_id, passkey, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&p.id)
        .bind(&p.account_id)
        .bind(&p.credential_id)
        .bind(&p.passkey)
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Stores the passkey's updated state (signature counter) after use.
    pub async fn update_passkey(&mut self, id: &str, passkey: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3")
            .bind(passkey)
            .bind(self.now_ms)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn delete_passkey(&mut self, account_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
