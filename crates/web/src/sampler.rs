//! At most one security event per client and kind a minute: a flood of
//! refused requests must not become a flood of writes to the event table.
//! The first refusal of a burst is always recorded, so alerts still fire.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use storefort_core::EventKind;

const EVENT_EVERY_MS: i64 = 60_000;

/// Remembers when each (client, kind) last produced an event.
#[derive(Default)]
pub struct EventSampler {
    recent: Mutex<HashMap<(IpAddr, &'static str), i64>>,
}

impl EventSampler {
    /// True when `client` has had no `kind` event in the last minute (and
    /// notes this one).
    pub fn first_in_a_while(&self, client: IpAddr, kind: EventKind, now: i64) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() > 10_000 {
            recent.retain(|_, at| now - *at < EVENT_EVERY_MS);
        }
        match recent.get(&(client, kind.as_str())) {
            Some(at) if now - at < EVENT_EVERY_MS => false,
            _ => {
                recent.insert((client, kind.as_str()), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_client_and_kind_a_minute() {
        let s = EventSampler::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().expect("ip"), "192.0.2.2".parse().expect("ip"));
        assert!(s.first_in_a_while(a, EventKind::RateLimited, 0));
        assert!(!s.first_in_a_while(a, EventKind::RateLimited, 59_999));
        assert!(s.first_in_a_while(a, EventKind::RequestBlocked, 1));
        assert!(s.first_in_a_while(b, EventKind::RateLimited, 1));
        assert!(s.first_in_a_while(a, EventKind::RateLimited, 60_000));
    }
}
