//! Load shedding: a bounded number of requests in flight and a bounded,
//! time-limited queue before them. Past both, a request is refused at
//! once (503 with Retry-After), which keeps latency flat for the requests
//! admitted instead of letting every request slow down until all time out.
//!
//! Priority requests (checkout, payment webhooks) may use every slot;
//! the others only the slots outside the priority reserve, so a browsing
//! rush cannot starve the requests that make money.

use crate::config::SheddingConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A slot held for the life of one request.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The queue is full.
    QueueFull,
    /// It waited `queue_timeout` without a slot.
    TimedOut,
}

pub struct Shedder {
    /// Slots for everyone.
    general: Arc<Semaphore>,
    /// Slots only priority requests may take.
    reserve: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
    queue_timeout: Duration,
}

impl Shedder {
    pub fn new(cfg: &SheddingConfig) -> Shedder {
        let total = cfg.max_in_flight.max(1);
        let reserve = (total * usize::from(cfg.priority_reserve_percent.min(90)) / 100).min(total - 1);
        Shedder {
            general: Arc::new(Semaphore::new(total - reserve)),
            reserve: Arc::new(Semaphore::new(reserve)),
            waiting: AtomicUsize::new(0),
            max_queue: cfg.max_queue,
            queue_timeout: Duration::from_millis(cfg.queue_timeout_ms),
        }
    }

    /// Waits for a slot, or says why not.
    pub async fn admit(&self, priority: bool) -> Result<Slot, Shed> {
        if let Some(slot) = self.try_now(priority) {
            return Ok(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Shed::QueueFull);
        }
        let _leave = Leave(&self.waiting);
        let wait = async {
            if priority {
                tokio::select! {
                    Ok(p) = self.general.clone().acquire_owned() => p,
                    Ok(p) = self.reserve.clone().acquire_owned() => p,
                }
            } else {
                match self.general.clone().acquire_owned().await {
                    Ok(p) => p,
                    // The semaphores are never closed.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        match tokio::time::timeout(self.queue_timeout, wait).await {
            Ok(permit) => Ok(Slot { _permit: permit }),
            Err(_) => Err(Shed::TimedOut),
        }
    }

    fn try_now(&self, priority: bool) -> Option<Slot> {
        let permit = self
            .general
            .clone()
            .try_acquire_owned()
            .ok()
            .or_else(|| if priority { self.reserve.clone().try_acquire_owned().ok() } else { None })?;
        Some(Slot { _permit: permit })
    }

    /// Requests waiting right now (for metrics and tests).
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shedder(in_flight: usize, reserve: u8, queue: usize) -> Shedder {
        Shedder::new(&SheddingConfig {
            enabled: true,
            max_in_flight: in_flight,
            priority_reserve_percent: reserve,
            max_queue: queue,
            queue_timeout_ms: 50,
            priority_paths: Vec::new(),
        })
    }

    #[tokio::test]
    async fn past_the_slots_and_the_queue_requests_are_refused_at_once() {
        let s = shedder(4, 50, 1);
        let held: Vec<Slot> = vec![s.admit(false).await.expect("1"), s.admit(false).await.expect("2")];
        // Browsing cannot take the reserve; the one queue place times out.
        assert_eq!(s.admit(false).await.err(), Some(Shed::TimedOut));
        // Priority requests still get the reserve.
        let p1 = s.admit(true).await.expect("priority 1");
        let p2 = s.admit(true).await.expect("priority 2");
        // Now even priority waits; with one waiter queued a second is refused.
        let (a, b) = tokio::join!(s.admit(true), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            s.admit(false).await
        });
        assert_eq!(a.err(), Some(Shed::TimedOut));
        assert_eq!(b.err(), Some(Shed::QueueFull));
        assert_eq!(s.queued(), 0);
        drop((held, p1, p2));
        assert!(s.admit(false).await.is_ok(), "slots come back when requests finish");
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_next_free_slot() {
        let s = Arc::new(shedder(1, 0, 4));
        let first = s.admit(false).await.expect("first");
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.admit(false).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first);
        assert!(waiter.await.expect("join"));
    }
}
