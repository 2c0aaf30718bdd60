//! Sessions, API tokens and one-time email tokens: bearer secrets stored
//! only as SHA-256, looked up by that hash.
//!
//! Creating and revoking them goes through the spine (the caller appends the
//! ledger entry); touching a session's last-seen time does not, since it
//! changes nothing anyone could later dispute.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Safe to show and to address the session by (not the secret).
    pub public_id: String,
    pub account_id: String,
    /// `second_factor`, `enroll` or `full`.
    pub stage: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_timeout_ms: i64,
    pub expires_at: i64,
    pub second_factor_at: Option<i64>,
}

impl SessionRow {
    /// Still usable at `now`: neither idle too long nor past its absolute end.
    pub fn live_at(&self, now: i64) -> bool {
        now < self.expires_at && now - self.last_seen_at < self.idle_timeout_ms
    }
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: String,
    pub public_id: String,
    pub account_id: String,
    pub stage: String,
    pub idle_timeout_ms: i64,
    pub expires_at: i64,
    pub second_factor_at: Option<i64>,
}

/// An API token as stored (never the token itself).
#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
}

/// An API token to create.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub token_hash: String,
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

fn session_row(r: &AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        public_id: r.try_get("public_id")?,
        account_id: r.try_get("account_id")?,
        stage: r.try_get("stage")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        idle_timeout_ms: r.try_get("idle_timeout_ms")?,
        expires_at: r.try_get("expires_at")?,
        second_factor_at: r.try_get("second_factor_at")?,
    })
}

fn token_row(r: &AnyRow) -> Result<ApiTokenRow, sqlx::Error> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiTokenRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        scopes: scopes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

const SESSION_COLUMNS: &str =
    "public_id, account_id, stage, created_at, last_seen_at, idle_timeout_ms, expires_at, second_factor_at";
const TOKEN_COLUMNS: &str = "id, account_id, name, scopes, created_at, expires_at, last_used_at";

impl Store {
    /// The session whose secret hashes to `id_hash`, live or not.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id_hash).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(session_row).transpose()?)
    }

    /// The account's sessions, newest first.
    pub async fn sessions_of(&self, account_id: &str) -> Result<Vec<SessionRow>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE account_id = $1 ORDER BY created_at DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(session_row).collect::<Result<_, _>>()?)
    }

    /// The session with this public id.
    pub async fn session_by_public_id(&self, public_id: &str) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE public_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(public_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(session_row).transpose()?)
    }

    /// Records activity on a session. Only written when the stored time is
    /// more than `granularity_ms` old, so busy sessions do not turn every
    /// read into a disk write.
    pub async fn touch_session(&self, id_hash: &str, now_ms: i64, granularity_ms: i64) -> Result<(), StoreError> {
        let writer = self.lock_writer().await;
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $3")
            .bind(now_ms)
            .bind(id_hash)
            .bind(now_ms - granularity_ms)
            .execute(&self.pool)
            .await?;
        drop(writer);
        Ok(())
    }

    /// The API token whose secret hashes to `token_hash`.
    pub async fn api_token(&self, token_hash: &str) -> Result<Option<ApiTokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(token_row).transpose()?)
    }

    /// The account's API tokens, newest first.
    pub async fn api_tokens_of(&self, account_id: &str) -> Result<Vec<ApiTokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE account_id = $1 ORDER BY created_at DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(token_row).collect::<Result<_, _>>()?)
    }

    /// Deletes sessions past their absolute end and spent or expired email
    /// tokens and WebAuthn challenges. Returns how many rows went.
    pub async fn purge_expired_credentials(&self, now_ms: i64) -> Result<u64, StoreError> {
        let writer = self.lock_writer().await;
        let mut removed = 0;
        for sql in [
            "DELETE FROM sessions WHERE expires_at < $1",
            "DELETE FROM email_tokens WHERE expires_at < $1",
            "DELETE FROM webauthn_challenges WHERE expires_at < $1",
        ] {
            removed += sqlx::query(sql).bind(now_ms).execute(&self.pool).await?.rows_affected();
        }
        drop(writer);
        Ok(removed)
    }
}

impl WriteTx {
    pub async fn insert_session(&mut self, s: &NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, public_id, account_id, stage, created_at, last_seen_at, \
             idle_timeout_ms, expires_at, second_factor_at) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)",
        )
        .bind(&s.id_hash)
        .bind(&s.public_id)
        .bind(&s.account_id)
        .bind(&s.stage)
        .bind(self.now_ms)
        .bind(s.idle_timeout_ms)
        .bind(s.expires_at)
        .bind(s.second_factor_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Deletes a session by its secret's hash; true if it existed.
    pub async fn delete_session(&mut self, id_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(&mut *self.tx).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a session of `account_id` by public id; true if it existed.
    pub async fn delete_session_by_public_id(&mut self, account_id: &str, public_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE public_id = $1 AND account_id = $2")
            .bind(public_id)
            .bind(account_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes every session of an account (password reset, role change,
    /// disabling), except `keep` if given. Returns how many went.
    pub async fn delete_sessions_of(&mut self, account_id: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id_hash <> $2")
            .bind(account_id)
            .bind(keep.unwrap_or(""))
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records a second factor used just now in a session (for step-up).
    pub async fn mark_second_factor(&mut self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET second_factor_at = $1, last_seen_at = $1 WHERE id_hash = $2")
            .bind(self.now_ms)
            .bind(id_hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn insert_api_token(&mut self, t: &NewApiToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, account_id, name, token_hash, scopes, created_at, expires_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&t.id)
        .bind(&t.account_id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.scopes.join(","))
        .bind(self.now_ms)
        .bind(t.expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Deletes an API token of `account_id`; true if it existed.
    pub async fn delete_api_token(&mut self, account_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes every API token of an account.
    pub async fn delete_api_tokens_of(&mut self, account_id: &str) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM api_tokens WHERE account_id = $1").bind(account_id).execute(&mut *self.tx).await?;
        Ok(done.rows_affected())
    }

    /// Stores a one-time email token (`verify_email` or `reset_password`).
    pub async fn insert_email_token(
        &mut self,
        token_hash: &str,
        account_id: &str,
        purpose: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, account_id, purpose, expires_at, used_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(token_hash)
        .bind(account_id)
        .bind(purpose)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Spends an email token: the account it belongs to, if it was unused,
    /// unexpired and for `purpose`. A second use finds nothing.
    pub async fn use_email_token(&mut self, token_hash: &str, purpose: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "UPDATE email_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 RETURNING account_id",
        )
        .bind(self.now_ms)
        .bind(token_hash)
        .bind(purpose)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| r.try_get("account_id")).transpose()?)
    }
}
