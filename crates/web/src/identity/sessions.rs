//! Issuing sessions. A new session (new secret) is issued at every sign-in
//! and every change of privilege (second factor passed, factor enrolled), and
//! the old one deleted in the same transaction: a token an attacker planted
//! or saw before sign-in is worthless after it.

use super::{Stage, cookie};
use crate::secrets::random_token;
use crate::state::AppState;
use axum::http::HeaderValue;
use storefort_auth::AccountRole;
use storefort_store::{NewSession, StoreError, WriteTx, hash_secret};

/// How long a password-checked sign-in waits for its second factor.
pub const CHALLENGE_MS: i64 = 5 * 60_000;

/// A session just created; `token` goes into the cookie and nowhere else.
pub struct Issued {
    pub token: String,
    pub public_id: String,
    pub role: AccountRole,
    pub stage: Stage,
    pub expires_at: i64,
}

impl Issued {
    /// The `Set-Cookie` value for it.
    pub fn cookie(&self, now_ms: i64) -> HeaderValue {
        cookie::session_cookie(&self.token, self.role, self.expires_at - now_ms)
    }
}

/// Creates a session for an account in `tx`, deleting `replaces` (the
/// session being upgraded) if given.
pub async fn issue(
    tx: &mut WriteTx,
    state: &AppState,
    account_id: &str,
    role: AccountRole,
    stage: Stage,
    second_factor_at: Option<i64>,
    replaces: Option<&str>,
) -> Result<Issued, StoreError> {
    if let Some(old) = replaces {
        tx.delete_session(old).await?;
    }
    let token = random_token().map_err(|_| StoreError::Corrupt { what: "random number generator" })?;
    let public_id = uuid::Uuid::new_v4().to_string();
    let (idle, absolute) = match stage {
        Stage::SecondFactor => (CHALLENGE_MS, CHALLENGE_MS),
        _ => state.settings().auth.lifetimes_ms(role),
    };
    let expires_at = tx.now_ms() + absolute;
    tx.insert_session(&NewSession {
        id_hash: hash_secret(&token),
        public_id: public_id.clone(),
        account_id: account_id.to_owned(),
        stage: stage.as_str().to_owned(),
        idle_timeout_ms: idle,
        expires_at,
        second_factor_at,
    })
    .await?;
    Ok(Issued { token, public_id, role, stage, expires_at })
}
