//! Accounts and their second factors: the rows behind sign-in.
//!
//! Role, status and password changes append a ledger entry and point the row
//! at it (`ledger_hash`), so an owner account slipped into the database, a
//! role raised by hand or a password hash swapped for a known one is named by
//! `storefort ledger verify`. The ledger records ids, roles and a hash of the
//! password hash, never an email address.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An account as stored.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub id: String,
    /// Encrypted under the account's data key (field `email`).
    pub email: String,
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    pub password_hash: String,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
    /// A confirmed TOTP credential exists.
    pub has_totp: bool,
    /// Registered passkeys.
    pub passkeys: i64,
    /// Why the account's data must be kept despite erasure requests.
    pub legal_hold: Option<String>,
    /// An erasure asked for while a legal hold was in place.
    pub erasure_requested_at: Option<i64>,
}

impl AccountRow {
    /// A second factor (TOTP or passkey) is set up.
    pub fn has_second_factor(&self) -> bool {
        self.has_totp || self.passkeys > 0
    }
}

/// An account to create.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: String,
    /// Already encrypted by the caller (the store never sees plaintext).
    pub email: String,
    pub email_index: String,
    pub role: String,
    pub password_hash: String,
    pub email_verified: bool,
}

/// A TOTP credential as stored.
#[derive(Debug, Clone)]
pub struct TotpRow {
    /// The secret as the web layer sealed it (encrypted; opaque here).
    pub secret: String,
    pub confirmed: bool,
    pub last_step: Option<u64>,
}

/// What the ledger says about a password hash: its SHA-256, so the entry
/// proves which hash was set without holding anything a cracker could use
/// more easily than the row itself.
pub fn credential_commitment(password_hash: &str) -> String {
    crate::hash_secret(password_hash)
}

const ACCOUNT_COLUMNS: &str = "a.id, a.email, a.role, a.status, a.password_hash, a.email_verified_at, a.created_at, \
     a.legal_hold, a.erasure_requested_at, \
     (SELECT COUNT(*) FROM totp_credentials t WHERE t.account_id = a.id AND t.confirmed_at IS NOT NULL) AS totp, \
     (SELECT COUNT(*) FROM passkeys p WHERE p.account_id = a.id) AS passkeys";

fn account_row(r: &AnyRow) -> Result<AccountRow, sqlx::Error> {
    Ok(AccountRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        status: r.try_get("status")?,
        password_hash: r.try_get("password_hash")?,
        email_verified_at: r.try_get("email_verified_at")?,
        created_at: r.try_get("created_at")?,
        has_totp: r.try_get::<i64, _>("totp")? > 0,
        passkeys: r.try_get("passkeys")?,
        legal_hold: r.try_get("legal_hold")?,
        erasure_requested_at: r.try_get("erasure_requested_at")?,
    })
}

impl Store {
    /// The account whose email hashes to `email_index`.
    pub async fn account_by_email_index(&self, email_index: &str) -> Result<Option<AccountRow>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.email_index = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(email_index).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(account_row).transpose()?)
    }

    pub async fn account(&self, id: &str) -> Result<Option<AccountRow>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(account_row).transpose()?)
    }

    /// Every account that is not a customer, oldest first.
    pub async fn staff_accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.role <> 'customer' ORDER BY a.created_at, a.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(account_row).collect::<Result<_, _>>()?)
    }

    /// The account's TOTP credential, confirmed or pending.
    pub async fn totp(&self, account_id: &str) -> Result<Option<TotpRow>, StoreError> {
        let row = sqlx::query("SELECT secret, confirmed_at, last_step FROM totp_credentials WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let last_step: i64 = r.try_get("last_step")?;
        Ok(Some(TotpRow {
            secret: r.try_get("secret")?,
            confirmed: r.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
            last_step: u64::try_from(last_step).ok(),
        }))
    }

    /// How many unused recovery codes the account has left.
    pub async fn recovery_codes_left(&self, account_id: &str) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }
}

