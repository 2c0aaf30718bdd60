//! Passkeys end to end with a software authenticator: a P-256 key that
//! answers WebAuthn ceremonies the way a platform authenticator does (CBOR
//! attestation object with `fmt: none`, user verification performed), so the
//! store's real webauthn-rs verification runs with no browser.

use crate::accounts::{Browser, ORIGIN, provision};
use crate::support::spawn;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

struct SoftAuthenticator {
    key: SigningKey,
    credential_id: Vec<u8>,
    user_handle: Vec<u8>,
    counter: u32,
}

/// CBOR item head (RFC 8949 §3): major type and length/value.
fn head(major: u8, n: usize) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | u8::try_from(n).expect("small")],
        24..=255 => vec![m | 24, u8::try_from(n).expect("byte")],
        _ => {
            let mut v = vec![m | 25];
            v.extend(u16::try_from(n).expect("short").to_be_bytes());
            v
        }
    }
}

fn cbor_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = head(2, b.len());
    v.extend(b);
    v
}

fn cbor_text(s: &str) -> Vec<u8> {
    let mut v = head(3, s.len());
    v.extend(s.as_bytes());
    v
}

fn rp_hash() -> Vec<u8> {
    Sha256::digest(b"localhost").to_vec()
}

fn client_data(kind: &str, options: &Value) -> Vec<u8> {
    let challenge = options["publicKey"]["challenge"].as_str().expect("challenge");
    json!({"type": kind, "challenge": challenge, "origin": ORIGIN, "crossOrigin": false}).to_string().into_bytes()
}

impl SoftAuthenticator {
    fn new(seed: u8) -> Self {
        let key = SigningKey::from_slice(&[seed; 32]).expect("key");
        SoftAuthenticator { key, credential_id: vec![seed; 16], user_handle: Vec::new(), counter: 0 }
    }

    /// Answers `navigator.credentials.create()`.
    fn create(&mut self, options: &Value) -> Value {
        let user = options["publicKey"]["user"]["id"].as_str().expect("user id");
        self.user_handle = B64.decode(user).expect("user handle");
        let point = self.key.verifying_key().to_sec1_point(false);
        let xy = &point.as_bytes()[1..];
        // COSE EC2 key: kty 2, alg -7 (ES256), crv 1 (P-256), x, y.
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cose.extend(cbor_bytes(&xy[..32]));
        cose.push(0x22);
        cose.extend(cbor_bytes(&xy[32..]));
        let mut auth_data = rp_hash();
        auth_data.push(0x45); // user present, user verified, attested data
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend(u16::try_from(self.credential_id.len()).expect("len").to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(cose);
        let mut attestation = vec![0xa3];
        attestation.extend(cbor_text("fmt"));
        attestation.extend(cbor_text("none"));
        attestation.extend(cbor_text("attStmt"));
        attestation.push(0xa0);
        attestation.extend(cbor_text("authData"));
        attestation.extend(cbor_bytes(&auth_data));
        json!({
            "id": B64.encode(&self.credential_id),
            "rawId": B64.encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(attestation),
                "clientDataJSON": B64.encode(client_data("webauthn.create", options)),
            },
        })
    }

    /// Answers `navigator.credentials.get()`.
    fn get(&mut self, options: &Value) -> Value {
        self.counter += 1;
        let mut auth_data = rp_hash();
        auth_data.push(0x05); // user present, user verified
        auth_data.extend(self.counter.to_be_bytes());
        let client = client_data("webauthn.get", options);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": B64.encode(&self.credential_id),
            "rawId": B64.encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(auth_data),
                "clientDataJSON": B64.encode(client),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": B64.encode(&self.user_handle),
            },
        })
    }
}

