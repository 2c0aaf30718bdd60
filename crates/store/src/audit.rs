//! Full verification of the ledger against itself, its checkpoints, its
//! witness and the rows it vouches for.
//!
//! Replays every entry in order to rebuild what each order and variant must
//! look like, recomputes the Merkle tree, checks every checkpoint signature
//! and root, and compares every order and variant row with the replayed
//! state. Problems are reported with the index and kind of the first entry
//! that explains them. Reads only; safe while the store is stopped.

use crate::Store;
use crate::error::StoreError;
use crate::ledger::{StoredEntry, order_personal, order_snapshot, stored_entry};
use serde_json::Value;
use sqlx::Row;
use std::collections::HashMap;
use std::fmt;
use storefort_core::OrderStatus;
use storefort_core::order::StockEffect;
use storefort_ledger::hash::{EntryMac, Hash, from_hex};
use storefort_ledger::receipt::{personal_commitment, snapshot_hash};
use storefort_ledger::tree::FullTree;
use storefort_ledger::{Entry, VerifierKey, leaf_hash};

/// One thing that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The ledger index it concerns, when there is one.
    pub index: Option<u64>,
    /// The kind of that entry, when known.
    pub kind: Option<String>,
    pub what: String,
    /// True when found by comparing a table row with the replayed ledger,
    /// rather than in the log itself.
    pub row: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.index, &self.kind) {
            (Some(i), Some(k)) => write!(f, "entry {i} ({k}): {}", self.what),
            (Some(i), None) => write!(f, "entry {i}: {}", self.what),
            _ => write!(f, "{}", self.what),
        }
    }
}

/// A checkpoint held outside the database.
#[derive(Debug, Clone)]
pub struct WitnessCheckpoint {
    pub size: u64,
    pub note: String,
}

/// What to verify against.
pub struct AuditInput<'a> {
    /// The per-entry MAC key (derived from the server key).
    pub mac_key: &'a [u8; 32],
    /// The key the witness first recorded, and the checkpoints it holds.
    pub witness_key: Option<VerifierKey>,
    pub witness: Vec<WitnessCheckpoint>,
}

/// The outcome of a full verification.
#[derive(Debug, Default)]
pub struct AuditReport {
    pub entries: u64,
    pub checkpoints: usize,
    pub witnessed: usize,
    pub orders: usize,
    pub variants: usize,
    pub problems: Vec<Problem>,
}

impl AuditReport {
    /// The first problem: in the log itself if there is one (lowest entry
    /// index first), else in the rows; a broken log explains broken rows.
    pub fn first_problem(&self) -> Option<&Problem> {
        let lowest =
            |row: bool| self.problems.iter().filter(|p| p.row == row).min_by_key(|p| p.index.unwrap_or(u64::MAX));
        lowest(false).or_else(|| lowest(true))
    }
}

#[derive(Debug, Default, Clone)]
struct VariantState {
    price: i64,
    currency: String,
    available: i64,
    reserved: i64,
    sold: i64,
    last_leaf: Hash,
    last_index: u64,
}

#[derive(Debug, Clone)]
struct OrderState {
    snapshot: String,
    personal: String,
    total: i64,
    status: OrderStatus,
    lines: Vec<(String, i64)>,
    last_leaf: Hash,
    placed_index: u64,
}

/// What the ledger says an account row must hold.
#[derive(Debug, Clone)]
struct AccountState {
    role: String,
    status: String,
    credential: String,
    last_leaf: Hash,
    last_index: u64,
}

#[derive(Default)]
struct Replay {
    variants: HashMap<String, VariantState>,
    orders: HashMap<String, OrderState>,
    keys: Vec<VerifierKey>,
    /// Where each of `keys` was introduced.
    key_indexes: Vec<u64>,
    accounts: HashMap<String, AccountState>,
    payments: HashMap<String, PaymentState>,
    problems: Vec<Problem>,
}