impl WriteTx {
    /// Creates an account and records it in the ledger.
    pub async fn insert_account(&mut self, a: &NewAccount) -> Result<(), StoreError> {
        let appended = self
            .append(
                "account_created",
                vec![a.id.clone()],
                json!({
                    "role": a.role,
                    "status": "active",
                    "credential_sha256": credential_commitment(&a.password_hash),
                    "email_verified": a.email_verified,
                }),
            )
            .await?;
        sqlx::query(
            "INSERT INTO accounts (id, email_index, email, role, status, password_hash, email_verified_at, \
             created_at, updated_at, ledger_hash) VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $7, $8)",
        )
        .bind(&a.id)
        .bind(&a.email_index)
        .bind(&a.email)
        .bind(&a.role)
        .bind(&a.password_hash)
        .bind(a.email_verified.then_some(self.now_ms))
        .bind(self.now_ms)
        .bind(appended.leaf_hex())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Changes an account's role; returns the old one.
    pub async fn set_account_role(&mut self, id: &str, role: &str) -> Result<String, StoreError> {
        let old = self.locked_account_field(id, "role").await?;
        let appended = self.append("role_changed", vec![id.to_owned()], json!({"old": old, "new": role})).await?;
        sqlx::query("UPDATE accounts SET role = $1, updated_at = $2, ledger_hash = $3 WHERE id = $4")
            .bind(role)
            .bind(self.now_ms)
            .bind(appended.leaf_hex())
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(old)
    }

    /// Sets `active` or `disabled`; returns the old status.
    pub async fn set_account_status(&mut self, id: &str, status: &str) -> Result<String, StoreError> {
        let old = self.locked_account_field(id, "status").await?;
        let appended =
            self.append("account_status_changed", vec![id.to_owned()], json!({"old": old, "new": status})).await?;
        sqlx::query("UPDATE accounts SET status = $1, updated_at = $2, ledger_hash = $3 WHERE id = $4")
            .bind(status)
            .bind(self.now_ms)
            .bind(appended.leaf_hex())
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(old)
    }

    /// Replaces the password hash. `reason` is `changed`, `reset` or
    /// `rehashed` (same password, stronger parameters).
    pub async fn set_password_hash(&mut self, id: &str, hash: &str, reason: &str) -> Result<(), StoreError> {
        self.locked_account_field(id, "id").await?;
        let appended = self
            .append(
                "password_changed",
                vec![id.to_owned()],
                json!({"reason": reason, "credential_sha256": credential_commitment(hash)}),
            )
            .await?;
        sqlx::query("UPDATE accounts SET password_hash = $1, updated_at = $2, ledger_hash = $3 WHERE id = $4")
            .bind(hash)
            .bind(self.now_ms)
            .bind(appended.leaf_hex())
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Marks the email as verified (no ledger entry of its own: the caller
    /// records the verification).
    pub async fn mark_email_verified(&mut self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE accounts SET email_verified_at = $1, updated_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
        )
        .bind(self.now_ms)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Reads one column of an account, locking the row on PostgreSQL (a
    /// no-op update) so concurrent changes to one account run in turn.
    async fn locked_account_field(&mut self, id: &str, column: &'static str) -> Result<String, StoreError> {
        let sql = format!("UPDATE accounts SET updated_at = updated_at WHERE id = $1 RETURNING {column} AS v");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::NotFound { what: "account" })?;
        Ok(row.try_get("v")?)
    }

    /// Erases an account's personal data in the store's database: the
    /// ciphertext of its email and of its orders' personal fields, its
    /// credentials and sessions; the account becomes `erased` and can never
    /// sign in. Orders keep amounts and SKUs. The caller destroys the data
    /// key (the key store), which makes every other copy unreadable.
    /// Returns how many orders were scrubbed.
    pub async fn erase_account(&mut self, id: &str) -> Result<u64, StoreError> {
        self.set_account_status(id, "erased").await?;
        self.set_password_hash(id, "!erased", "erased").await?;
        for sql in [
            "DELETE FROM sessions WHERE account_id = $1",
            "DELETE FROM api_tokens WHERE account_id = $1",
            "DELETE FROM totp_credentials WHERE account_id = $1",
            "DELETE FROM recovery_codes WHERE account_id = $1",
            "DELETE FROM passkeys WHERE account_id = $1",
            "DELETE FROM email_tokens WHERE account_id = $1",
            "DELETE FROM webauthn_challenges WHERE account_id = $1",
            // Card digits and origin hashes of the person's orders.
            "UPDATE payments SET card_brand = NULL, card_last4 = NULL \
             WHERE order_id IN (SELECT id FROM orders WHERE customer_id = $1)",
            "UPDATE order_risk SET ip_hash = NULL, device_hash = NULL \
             WHERE order_id IN (SELECT id FROM orders WHERE customer_id = $1)",
            "UPDATE payment_attempts SET ip_hash = NULL, device_hash = NULL, customer_id = NULL WHERE customer_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *self.tx).await?;
        }
        // The blind index goes too: the address may sign up afresh, and the
        // erased row no longer links to it.
        sqlx::query(
            "UPDATE accounts SET email = '', email_index = $1, erasure_requested_at = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(format!("erased:{id}"))
        .bind(self.now_ms)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        let orders = sqlx::query(
            "UPDATE orders SET email = '', shipping_address = '', personal_key = NULL WHERE customer_id = $1",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        self.append("customer_erased", vec![id.to_owned()], json!({"orders": orders.rows_affected()})).await?;
        Ok(orders.rows_affected())
    }

    /// Erases a guest order's personal fields (its data key, `subject`, is
    /// destroyed by the caller; the ledger entry names it so a restored key
    /// store can be corrected). False if it had none left.
    pub async fn erase_order_personal_data(&mut self, order_id: &str, subject: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET email = '', shipping_address = '', personal_key = NULL \
             WHERE id = $1 AND customer_id IS NULL AND personal_key IS NOT NULL",
        )
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 1 {
            self.erase_payment_details(order_id).await?;
            self.append("order_personal_data_erased", vec![order_id.to_owned()], json!({"subject": subject})).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// Sets or lifts (`None`) a legal hold, through the ledger. The reason
    /// is the operator's text and stays out of the ledger (it could name a
    /// person); the entry says only that a hold exists.
    pub async fn set_legal_hold(&mut self, id: &str, reason: Option<&str>) -> Result<(), StoreError> {
        self.locked_account_field(id, "id").await?;
        sqlx::query("UPDATE accounts SET legal_hold = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(self.now_ms)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        let kind = if reason.is_some() { "legal_hold_set" } else { "legal_hold_lifted" };
        self.append(kind, vec![id.to_owned()], json!({})).await?;
        Ok(())
    }

    /// Records an erasure request that a legal hold delays.
    pub async fn request_erasure(&mut self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET erasure_requested_at = $1 WHERE id = $2 AND erasure_requested_at IS NULL")
            .bind(self.now_ms)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        self.append("erasure_requested", vec![id.to_owned()], json!({"delayed_by_legal_hold": true})).await?;
        Ok(())
    }

    /// Starts (or restarts) TOTP enrollment with a new, unconfirmed secret.
    /// Refused while a confirmed credential exists: that needs a reset.
    pub async fn begin_totp(&mut self, account_id: &str, sealed_secret: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO totp_credentials (account_id, secret, confirmed_at, last_step, created_at) \
             VALUES ($1, $2, NULL, -1, $3) \
             ON CONFLICT (account_id) DO UPDATE SET secret = excluded.secret, last_step = -1, \
             created_at = excluded.created_at WHERE totp_credentials.confirmed_at IS NULL",
        )
        .bind(account_id)
        .bind(sealed_secret)
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict { constraint: "totp_already_enrolled".into() });
        }
        Ok(())
    }

    /// Accepts a TOTP step for the account: true only if `step` is later
    /// than every step accepted before. The conditional update makes a code
    /// single-use even when two requests race with it.
    pub async fn use_totp_step(&mut self, account_id: &str, step: u64) -> Result<bool, StoreError> {
        let step = i64::try_from(step).map_err(|_| StoreError::Corrupt { what: "TOTP step" })?;
        let done = sqlx::query("UPDATE totp_credentials SET last_step = $1 WHERE account_id = $2 AND last_step < $1")
            .bind(step)
            .bind(account_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Confirms a pending TOTP credential and replaces the recovery codes.
    pub async fn confirm_totp(&mut self, account_id: &str, recovery_hashes: &[String]) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE totp_credentials SET confirmed_at = $1 WHERE account_id = $2 AND confirmed_at IS NULL")
                .bind(self.now_ms)
                .bind(account_id)
                .execute(&mut *self.tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "pending TOTP enrollment" });
        }
        self.replace_recovery_codes(account_id, recovery_hashes).await
    }

    /// Removes the TOTP credential and the recovery codes (a 2FA reset).
    pub async fn remove_totp(&mut self, account_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM totp_credentials WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1").bind(account_id).execute(&mut *self.tx).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces every recovery code of the account.
    pub async fn replace_recovery_codes(&mut self, account_id: &str, hashes: &[String]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1").bind(account_id).execute(&mut *self.tx).await?;
        for h in hashes {
            sqlx::query("INSERT INTO recovery_codes (account_id, code_hash, used_at) VALUES ($1, $2, NULL)")
                .bind(account_id)
                .bind(h)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Spends a recovery code: true if it existed and was unused.
    pub async fn use_recovery_code(&mut self, account_id: &str, code_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(self.now_ms)
        .bind(account_id)
        .bind(code_hash)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
