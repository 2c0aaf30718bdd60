//! Passkeys (WebAuthn) through webauthn-rs: the ceremonies, with their state
//! kept server-side as JSON between the two requests of each.
//!
//! User verification is required, so a passkey is possession plus a PIN or
//! biometric: it counts as the second factor for staff, and on its own signs
//! an account in.

use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

/// Why a ceremony failed, without detail for the client.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("the passkey response did not verify")]
    Rejected,
    #[error("stored passkey state is unreadable")]
    Corrupt,
}

/// The relying party: this store.
pub struct Passkeys {
    webauthn: Webauthn,
}

/// How a sign-in ceremony was started.
#[derive(serde::Serialize, serde::Deserialize)]
enum SignInState {
    /// For one account's passkeys (a second factor after the password).
    Account(PasskeyAuthentication),
    /// For whichever passkey the authenticator offers (passwordless).
    Discoverable(DiscoverableAuthentication),
}

impl Passkeys {
    /// The relying party for `public_origin`; its host is the RP ID.
    pub fn new(public_origin: &str, store_name: &str) -> Result<Self, String> {
        let origin = Url::parse(public_origin).map_err(|_| "public_url does not parse as a URL".to_owned())?;
        let rp_id = origin.host_str().ok_or("public_url has no host")?.to_owned();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name(store_name).build())
            .map_err(|e| format!("public_url is not usable for passkeys: {e}"))?;
        Ok(Passkeys { webauthn })
    }

    /// Starts registering a passkey for an account (whose id, a UUID, is the
    /// WebAuthn user handle). Returns the browser's options and the state.
    pub fn start_registration(
        &self,
        account_id: &str,
        name: &str,
        existing: &[Passkey],
    ) -> Result<(Value, String), PasskeyError> {
        let user = Uuid::parse_str(account_id).map_err(|_| PasskeyError::Corrupt)?;
        let exclude = existing.iter().map(|p| p.cred_id().clone()).collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user, name, name, Some(exclude))
            .map_err(|_| PasskeyError::Rejected)?;
        Ok((to_value(&options)?, to_text(&state)?))
    }

    pub fn finish_registration(
        &self,
        response: &RegisterPublicKeyCredential,
        state: &str,
    ) -> Result<Passkey, PasskeyError> {
        let state: PasskeyRegistration = serde_json::from_str(state).map_err(|_| PasskeyError::Corrupt)?;
        self.webauthn.finish_passkey_registration(response, &state).map_err(|_| PasskeyError::Rejected)
    }

    /// Starts a sign-in: for `passkeys` of one account, or, when `None`,
    /// discoverable (the authenticator says whose passkey it is).
    pub fn start_sign_in(&self, passkeys: Option<&[Passkey]>) -> Result<(Value, String), PasskeyError> {
        match passkeys {
            Some(keys) => {
                let (options, state) =
                    self.webauthn.start_passkey_authentication(keys).map_err(|_| PasskeyError::Rejected)?;
                Ok((to_value(&options)?, to_text(&SignInState::Account(state))?))
            }
            None => {
                let (options, state) =
                    self.webauthn.start_discoverable_authentication().map_err(|_| PasskeyError::Rejected)?;
                Ok((to_value(&options)?, to_text(&SignInState::Discoverable(state))?))
            }
        }
    }

    /// The account (user handle) a discoverable response claims to be, to
    /// look its passkey up before verifying.
    pub fn claimed_account(&self, response: &PublicKeyCredential) -> Option<String> {
        self.webauthn.identify_discoverable_authentication(response).ok().map(|(user, _)| user.to_string())
    }

    /// Verifies a sign-in response against the state and the passkey it
    /// names, and returns the passkey with its counter updated.
    pub fn finish_sign_in(
        &self,
        response: &PublicKeyCredential,
        state: &str,
        mut passkey: Passkey,
    ) -> Result<Passkey, PasskeyError> {
        let state: SignInState = serde_json::from_str(state).map_err(|_| PasskeyError::Corrupt)?;
        let result = match state {
            SignInState::Account(s) => self.webauthn.finish_passkey_authentication(response, &s),
            SignInState::Discoverable(s) => {
                #[expect(deprecated, reason = "the v2 call needs webauthn-rs-core's Credential type by name")]
                let r =
                    self.webauthn.finish_discoverable_authentication(response, s, &[DiscoverableKey::from(&passkey)]);
                r
            }
        }
        .map_err(|_| PasskeyError::Rejected)?;
        if !result.user_verified() {
            return Err(PasskeyError::Rejected);
        }
        passkey.update_credential(&result);
        Ok(passkey)
    }
}

/// A stored passkey back from its JSON.
pub fn parse(stored: &str) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(stored).map_err(|_| PasskeyError::Corrupt)
}

/// A passkey's credential id as stored and looked up (base64url).
pub fn credential_id(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn to_text<T: serde::Serialize>(v: &T) -> Result<String, PasskeyError> {
    serde_json::to_string(v).map_err(|_| PasskeyError::Corrupt)
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, PasskeyError> {
    serde_json::to_value(v).map_err(|_| PasskeyError::Corrupt)
}
