//! Families 920 and 921: protocol violations and protocol attacks. Requests
//! that no browser or HTTP library sends: a made-up method, a GET with a
//! body, a missing or empty Host, NUL bytes and broken encodings in
//! arguments, content types and charsets a shop never receives, headers
//! that only attacks use (httpoxy's `Proxy`, method overrides), and header
//! injection (CR/LF followed by a header or a second request).
//!
//! Framing itself (Content-Length against Transfer-Encoding) is checked
//! before any of this, by the layer, since it decides what the body is.

use super::Value;
use crate::request::{Location, Request};
use crate::score::{Finding, Severity, fragment};
use std::borrow::Cow;

fn finding(family: u16, check: &'static str, severity: Severity, location: Location<'static>, what: &str) -> Finding {
    Finding { family, check, paranoia: 1, severity, location, fragment: fragment(what) }
}

const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "CONNECT",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "PURGE",
];

/// Request content types a shop (or the store behind the proxy) takes.
const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/related",
    "text/xml",
    "application/xml",
    "application/soap+xml",
    "application/json",
    "application/merge-patch+json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/csp-report",
    "application/reports+json",
    "text/plain",
];

const CHARSETS: &[&str] = &["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252", "us-ascii"];

/// Headers only attacks send: httpoxy, WebDAV lock tricks, and method
/// overrides that slip a DELETE past rules written for POST.
const RESTRICTED_HEADERS: &[&str] = &[
    "proxy",
    "lock-token",
    "content-range",
    "if",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "content-encoding",
];

fn content_type_violation(value: &str) -> Option<&'static str> {
    let lower = value.to_ascii_lowercase();
    let mut params = lower.split(';');
    let media = params.next().unwrap_or_default().trim();
    if !media.bytes().all(|b| b.is_ascii_alphanumeric() || b"/.+*-_".contains(&b)) {
        return Some("content-type-syntax");
    }
    if !CONTENT_TYPES.contains(&media) {
        return Some("content-type-not-allowed");
    }
    let mut charsets = 0;
    for param in params {
        let (name, val) = param.split_once('=').unwrap_or((param, ""));
        let (name, val) = (name.trim(), val.trim().trim_matches('"'));
        if !matches!(
            name,
            "charset" | "boundary" | "type" | "start" | "start-info" | "action" | "version" | "component"
        ) {
            return Some("content-type-syntax");
        }
        if name == "charset" {
            charsets += 1;
            if !CHARSETS.contains(&val) {
                return Some("charset-not-allowed");
            }
        }
    }
    (charsets > 1).then_some("charset-repeated")
}

