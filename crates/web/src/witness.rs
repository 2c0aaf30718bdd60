//! `storefort witness serve`: a small HTTP witness for another machine.
//!
//! It keeps every checkpoint a store sends (in the same directory layout as
//! the store's own witness directory), and refuses any checkpoint that is
//! not signed by the key it first saw, that goes back in size, or that does
//! not extend what it already holds: a store whose history was rewritten
//! cannot get a new checkpoint past it. `GET /` answers its newest one.
//! It must run where the store's database host cannot write.

use crate::ledger::{WITNESS_KEY_HEADER, witness_read, witness_write};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use std::path::PathBuf;
use std::sync::Arc;
use storefort_ledger::VerifierKey;
use tokio::sync::Mutex;

/// The witness's state: its directory, one writer at a time.
#[derive(Clone)]
pub struct Witness {
    dir: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

impl Witness {
    pub fn new(dir: PathBuf) -> Self {
        Witness { dir: Arc::new(dir), lock: Arc::new(Mutex::new(())) }
    }
}

/// The witness's routes.
pub fn router(witness: Witness) -> Router {
    Router::new().route("/", get(latest).post(accept)).with_state(witness)
}

async fn latest(State(w): State<Witness>) -> (StatusCode, String) {
    match std::fs::read_to_string(w.dir.join("latest")) {
        Ok(note) => (StatusCode::OK, note),
        Err(_) => (StatusCode::NOT_FOUND, "no checkpoint yet\n".into()),
    }
}

async fn accept(State(w): State<Witness>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let _one = w.lock.lock().await;
    match check_and_keep(&w, &headers, &body) {
        Ok(size) => (StatusCode::OK, format!("kept checkpoint of size {size}\n")),
        Err((status, why)) => {
            tracing::warn!(target: "security", %why, "witness refused a checkpoint");
            (status, format!("{why}\n"))
        }
    }
}

fn check_and_keep(w: &Witness, headers: &HeaderMap, body: &[u8]) -> Result<u64, (StatusCode, String)> {
    let bad = |why: &str| (StatusCode::BAD_REQUEST, why.to_owned());
    if body.len() > 64 * 1024 {
        return Err(bad("the request is too large"));
    }
    let request: serde_json::Value = serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    let note = request["checkpoint"].as_str().ok_or_else(|| bad("no checkpoint"))?;
    let proof: Vec<storefort_ledger::Hash> = request["consistency_proof"]
        .as_array()
        .map(|a| a.iter().filter_map(|h| h.as_str().and_then(storefort_ledger::hash::from_b64)).collect())
        .unwrap_or_default();
    let offered = headers
        .get(WITNESS_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|k| VerifierKey::parse(k).ok())
        .ok_or_else(|| bad("missing or malformed key header"))?;
    let (known, held) = witness_read(&w.dir).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // The first key seen is the one trusted from then on.
    let key = match known {
        Some(k) => {
            VerifierKey::parse(&k).map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "stored key unreadable".into()))?
        }
        None => offered.clone(),
    };
    if key != offered {
        return Err((StatusCode::CONFLICT, "signed by a key this witness does not trust".into()));
    }
    let checkpoint = key
        .verify_checkpoint(note)
        .map_err(|e| (StatusCode::CONFLICT, format!("the signature does not verify: {e}")))?;
    if let Some(last) = held.last() {
        let last = key
            .verify_checkpoint(&last.note)
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "stored checkpoint unreadable".to_owned()))?;
        if checkpoint.origin != last.origin {
            return Err((StatusCode::CONFLICT, "a checkpoint of another log".into()));
        }
        // Only a log that extends what the witness holds gets through: the
        // proof must show the old tree is a prefix of the new one.
        let consistent = storefort_ledger::tree::verify_consistency(
            last.size,
            checkpoint.size,
            &last.root,
            &checkpoint.root,
            &proof,
        );
        if !consistent {
            return Err((StatusCode::CONFLICT, "this checkpoint rewrites history the witness already holds".into()));
        }
        if checkpoint.size == last.size {
            return Ok(checkpoint.size);
        }
    }
    witness_write(&w.dir, &key, checkpoint.size, note)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(checkpoint.size)
}