/// What the ledger says an order's payment row must hold.
#[derive(Debug, Clone, Default)]
struct PaymentState {
    received: i64,
    /// Refunds the store made and the gateway confirmed.
    refunded_here: i64,
    /// The gateway's largest reported running total.
    refunded_reported: i64,
    last_index: u64,
}

impl Replay {
    fn problem(&mut self, e: &Entry, what: impl Into<String>) {
        self.problems.push(Problem { index: Some(e.index), kind: Some(e.kind.clone()), what: what.into(), row: false });
    }

    fn apply(&mut self, e: &Entry, leaf: &Hash) {
        let c = &e.change;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        match e.kind.as_str() {
            "ledger_created" | "key_rotated" => match VerifierKey::parse(c["key"].as_str().unwrap_or_default()) {
                Ok(k) => {
                    if e.kind == "key_rotated" {
                        // The retiring key must have signed the hand-over.
                        let handed_over = self.keys.last().is_some_and(|previous| {
                            previous.verify_note(c["transition"].as_str().unwrap_or_default()).is_ok_and(|text| {
                                text == format!("storefort ledger key transition\n{}\n{previous}\n{k}\n", previous.name)
                            })
                        });
                        if !handed_over {
                            return self.problem(
                                e,
                                "introduces a signing key without a transition signed by the previous key",
                            );
                        }
                    }
                    self.keys.push(k);
                    self.key_indexes.push(e.index);
                }
                Err(_) => self.problem(e, "the recorded ledger key does not parse"),
            },
            "account_created" => {
                let state = AccountState {
                    role: text(&c["role"]),
                    status: text(&c["status"]),
                    credential: text(&c["credential_sha256"]),
                    last_leaf: *leaf,
                    last_index: e.index,
                };
                self.accounts.insert(e.targets.first().cloned().unwrap_or_default(), state);
            }
            "role_changed" | "account_status_changed" | "password_changed" => {
                let id = e.targets.first().cloned().unwrap_or_default();
                let Some(a) = self.accounts.get_mut(&id) else {
                    return self.problem(e, format!("changes account {id}, which no earlier entry created"));
                };
                match e.kind.as_str() {
                    "role_changed" => a.role = text(&c["new"]),
                    "account_status_changed" => a.status = text(&c["new"]),
                    _ => a.credential = text(&c["credential_sha256"]),
                }
                a.last_leaf = *leaf;
                a.last_index = e.index;
            }
            "product_created" => {
                for v in c["variants"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    let state = VariantState {
                        price: v["price"].as_i64().unwrap_or(-1),
                        currency: text(&v["currency"]),
                        available: v["available"].as_i64().unwrap_or(-1),
                        last_leaf: *leaf,
                        last_index: e.index,
                        ..VariantState::default()
                    };
                    self.variants.insert(text(&v["id"]), state);
                }
            }
            "price_changed" | "stock_changed" => {
                let id = text(&c["variant"]);
                let Some(v) = self.variants.get_mut(&id) else {
                    return self.problem(e, format!("changes variant {id}, which no earlier entry created"));
                };
                let (old, new) = (c["old"].as_i64(), c["new"].as_i64().unwrap_or(-1));
                let before = if e.kind == "price_changed" { v.price } else { v.available };
                if e.kind == "price_changed" {
                    v.price = new;
                } else {
                    v.available = new;
                }
                v.last_leaf = *leaf;
                v.last_index = e.index;
                if old != Some(before) {
                    self.problem(e, format!("says the old value was {old:?} but the ledger had {before}"));
                }
            }
            "order_placed" => {
                let id = e.targets.first().cloned().unwrap_or_default();
                let mut lines = Vec::new();
                for l in c["reserved"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    let (variant, q) = (text(&l["variant"]), l["quantity"].as_i64().unwrap_or(0));
                    match self.variants.get_mut(&variant) {
                        Some(v) => {
                            v.available -= q;
                            v.reserved += q;
                            if v.available < 0 {
                                self.problems.push(Problem {
                                    index: Some(e.index),
                                    kind: Some(e.kind.clone()),
                                    what: format!("reserves more of variant {variant} than was available"),
                                    row: false,
                                });
                            }
                        }
                        None => self.problem(e, format!("reserves variant {variant}, which no earlier entry created")),
                    }
                    lines.push((variant, q));
                }
                let state = OrderState {
                    snapshot: text(&c["snapshot_sha256"]),
                    personal: text(&c["personal_commitment"]),
                    total: c["total"].as_i64().unwrap_or(-1),
                    status: OrderStatus::PendingPayment,
                    lines,
                    last_leaf: *leaf,
                    placed_index: e.index,
                };
                if self.orders.insert(id.clone(), state).is_some() {
                    self.problem(e, format!("places order {id} a second time"));
                }
            }
            "order_status_changed" => {
                let id = e.targets.first().cloned().unwrap_or_default();
                let Some(order) = self.orders.get_mut(&id) else {
                    return self.problem(e, format!("changes order {id}, which no earlier entry placed"));
                };
                let from = OrderStatus::parse(c["from"].as_str().unwrap_or_default());
                let to = OrderStatus::parse(c["to"].as_str().unwrap_or_default());
                let (Some(from), Some(to)) = (from, to) else { return self.problem(e, "has an unknown status") };
                if from != order.status {
                    let was = order.status;
                    return self.problem(e, format!("moves order {id} from {from}, but the ledger had it {was}"));
                }
                let Ok(effect) = from.transition(to) else {
                    return self.problem(e, format!("moves order {id} from {from} to {to}, which is not allowed"));
                };
                order.status = to;
                order.last_leaf = *leaf;
                let lines = order.lines.clone();
                for (variant, q) in lines {
                    if let Some(v) = self.variants.get_mut(&variant) {
                        match effect {
                            StockEffect::Sell => {
                                v.reserved -= q;
                                v.sold += q;
                            }
                            StockEffect::Release => {
                                v.reserved -= q;
                                v.available += q;
                            }
                            StockEffect::None => {}
                        }
                    }
                }
            }
            // Payments: the amounts the payment row must hold.
            "payment_received" | "refund_completed" | "refund_reported" => {
                let id = e.targets.first().cloned().unwrap_or_default();
                if !self.orders.contains_key(&id) {
                    return self.problem(e, format!("records money for order {id}, which no earlier entry placed"));
                }
                let p = self.payments.entry(id).or_default();
                p.last_index = e.index;
                match e.kind.as_str() {
                    "payment_received" => p.received = c["amount"].as_i64().unwrap_or(-1),
                    "refund_completed" => p.refunded_here += c["amount"].as_i64().unwrap_or(0),
                    _ => p.refunded_reported = p.refunded_reported.max(c["refunded_total"].as_i64().unwrap_or(0)),
                }
            }
            "payment_session_opened"
            | "payment_session_expired"
            | "payment_failed"
            | "payment_card_reported"
            | "refund_requested"
            | "refund_failed"
            | "gateway_event"
            | "order_risk_assessed"
            | "order_reviewed" => {
                let id = e.targets.first().cloned().unwrap_or_default();
                if !self.orders.contains_key(&id) {
                    self.problem(e, format!("concerns order {id}, which no earlier entry placed"));
                }
            }
            // Identity records with no row state to replay: they prove what
            // happened (sign-ins, failures, sessions, factors, tokens).
            "admin_token_issued"
            | "sign_up_repeated"
            | "email_verified"
            | "password_verified"
            | "signed_in"
            | "sign_in_failed"
            | "second_factor_failed"
            | "stepped_up"
            | "sessions_revoked"
            | "totp_enrollment_started"
            | "second_factor_enrolled"
            | "second_factor_reset"
            | "recovery_codes_regenerated"
            | "api_token_created"
            | "api_token_revoked"
            | "password_reset_requested"
            | "customer_erased"
            | "order_personal_data_erased"
            | "legal_hold_set"
            | "legal_hold_lifted"
            | "erasure_requested"
            | "personal_data_exported"
            | "consent_granted"
            | "consent_withdrawn"
            | "newsletter_sent"
            | "retention_applied"
            | "webhook_endpoint_created"
            | "webhook_endpoint_disabled" => {}
            other => {
                let other = other.to_owned();
                self.problem(e, format!("unknown entry kind {other}"));
            }
        }
    }
}

