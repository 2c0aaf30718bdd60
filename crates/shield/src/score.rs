//! Anomaly scoring, as the OWASP Core Rule Set does it: each finding adds
//! its severity's points, and a request whose total reaches the threshold
//! is blocked. Paranoia levels 1–4 switch on ever more (and ever more
//! false-positive-prone) checks.

use crate::detect;
use crate::request::{Field, Location, Request};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Paranoia level, 1 (default: few false positives) to 4.
pub type Paranoia = u8;

/// Points a finding adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Notice,
}

impl Severity {
    pub fn points(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
        }
    }
}

/// The default blocking threshold (one critical finding).
pub const DEFAULT_THRESHOLD: u32 = 5;

/// One thing a detector found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// CRS-style family number (930 LFI, 931 RFI, 942 SQLi …).
    pub family: u16,
    /// A stable id for the check, e.g. `lfi-traversal`.
    pub check: &'static str,
    pub paranoia: Paranoia,
    pub severity: Severity,
    pub location: Location<'static>,
    /// What matched, cut short for logs (never a whole value).
    pub fragment: String,
}

/// The outcome for one request.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub score: u32,
    pub findings: Vec<Finding>,
    pub blocked: bool,
}

/// Cuts a matched fragment short for logs and events.
pub fn fragment(s: &str) -> String {
    s.chars().take(48).collect()
}

/// Runs every detector up to `paranoia` and scores the request.
pub fn inspect(request: &Request, paranoia: Paranoia, threshold: u32) -> Verdict {
    verdict(detect::run(request), paranoia, threshold)
}

fn verdict(findings: Vec<Finding>, paranoia: Paranoia, threshold: u32) -> Verdict {
    let findings: Vec<Finding> = findings.into_iter().filter(|f| f.paranoia <= paranoia).collect();
    let score = findings.iter().map(|f| f.severity.points()).sum();
    Verdict { score, blocked: score >= threshold, findings }
}

/// `inspect` with a memory of what each short value held. Browsers send
/// the same User-Agent, Accept and cookies with every request, and shops
/// see the same query arguments again and again; a value's findings depend
/// on its location and text alone, so they are computed once. The memory
/// holds exact keys (no hash can alias an attack to a clean value), is
/// bounded (past its size it starts over), and is kept per thread: shared,
/// its locks cost more than the lookups they guard.
pub struct Inspector {
    id: u64,
}

/// One thread's memory: by a keyed hash of location and value, the exact
/// location and value (compared on every hit) with their findings.
struct Remembered {
    inspector: u64,
    /// Seeded at random per thread, so clients cannot aim at one bucket.
    hasher: foldhash::quality::RandomState,
    entries: HashMap<u64, Bucket>,
}

/// Fields whose keyed hashes collide, with their findings.
type Bucket = Vec<(Field<'static>, Arc<Vec<Finding>>)>;

thread_local! {
    static REMEMBERED: RefCell<Option<Remembered>> = const { RefCell::new(None) };
}

/// Values longer than this are inspected every time (bodies, long texts).
const CACHED_VALUE_BYTES: usize = 256;
/// Values remembered per thread.
const ENTRIES: usize = 8192;

impl Default for Inspector {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Inspector { id: NEXT.fetch_add(1, Ordering::Relaxed) }
    }
}

