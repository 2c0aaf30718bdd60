//! Temporary bans after repeated blocks.
//!
//! Strikes (blocks counted against a client) go through the shield's shared
//! limiter, so instances on one PostgreSQL count them together. Every
//! request asks whether its client is banned, so the answer comes from
//! memory; with a [`BanStore`], a ban is also written there and each
//! instance reads the bans in force back every few seconds, so a client
//! banned by one instance is refused by all of them. The store names
//! clients by a keyed hash of their address, never the address: a request
//! pays for that hash only while some other instance's ban is in force.

use crate::config::{BanConfig, Rate};
use crate::limit::{Limiter, ip_key};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// A failure of the ban store (logged; bans in memory still hold).
pub type BanStoreError = Box<dyn std::error::Error + Send + Sync>;

type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, BanStoreError>> + Send + 'a>>;

/// Where instances share their bans.
pub trait BanStore: Send + Sync + 'static {
    /// The name a client's bans are kept under: a keyed hash of `ip`, the
    /// same on every instance.
    fn key(&self, ip: IpAddr) -> String;
    /// Records that the client named `key` is banned until `until_ms`
    /// (unix ms; it is `now_ms`), and may forget bans that are over. A
    /// later end already recorded stays.
    fn record(&self, key: String, until_ms: i64, now_ms: i64) -> Pending<'_, ()>;
    /// Every ban in force at `now_ms`: the client's key and the ban's end.
    fn in_force(&self, now_ms: i64) -> Pending<'_, Vec<(String, i64)>>;
}

/// How often an instance reads the bans other instances recorded.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Bans in memory above the shared store: past this many, ended ones are
/// dropped.
const KEPT_BEFORE_PRUNING: usize = 100_000;

/// Who is banned, and the strikes that lead there.
pub struct Bans {
    config: BanConfig,
    /// This instance's bans, by address.
    banned: RwLock<HashMap<IpAddr, i64>>,
    /// Every instance's bans in force at the last refresh, by key.
    shared: RwLock<HashMap<String, i64>>,
    store: Option<Arc<dyn BanStore>>,
}

impl Bans {
    pub fn new(config: BanConfig, store: Option<Arc<dyn BanStore>>) -> Bans {
        Bans { config, banned: RwLock::default(), shared: RwLock::default(), store }
    }

    /// Whether `ip` is banned now, and until when.
    pub fn banned_until(&self, ip: IpAddr, now_ms: i64) -> Option<i64> {
        // Read-locked: every request asks, and almost none is banned.
        let own = self.banned.read().unwrap_or_else(PoisonError::into_inner).get(&ip).copied();
        match own {
            Some(until) if until > now_ms => return Some(until),
            Some(_) => {
                self.banned.write().unwrap_or_else(PoisonError::into_inner).remove(&ip);
            }
            None => {}
        }
        let store = self.store.as_ref()?;
        let shared = self.shared.read().unwrap_or_else(PoisonError::into_inner);
        if shared.is_empty() {
            return None;
        }
        shared.get(&store.key(ip)).copied().filter(|until| *until > now_ms)
    }

    /// Counts a block against `ip` in `strikes`; true when it earns a ban,
    /// which then holds here at once and in the store for the others.
    pub async fn strike(&self, strikes: &dyn Limiter, ip: IpAddr, now_ms: i64) -> bool {
        let ban = &self.config;
        if ban.after_blocks == 0 {
            return false;
        }
        // A bucket of `after_blocks - 1` blocks refilling over the window:
        // the block that finds it empty is the one that earns the ban.
        let burst = ban.after_blocks - 1;
        let per_minute = (u64::from(ban.after_blocks) * 60 / ban.window_seconds.max(1)).max(1);
        let rate = Rate::new(u32::try_from(per_minute).unwrap_or(u32::MAX), burst.max(1));
        let key = format!("strike:ip:{}", ip_key(ip));
        if burst > 0 && strikes.acquire(&key, rate, now_ms * 1000).await.is_ok() {
            return false;
        }
        let until = now_ms.saturating_add(i64::try_from(ban.ban_seconds).unwrap_or(i64::MAX / 4).saturating_mul(1000));
        self.hold(ip, until, now_ms);
        if let Some(store) = &self.store
            && let Err(e) = store.record(store.key(ip), until, now_ms).await
        {
            // The ban holds on this instance; the others miss it until a
            // later ban is recorded.
            tracing::warn!(target: "security", error = %e, "could not share a ban with the other instances");
        }
        true
    }

