//! Password hashing off the async workers, with bounded concurrency.
//!
//! Argon2id deliberately costs ~20 MiB and tens of milliseconds per
//! verification. Run on the async workers, a sign-in flood would stall every
//! other request; unbounded on the blocking pool, it would exhaust memory.
//! So hashing runs on blocking threads behind a semaphore sized to the
//! cores: extra sign-ins wait their turn while browsing and checkout go on.

use std::sync::Arc;
use storefort_auth::{PasswordError, PasswordHasher, Verification};
use tokio::sync::Semaphore;

/// A bounded pool for password work.
#[derive(Clone)]
pub struct HashingPool {
    hasher: PasswordHasher,
    permits: Arc<Semaphore>,
}

impl HashingPool {
    /// At most `concurrency` hashes at once (at least one).
    pub fn new(hasher: PasswordHasher, concurrency: usize) -> Self {
        HashingPool { hasher, permits: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    /// One hash per core, the default.
    pub fn per_core(hasher: PasswordHasher) -> Self {
        Self::new(hasher, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }

    /// What the server uses: one core's worth fewer than the machine has
    /// (at least one), so a flood of sign-ins always leaves a core for
    /// browsing and checkout.
    pub fn for_sign_ins(hasher: PasswordHasher) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self::new(hasher, cores.saturating_sub(1).max(1))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self.permits.clone().acquire_owned().await.map_err(|_| PasswordError::Hashing)?;
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || work(&hasher)).await.map_err(|_| PasswordError::Hashing)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move |h| h.hash(&password)).await?
    }

    /// Verifies a password against a stored hash, or, with no stored hash
    /// (unknown account), does the same work and reports a mismatch.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<Verification, PasswordError> {
        self.run(move |h| match stored {
            Some(stored) => h.verify(&password, &stored),
            None => {
                h.verify_nothing(&password);
                Ok(Verification::Mismatch)
            }
        })
        .await?
    }

    /// Hashes running or waiting right now, for tests and metrics.
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifies_and_never_runs_more_than_its_bound() {
        let pool = HashingPool::new(PasswordHasher::owasp(), 2);
        let stored = pool.hash("correct horse battery staple".into()).await.expect("hash");
        let flood: Vec<_> = (0..8)
            .map(|i| {
                let pool = pool.clone();
                let stored = stored.clone();
                tokio::spawn(async move {
                    let password = if i % 2 == 0 { "correct horse battery staple" } else { "wrong" };
                    pool.verify(password.into(), Some(stored)).await
                })
            })
            .collect();
        let mut matches = 0;
        for f in flood {
            if f.await.expect("join").expect("verify") == Verification::Match {
                matches += 1;
            }
        }
        assert_eq!(matches, 4);
        assert_eq!(pool.verify("anything".into(), None).await, Ok(Verification::Mismatch));
        assert_eq!(pool.available_permits(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_flood_runs_at_most_the_bound_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = HashingPool::new(PasswordHasher::owasp(), 2);
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (pool, active, peak) = (pool.clone(), active.clone(), peak.clone());
                tokio::spawn(async move {
                    pool.run(move |_| {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(30));
                        active.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for j in jobs {
            j.await.expect("join").expect("ran");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
