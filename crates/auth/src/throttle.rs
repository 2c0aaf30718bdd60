//! Brute-force throttling: exponential backoff after a few free failures,
//! then a temporary lock.
//!
//! Pure arithmetic over a stored counter; the store keeps the counters (so
//! every instance sees the same ones) and the web layer keys them per account
//! and per client IP. Unknown emails are throttled exactly like real ones, so
//! the throttle never tells an attacker which accounts exist.

/// How one kind of key (account or IP) is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before any delay.
    pub free_failures: i64,
    /// Delay after the first failure past the free ones; doubles each time.
    pub base_delay_ms: i64,
    /// Longest backoff delay.
    pub max_delay_ms: i64,
    /// Failures that lock the key outright.
    pub lock_after: i64,
    /// How long a lock lasts.
    pub lock_ms: i64,
    /// Failures older than this no longer count: the counter starts over.
    pub window_ms: i64,
}

impl ThrottlePolicy {
    /// Per account: 3 free tries, then 1 s, 2 s, 4 s …, locked for 15 minutes
    /// at the 10th failure within an hour.
    pub const ACCOUNT: ThrottlePolicy = ThrottlePolicy {
        free_failures: 3,
        base_delay_ms: 1_000,
        max_delay_ms: 60_000,
        lock_after: 10,
        lock_ms: 15 * 60_000,
        window_ms: 60 * 60_000,
    };

    /// Per client IP: looser, since many shoppers can share one address
    /// (offices, mobile carriers), but it stops one machine trying many
    /// accounts (credential stuffing).
    pub const IP: ThrottlePolicy = ThrottlePolicy {
        free_failures: 20,
        base_delay_ms: 1_000,
        max_delay_ms: 60_000,
        lock_after: 100,
        lock_ms: 15 * 60_000,
        window_ms: 60 * 60_000,
    };

    /// Whether failures counted so far should restart from zero at `now`.
    pub fn expired(&self, last_failure_at: i64, now: i64) -> bool {
        now - last_failure_at > self.window_ms
    }

    /// After the `failures`-th failure at `now`: until when the key is
    /// blocked, and whether this failure is the one that locks it.
    pub fn after_failure(&self, failures: i64, now: i64) -> Block {
        if failures >= self.lock_after {
            return Block { until: now + self.lock_ms, locks_now: failures == self.lock_after };
        }
        let over = failures - self.free_failures;
        if over <= 0 {
            return Block { until: 0, locks_now: false };
        }
        // 2^(over-1) with the exponent capped, so the shift cannot overflow.
        let delay = self.base_delay_ms.saturating_mul(1_i64 << (over - 1).min(30)).min(self.max_delay_ms);
        Block { until: now + delay, locks_now: false }
    }
}

/// The outcome of a failure for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Unix ms until which attempts are refused unchecked; 0 for none.
    pub until: i64,
    /// True exactly once per lock, to raise one security event.
    pub locks_now: bool,
}

/// Milliseconds until a key blocked until `blocked_until` may try again.
pub fn wait_ms(blocked_until: i64, now: i64) -> Option<i64> {
    (blocked_until > now).then(|| blocked_until - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_doubling_then_a_lock() {
        let p = ThrottlePolicy::ACCOUNT;
        let delays: Vec<i64> = (1..=9).map(|n| p.after_failure(n, 0).until).collect();
        assert_eq!(delays, [0, 0, 0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
        assert_eq!(p.after_failure(10, 5), Block { until: 5 + 15 * 60_000, locks_now: true });
        assert_eq!(p.after_failure(11, 5), Block { until: 5 + 15 * 60_000, locks_now: false });
    }

    #[test]
    fn delays_are_capped_and_never_overflow() {
        let p = ThrottlePolicy { lock_after: i64::MAX, ..ThrottlePolicy::ACCOUNT };
        assert_eq!(p.after_failure(9, 0).until, 32_000);
        assert_eq!(p.after_failure(10, 0).until, 60_000);
        assert_eq!(p.after_failure(1_000_000, 0).until, 60_000);
    }

    #[test]
    fn old_failures_expire_and_waits_end() {
        let p = ThrottlePolicy::ACCOUNT;
        assert!(!p.expired(0, 60 * 60_000));
        assert!(p.expired(0, 60 * 60_000 + 1));
        assert_eq!(wait_ms(1_000, 400), Some(600));
        assert_eq!(wait_ms(1_000, 1_000), None);
    }
}
