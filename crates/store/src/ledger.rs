//! The ledger's persistence: appending entries inside the spine's
//! transaction, and reading entries, nodes and checkpoints back for proofs,
//! checkpoints and verification.
//!
//! Appending takes the next index from `ledger_head` with a conditional
//! update, which on PostgreSQL locks the head row until commit: entries are
//! numbered in commit order across every instance, with no gaps.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;
use storefort_ledger::entry::VERSION;
use storefort_ledger::hash::{Hash, from_hex, mac_hex};
use storefort_ledger::{Entry, leaf_hash};

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf: Hash,
}

impl Appended {
    pub fn leaf_hex(&self) -> String {
        hex::encode(self.leaf)
    }
}

/// A stored entry as read back, unverified.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub idx: i64,
    pub leaf_hash: String,
    pub mac: String,
    pub kind: String,
    pub entry: String,
}

pub(crate) fn stored_entry(r: &sqlx::any::AnyRow) -> Result<StoredEntry, sqlx::Error> {
    Ok(StoredEntry {
        idx: r.try_get("idx")?,
        leaf_hash: r.try_get("leaf_hash")?,
        mac: r.try_get("mac")?,
        kind: r.try_get("kind")?,
        entry: r.try_get("entry")?,
    })
}

fn stored_checkpoint(r: &sqlx::any::AnyRow) -> Result<StoredCheckpoint, sqlx::Error> {
    Ok(StoredCheckpoint {
        size: r.try_get("size")?,
        root: r.try_get("root")?,
        note: r.try_get("note")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A stored checkpoint.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub size: i64,
    pub root: String,
    pub note: String,
    pub created_at: i64,
}

impl WriteTx {
    /// Appends an entry recording this transaction's change. Call it for
    /// every change; [`WriteTx::commit`] refuses a transaction without one.
    pub async fn append(&mut self, kind: &str, targets: Vec<String>, change: Value) -> Result<Appended, StoreError> {
        if !self.store.record_ledger {
            self.appended += 1;
            return Ok(Appended { index: 0, leaf: [0; 32] });
        }
        let size: i64 = sqlx::query("UPDATE ledger_head SET size = size + 1 WHERE id = 1 RETURNING size")
            .fetch_one(&mut *self.tx)
            .await?
            .try_get("size")?;
        let index = u64::try_from(size - 1).map_err(|_| StoreError::Corrupt { what: "ledger head" })?;
        let entry = Entry {
            v: VERSION,
            index,
            kind: kind.to_owned(),
            actor: self.actor.clone(),
            targets,
            change,
            at: self.now_ms,
            request_id: self.request_id.clone(),
        };
        let text = entry.to_canonical().map_err(|_| StoreError::Corrupt { what: "ledger entry" })?;
        let leaf = leaf_hash(text.as_bytes());
        let mac = mac_hex(self.store.ledger_mac_key(), &leaf);
        sqlx::query(
            "INSERT INTO ledger_entries (idx, leaf_hash, mac, kind, target, entry) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(size - 1)
        .bind(hex::encode(leaf))
        .bind(mac)
        .bind(kind)
        .bind(entry.targets.first().cloned())
        .bind(text)
        .execute(&mut *self.tx)
        .await?;
        self.appended += 1;
        Ok(Appended { index, leaf })
    }
}

impl Store {
    /// Subjects whose erasure the ledger records (accounts by id, guest
    /// orders as `order:<id>`), to re-apply against a restored key store.
    pub async fn erased_subjects_in_ledger(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, target, entry FROM ledger_entries \
             WHERE kind IN ('customer_erased', 'order_personal_data_erased') ORDER BY idx",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut subjects = Vec::new();
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let Some(target) = r.try_get::<Option<String>, _>("target")? else { continue };
            if kind == "customer_erased" {
                subjects.push(target);
                continue;
            }
            let entry: String = r.try_get("entry")?;
            let named = serde_json::from_str::<Value>(&entry)
                .ok()
                .and_then(|e| e["change"]["subject"].as_str().map(str::to_owned));
            subjects.push(named.unwrap_or_else(|| format!("order:{target}")));
        }
        Ok(subjects)
    }

    /// Number of entries in the log.
    pub async fn ledger_size(&self) -> Result<u64, StoreError> {
        let size: i64 =
            sqlx::query("SELECT size FROM ledger_head WHERE id = 1").fetch_one(&self.pool).await?.try_get("size")?;
        u64::try_from(size).map_err(|_| StoreError::Corrupt { what: "ledger head" })
    }

    /// Entries with `from <= idx < to`, in index order.
    pub async fn ledger_entries(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, leaf_hash, mac, kind, entry FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .bind(i64::try_from(to).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_entry).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    /// The entries that introduce signing keys (`ledger_created`,
    /// `key_rotated`), oldest first.
    pub async fn ledger_key_entries(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT entry FROM ledger_entries WHERE kind IN ('ledger_created', 'key_rotated') ORDER BY idx",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("entry")).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    /// The latest entry whose first target is `target`.
    pub async fn latest_entry_for(&self, target: &str) -> Result<Option<StoredEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT idx, leaf_hash, mac, kind, entry FROM ledger_entries WHERE target = $1 ORDER BY idx DESC LIMIT 1",
        )
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored_entry).transpose().map_err(StoreError::from)
    }

    /// The latest entry that commits to an order's snapshot (its placement
    /// or a status change), for receipts. Payment, risk and gateway
    /// entries also name the order but carry no snapshot.
    pub async fn latest_order_entry(&self, target: &str) -> Result<Option<StoredEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT idx, leaf_hash, mac, kind, entry FROM ledger_entries \
             WHERE target = $1 AND kind IN ('order_placed', 'order_status_changed') ORDER BY idx DESC LIMIT 1",
        )
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored_entry).transpose().map_err(StoreError::from)
    }

    /// Fetches the perfect-subtree hashes a computation needs: level 0 from
    /// the entries, higher levels from `ledger_nodes`. Wanted nodes cluster
    /// (a new checkpoint wants a run of leaves), so each level is one range
    /// query, unless its nodes are few and far apart (a proof wants one node
    /// per level), then they are fetched singly.
    pub async fn ledger_nodes(&self, wanted: &[(u32, u64)]) -> Result<HashMap<(u32, u64), Hash>, StoreError> {
        let mut by_level: std::collections::BTreeMap<u32, Vec<i64>> = std::collections::BTreeMap::new();
        for &(level, index) in wanted {
            let index = i64::try_from(index).map_err(|_| StoreError::Corrupt { what: "ledger node index" })?;
            by_level.entry(level).or_default().push(index);
        }
        let mut found = HashMap::with_capacity(wanted.len());
        for (level, indexes) in by_level {
            let lo = indexes.iter().copied().min().unwrap_or(0);
            let hi = indexes.iter().copied().max().unwrap_or(0);
            let wanted_here: std::collections::HashSet<i64> = indexes.into_iter().collect();
            let mut rows = Vec::new();
            if (wanted_here.len() as i64).saturating_mul(4) < hi - lo + 1 {
                for &i in &wanted_here {
                    rows.extend(self.node_rows(level, i, i).await?);
                }
            } else {
                rows = self.node_rows(level, lo, hi).await?;
            }
            for (idx, hash) in rows {
                if wanted_here.contains(&idx)
                    && let Some(h) = from_hex(&hash)
                {
                    let index = u64::try_from(idx).map_err(|_| StoreError::Corrupt { what: "ledger node index" })?;
                    found.insert((level, index), h);
                }
            }
        }
        Ok(found)
    }

    async fn node_rows(&self, level: u32, lo: i64, hi: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = if level == 0 {
            sqlx::query("SELECT idx, leaf_hash AS h FROM ledger_entries WHERE idx >= $1 AND idx <= $2")
                .bind(lo)
                .bind(hi)
                .fetch_all(&self.pool)
                .await?
        } else {
            sqlx::query("SELECT idx, hash AS h FROM ledger_nodes WHERE level = $1 AND idx >= $2 AND idx <= $3")
                .bind(i64::from(level))
                .bind(lo)
                .bind(hi)
                .fetch_all(&self.pool)
                .await?
        };
        rows.iter()
            .map(|r| Ok((r.try_get("idx")?, r.try_get("h")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Stores perfect-subtree hashes (idempotent: several instances may race).
    pub async fn insert_ledger_nodes(&self, nodes: &[(u32, u64, Hash)]) -> Result<(), StoreError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let writer = self.lock_writer().await;
        let mut tx = self.pool.begin().await?;
        // Many rows per statement: the first checkpoint of a big log writes
        // about one node per entry.
        for chunk in nodes.chunks(300) {
            let values: Vec<String> =
                (0..chunk.len()).map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3)).collect();
            let sql = format!(
                "INSERT INTO ledger_nodes (level, idx, hash) VALUES {} ON CONFLICT (level, idx) DO NOTHING",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (level, index, hash) in chunk {
                q = q.bind(i64::from(*level)).bind(i64::try_from(*index).unwrap_or(i64::MAX)).bind(hex::encode(hash));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        drop(writer);
        self.durable().await
    }

    /// Stores a signed checkpoint (idempotent per size).
    pub async fn insert_checkpoint(&self, size: u64, root: &Hash, note: &str, now_ms: i64) -> Result<(), StoreError> {
        let writer = self.lock_writer().await;
        sqlx::query(
            "INSERT INTO ledger_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING",
        )
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(hex::encode(root))
        .bind(note)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        drop(writer);
        self.durable().await
    }

    /// The newest checkpoint, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query("SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stored_checkpoint).transpose().map_err(StoreError::from)
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows = sqlx::query("SELECT size, root, note, created_at FROM ledger_checkpoints ORDER BY size")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_checkpoint).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }
}

/// The snapshot of an order that its ledger entry commits to: everything
/// but personal data. Built the same way at checkout and at verification.
pub fn order_snapshot(o: &crate::OrderView) -> Value {
    json!({
        "id": o.id,
        "number": o.number,
        "currency": o.currency,
        "subtotal": o.subtotal,
        "shipping": o.shipping,
        "tax": o.tax,
        "total": o.total,
        "created_at": o.created_at,
        "lines": o.lines.iter().map(|l| json!({
            "variant_id": l.variant_id,
            "sku": l.sku,
            "title": l.title,
            "unit_price": l.unit_price,
            "quantity": l.quantity,
            "line_total": l.line_total,
        })).collect::<Vec<_>>(),
    })
}

/// The personal part of an order, committed to with a per-order key.
///
/// The fields are stored encrypted (under the order's data key, bound to the
/// order and field), so the commitment covers the ciphertexts: any edit of
/// them is caught without the key, and the AEAD binds them to the plaintext.
pub fn order_personal(o: &crate::OrderView) -> Value {
    json!({"email": o.email, "shipping_address": o.shipping_address})
}
