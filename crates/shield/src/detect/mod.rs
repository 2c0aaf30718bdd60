//! The detectors, one module per attack family. Each looks at every
//! inspected value in its normalized forms and reports findings; scoring
//! and blocking are not their business.

mod command;
mod files;
mod generic;
mod java;
mod php;
mod protocol;
mod remote;
mod scanner;
mod sqli;
mod xss;

use crate::normalize;
use crate::request::{Field, Location, Request};
use crate::score::Finding;
use aho_corasick::{AhoCorasick, MatchKind};
use std::borrow::Cow;
use std::sync::OnceLock;

/// A fixed word list, searched in one pass (Aho-Corasick) rather than with
/// one `contains` per word: the lists run to hundreds of words and every
/// value is searched for all of them. Answers are the same as walking the
/// list in order: the first word of the list that occurs.
pub(crate) struct Needles {
    words: &'static [&'static str],
    automaton: OnceLock<AhoCorasick>,
}

impl Needles {
    pub(crate) const fn new(words: &'static [&'static str]) -> Self {
        Needles { words, automaton: OnceLock::new() }
    }

    fn automaton(&self) -> &AhoCorasick {
        self.automaton.get_or_init(|| {
            // Standard semantics allow overlapping search, which finds
            // every word wherever it occurs.
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(self.words)
                .expect("a fixed word list always builds")
        })
    }

    /// The first word of the list (in list order) that occurs in `hay`.
    pub(crate) fn first_in(&'static self, hay: &str) -> Option<&'static str> {
        self.first_where(hay, |_, _| true)
    }

    /// True when any word occurs in `hay`.
    pub(crate) fn any_in(&self, hay: &str) -> bool {
        self.automaton().is_match(hay)
    }

    /// The first word of the list with an occurrence (word, start) that
    /// `keep` accepts.
    pub(crate) fn first_where(&'static self, hay: &str, keep: impl Fn(&str, usize) -> bool) -> Option<&'static str> {
        self.automaton()
            .find_overlapping_iter(hay)
            .filter(|m| keep(self.words[m.pattern().as_usize()], m.start()))
            .map(|m| m.pattern().as_usize())
            .min()
            .map(|i| self.words[i])
    }
}

/// A value with the forms a backend might see it in.
pub struct Value<'a> {
    pub field: &'a Field<'a>,
    /// As sent, URL-decoded, entity- and escape-decoded (distinct only).
    pub forms: Vec<String>,
    /// The decoded form, folded (lower case, `\` as `/`, one space).
    pub folded: String,
}

impl<'a> Value<'a> {
    /// Normalizes a field once, for all detectors.
    pub fn of(field: &'a Field<'a>) -> Value<'a> {
        let forms = normalize::variants(&field.value, field.location.form_encoded());
        let folded = normalize::fold(forms.last().map(String::as_str).unwrap_or_default());
        Value { field, forms, folded }
    }
}

/// Headers that name an uploaded file, as `same_header_name` compares them.
const FILE_NAME_HEADERS: [&str; 3] = ["x-filename", "x-file-name", "x-file"];

/// `name` is `wanted` (lower case, dashes) in any case and with `_` or
/// `.` for dashes, as some servers accept them. Compared in place: it runs
/// for every header of every request.
fn same_header_name(name: &str, wanted: &str) -> bool {
    name.len() == wanted.len()
        && name.bytes().zip(wanted.bytes()).all(|(got, want)| match got {
            b'_' | b'.' => want == b'-',
            other => other.to_ascii_lowercase() == want,
        })
}

/// The names of files a request uploads: from file-name headers
/// (`X-Filename`, `X_File-Name` …) and multipart parts' `filename`.
pub fn uploaded_file_names<'r>(request: &'r Request<'_>) -> Vec<(Location<'static>, &'r str)> {
    let headers = request.headers().filter_map(|(name, value)| {
        let wanted = FILE_NAME_HEADERS.iter().find(|wanted| same_header_name(name, wanted))?;
        Some((Location::Header(Cow::Borrowed(*wanted)), value))
    });
    let parts = request.fields.iter().filter_map(|f| match &f.location {
        Location::Body(n) if n.ends_with("#filename") => Some((f.location.owned(), f.value.as_ref())),
        _ => None,
    });
    headers.chain(parts).collect()
}

/// A detector: what it needs and where it writes. Each looks at the
/// request as a whole (path, uploaded file names, headers' shape) and at
/// each value on its own; no detector relates one value to another, which
/// is what lets `field_findings` be computed (and cached) per value.
type Detector = fn(&Request<'_>, &[Value<'_>], &mut Vec<Finding>);

const DETECTORS: [Detector; 10] = [
    files::check,
    |_, v, o| remote::check(v, o),
    java::check,
    php::check,
    |_, v, o| xss::check(v, o),
    |_, v, o| command::check(v, o),
    |_, v, o| sqli::check(v, o),
    |_, v, o| generic::check(v, o),
    |_, v, o| scanner::check(v, o),
    protocol::check,
];

/// Every finding of every detector (all paranoia levels): the request-level
/// findings plus each field's.
pub fn run(request: &Request) -> Vec<Finding> {
    let mut findings = request_findings(request);
    for field in &request.fields {
        findings.extend(field_findings(field));
    }
    findings
}

/// What the detectors find in the request as a whole, without its values.
pub fn request_findings(request: &Request) -> Vec<Finding> {
    let mut findings = Vec::new();
    for detector in DETECTORS {
        detector(request, &[], &mut findings);
    }
    findings
}

/// What the detectors find in one value. It depends on the field's
/// location and value only, so callers may cache it by both.
pub fn field_findings(field: &Field<'_>) -> Vec<Finding> {
    // An unremarkable request around the value, so request-level checks
    // find nothing here; only findings about this field are kept.
    let stub = Request::from_parts("GET", "/", [("host", "stub")], b"");
    let value = [Value::of(field)];
    let mut findings = Vec::new();
    for detector in DETECTORS {
        detector(&stub, &value, &mut findings);
    }
    findings.retain(|f| f.location == field.location);
    findings
}