/// `%c0%af`, `%uff0f`: encodings that no browser produces and that decode
/// to something else on some back ends.
fn bad_encoding(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        if b[i] == b'%' {
            let hex = |x: u8| (x as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let byte = h * 16 + l;
                // Overlong forms of ASCII: lead bytes C0 and C1.
                if byte == 0xc0 || byte == 0xc1 {
                    return true;
                }
            }
            // IIS %u escapes for full-width forms of ASCII punctuation.
            if (b[i + 1] == b'u' || b[i + 1] == b'U')
                && b.len() >= i + 6
                && b[i + 2..i + 4].eq_ignore_ascii_case(b"ff")
                && b[i + 4..i + 6].iter().all(u8::is_ascii_hexdigit)
            {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// CR or LF followed by a header a response splitter or request smuggler
/// needs, or by a second request line. Words a delivery note may hold
/// before a colon ("Location: behind the garage") need an attack-shaped
/// value to count.
fn header_injection(decoded: &str) -> bool {
    decoded.split(['\r', '\n']).skip(1).any(|line| {
        let line = line.trim_start().to_ascii_lowercase();
        let Some((name, value)) = line.split_once(':') else {
            return line.contains(" http/1.") || line.starts_with("http/1.");
        };
        let value = value.trim();
        let token =
            !name.is_empty() && name.len() <= 40 && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
        let header = token
            && match name {
                "set-cookie"
                | "content-type"
                | "content-length"
                | "transfer-encoding"
                | "cache-control"
                | "content-security-policy" => true,
                "location" | "content-location" => value.starts_with("http") || value.starts_with('/'),
                "refresh" => value.starts_with(|c: char| c.is_ascii_digit()) && value.contains("url="),
                n => n.starts_with("x-") || n.starts_with("access-control-"),
            };
        header || line.contains(" http/1.")
    })
}

/// Checks of one header by itself (so they are remembered with it).
fn check_header(lower: &str, value: &str, out: &mut Vec<Finding>) {
    let at = || Location::Header(Cow::Owned(lower.to_owned()));
    if lower == "content-type"
        && let Some(check) = content_type_violation(value)
    {
        out.push(finding(920, check, Severity::Critical, at(), value));
    }
    if RESTRICTED_HEADERS.contains(&lower) {
        out.push(finding(920, "header-restricted", Severity::Critical, at(), lower));
    }
    if lower == "connection" {
        let options: Vec<String> = value.split(',').map(|o| o.trim().to_ascii_lowercase()).collect();
        let repeated = options.iter().enumerate().any(|(i, o)| options[..i].contains(o));
        let contradictory = options.iter().any(|o| o == "close") && options.iter().any(|o| o == "keep-alive");
        if repeated || contradictory {
            out.push(finding(920, "connection-conflict", Severity::Critical, at(), value));
        }
    }
}

pub fn check(request: &Request, values: &[Value<'_>], out: &mut Vec<Finding>) {
    let method = request.method.as_ref();
    if !METHODS.contains(&method) {
        out.push(finding(920, "method-unknown", Severity::Critical, Location::Method, method));
    }
    if request.truncated {
        out.push(finding(920, "too-many-parts", Severity::Critical, Location::Method, method));
    }
    let header = |name: &str| request.header(name);
    match header("host").map(str::trim) {
        None => out.push(finding(920, "host-missing", Severity::Warning, Location::Header("host".into()), "")),
        Some("") => out.push(finding(920, "host-empty", Severity::Critical, Location::Header("host".into()), "")),
        _ => {}
    }
    if header("accept").is_some_and(|v| v.trim().is_empty()) && header("user-agent").is_none_or(|v| v.is_empty()) {
        out.push(finding(920, "accept-and-agent-empty", Severity::Critical, Location::Header("accept".into()), ""));
    }
    let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if matches!(method, "GET" | "HEAD") && length.is_some_and(|n| n > 0) {
        out.push(finding(920, "body-on-get", Severity::Critical, Location::Header("content-length".into()), method));
    }
    for v in values {
        if let Location::Header(name) = &v.field.location {
            check_header(name, &v.field.value, out);
        }
    }
    for v in values {
        let argument = matches!(
            v.field.location,
            Location::Query(_) | Location::QueryName(_) | Location::Body(_) | Location::BodyName(_)
        );
        if !argument {
            continue;
        }
        let raw = &v.field.value;
        if bad_encoding(raw) {
            out.push(finding(920, "bad-encoding", Severity::Critical, v.field.location.owned(), raw));
        }
        let decoded = v.forms.last().map(String::as_str).unwrap_or_default();
        if decoded.contains('\0') {
            out.push(finding(920, "nul-byte", Severity::Critical, v.field.location.owned(), raw));
        }
        if header_injection(decoded) {
            out.push(finding(921, "header-injection", Severity::Critical, v.field.location.owned(), raw));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_charsets() {
        assert_eq!(content_type_violation("application/json"), None);
        assert_eq!(content_type_violation("multipart/form-data; boundary=----WebKitFormBoundaryx"), None);
        assert_eq!(content_type_violation("application/x-www-form-urlencoded; charset=UTF-8"), None);
        assert_eq!(content_type_violation("my-new-content-type"), Some("content-type-not-allowed"));
        assert_eq!(content_type_violation("text/plain; charset=garbage"), Some("charset-not-allowed"));
        assert_eq!(content_type_violation("text/plain; charset=utf-8; charset=utf-7"), Some("charset-not-allowed"));
        assert!(content_type_violation("%{(#nike='multipart/form-data')").is_some());
    }

    #[test]
    fn encodings_and_injections() {
        assert!(bad_encoding("%c0%af"));
        assert!(bad_encoding("%uff0f"));
        assert!(!bad_encoding("caf%C3%A9%20cr%C3%A8me"));
        assert!(header_injection("x\r\nSet-Cookie: a=b"));
        assert!(header_injection("x\nGET /admin HTTP/1.1"));
        assert!(!header_injection("Line one\nLine two: the sequel"));
    }
}
