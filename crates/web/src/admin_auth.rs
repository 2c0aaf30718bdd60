//! The bootstrap admin token: the only admin credential until staff
//! accounts exist.
//!
//! Generated at first start, shown once, stored only as its SHA-256. Every
//! refused attempt is a security event.

use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::routes::orders::bearer;
use crate::secrets::{is_token_shaped, random_token, secrets_equal};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_store::{Store, StoreError, hash_secret};

/// The settings row holding the token's hash.
pub const TOKEN_SETTING: &str = storefort_store::BOOTSTRAP_TOKEN_SETTING;

/// Proof that the request carried the bootstrap admin token.
pub struct BootstrapAdmin;

impl FromRequestParts<AppState> for BootstrapAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = bearer(&parts.headers).filter(|t| is_token_shaped(t));
        let stored = state.store().setting(TOKEN_SETTING).await?;
        if let (Some(token), Some(stored)) = (presented, stored)
            && secrets_equal(&hash_secret(token), &stored)
        {
            return Ok(BootstrapAdmin);
        }
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.as_str());
        let event = SecurityEvent::new(EventKind::AdminAuthFailed, Actor::Anonymous).request(request_id);
        if let Err(e) = state.store().record_event(&event, state.now_ms()).await {
            tracing::warn!(error = %e, "could not record security event");
        }
        Err(ApiError::unauthorized())
    }
}

/// Creates the bootstrap token if none exists yet. Returns the token when one
/// was created (to be shown once), `None` when the store already had one.
pub async fn ensure_bootstrap_token(store: &Store, now_ms: i64) -> Result<Option<String>, StoreError> {
    if store.setting(TOKEN_SETTING).await?.is_some() {
        return Ok(None);
    }
    let token = random_token().map_err(|e| StoreError::Corrupt { what: leak_free(e) })?;
    let mut tx = store.begin_write(now_ms, "system", None).await?;
    if !tx.insert_setting_if_absent(TOKEN_SETTING, &hash_secret(&token)).await? {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.append(
        "admin_token_issued",
        vec!["bootstrap_admin_token".into()],
        serde_json::json!({"rotated": false, "token_sha256": hash_secret(&token)}),
    )
    .await?;
    tx.commit(SecurityEvent::new(EventKind::AdminTokenIssued, Actor::System)).await?;
    Ok(Some(token))
}

/// Replaces the bootstrap token (the owner lost it) and returns the new one.
pub async fn rotate_bootstrap_token(store: &Store, now_ms: i64) -> Result<String, StoreError> {
    let token = random_token().map_err(|e| StoreError::Corrupt { what: leak_free(e) })?;
    let mut tx = store.begin_write(now_ms, "system", None).await?;
    tx.set_setting(TOKEN_SETTING, &hash_secret(&token)).await?;
    tx.append(
        "admin_token_issued",
        vec!["bootstrap_admin_token".into()],
        serde_json::json!({"rotated": true, "token_sha256": hash_secret(&token)}),
    )
    .await?;
    tx.commit(SecurityEvent::new(EventKind::AdminTokenIssued, Actor::System).with("rotated", 1)).await?;
    Ok(token)
}

fn leak_free(_: getrandom::Error) -> &'static str {
    "system random number generator"
}
