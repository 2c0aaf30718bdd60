//! Any bytes as a request (method, target, headers, body split from the
//! input) must be taken apart, normalized and scored without a panic, at
//! every paranoia level, and the verdict must agree with its own score.

#![no_main]

use libfuzzer_sys::fuzz_target;
use storefort_shield::score::{DEFAULT_THRESHOLD, inspect};
use storefort_shield::Request;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let header_line = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let content_types = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b", "text/xml"];
    let content_type = content_types[data.first().map(|b| *b as usize % 4).unwrap_or(0)];
    let mut headers: Vec<(String, String)> = header_line
        .split('\r')
        .filter_map(|h| h.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    headers.push(("Content-Type".into(), content_type.into()));
    let request = Request::from_parts(method, target, headers, body.as_bytes());
    for paranoia in 1..=4 {
        let verdict = inspect(&request, paranoia, DEFAULT_THRESHOLD);
        assert_eq!(verdict.blocked, verdict.score >= DEFAULT_THRESHOLD);
    }
});