    /// Reads the bans every instance recorded into memory, in place of
    /// those read before (which may have ended).
    pub async fn refresh(&self, now_ms: i64) -> Result<(), BanStoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let in_force: HashMap<String, i64> = store.in_force(now_ms).await?.into_iter().collect();
        *self.shared.write().unwrap_or_else(PoisonError::into_inner) = in_force;
        Ok(())
    }

    fn hold(&self, ip: IpAddr, until_ms: i64, now_ms: i64) {
        let mut banned = self.banned.write().unwrap_or_else(PoisonError::into_inner);
        if banned.len() > KEPT_BEFORE_PRUNING {
            banned.retain(|_, u| *u > now_ms);
        }
        let entry = banned.entry(ip).or_insert(until_ms);
        *entry = (*entry).max(until_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::MemoryLimiter;
    use std::sync::Mutex;

    /// A store in memory, standing in for the database in these unit tests
    /// (the database's own is tested on SQLite and PostgreSQL in
    /// `tests/it/shield.rs`).
    #[derive(Default)]
    struct Shared(Mutex<HashMap<String, i64>>);

    impl BanStore for Shared {
        fn key(&self, ip: IpAddr) -> String {
            format!("key-of-{ip}")
        }
        fn record(&self, key: String, until_ms: i64, _now_ms: i64) -> Pending<'_, ()> {
            let mut bans = self.0.lock().expect("lock");
            let entry = bans.entry(key).or_insert(until_ms);
            *entry = (*entry).max(until_ms);
            Box::pin(std::future::ready(Ok(())))
        }
        fn in_force(&self, now_ms: i64) -> Pending<'_, Vec<(String, i64)>> {
            let bans = self.0.lock().expect("lock");
            let bans = bans.iter().filter(|(_, u)| **u > now_ms).map(|(k, u)| (k.clone(), *u)).collect();
            Box::pin(std::future::ready(Ok(bans)))
        }
    }

    fn config() -> BanConfig {
        BanConfig { after_blocks: 3, window_seconds: 600, ban_seconds: 900 }
    }

    #[tokio::test]
    async fn the_third_block_bans_and_the_ban_ends() {
        let (strikes, bans) = (MemoryLimiter::default(), Bans::new(config(), None));
        let ip: IpAddr = "198.51.100.9".parse().expect("ip");
        let now = 1_700_000_000_000;
        assert!(!bans.strike(&strikes, ip, now).await);
        assert!(!bans.strike(&strikes, ip, now + 1).await);
        assert!(bans.banned_until(ip, now + 2).is_none());
        assert!(bans.strike(&strikes, ip, now + 2).await, "the third block earns the ban");
        assert_eq!(bans.banned_until(ip, now + 3), Some(now + 2 + 900_000));
        assert_eq!(bans.banned_until(ip, now + 2 + 900_000), None, "over when its time is up");
        let neighbour: IpAddr = "198.51.100.10".parse().expect("ip");
        assert!(bans.banned_until(neighbour, now + 3).is_none());
    }

    #[tokio::test]
    async fn a_ban_by_one_instance_reaches_the_others_on_refresh() {
        let store: Arc<Shared> = Arc::default();
        let strikes = MemoryLimiter::default(); // shared by both, as the database limiter is
        let first = Bans::new(config(), Some(store.clone()));
        let second = Bans::new(config(), Some(store.clone()));
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        let now = 1_700_000_000_000;
        // Strikes from both instances count together.
        assert!(!first.strike(&strikes, ip, now).await);
        assert!(!second.strike(&strikes, ip, now).await);
        assert!(first.strike(&strikes, ip, now).await);
        assert!(second.banned_until(ip, now + 1).is_none(), "not before the refresh");
        second.refresh(now + 1).await.expect("refresh");
        assert_eq!(second.banned_until(ip, now + 1), first.banned_until(ip, now + 1));
        assert!(second.banned_until("2001:db8::2".parse().expect("ip"), now + 1).is_none(), "only that client");
        // An ended ban is dropped at the next refresh.
        second.refresh(now + 900_001).await.expect("refresh");
        assert!(second.shared.read().expect("lock").is_empty());
        assert!(second.banned_until(ip, now + 900_001).is_none());
    }

    #[tokio::test]
    async fn no_strikes_when_bans_are_off() {
        let bans = Bans::new(BanConfig { after_blocks: 0, ..config() }, None);
        let strikes = MemoryLimiter::default();
        for i in 0..50 {
            assert!(!bans.strike(&strikes, "198.51.100.9".parse().expect("ip"), i).await);
        }
    }
}
