//! The running store's side of the ledger: signing checkpoints, copying
//! them to the witness, and assembling receipts.
//!
//! Checkpoints are written every N entries or T seconds by a job, and on
//! demand when a receipt needs one. Each is also copied to the witness
//! directory, outside the database, so that someone who can rewrite the
//! database cannot also rewrite what the witness saw.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storefort_ledger::hash::{from_hex, to_b64};
use storefort_ledger::receipt::{FORMAT, PersonalPart};
use storefort_ledger::tree::{from_map, inclusion_proof, needed, new_nodes, range_root};
use storefort_ledger::{Checkpoint, Hash, LedgerKey, Receipt, VerifierKey};
use storefort_store::ledger::{StoredCheckpoint, order_personal, order_snapshot};
use storefort_store::{Store, StoreError};
use tokio::sync::Mutex;

/// The ledger's signing side, shared by handlers and jobs.
pub struct LedgerSigner {
    key: LedgerKey,
    origin: String,
    witness: Option<PathBuf>,
    http_witness: Option<HttpWitness>,
    /// One checkpoint at a time per instance.
    lock: Mutex<()>,
}

impl LedgerSigner {
    /// `origin` names the log (and the key); `witness` is a directory that
    /// receives a copy of every checkpoint.
    pub fn new(key: LedgerKey, origin: String, witness: Option<PathBuf>) -> Arc<Self> {
        Arc::new(LedgerSigner { key, origin, witness, http_witness: None, lock: Mutex::new(()) })
    }

    /// Also sends every checkpoint to an HTTP witness (`storefort witness serve`).
    pub fn with_http_witness(key: LedgerKey, origin: String, witness: Option<PathBuf>, http: HttpWitness) -> Arc<Self> {
        Arc::new(LedgerSigner { key, origin, witness, http_witness: Some(http), lock: Mutex::new(()) })
    }