/// The per-entry checks that need no other entry.
struct Checked {
    leaf: Hash,
    leaf_matches: bool,
    mac_matches: bool,
    entry: Result<Entry, storefort_ledger::entry::EntryError>,
}

const BATCH: i64 = 20_000;

/// Field and record separators for batched fetching. Canonical JSON escapes
/// every control character, so neither appears in an honest entry; a
/// tampered one that holds them fails to split and is reported.
const FIELD: char = '\u{1f}';
const RECORD: char = '\u{1e}';

/// Fetches up to BATCH entries after `after` as a single aggregated row:
/// the drivers hand rows over one at a time through a channel, which at a
/// million entries costs more than verifying them.
async fn fetch_batch(store: Store, after: i64) -> Result<Vec<StoredEntry>, StoreError> {
    let sql = match store.backend() {
        crate::Backend::Sqlite => {
            "SELECT COUNT(*) AS n, group_concat(idx || char(31) || leaf_hash || char(31) || mac || char(31) || kind \
             || char(31) || entry, char(30)) AS blob \
             FROM (SELECT * FROM ledger_entries WHERE idx > $1 ORDER BY idx LIMIT $2)"
        }
        crate::Backend::Postgres => {
            "SELECT COUNT(*) AS n, string_agg(idx::text || chr(31) || leaf_hash || chr(31) || mac || chr(31) || kind \
             || chr(31) || entry, chr(30)) AS blob \
             FROM (SELECT * FROM ledger_entries WHERE idx > $1 ORDER BY idx LIMIT $2) AS batch"
        }
    };
    let row = sqlx::query(sql).bind(after).bind(BATCH).fetch_one(&store.pool).await?;
    let n: i64 = row.try_get("n")?;
    let blob: Option<String> = row.try_get("blob")?;
    let Some(blob) = blob else { return Ok(Vec::new()) };
    match split_batch(&blob, n) {
        Some(out) => Ok(out),
        // A tampered row holds a separator: read this batch row by row, so
        // the bad entry is reported at its own index instead of stopping.
        None => fetch_rows(&store, after).await,
    }
}

