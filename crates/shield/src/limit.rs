//! Rate limits by the generic cell rate algorithm (GCRA): one number per
//! key, the theoretical arrival time (TAT) of the next request. A request
//! is allowed when it would not push the TAT further than `burst` emission
//! intervals past now; a refusal says when to retry.
//!
//! `Limiter` is the storage. `MemoryLimiter` keeps it in this process;
//! the web crate stores the sensitive classes in the database so that
//! several instances behind a balancer share one budget.

use crate::config::Rate;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// Where GCRA state lives. `acquire` answers `Err(retry_after)` when `key`
/// has used up its `rate`. Implementations that can fail (a database) let
/// the request through and log: a limiter outage must not close the store.
pub trait Limiter: Send + Sync + 'static {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        rate: Rate,
        now_us: i64,
    ) -> Pin<Box<dyn Future<Output = Result<(), Duration>> + Send + 'a>>;
}

/// The GCRA step: from the stored TAT (or none), the new TAT to store, or
/// how long to wait. Times in microseconds.
pub fn gcra(tat: Option<i64>, rate: Rate, now_us: i64) -> Result<i64, Duration> {
    let interval = emission_interval_us(rate);
    let tolerance = interval.saturating_mul(i64::from(rate.burst.max(1)));
    let new_tat = tat.unwrap_or(now_us).max(now_us).saturating_add(interval);
    let ahead = new_tat - now_us;
    if ahead > tolerance {
        let wait = u64::try_from(ahead - tolerance).unwrap_or(0);
        return Err(Duration::from_micros(wait));
    }
    Ok(new_tat)
}

/// Microseconds between requests at the steady rate.
pub fn emission_interval_us(rate: Rate) -> i64 {
    // At least 1 µs: a zero interval would leave no tolerance at all, and
    // threads that read the clock a moment apart would refuse each other.
    (60_000_000 / i64::from(rate.per_minute.max(1))).max(1)
}

/// The key a client IP is limited under. An IPv6 client controls at least
/// a /64, so it is limited as one.
pub fn ip_key(ip: IpAddr) -> String {
    match crate::net::canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

const SHARDS: usize = 16;
/// Keys per shard before expired ones are swept; past it even live ones
/// are dropped (forgiven), so a flood of fresh addresses cannot exhaust
/// memory.
const SHARD_CAPACITY: usize = 64 * 1024;

/// GCRA state in this process, sharded to keep lock contention low.
pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<String, i64>>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

impl MemoryLimiter {
    pub fn check(&self, key: &str, rate: Rate, now_us: i64) -> Result<(), Duration> {
        let shard = &self.shards[shard_of(key)];
        let mut map = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = map.get_mut(key);
        let new_tat = gcra(known.as_deref().copied(), rate, now_us)?;
        if let Some(tat) = known {
            // The common case: a known client, updated in place.
            *tat = new_tat;
            return Ok(());
        }
        if map.len() >= SHARD_CAPACITY {
            map.retain(|_, tat| *tat > now_us);
            if map.len() >= SHARD_CAPACITY {
                map.clear();
            }
        }
        map.insert(key.to_owned(), new_tat);
        Ok(())
    }
}

impl Limiter for MemoryLimiter {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        rate: Rate,
        now_us: i64,
    ) -> Pin<Box<dyn Future<Output = Result<(), Duration>> + Send + 'a>> {
        let result = self.check(key, rate, now_us);
        Box::pin(std::future::ready(result))
    }
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap and good enough to spread keys; not a security boundary
    // (a client choosing its shard gains nothing).
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn a_burst_passes_then_the_steady_rate() {
        let limiter = MemoryLimiter::default();
        let rate = Rate::new(60, 3); // one a second, bursts of three
        let t = 1_000 * SECOND;
        for _ in 0..3 {
            assert!(limiter.check("k", rate, t).is_ok());
        }
        let wait = limiter.check("k", rate, t).expect_err("fourth is refused");
        assert_eq!(wait, Duration::from_secs(1));
        assert!(limiter.check("k", rate, t + SECOND).is_ok(), "one more a second later");
        assert!(limiter.check("k", rate, t + SECOND).is_err());
        assert!(limiter.check("other", rate, t).is_ok(), "keys are independent");
        // A long pause restores the whole burst, not more.
        let later = t + 3600 * SECOND;
        for _ in 0..3 {
            assert!(limiter.check("k", rate, later).is_ok());
        }
        assert!(limiter.check("k", rate, later).is_err());
    }

    #[test]
    fn a_very_high_rate_tolerates_clocks_read_out_of_order() {
        let limiter = MemoryLimiter::default();
        let rate = Rate::new(100_000_000, 10_000_000);
        assert!(limiter.check("k", rate, 2_000).is_ok());
        assert!(limiter.check("k", rate, 1_000).is_ok(), "a thread that read the clock a little earlier");
    }

    #[test]
    fn refused_requests_do_not_use_up_budget() {
        let limiter = MemoryLimiter::default();
        let rate = Rate::new(60, 1);
        assert!(limiter.check("k", rate, 0).is_ok());
        for _ in 0..100 {
            assert!(limiter.check("k", rate, 0).is_err());
        }
        assert!(limiter.check("k", rate, SECOND).is_ok());
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
        assert_eq!(ip_key("::ffff:192.0.2.1".parse().expect("ip")), "192.0.2.1");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let limiter = MemoryLimiter::default();
        let rate = Rate::new(1, 1);
        for i in 0..(SHARDS * SHARD_CAPACITY + 10_000) {
            let _ = limiter.check(&format!("k{i}"), rate, 0);
        }
        let total: usize = limiter.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum();
        assert!(total <= SHARDS * SHARD_CAPACITY);
    }
}
