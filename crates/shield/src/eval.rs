//! Replays the OWASP CRS regression corpus (`../shared/corpus`) through the
//! detectors and reports, per rule family, how many `attack` stages are
//! blocked and how many `benign` stages are (wrongly) blocked.
//!
//! Read the corpus README before trusting a number: most labels are about
//! one CRS rule, not about whether a request must pass a WAF. The
//! `scope: "all"` stages are the exception: real requests that must pass.

use crate::request::Request;
use crate::score::{Paranoia, inspect};
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The fields of a corpus line this replay uses.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub id: String,
    pub family: u16,
    pub direction: String,
    pub method: Option<String>,
    pub uri: Option<String>,
    #[serde(default)]
    pub header_list: Vec<(String, String)>,
    pub body: Option<String>,
    pub body_b64: Option<String>,
    pub encoded_request: Option<String>,
    pub expect: String,
    pub scope: String,
    pub rule_pl: Option<u8>,
    #[serde(default)]
    pub known_fp: bool,
}

impl Case {
    /// The request the stage sends.
    pub fn request(&self) -> Request<'static> {
        if let Some(raw) =
            self.encoded_request.as_deref().and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        {
            return parse_raw(&raw);
        }
        let body = match (&self.body, &self.body_b64) {
            (_, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default(),
            (Some(b), None) => b.as_bytes().to_vec(),
            (None, None) => Vec::new(),
        };
        Request::from_parts(
            self.method.as_deref().unwrap_or("GET"),
            self.uri.as_deref().unwrap_or("/"),
            self.header_list.clone(),
            &body,
        )
        .into_owned()
    }
}

/// A raw HTTP/1 request: request line, headers, blank line, body.
fn parse_raw(raw: &[u8]) -> Request<'static> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").or_else(|| text.split_once("\n\n")).unwrap_or((&text, ""));
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("GET");
    let target = parts.next().unwrap_or("/");
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim(), v.trim()));
    Request::from_parts(method, target, headers, body.as_bytes()).into_owned()
}

/// Counts for one family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// `attack` stages of rules at or below the paranoia level (not `known_fp`).
    pub attacks: u32,
    pub attacks_blocked: u32,
    pub benign: u32,
    pub benign_blocked: u32,
}

/// The whole replay.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub families: BTreeMap<u16, Tally>,
    /// `scope: "all"` stages: (passed, total).
    pub global_benign: (u32, u32),
    /// Ids of `scope: "all"` stages that were blocked.
    pub global_benign_blocked: Vec<String>,
    /// Per family: ids of attack stages let through and benign stages blocked.
    pub misses: BTreeMap<u16, (Vec<String>, Vec<String>)>,
}

/// Replays every request-direction stage of `jsonl` at `paranoia`.
pub fn replay(jsonl: &str, paranoia: Paranoia, threshold: u32) -> Result<Report, String> {
    let mut report = Report::default();
    for (n, line) in jsonl.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if case.direction != "request" {
            continue;
        }
        let blocked = inspect(&case.request(), paranoia, threshold).blocked;
        if case.scope == "all" {
            report.global_benign.1 += 1;
            if blocked {
                report.global_benign_blocked.push(case.id.clone());
            } else {
                report.global_benign.0 += 1;
            }
            continue;
        }
        let tally = report.families.entry(case.family).or_default();
        match case.expect.as_str() {
            "attack" if !case.known_fp && case.rule_pl.is_some_and(|pl| pl <= paranoia) => {
                tally.attacks += 1;
                tally.attacks_blocked += u32::from(blocked);
                if !blocked {
                    report.misses.entry(case.family).or_default().0.push(case.id.clone());
                }
            }
            "benign" => {
                tally.benign += 1;
                tally.benign_blocked += u32::from(blocked);
                if blocked {
                    report.misses.entry(case.family).or_default().1.push(case.id.clone());
                }
            }
            _ => {}
        }
    }
    Ok(report)
}

/// The findings for one stage of the corpus, for tuning (`--explain ID`).
pub fn explain(jsonl: &str, id: &str) -> Result<Vec<crate::score::Finding>, String> {
    for line in jsonl.lines().filter(|l| l.contains(id)) {
        let case: Case = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if case.id == id {
            return Ok(crate::detect::run(&case.request()));
        }
    }
    Err(format!("no stage {id}"))
}

fn percent(part: u32, whole: u32) -> String {
    if whole == 0 { "–".into() } else { format!("{:.1}%", 100.0 * f64::from(part) / f64::from(whole)) }
}

impl Report {
    /// The per-family table as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| family | attack stages | detected | benign stages | blocked |\n|---|---:|---:|---:|---:|\n",
        );
        for (family, t) in &self.families {
            out.push_str(&format!(
                "| {family} | {} | {} | {} | {} |\n",
                t.attacks,
                percent(t.attacks_blocked, t.attacks),
                t.benign,
                percent(t.benign_blocked, t.benign)
            ));
        }
        let (passed, total) = self.global_benign;
        out.push_str(&format!("\n`scope: \"all\"` stages passing: {passed} of {total}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_requests_and_json_lines_replay() {
        let line = r#"{"id":"1-1","family":930,"direction":"request","method":"GET","uri":"/?f=../../etc/passwd","header_list":[["Host","localhost"]],"body":null,"body_b64":null,"encoded_request":null,"expect":"attack","scope":"rule","rule_pl":1,"known_fp":false}
{"id":"2-1","family":930,"direction":"request","method":"GET","uri":"/index.html","header_list":[],"body":null,"body_b64":null,"encoded_request":null,"expect":"benign","scope":"rule","rule_pl":1}
{"id":"3-1","family":999,"direction":"request","method":null,"uri":null,"header_list":[],"body":null,"body_b64":null,"encoded_request":"R0VUIC8/Zj0uLi8uLi9ldGMvcGFzc3dkIEhUVFAvMS4xDQpIb3N0OiB4DQoNCg==","expect":"benign","scope":"all","rule_pl":null}"#;
        let report = replay(line, 1, 5).expect("replay");
        let t = report.families[&930];
        assert_eq!((t.attacks, t.attacks_blocked, t.benign, t.benign_blocked), (1, 1, 1, 0));
        assert_eq!(report.global_benign, (0, 1), "the raw request carries a traversal and is blocked");
        assert!(report.table().contains("| 930 | 1 | 100.0% | 1 | 0.0% |"));
        assert!(replay("{not json", 1, 5).is_err());
    }
}
