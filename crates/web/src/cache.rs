//! A short-lived cache of serialized catalog responses.
//!
//! Browsing is most of a store's traffic, and a Black Friday crowd asks for
//! the same few products thousands of times a second. Serving them from
//! memory for a moment (one second by default) keeps the database free for
//! checkouts. Nothing that decides money reads from here: carts and checkout
//! always read the database, so a cached price or stock count is at most
//! one TTL old on screen and never charged. Admin catalog changes on this
//! instance clear the cache at once; other instances catch up within the TTL.

use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Bound on entries, so hostile query strings cannot grow memory without
/// limit: when full, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// Serialized responses by key, each valid for `ttl`.
pub struct ResponseCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (Instant, Bytes)>>,
}

impl ResponseCache {
    /// A cache whose entries live for `ttl`; a zero TTL disables it.
    pub fn new(ttl: Duration) -> Self {
        ResponseCache { ttl, entries: RwLock::new(HashMap::new()) }
    }

    /// The cached body for `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let (stored, body) = entries.get(key)?;
        (stored.elapsed() < self.ttl).then(|| body.clone())
    }

    /// Remembers a body.
    pub fn put(&self, key: String, body: Bytes) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), body));
        }
    }

    /// Forgets everything (after a catalog change).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_expire_and_clear() {
        let c = ResponseCache::new(Duration::from_millis(50));
        c.put("a".into(), Bytes::from_static(b"1"));
        assert_eq!(c.get("a"), Some(Bytes::from_static(b"1")));
        assert_eq!(c.get("b"), None);
        c.clear();
        assert_eq!(c.get("a"), None);
        c.put("a".into(), Bytes::from_static(b"1"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn zero_ttl_disables_and_size_is_bounded() {
        let off = ResponseCache::new(Duration::ZERO);
        off.put("a".into(), Bytes::from_static(b"1"));
        assert_eq!(off.get("a"), None);
        let c = ResponseCache::new(Duration::from_secs(60));
        for i in 0..=MAX_ENTRIES {
            c.put(i.to_string(), Bytes::from_static(b"x"));
        }
        assert!(c.entries.read().map(|e| e.len()).unwrap_or(0) <= MAX_ENTRIES);
    }
}