fn split_batch(blob: &str, n: i64) -> Option<Vec<StoredEntry>> {
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for record in blob.split(RECORD) {
        let fields: Vec<&str> = record.splitn(5, FIELD).collect();
        let [idx, leaf_hash, mac, kind, entry] = fields.as_slice() else { return None };
        out.push(StoredEntry {
            idx: idx.parse().ok()?,
            leaf_hash: (*leaf_hash).to_owned(),
            mac: (*mac).to_owned(),
            kind: (*kind).to_owned(),
            entry: (*entry).to_owned(),
        });
    }
    if out.len() as i64 != n || out.iter().any(|e| e.entry.contains(FIELD) || e.entry.contains(RECORD)) {
        return None;
    }
    // The aggregate's order is not guaranteed; positions are checked later.
    out.sort_unstable_by_key(|e| e.idx);
    Some(out)
}

async fn fetch_rows(store: &Store, after: i64) -> Result<Vec<StoredEntry>, StoreError> {
    let rows =
        sqlx::query("SELECT idx, leaf_hash, mac, kind, entry FROM ledger_entries WHERE idx > $1 ORDER BY idx LIMIT $2")
            .bind(after)
            .bind(BATCH)
            .fetch_all(&store.pool)
            .await?;
    rows.iter().map(stored_entry).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
}