impl Inspector {
    pub fn inspect(&self, request: &Request, paranoia: Paranoia, threshold: u32) -> Verdict {
        let mut findings = detect::request_findings(request);
        REMEMBERED.with(|cell| {
            let mut slot = cell.borrow_mut();
            let memory = match slot.as_mut() {
                Some(m) if m.inspector == self.id => m,
                _ => slot.insert(Remembered {
                    inspector: self.id,
                    hasher: foldhash::quality::RandomState::default(),
                    entries: HashMap::new(),
                }),
            };
            for field in &request.fields {
                if field.value.len() > CACHED_VALUE_BYTES {
                    findings.extend(detect::field_findings(field));
                    continue;
                }
                // Hashing borrows: a hit allocates nothing.
                let hash = memory.hasher.hash_one((&field.location, &field.value));
                let known = memory
                    .entries
                    .get(&hash)
                    .and_then(|bucket| bucket.iter().find(|(f, _)| f == field).map(|(_, found)| found.clone()));
                let found = match known {
                    Some(found) => found,
                    None => {
                        let found = Arc::new(detect::field_findings(field));
                        if memory.entries.len() >= ENTRIES {
                            memory.entries.clear();
                        }
                        memory.entries.entry(hash).or_default().push((field.owned(), found.clone()));
                        found
                    }
                };
                findings.extend(found.iter().filter(|f| f.paranoia <= paranoia).cloned());
            }
        });
        verdict(findings, paranoia, threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any request at all is inspected without a panic, at every level.
        #[test]
        fn inspection_is_total(
            method in ".{0,10}",
            target in ".{0,300}",
            headers in proptest::collection::vec((".{0,20}", ".{0,100}"), 0..6),
            body in proptest::collection::vec(any::<u8>(), 0..400),
            content_type in prop_oneof![
                Just("application/json".to_owned()),
                Just("application/x-www-form-urlencoded".to_owned()),
                Just("multipart/form-data; boundary=b".to_owned()),
                ".{0,30}",
            ],
        ) {
            let mut headers = headers;
            headers.push(("Content-Type".into(), content_type));
            let request = Request::from_parts(&method, &target, headers, &body);
            for paranoia in 1..=4 {
                let verdict = inspect(&request, paranoia, DEFAULT_THRESHOLD);
                prop_assert_eq!(verdict.blocked, verdict.score >= DEFAULT_THRESHOLD);
                prop_assert!(verdict.findings.iter().all(|f| f.fragment.chars().count() <= 48));
            }
        }
    }

    #[test]
    fn the_remembering_inspector_agrees_with_the_plain_one() {
        let inspector = Inspector::default();
        let requests = [
            Request::from_parts("GET", "/a?q=%27%20or%201%3D1--&page=2", vec![("User-Agent", "sqlmap")], b""),
            Request::from_parts("GET", "/a?q=red+shoes&page=2", vec![("User-Agent", "Mozilla/5.0")], b""),
            Request::from_parts("GET", "/.env?page=2", crate::request::NO_HEADERS, b""),
        ];
        for _ in 0..2 {
            for r in &requests {
                let (a, b) = (inspect(r, 1, DEFAULT_THRESHOLD), inspector.inspect(r, 1, DEFAULT_THRESHOLD));
                assert_eq!((a.score, a.blocked, a.findings.len()), (b.score, b.blocked, b.findings.len()));
            }
        }
    }

    #[test]
    fn nothing_hides_past_the_inspected_parts() {
        // An attack after a thousand harmless arguments is past what is
        // inspected: the request is blocked for its size instead.
        let mut target = String::from("/search?");
        for i in 0..crate::request::MAX_FIELDS {
            target.push_str(&format!("a{i}=1&"));
        }
        target.push_str("q=%27%20union%20select%20password%20from%20users--");
        let verdict =
            inspect(&Request::from_parts("GET", &target, crate::request::NO_HEADERS, b""), 1, DEFAULT_THRESHOLD);
        assert!(verdict.blocked);
        assert!(verdict.findings.iter().any(|f| f.check == "too-many-parts"), "{:?}", verdict.findings);
        // A shop's own requests stay far below it.
        let ordinary = Request::from_parts("GET", "/search?q=red+shoes&page=2", [("host", "shop")], b"");
        assert!(!ordinary.truncated);

        // JSON nested deeper than is walked is inspected as text.
        let mut body = String::from("\"<script>alert(1)</script>\"");
        for _ in 0..40 {
            body = format!("{{\"a\": {body}}}");
        }
        let json = [("content-type", "application/json")];
        assert!(inspect(&Request::from_parts("POST", "/api", json, body.as_bytes()), 1, DEFAULT_THRESHOLD).blocked);
    }

    #[test]
    fn multibyte_text_around_urls_and_paths_is_fine() {
        let r = Request::from_parts(
            "GET",
            "/é?q=é://x&r=ü/../ä&s=ßhttp://1.2.3.4/",
            crate::request::NO_HEADERS,
            "€://".as_bytes(),
        );
        assert!(inspect(&r, 4, DEFAULT_THRESHOLD).blocked);
    }
}