#[tokio::test]
async fn register_a_passkey_then_sign_in_with_it_alone_and_replays_fail() {
    let app = spawn().await;
    let customer = provision(&app.store, &app.state, "pia@example.com", "customer").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&customer).await.body["status"], "signed_in");
    let mut authenticator = SoftAuthenticator::new(11);
    let start = b.post("/api/v1/account/passkeys/start", json!({})).await;
    assert_eq!(start.status, 200, "{}", start.body);
    let credential = authenticator.create(&start.body["options"]);
    let r = b
        .post(
            "/api/v1/account/passkeys/finish",
            json!({"challenge_id": start.body["challenge_id"], "credential": credential}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = b
        .post(
            "/api/v1/account/passkeys/finish",
            json!({"challenge_id": start.body["challenge_id"], "credential": credential}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_challenge"), "a challenge answers once");

    // Passwordless: a fresh browser, a discoverable ceremony.
    let mut fresh = Browser::new(&app);
    let start = fresh.post("/api/v1/auth/passkey/start", json!({})).await;
    assert_eq!(start.status, 200, "{}", start.body);
    let assertion = authenticator.get(&start.body["options"]);
    let body = json!({"challenge_id": start.body["challenge_id"], "credential": assertion});
    let r = fresh.post("/api/v1/auth/passkey/finish", body.clone()).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("signed_in")), "{}", r.body);
    assert_eq!(fresh.get("/api/v1/auth/session").await.body["account_id"], customer.id.as_str());
    // The same assertion again: its challenge is spent.
    let r = Browser::new(&app).post("/api/v1/auth/passkey/finish", body).await;
    assert_eq!((r.status, r.code()), (400, "invalid_challenge"));
    // An old assertion on a new challenge does not verify.
    let start = Browser::new(&app).post("/api/v1/auth/passkey/start", json!({})).await;
    let r = Browser::new(&app)
        .post(
            "/api/v1/auth/passkey/finish",
            json!({"challenge_id": start.body["challenge_id"], "credential": assertion}),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "passkey_rejected"));
    // Another key claiming the same credential id is refused too.
    let mut impostor = SoftAuthenticator::new(11);
    impostor.key = SigningKey::from_slice(&[12; 32]).expect("key");
    impostor.user_handle = authenticator.user_handle.clone();
    impostor.counter = 10;
    let start = Browser::new(&app).post("/api/v1/auth/passkey/start", json!({})).await;
    let forged = impostor.get(&start.body["options"]);
    let r = Browser::new(&app)
        .post("/api/v1/auth/passkey/finish", json!({"challenge_id": start.body["challenge_id"], "credential": forged}))
        .await;
    assert_eq!((r.status, r.code()), (401, "passkey_rejected"));
}

#[tokio::test]
async fn a_passkey_is_the_second_factor_staff_need() {
    let app = spawn().await;
    let staff = crate::accounts::provision_without_factor(&app.store, &app.state, "pat@example.com", "admin").await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&staff).await.body["status"], "enrollment_required");
    assert_eq!(b.get("/api/v1/admin/events").await.code(), "second_factor_enrollment_required");
    let mut authenticator = SoftAuthenticator::new(21);
    let start = b.post("/api/v1/account/passkeys/start", json!({})).await;
    let credential = authenticator.create(&start.body["options"]);
    let r = b
        .post(
            "/api/v1/account/passkeys/finish",
            json!({"challenge_id": start.body["challenge_id"], "credential": credential}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.headers.get("set-cookie").is_some(), "the session is rotated to a full one");
    let r = b.get("/api/v1/auth/session").await;
    assert_eq!(r.body["stage"], "full", "{}", r.body);
    assert_eq!(b.get("/api/v1/admin/events").await.status, 200);

    // Next time: password, then the passkey as the second factor.
    let mut next = Browser::new(&app);
    let r = next.post("/api/v1/auth/sign-in", json!({"email": staff.email, "password": staff.password})).await;
    assert_eq!(r.body["status"], "second_factor_required", "{}", r.body);
    assert_eq!(r.body["methods"], json!(["passkey"]));
    let start = next.post("/api/v1/auth/passkey/start", json!({})).await;
    assert_eq!(start.status, 200, "{}", start.body);
    let assertion = authenticator.get(&start.body["options"]);
    let r = next
        .post(
            "/api/v1/auth/passkey/finish",
            json!({"challenge_id": start.body["challenge_id"], "credential": assertion}),
        )
        .await;
    assert_eq!(r.body["status"], "signed_in", "{}", r.body);
    assert_eq!(next.get("/api/v1/admin/events").await.status, 200);
}