    /// The public key, as `/.well-known/storefort/ledger-key` serves it.
    pub fn verifier(&self) -> VerifierKey {
        self.key.verifier()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs a checkpoint of the whole log if it grew since the last one,
    /// and returns the newest checkpoint.
    pub async fn checkpoint_now(&self, store: &Store, now_ms: i64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let _one = self.lock.lock().await;
        let size = store.ledger_size().await?;
        let last = store.latest_checkpoint().await?;
        let old = last.as_ref().map(|c| u64::try_from(c.size).unwrap_or(0)).unwrap_or(0);
        if size == 0 || size <= old {
            return Ok(last);
        }
        // The stored tree must still have the root the last checkpoint
        // signed, or the store would sign over a changed history.
        if let Some(c) = &last
            && old > 0
            && Some(with_nodes(store, |get| range_root(0, old, get)).await?) != stored_root(c)
        {
            return Err(StoreError::Corrupt { what: "ledger tree (it no longer has its last signed root)" });
        }
        // Fill in the perfect subtrees completed since the last checkpoint.
        let made = with_nodes(store, |get| new_nodes(old, size, get)).await?;
        store.insert_ledger_nodes(&made).await?;
        // Read them back: a node planted ahead of time would have won the
        // insert and must not end up under a signature.
        let positions: Vec<_> = made.iter().map(|(l, i, _)| (*l, *i)).collect();
        let stored = store.ledger_nodes(&positions).await?;
        if made.iter().any(|(l, i, h)| stored.get(&(*l, *i)) != Some(h)) {
            return Err(StoreError::Corrupt { what: "ledger nodes (a stored node differs from the log)" });
        }
        let root = with_nodes(store, |get| range_root(0, size, get)).await?;
        let checkpoint = Checkpoint { origin: self.origin.clone(), size, root };
        let note = self.key.sign(&checkpoint);
        store.insert_checkpoint(size, &root, &note, now_ms).await?;
        if let Some(dir) = &self.witness
            && let Err(e) = witness_write(dir, &self.verifier(), size, &note)
        {
            // The checkpoint is in the database either way; a witness that
            // cannot be written is an operator problem to alert on.
            tracing::error!(target: "security", error = %e, dir = %dir.display(), "could not copy checkpoint to the witness");
        }
        if let Some(http) = &self.http_witness
            && let Err(e) = self.send_to_witness(http, store, size, &note).await
        {
            tracing::error!(target: "security", error = %e, "could not send the checkpoint to the HTTP witness");
        }
        store.latest_checkpoint().await
    }

    /// Sends a checkpoint with the consistency proof the witness needs: from
    /// the newest checkpoint it holds to this one.
    async fn send_to_witness(&self, http: &HttpWitness, store: &Store, size: u64, note: &str) -> Result<(), String> {
        let held = match http.latest().await? {
            Some(latest) => Some(self.verifier().verify_checkpoint(&latest).map_err(|e| e.to_string())?.size),
            None => None,
        };
        let proof = match held {
            Some(old) if old > 0 && old < size => {
                with_nodes(store, |get| storefort_ledger::tree::consistency_proof(old, size, get))
                    .await
                    .map_err(|e| e.to_string())?
            }
            _ => Vec::new(),
        };
        http.send(&self.verifier(), note, &proof).await
    }

    /// Builds the receipt of an order's latest ledger entry.
    pub async fn receipt(&self, store: &Store, order_id: &str, now_ms: i64) -> Result<Receipt, StoreError> {
        let entry = store.latest_order_entry(order_id).await?.ok_or(StoreError::NotFound { what: "order" })?;
        let index = u64::try_from(entry.idx).map_err(|_| StoreError::Corrupt { what: "ledger index" })?;
        let mut checkpoint = store.latest_checkpoint().await?;
        if checkpoint.as_ref().is_none_or(|c| c.size <= entry.idx) {
            checkpoint = self.checkpoint_now(store, now_ms).await?;
        }
        let checkpoint = checkpoint.ok_or(StoreError::Corrupt { what: "ledger checkpoint" })?;
        let size = u64::try_from(checkpoint.size).map_err(|_| StoreError::Corrupt { what: "ledger checkpoint" })?;
        let proof = with_nodes(store, |get| inclusion_proof(index, size, get)).await?;
        let order = store.order(order_id).await?;
        let (_, personal_key) = store.order_ledger_fields(order_id).await?;
        Ok(Receipt {
            format: FORMAT.into(),
            order: order_snapshot(&order),
            personal: personal_key.map(|key| PersonalPart { data: order_personal(&order), key }),
            entry: entry.entry,
            leaf_index: index,
            tree_size: size,
            inclusion_proof: proof.iter().map(to_b64).collect(),
            checkpoint: checkpoint.note,
        })
    }
}

/// Appends a checkpoint to the witness directory and replaces its `latest`
/// copy atomically. The first write also records the verifier key, so the
/// witness knows which key its history was signed with.
pub fn witness_write(dir: &Path, key: &VerifierKey, size: u64, note: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let key_file = dir.join("ledger-key.pub");
    if !key_file.exists() {
        std::fs::write(&key_file, format!("{key}\n"))?;
    }
    let line = serde_json::json!({"size": size, "note": note}).to_string();
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("checkpoints.jsonl"))?;
    writeln!(log, "{line}")?;
    log.sync_data()?;
    let tmp = dir.join("latest.tmp");
    std::fs::write(&tmp, note)?;
    std::fs::rename(&tmp, dir.join("latest"))?;
    Ok(())
}

/// A checkpoint the witness holds.
#[derive(Debug, Clone)]
pub struct Witnessed {
    pub size: u64,
    pub note: String,
}

/// Reads every checkpoint the witness holds, and the key it first saw.
pub fn witness_read(dir: &Path) -> std::io::Result<(Option<String>, Vec<Witnessed>)> {
    let key = std::fs::read_to_string(dir.join("ledger-key.pub")).ok().map(|k| k.trim().to_owned());
    let text = match std::fs::read_to_string(dir.join("checkpoints.jsonl")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((key, Vec::new())),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
        let size = v["size"].as_u64().ok_or_else(|| std::io::Error::other("witness line without size"))?;
        let note = v["note"].as_str().ok_or_else(|| std::io::Error::other("witness line without note"))?.to_owned();
        out.push(Witnessed { size, note });
    }
    Ok((key, out))
}

/// Parses a stored hex root.
pub fn stored_root(c: &StoredCheckpoint) -> Option<storefort_ledger::Hash> {
    from_hex(&c.root)
}

/// Runs [`LedgerSigner::checkpoint_now`] when `every_entries` entries have
/// been appended since the last checkpoint or `interval` has passed.
pub async fn run_checkpoints(
    signer: Arc<LedgerSigner>,
    store: Store,
    clock: Arc<dyn crate::Clock>,
    interval: std::time::Duration,
    every_entries: u64,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_run = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let due = match (store.ledger_size().await, store.latest_checkpoint().await) {
            (Ok(size), Ok(last)) => {
                let covered = last.map(|c| u64::try_from(c.size).unwrap_or(0)).unwrap_or(0);
                size > covered && (size - covered >= every_entries || last_run.elapsed() >= interval)
            }
            _ => false,
        };
        if due {
            last_run = std::time::Instant::now();
            if let Err(e) = signer.checkpoint_now(&store, clock.now_ms()).await {
                tracing::error!(target: "security", error = %e, "ledger checkpoint failed");
            }
        }
    }
}

