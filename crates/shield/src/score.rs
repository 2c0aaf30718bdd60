//! Anomaly scoring, as the OWASP Core Rule Set does it: each finding adds
//! its severity's points, and a request whose total reaches the threshold
//! is blocked. Paranoia levels 1–4 switch on ever more (and ever more
//! false-positive-prone) checks.

use crate::detect;
use crate::request::{Location, Request};

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
    pub location: Location,
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
    let findings: Vec<Finding> = detect::run(request).into_iter().filter(|f| f.paranoia <= paranoia).collect();
    let score = findings.iter().map(|f| f.severity.points()).sum();
    Verdict { score, blocked: score >= threshold, findings }
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
    fn multibyte_text_around_urls_and_paths_is_fine() {
        let r = Request::from_parts("GET", "/é?q=é://x&r=ü/../ä&s=ßhttp://1.2.3.4/", vec![], "€://".as_bytes());
        assert!(inspect(&r, 4, DEFAULT_THRESHOLD).blocked);
    }
}
