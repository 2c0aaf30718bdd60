//! Ledger entries and their canonical encoding.
//!
//! An entry is JSON with object keys sorted at every depth, no floats and
//! no insignificant whitespace, so the same entry always has the same bytes
//! and the same leaf hash, in any language. Each entry names its own
//! position, so a deleted, reordered or inserted entry shows up at a place
//! that can be named; the Merkle tree and the signed checkpoints bind the
//! whole sequence.
//!
//! Entries carry ids, amounts, codes and hashes. Never personal data in
//! plaintext: where an entry commits to personal data it holds a keyed
//! commitment whose key can be destroyed.

use crate::hash::{Hash, leaf_hash};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The encoding version written today.
pub const VERSION: u64 = 1;

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Encoding version.
    pub v: u64,
    /// Position in the log, from 0.
    pub index: u64,
    /// What happened, e.g. `order_placed`, `price_changed`.
    pub kind: String,
    /// Who did it: an account id, `bootstrap_admin`, `guest` or `system`.
    pub actor: String,
    /// Ids of the records changed.
    pub targets: Vec<String>,
    /// The change itself: integers, strings, booleans, arrays, objects.
    pub change: Value,
    /// Unix milliseconds.
    pub at: i64,
    pub request_id: Option<String>,
}

/// Why bytes are not a canonical entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("not an entry: {0}")]
    Malformed(String),
    #[error("the entry holds a floating-point number")]
    Float,
    #[error("the entry is not in canonical form")]
    NotCanonical,
    #[error("unknown entry version {0}")]
    Version(u64),
}

impl Entry {
    /// The canonical bytes of this entry: the fields in sorted key order,
    /// written directly (this runs for every entry of a full verification).
    pub fn to_canonical(&self) -> Result<String, EntryError> {
        let json = |v: &str| serde_json::to_string(v).map_err(|e| EntryError::Malformed(e.to_string()));
        let mut out = String::with_capacity(256);
        out.push_str("{\"actor\":");
        out.push_str(&json(&self.actor)?);
        out.push_str(",\"at\":");
        out.push_str(&self.at.to_string());
        out.push_str(",\"change\":");
        write_canonical(&self.change, &mut out)?;
        out.push_str(",\"index\":");
        out.push_str(&self.index.to_string());
        out.push_str(",\"kind\":");
        out.push_str(&json(&self.kind)?);
        out.push_str(",\"request_id\":");
        match &self.request_id {
            Some(r) => out.push_str(&json(r)?),
            None => out.push_str("null"),
        }
        out.push_str(",\"targets\":[");
        for (i, t) in self.targets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json(t)?);
        }
        out.push_str("],\"v\":");
        out.push_str(&self.v.to_string());
        out.push('}');
        Ok(out)
    }

    /// Parses canonical bytes, refusing anything that would not re-encode to
    /// exactly the same bytes.
    pub fn from_canonical(bytes: &str) -> Result<Self, EntryError> {
        let entry: Entry = serde_json::from_str(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if entry.v != VERSION {
            return Err(EntryError::Version(entry.v));
        }
        if entry.to_canonical()? != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }

    /// Parses an entry whose bytes are already authenticated (its MAC
    /// verified, so the store wrote them canonically), skipping the
    /// re-encoding check that [`Entry::from_canonical`] does.
    pub fn from_authenticated(bytes: &str) -> Result<Self, EntryError> {
        let entry: Entry = serde_json::from_str(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if entry.v != VERSION {
            return Err(EntryError::Version(entry.v));
        }
        Ok(entry)
    }

    /// The RFC 9162 leaf hash of the canonical bytes.
    pub fn leaf_hash(&self) -> Result<Hash, EntryError> {
        Ok(leaf_hash(self.to_canonical()?.as_bytes()))
    }
}

/// JSON with sorted keys at every depth and no whitespace; refuses floats.
pub fn canonical_json(value: &Value) -> Result<String, EntryError> {
    let mut out = String::new();
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String) -> Result<(), EntryError> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => {
            out.push_str(&serde_json::to_string(value).map_err(|e| EntryError::Malformed(e.to_string()))?);
        }
        Value::Number(n) => {
            if !(n.is_i64() || n.is_u64()) {
                return Err(EntryError::Float);
            }
            out.push_str(&n.to_string());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here, whatever order the map keeps.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).map_err(|e| EntryError::Malformed(e.to_string()))?);
                out.push(':');
                write_canonical(&map[key], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Entry {
        Entry {
            v: VERSION,
            index: 0,
            kind: "price_changed".into(),
            actor: "bootstrap_admin".into(),
            targets: vec!["v1".into()],
            change: json!({"old": 100, "new": 250, "currency": "EUR"}),
            at: 1_700_000_000_000,
            request_id: Some("r1".into()),
        }
    }

    #[test]
    fn encoding_is_sorted_and_round_trips() {
        let text = entry().to_canonical().expect("encodes");
        assert_eq!(
            text,
            r#"{"actor":"bootstrap_admin","at":1700000000000,"change":{"currency":"EUR","new":250,"old":100},"index":0,"kind":"price_changed","request_id":"r1","targets":["v1"],"v":1}"#
        );
        assert_eq!(Entry::from_canonical(&text), Ok(entry()));
    }

    #[test]
    fn direct_encoding_equals_generic_canonical_json() {
        let mut e = entry();
        e.request_id = None;
        e.change = json!({"z": [1, {"b": "x\"y", "a": null}], "a": true});
        e.targets = vec!["a\u{1}b".into(), "é".into()];
        let generic = canonical_json(&serde_json::to_value(&e).expect("value")).expect("canonical");
        assert_eq!(e.to_canonical().expect("direct"), generic);
    }

    #[test]
    fn refuses_floats_reordering_and_unknown_versions() {
        let mut e = entry();
        e.change = json!({"amount": 1.5});
        assert_eq!(e.to_canonical(), Err(EntryError::Float));
        let text = entry().to_canonical().expect("encodes");
        let spaced = text.replace(",", ", ");
        assert_eq!(Entry::from_canonical(&spaced), Err(EntryError::NotCanonical));
        let v2 = text.replace("\"v\":1", "\"v\":2");
        assert_eq!(Entry::from_canonical(&v2), Err(EntryError::Version(2)));
        assert!(matches!(Entry::from_canonical("{"), Err(EntryError::Malformed(_))));
    }
}