/// The settings row naming the log.
pub const ORIGIN_SETTING: &str = "ledger_origin";

/// Opens the ledger's signing side. On first start it names the log
/// (`storefort.local/<random>` unless configured) and records the origin and
/// public key as the log's first entry.
pub async fn open_signer(
    store: &Store,
    seed: &[u8; 32],
    configured_origin: Option<&str>,
    witness: Option<PathBuf>,
    now_ms: i64,
) -> Result<Arc<LedgerSigner>, StoreError> {
    open_signer_with(store, seed, configured_origin, witness, None, now_ms).await
}

/// [`open_signer`], also sending checkpoints to an HTTP witness.
pub async fn open_signer_with(
    store: &Store,
    seed: &[u8; 32],
    configured_origin: Option<&str>,
    witness: Option<PathBuf>,
    http: Option<HttpWitness>,
    now_ms: i64,
) -> Result<Arc<LedgerSigner>, StoreError> {
    let origin = match store.setting(ORIGIN_SETTING).await? {
        Some(origin) => origin,
        None => {
            let origin = match configured_origin {
                Some(o) => o.to_owned(),
                None => format!(
                    "storefort.local/{}",
                    &crate::secrets::random_token()
                        .map_err(|_| StoreError::Corrupt { what: "system random number generator" })?[..16]
                ),
            };
            let key = LedgerKey::from_seed(&origin, seed).map_err(|_| StoreError::Corrupt { what: "ledger origin" })?;
            let mut tx = store.begin_write(now_ms, "system", None).await?;
            if tx.insert_setting_if_absent(ORIGIN_SETTING, &origin).await? {
                let change = serde_json::json!({"origin": origin, "key": key.verifier().to_string()});
                tx.append("ledger_created", vec![origin.clone()], change).await?;
                let event = storefort_core::SecurityEvent::new(
                    storefort_core::EventKind::LedgerCreated,
                    storefort_core::Actor::System,
                );
                tx.commit(event).await?;
            } else {
                tx.rollback().await?;
            }
            store.setting(ORIGIN_SETTING).await?.ok_or(StoreError::Corrupt { what: "ledger origin" })?
        }
    };
    let key = LedgerKey::from_seed(&origin, seed).map_err(|_| StoreError::Corrupt { what: "ledger origin" })?;
    Ok(match http {
        Some(http) => LedgerSigner::with_http_witness(key, origin, witness, http),
        None => LedgerSigner::new(key, origin, witness),
    })
}