/// Hashes, MACs and parses a batch on every core.
fn check_parallel(rows: &[StoredEntry], mac: &EntryMac) -> Vec<Checked> {
    let check = |r: &StoredEntry| {
        let leaf = leaf_hash(r.entry.as_bytes());
        // Compare bytes, not hex strings: this runs a million times.
        let mac_matches = from_hex(&r.mac) == Some(mac.bytes(&leaf));
        // Bytes under a valid MAC were written (canonically) by the store;
        // anything else gets the full canonical-form check.
        let entry = if mac_matches { Entry::from_authenticated(&r.entry) } else { Entry::from_canonical(&r.entry) };
        Checked { leaf, leaf_matches: from_hex(&r.leaf_hash) == Some(leaf), mac_matches, entry }
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
    let chunk = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            rows.chunks(chunk).map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>())).collect();
        // A panicking check is a bug: surface it rather than skip entries.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

fn problem(what: impl Into<String>) -> Problem {
    Problem { index: None, kind: None, what: what.into(), row: false }
}

impl Store {
    /// Verifies everything; `progress(done, total)` is called as entries are
    /// read. A report with no problems means the store is intact.
    pub async fn audit(
        &self,
        input: &AuditInput<'_>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<AuditReport, StoreError> {
        let mut report = AuditReport::default();
        let head = self.ledger_size().await?;
        let mut replay = Replay::default();
        let mut leaves: Vec<Hash> = Vec::with_capacity(usize::try_from(head).unwrap_or(0));
        // Kinds are few: keep one copy of each and an index per entry.
        let mut kind_names: Vec<String> = Vec::new();
        let mut kinds: Vec<u16> = Vec::new();
        let mut expected: u64 = 0;
        let mac = EntryMac::new(input.mac_key);
        // Fetch the next batch while the CPU checks the current one.
        let mut next = Some(tokio::spawn(fetch_batch(self.clone(), i64::MIN)));
        while let Some(fetching) = next.take() {
            let rows =
                fetching.await.map_err(|e| StoreError::Database(sqlx::Error::Io(std::io::Error::other(e))))??;
            let Some(last) = rows.last() else { break };
            next = Some(tokio::spawn(fetch_batch(self.clone(), last.idx)));
            let mac = mac.clone();
            let (rows, checked) = tokio::task::spawn_blocking(move || {
                let checked = check_parallel(&rows, &mac);
                (rows, checked)
            })
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Io(std::io::Error::other(e))))?;
            for (r, c) in rows.into_iter().zip(checked) {
                if r.idx != expected as i64 {
                    report.problems.push(Problem {
                        index: Some(expected),
                        kind: None,
                        what: format!(
                            "missing: the log jumps from entry {} to entry {} (deleted entries?)",
                            expected.saturating_sub(1),
                            r.idx
                        ),
                        row: false,
                    });
                    // Keep positions aligned with what is stored, so later
                    // checks still compare like with like.
                    expected = u64::try_from(r.idx).unwrap_or(expected);
                }
                let pos = expected;
                let kind = r.kind;
                let at = |what: String| Problem { index: Some(pos), kind: Some(kind.clone()), what, row: false };
                if !c.leaf_matches {
                    report.problems.push(at("its content does not match its stored leaf hash (entry modified)".into()));
                }
                if !c.mac_matches {
                    report.problems.push(at("its MAC does not verify (entry forged or modified)".into()));
                }
                match c.entry {
                    Ok(entry) => {
                        if entry.index != expected {
                            report.problems.push(at(format!(
                                "is stored at position {expected} but says it is entry {} (entries reordered?)",
                                entry.index
                            )));
                        }
                        if entry.kind != kind {
                            report.problems.push(at(format!("is stored as {kind} but is a {} entry", entry.kind)));
                        }
                        replay.apply(&entry, &c.leaf);
                    }
                    Err(e) => report.problems.push(at(format!("is not a valid entry: {e}"))),
                }
                leaves.push(c.leaf);
                let k = match kind_names.iter().position(|n| *n == kind) {
                    Some(k) => k,
                    None => {
                        kind_names.push(kind);
                        kind_names.len() - 1
                    }
                };
                kinds.push(u16::try_from(k).unwrap_or(u16::MAX));
                expected += 1;
                progress(expected, head);
            }
        }
        report.entries = expected;
        if expected != head {
            report.problems.push(Problem {
                index: Some(expected.min(head)),
                kind: None,
                what: format!("the log holds {expected} entries but its head says {head} (truncated or extended)"),
                row: false,
            });
        }
        let kind_at = |i: u64| {
            let k = kinds.get(usize::try_from(i).ok()?)?;
            kind_names.get(usize::from(*k)).cloned()
        };
        let tree = FullTree::new(leaves);
        let keys = replay.keys.clone();
        let verify_note = |note: &str| -> Result<storefort_ledger::Checkpoint, String> {
            let mut last = String::from("no ledger key is recorded in the log");
            for k in &keys {
                match k.verify_checkpoint(note) {
                    Ok(c) => return Ok(c),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(last)
        };
        for c in self.checkpoints().await? {
            report.checkpoints += 1;
            let size = u64::try_from(c.size).unwrap_or(0);
            match verify_note(&c.note) {
                Err(e) => {
                    report.problems.push(problem(format!("checkpoint at size {size} is not validly signed: {e}")))
                }
                Ok(cp) if cp.size != size || Some(cp.root) != from_hex(&c.root) => report
                    .problems
                    .push(problem(format!("checkpoint at size {size} was replaced: its note says size {}", cp.size))),
                Ok(_) if size > tree.size() => report.problems.push(Problem {
                    index: Some(tree.size()),
                    kind: None,
                    what: format!(
                        "a checkpoint covers {size} entries but the log has {} (tail truncated)",
                        tree.size()
                    ),
                    row: false,
                }),
                Ok(cp) if cp.root != tree.root(size) => report.problems.push(problem(format!(
                    "checkpoint at size {size} does not match the log: entries before {size} were changed"
                ))),
                Ok(_) => {}
            }
        }
        for w in &input.witness {
            report.witnessed += 1;
            // The witness trusts the key it first saw and every key the log
            // hands over to from it.
            let checked = match &input.witness_key {
                Some(k) if !replay.keys.contains(k) => k.verify_checkpoint(&w.note).map_err(|e| e.to_string()),
                _ => verify_note(&w.note),
            };
            match checked {
                Err(e) => report.problems.push(problem(format!(
                    "the witness's checkpoint at size {} does not verify with the key the witness holds: {e}",
                    w.size
                ))),
                Ok(cp) if cp.size > tree.size() => report.problems.push(Problem {
                    index: Some(tree.size()),
                    kind: None,
                    what: format!("the witness saw {} entries but the log has {} (history truncated)", cp.size, tree.size()),
                    row: false,
                }),
                Ok(cp) if cp.root != tree.root(cp.size) => report.problems.push(problem(format!(
                    "the witness holds a checkpoint at size {} whose root differs from the log's: history before {} was rewritten",
                    cp.size, cp.size
                ))),
                Ok(_) => {}
            }
        }
        if let (Some(wk), Some(first)) = (&input.witness_key, replay.keys.first())
            && !replay.keys.contains(wk)
        {
            // The entry that introduced the log's first key is where its
            // history parts from what the witness saw.
            let at = replay.key_indexes.first().copied();
            report.problems.push(Problem {
                index: at,
                kind: at.and_then(&kind_at),
                what: format!(
                    "the log's signing key {first} is not the key the witness recorded ({wk}): history was rewritten and re-keyed"
                ),
                row: false,
            });
        }
        self.audit_rows(&replay, &mut report, &kind_at).await?;
        report.problems.extend(replay.problems);
        Ok(report)
    }

    /// Every payment row's received and refunded amounts against the ledger.
    async fn audit_payments(
        &self,
        replay: &Replay,
        report: &mut AuditReport,
        kind_at: &(dyn Fn(u64) -> Option<String> + Sync),
    ) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT order_id, amount_received, amount_refunded FROM payments ORDER BY order_id")
            .fetch_all(&self.pool)
            .await?;
        let mut seen = std::collections::HashSet::new();
        for r in rows {
            let id: String = r.try_get("order_id")?;
            seen.insert(id.clone());
            let received: i64 = r.try_get("amount_received")?;
            let refunded: i64 = r.try_get("amount_refunded")?;
            let expected = replay.payments.get(&id).cloned().unwrap_or_default();
            let expected_refunded = expected.refunded_here.max(expected.refunded_reported);
            if received != expected.received || refunded != expected_refunded {
                let index = (expected.last_index > 0).then_some(expected.last_index);
                report.problems.push(Problem {
                    index,
                    kind: index.and_then(kind_at),
                    what: format!(
                        "the payment of order {id} shows {received} received and {refunded} refunded, \
                         but the ledger says {} and {expected_refunded}",
                        expected.received
                    ),
                    row: true,
                });
            }
        }
        for (id, p) in &replay.payments {
            if !seen.contains(id) && p.received > 0 {
                report.problems.push(Problem {
                    index: Some(p.last_index),
                    kind: kind_at(p.last_index),
                    what: format!("the payment of order {id} is in the ledger but was deleted from the database"),
                    row: true,
                });
            }
        }
        Ok(())
    }

    async fn audit_rows(
        &self,
        replay: &Replay,
        report: &mut AuditReport,
        kind_at: &(dyn Fn(u64) -> Option<String> + Sync),
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = sqlx::query("SELECT id FROM orders ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, sqlx::Error>>()?;
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            report.orders += 1;
            seen.insert(id.clone());
            let order = self.order(&id).await?;
            let (ledger_hash, _) = self.order_ledger_fields(&id).await?;
            let Some(expected) = replay.orders.get(&id) else {
                report.problems.push(Problem {
                    row: true,
                    ..problem(format!("order {id} (number {}) has no ledger entry: inserted directly", order.number))
                });
                continue;
            };
            let at = |what: String| Problem {
                index: Some(expected.placed_index),
                kind: kind_at(expected.placed_index),
                what,
                row: true,
            };
            let snapshot = snapshot_hash(&order_snapshot(&order)).unwrap_or_default();
            if order.total != expected.total {
                report.problems.push(at(format!(
                    "order {} total is {} in the database but {} in the ledger",
                    order.number, order.total, expected.total
                )));
            } else if snapshot != expected.snapshot {
                report.problems.push(at(format!(
                    "order {} differs from its ledger snapshot (lines, prices or amounts edited)",
                    order.number
                )));
            }
            let (_, personal_key) = self.order_ledger_fields(&id).await?;
            // Erased orders have no key any more: nothing left to compare.
            if let Some(key) = personal_key.as_deref().and_then(|k| hex::decode(k).ok()) {
                let actual = personal_commitment(&key, &order_personal(&order)).unwrap_or_default();
                if actual != expected.personal {
                    report.problems.push(at(format!(
                        "order {}'s personal data (email or address) differs from its ledger commitment",
                        order.number
                    )));
                }
            }
            if order.status != expected.status {
                report.problems.push(at(format!(
                    "order {} is {} in the database but {} in the ledger",
                    order.number, order.status, expected.status
                )));
            }
            if from_hex(&ledger_hash) != Some(expected.last_leaf) {
                report.problems.push(at(format!("order {} does not point at its latest ledger entry", order.number)));
            }
        }
        for (id, o) in &replay.orders {
            if !seen.contains(id) {
                report.problems.push(Problem {
                    index: Some(o.placed_index),
                    kind: kind_at(o.placed_index),
                    what: format!("order {id} is in the ledger but was deleted from the database"),
                    row: true,
                });
            }
        }
        self.audit_payments(replay, report, kind_at).await?;
        self.audit_accounts(replay, report, kind_at).await?;
        let mut seen_variants = std::collections::HashSet::new();
        let rows = sqlx::query(
            "SELECT id, sku, price_amount, currency, available, reserved, sold, ledger_hash FROM variants ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            report.variants += 1;
            let id: String = r.try_get("id")?;
            seen_variants.insert(id.clone());
            let sku: String = r.try_get("sku")?;
            let Some(v) = replay.variants.get(&id) else {
                report.problems.push(Problem {
                    row: true,
                    ..problem(format!("variant {sku} has no ledger entry: inserted directly"))
                });
                continue;
            };
            let at = |what: String| Problem { index: Some(v.last_index), kind: kind_at(v.last_index), what, row: true };
            let price: i64 = r.try_get("price_amount")?;
            let currency: String = r.try_get("currency")?;
            if price != v.price || currency != v.currency {
                report.problems.push(at(format!(
                    "variant {sku} price is {price} {currency} in the database but {} {} in the ledger",
                    v.price, v.currency
                )));
            }
            let counts: (i64, i64, i64) = (r.try_get("available")?, r.try_get("reserved")?, r.try_get("sold")?);
            if counts != (v.available, v.reserved, v.sold) {
                report.problems.push(at(format!(
                    "variant {sku} stock (available, reserved, sold) is {counts:?} in the database but {:?} in the ledger",
                    (v.available, v.reserved, v.sold)
                )));
            }
            let ledger_hash: String = r.try_get("ledger_hash")?;
            if from_hex(&ledger_hash) != Some(v.last_leaf) {
                report.problems.push(at(format!("variant {sku} does not point at its latest ledger entry")));
            }
        }
        for (id, v) in &replay.variants {
            if !seen_variants.contains(id) {
                report.problems.push(Problem {
                    index: Some(v.last_index),
                    kind: kind_at(v.last_index),
                    what: format!("variant {id} is in the ledger but was deleted from the database"),
                    row: true,
                });
            }
        }
        Ok(())
    }

    /// Every account row must match its ledger history: role, status and
    /// password hash, and point at its latest entry. An account inserted
    /// directly, or one deleted, is named too.
    async fn audit_accounts(
        &self,
        replay: &Replay,
        report: &mut AuditReport,
        kind_at: &(dyn Fn(u64) -> Option<String> + Sync),
    ) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT id, role, status, password_hash, ledger_hash FROM accounts ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut seen = std::collections::HashSet::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            seen.insert(id.clone());
            let Some(a) = replay.accounts.get(&id) else {
                report.problems.push(Problem {
                    index: None,
                    kind: None,
                    what: format!("account {id} has no ledger entry: inserted directly"),
                    row: true,
                });
                continue;
            };
            let at = |what: String| Problem { index: Some(a.last_index), kind: kind_at(a.last_index), what, row: true };
            let (role, status): (String, String) = (r.try_get("role")?, r.try_get("status")?);
            if role != a.role {
                report
                    .problems
                    .push(at(format!("account {id} has role {role} in the database but {} in the ledger", a.role)));
            }
            if status != a.status {
                report
                    .problems
                    .push(at(format!("account {id} is {status} in the database but {} in the ledger", a.status)));
            }
            let hash: String = r.try_get("password_hash")?;
            if crate::credential_commitment(&hash) != a.credential {
                report.problems.push(at(format!("account {id}'s password hash is not the one the ledger recorded")));
            }
            let ledger_hash: String = r.try_get("ledger_hash")?;
            if from_hex(&ledger_hash) != Some(a.last_leaf) {
                report.problems.push(at(format!("account {id} does not point at its latest ledger entry")));
            }
        }
        for (id, a) in &replay.accounts {
            if !seen.contains(id) {
                report.problems.push(Problem {
                    index: Some(a.last_index),
                    kind: kind_at(a.last_index),
                    what: format!("account {id} is in the ledger but was deleted from the database"),
                    row: true,
                });
            }
        }
        Ok(())
    }
}
