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

/// A value with the forms a backend might see it in.
pub struct Value<'a> {
    pub field: &'a Field,
    /// As sent, URL-decoded, entity- and escape-decoded (distinct only).
    pub forms: Vec<String>,
    /// The decoded form, folded (lower case, `\` as `/`, one space).
    pub folded: String,
}

/// Normalizes every field once, for all detectors.
pub fn values(request: &Request) -> Vec<Value<'_>> {
    request
        .fields
        .iter()
        .map(|field| {
            let forms = normalize::variants(&field.value, field.location.form_encoded());
            let folded = normalize::fold(forms.last().map(String::as_str).unwrap_or_default());
            Value { field, forms, folded }
        })
        .collect()
}

/// The names of files a request uploads: from file-name headers
/// (`X-Filename`, `X_File-Name` …) and multipart parts' `filename`.
pub fn uploaded_file_names(request: &Request) -> Vec<(Location, &str)> {
    let headers = request.headers.iter().filter_map(|(name, value)| {
        let n = name.to_ascii_lowercase().replace(['_', '.'], "-");
        matches!(n.as_str(), "x-filename" | "x-file-name" | "x-file").then(|| (Location::Header(n), value.as_str()))
    });
    let parts = request.fields.iter().filter_map(|f| match &f.location {
        Location::Body(n) if n.ends_with("#filename") => Some((f.location.clone(), f.value.as_str())),
        _ => None,
    });
    headers.chain(parts).collect()
}

/// Every finding of every detector (all paranoia levels).
pub fn run(request: &Request) -> Vec<Finding> {
    let values = values(request);
    let mut findings = Vec::new();
    files::check(request, &values, &mut findings);
    remote::check(&values, &mut findings);
    java::check(request, &values, &mut findings);
    php::check(request, &values, &mut findings);
    xss::check(&values, &mut findings);
    command::check(&values, &mut findings);
    sqli::check(&values, &mut findings);
    generic::check(&values, &mut findings);
    scanner::check(request, &mut findings);
    protocol::check(request, &values, &mut findings);
    findings
}