/// Runs the full verification (see `storefort_store::audit`) with the
/// witness held in `witness_dir`.
pub async fn full_audit(
    store: &Store,
    mac_key: &[u8; 32],
    witness_dir: Option<&Path>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<storefort_store::audit::AuditReport, StoreError> {
    let (witness_key, witnessed) = match witness_dir {
        Some(dir) => witness_read(dir).map_err(|e| StoreError::Database(sqlx_io(e)))?,
        None => (None, Vec::new()),
    };
    let input = storefort_store::audit::AuditInput {
        mac_key,
        witness_key: witness_key.and_then(|k| VerifierKey::parse(&k).ok()),
        witness: witnessed
            .into_iter()
            .map(|w| storefort_store::audit::WitnessCheckpoint { size: w.size, note: w.note })
            .collect(),
    };
    store.audit(&input, progress).await
}

fn sqlx_io(e: std::io::Error) -> sqlx::Error {
    sqlx::Error::Io(e)
}

/// The check run at every start: the newest checkpoint is validly signed,
/// the stored tree still has its root, the entries after it are intact, and
/// the witness's newest checkpoint agrees with the database. Cheap: it reads
/// O(log n) nodes plus the tail since the last checkpoint.
pub async fn fast_check(signer: &LedgerSigner, store: &Store, mac_key: &[u8; 32]) -> Result<(), String> {
    let fail = |e: StoreError| format!("cannot read the ledger: {e}");
    let chain = key_chain(store).await?;
    if !chain.is_empty() && !chain.contains(&signer.verifier()) {
        return Err(format!("this store signs with key {} which the ledger never recorded", signer.verifier()));
    }
    let verify = |note: &str| -> Result<Checkpoint, String> {
        let mut last = String::from("no signing key recorded");
        for k in chain.iter().rev() {
            match k.verify_checkpoint(note) {
                Ok(c) => return Ok(c),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    };
    let size = store.ledger_size().await.map_err(fail)?;
    let last = store.latest_checkpoint().await.map_err(fail)?;
    let covered = match &last {
        None => 0,
        Some(c) => {
            let cp =
                verify(&c.note).map_err(|e| format!("the newest checkpoint (size {}) does not verify: {e}", c.size))?;
            if cp.size > size {
                return Err(format!(
                    "the newest checkpoint covers {} entries but the log has {size}: truncated",
                    cp.size
                ));
            }
            let root = root_at(store, cp.size).await.map_err(fail)?;
            if root != cp.root {
                return Err(format!("the log no longer has the root its checkpoint at size {} signed", cp.size));
            }
            cp.size
        }
    };
    let tail = store.ledger_entries(covered, size).await.map_err(fail)?;
    if tail.len() as u64 != size - covered {
        return Err(format!("entries after {covered} are missing"));
    }
    for (i, e) in tail.iter().enumerate() {
        let expected = covered + i as u64;
        let leaf = storefort_ledger::leaf_hash(e.entry.as_bytes());
        let parsed =
            storefort_ledger::Entry::from_canonical(&e.entry).map_err(|err| format!("entry {expected}: {err}"))?;
        if parsed.index != expected
            || hex::encode(leaf) != e.leaf_hash
            || storefort_ledger::hash::mac_hex(mac_key, &leaf) != e.mac
        {
            return Err(format!("entry {expected} ({}) was modified, moved or forged", e.kind));
        }
    }
    if let Some(dir) = &signer.witness
        && let Ok((_, witnessed)) = witness_read(dir)
        && let Some(w) = witnessed.last()
    {
        let cp = verify(&w.note).map_err(|e| format!("the witness's newest checkpoint: {e}"))?;
        if cp.size > size {
            return Err(format!("the witness saw {} entries but the log has {size}: history truncated", cp.size));
        }
        if root_at(store, cp.size).await.map_err(fail)? != cp.root {
            return Err(format!(
                "the witness's checkpoint at size {} disagrees with the log: history rewritten",
                cp.size
            ));
        }
    }
    Ok(())
}

/// The root of the first `size` entries from stored nodes.
async fn root_at(store: &Store, size: u64) -> Result<storefort_ledger::Hash, StoreError> {
    if size == 0 {
        return Ok(storefort_ledger::hash::sha256(b""));
    }
    with_nodes(store, |get| range_root(0, size, get)).await
}

/// Runs a tree computation over stored nodes: learns which perfect-subtree
/// nodes it reads, fetches them together, and refuses to compute over a
/// node the database does not have.
async fn with_nodes<T>(
    store: &Store,
    compute: impl Fn(&mut dyn FnMut(u32, u64) -> Hash) -> T,
) -> Result<T, StoreError> {
    let wanted = needed(|get| {
        compute(get);
    });
    let nodes = store.ledger_nodes(&wanted).await?;
    if nodes.len() != wanted.len() {
        return Err(StoreError::Corrupt { what: "ledger nodes" });
    }
    Ok(compute(&mut from_map(&nodes)))
}

/// Runs the full verification every `every`, raising a critical security
/// event when it finds anything.
pub async fn run_full_audits(
    store: Store,
    mac_key: [u8; 32],
    witness_dir: Option<PathBuf>,
    every: std::time::Duration,
    clock: Arc<dyn crate::Clock>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the start-up check just ran
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match full_audit(&store, &mac_key, witness_dir.as_deref(), &|_, _| {}).await {
            Ok(report) => match report.first_problem() {
                None => tracing::info!(entries = report.entries, "scheduled ledger verification passed"),
                Some(first) => {
                    let event = storefort_core::SecurityEvent::new(
                        storefort_core::EventKind::LedgerTampered,
                        storefort_core::Actor::System,
                    )
                    .with("problems", report.problems.len() as i64)
                    .with("first_index", first.index.map(|i| i as i64).unwrap_or(-1));
                    if let Err(e) = store.record_event(&event, clock.now_ms()).await {
                        tracing::error!(error = %e, "could not record security event");
                    }
                    tracing::error!(target: "security", first = %first, "LEDGER VERIFICATION FAILED");
                }
            },
            Err(e) => {
                // A verification that cannot finish is itself an alarm: it is
                // what an attacker who breaks the reader would want.
                let event = storefort_core::SecurityEvent::new(
                    storefort_core::EventKind::LedgerTampered,
                    storefort_core::Actor::System,
                )
                .with("verification", "failed_to_run");
                let _ = store.record_event(&event, clock.now_ms()).await;
                tracing::error!(target: "security", error = %e, "scheduled ledger verification could not run");
            }
        }
    }
}

/// The text a retiring key signs to hand over to its successor.
pub fn transition_text(origin: &str, old: &VerifierKey, new: &VerifierKey) -> String {
    format!("storefort ledger key transition\n{origin}\n{old}\n{new}\n")
}

/// Records a key rotation: a `key_rotated` entry naming the new key, with a
/// transition statement signed by the old key. Checkpoints signed before
/// stay valid (the old public key stays in the log); the caller swaps the
/// key files only after this commits.
pub async fn record_rotation(
    store: &Store,
    old_seed: &[u8; 32],
    new_seed: &[u8; 32],
    now_ms: i64,
) -> Result<(VerifierKey, VerifierKey), StoreError> {
    let origin = store.setting(ORIGIN_SETTING).await?.ok_or(StoreError::NotFound { what: "ledger" })?;
    let bad = |_| StoreError::Corrupt { what: "ledger origin" };
    let old = LedgerKey::from_seed(&origin, old_seed).map_err(bad)?;
    let new = LedgerKey::from_seed(&origin, new_seed).map_err(bad)?;
    let (old_v, new_v) = (old.verifier(), new.verifier());
    let transition = old.sign_text(&transition_text(&origin, &old_v, &new_v));
    let mut tx = store.begin_write(now_ms, "system", None).await?;
    let change = serde_json::json!({"old_key": old_v.to_string(), "key": new_v.to_string(), "transition": transition});
    tx.append("key_rotated", vec![origin.clone()], change).await?;
    let event =
        storefort_core::SecurityEvent::new(storefort_core::EventKind::LedgerKeyRotated, storefort_core::Actor::System);
    tx.commit(event).await?;
    Ok((old_v, new_v))
}

/// Every key the log has been signed with, oldest first, each handed over
/// by a transition signed with the one before. A broken chain is an error.
pub async fn key_chain(store: &Store) -> Result<Vec<VerifierKey>, String> {
    let entries = store.ledger_key_entries().await.map_err(|e| format!("cannot read the ledger: {e}"))?;
    let mut chain: Vec<VerifierKey> = Vec::new();
    for text in entries {
        let entry = storefort_ledger::Entry::from_canonical(&text).map_err(|e| format!("key entry: {e}"))?;
        let key = VerifierKey::parse(entry.change["key"].as_str().unwrap_or_default())
            .map_err(|e| format!("entry {}: recorded key: {e}", entry.index))?;
        if entry.kind == "key_rotated" {
            let previous = chain.last().ok_or_else(|| format!("entry {}: rotation before any key", entry.index))?;
            let note = entry.change["transition"].as_str().unwrap_or_default();
            let text = previous.verify_note(note).map_err(|e| format!("entry {}: key transition: {e}", entry.index))?;
            if text != transition_text(&previous.name, previous, &key) {
                return Err(format!("entry {}: the key transition names other keys", entry.index));
            }
        }
        chain.push(key);
    }
    Ok(chain)
}

/// Where an HTTP witness is, and the client that reaches it.
pub struct HttpWitness {
    url: String,
    client: reqwest::Client,
}

impl HttpWitness {
    /// A witness at `url` (http:// or https://), with short timeouts so a
    /// slow witness never holds up checkpointing.
    pub fn new(url: &str) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("the witness URL must start with http:// or https://".into());
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpWitness { url: url.to_owned(), client })
    }

    /// Sends a signed checkpoint with a consistency proof from the witness's
    /// newest checkpoint; the witness answers 2xx once it has kept it.
    pub async fn send(&self, key: &VerifierKey, note: &str, proof: &[Hash]) -> Result<(), String> {
        let body =
            serde_json::json!({"checkpoint": note, "consistency_proof": proof.iter().map(to_b64).collect::<Vec<_>>()});
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(WITNESS_KEY_HEADER, key.to_string())
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("cannot reach the witness: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(format!(
                "the witness refused the checkpoint ({status}): {}",
                body.chars().take(200).collect::<String>()
            ))
        }
    }

    /// The newest checkpoint the witness holds.
    pub async fn latest(&self) -> Result<Option<String>, String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| format!("cannot reach the witness: {e}"))?;
        match response.status() {
            s if s == reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => response.text().await.map(Some).map_err(|e| e.to_string()),
            s => Err(format!("the witness answered {s}")),
        }
    }
}

/// Header naming the key that signed a checkpoint sent to a witness.
pub const WITNESS_KEY_HEADER: &str = "x-storefort-ledger-key";
