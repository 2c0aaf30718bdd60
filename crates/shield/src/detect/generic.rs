//! Family 934: generic application attacks. Node.js code and insecure
//! deserialization markers, prototype pollution, JavaScript busy loops,
//! server-side template expressions, cloud-metadata and internal host
//! names, and data: URIs. Values that arrive base64-encoded (cookies love
//! that) are decoded once and read again.

use super::Value;
use crate::normalize;
use crate::request::Location;
use crate::score::{Finding, Severity, fragment};
use base64::Engine;

fn finding(check: &'static str, v: &Value<'_>, what: &str) -> Finding {
    Finding {
        family: 934,
        check,
        paranoia: 1,
        severity: Severity::Critical,
        location: v.field.location.owned(),
        fragment: fragment(what),
    }
}

/// Serializer markers that turn data back into functions.
const DESERIALIZATION_MARKERS: &[&str] = &["_$$nd_func$$_", "__js_function"];

/// Node.js and JavaScript code that a value has no reason to hold. Each is
/// specific enough alone; bare `process.` or `console.` are not.
static JS_CODE_WORDS: super::Needles = super::Needles::new(JS_CODE);

const JS_CODE: &[&str] = &[
    "eval(string.fromcharcode",
    "newfunction(",
    ".constructor.constructor",
    "this.constructor",
    "module.exports=",
    "process.env",
    "process[",
    "process.binding(",
    "process.mainmodule",
    "process.kill(",
    "process.exit(",
    "process.spawn(",
    "require(\"child_process\")",
    "require('child_process')",
    "require.main",
    "require[",
    "child_process",
    "console[",
    "global.process",
    "kernel.exec(",
    "kernel.system(",
];

/// `console.log(`, `console.info.call(` …
fn console_call(s: &str) -> bool {
    s.match_indices("console.").any(|(at, _)| {
        let rest = &s[at + "console.".len()..];
        let name_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'.').count();
        name_len > 0 && rest[name_len..].starts_with('(')
    })
}

/// `function(){`, `function x(a){`: a function literal.
fn function_literal(s: &str) -> bool {
    s.match_indices("function").any(|(at, _)| {
        let rest = &s[at + "function".len()..];
        let name_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$').count();
        let rest = &rest[name_len..];
        rest.starts_with('(') && rest.find(')').is_some_and(|close| rest[close + 1..].starts_with('{'))
    })
}

/// React Server Components flight references that walk into prototypes:
/// `"$1:__proto__:then"`, `"$3:constructor:constructor"`.
fn flight_prototype_walk(s: &str) -> bool {
    s.match_indices('$').any(|(at, _)| {
        let rest = &s[at + 1..];
        let id = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        (1..=6).contains(&id)
            && rest[id..].starts_with(':')
            && rest[id..]
                .split(['"', '\'', ',', '}'])
                .next()
                .is_some_and(|path| path.split(':').any(|seg| matches!(seg, "__proto__" | "constructor" | "prototype")))
    })
}

/// `__proto__[x]`, `__proto__.x`, `constructor.prototype`,
/// `constructor[prototype]`, in a name or a value.
fn prototype_pollution(s: &str) -> bool {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    s.match_indices("__proto__").any(|(at, _)| {
        let after = &s[at + "__proto__".len()..];
        after.starts_with(['[', '.', '"', '\'']) || after.is_empty()
    }) || s.contains("constructor.prototype")
        || s.contains("constructor[prototype]")
        || s.contains("constructor][prototype]")
}

/// `while(true)`, `while(!0)`, `while(!!{})` …: a loop whose condition is
/// a constant that is always true, the classic event-loop denial of service.
fn busy_loop(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    compact.match_indices("while(").any(|(at, _)| {
        let rest = &compact[at + "while(".len()..];
        let mut depth = 1usize;
        let mut end = None;
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let cond = &rest[..end.unwrap_or(rest.len())];
        always_true(cond)
    })
}

fn always_true(cond: &str) -> bool {
    let mut c = cond.trim();
    while let Some(inner) = c.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        c = inner.trim();
    }
    let bangs = c.bytes().take_while(|b| *b == b'!').count();
    let atom = &c[bangs..];
    let truth = match atom {
        "true" | "infinity" | "-infinity" | "+infinity" | "{}" | "[]" | "this" | "newdate" | "newdate()" | "string"
        | "object" | "array" | "number" | "function" | "math" | "date" => Some(true),
        "false" | "0" | "-0" | "+0" | "\"\"" | "''" | "``" | "null" | "undefined" | "nan" => Some(false),
        _ => {
            let digits = atom.trim_start_matches(['-', '+']);
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .then(|| digits.bytes().any(|b| (b'1'..=b'9').contains(&b)))
        }
    };
    truth.is_some_and(|t| t ^ (bangs % 2 == 1))
}

/// Template delimiters around an expression that computes or calls:
/// `{{7*7}}`, `{{''.__class__}}`, `#{runtime.exec('id')}`, `<%= 7*7 %>`,
/// `${7*7}`. A bare variable (`{{username}}`, `#{name}`) is ordinary text.
fn template_expression(s: &str) -> Option<String> {
    for (open, close) in [("{{", "}}"), ("#{", "}"), ("<%", "%>"), ("${", "}"), ("*{", "}"), ("@(", ")")] {
        for (at, _) in s.match_indices(open) {
            let rest = &s[at + open.len()..];
            let Some(end) = rest.find(close) else { continue };
            let inner = rest[..end].trim().trim_start_matches(['=', '-', '#']).trim();
            if computes(inner) {
                return Some(format!("{open}{inner}{close}"));
            }
        }
    }
    None
}

fn computes(inner: &str) -> bool {
    if inner.is_empty() || inner.len() > 400 {
        return false;
    }
    let call = inner.contains('(') && inner.contains(')');
    let dunder = inner.contains("__");
    let arithmetic = inner
        .as_bytes()
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'*' | b'+' | b'-' | b'/' | b'%') && w[2].is_ascii_digit());
    let literal_method = inner.contains("''.") || inner.contains("\"\".") || inner.contains("[].");
    call || dunder || arithmetic || literal_method
}

/// Names of hosts inside: loopback aliases, container and cluster
/// gateways, wildcard DNS that resolves to 127.0.0.1, cloud metadata.
const INTERNAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "localhost4",
    "localhost4.localdomain4",
    "localhost6",
    "localhost6.localdomain6",
    "ipv6-localhost",
    "ip6-localhost",
    "ipv6-loopback",
    "ip6-loopback",
    "host.docker.internal",
    "gateway.docker.internal",
    "kubernetes.docker.internal",
    "host.containers.internal",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localtest.me",
    "lvh.me",
    "metadata.google.internal",
    "metadata.packet.net",
    "metadata.azure.com",
    "169.254.169.254",
    "169.254.170.2",
    "192.0.0.192",
    "100.100.100.200",
    "fd00:ec2::254",
];

/// A value that addresses an internal host: `localhost/`, `http://lvh.me`,
/// `http:127.0.0.1`. A bare `localhost` (a database host setting) is not.
fn internal_host(s: &str) -> Option<&'static str> {
    let s = s.trim().trim_matches(['"', '\'']);
    let (had_scheme, rest) = match s.split_once(':') {
        Some(("http" | "https" | "ftp" | "gopher" | "dict" | "ws" | "wss" | "ldap", rest)) => {
            (true, rest.trim_start_matches('/'))
        }
        _ => (false, s),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = host.trim_start_matches('[').split(']').next().unwrap_or_default();
    let host = if host.matches(':').count() == 1 { host.split(':').next().unwrap_or_default() } else { host };
    let addressed = had_scheme || authority_end < rest.len();
    if !addressed {
        return None;
    }
    if host == "127.0.0.1" || host == "0.0.0.0" || host == "::1" {
        return Some("loopback");
    }
    let host = host.trim_end_matches('.');
    INTERNAL_NAMES.iter().copied().find(|name| {
        host == *name || (matches!(*name, "localtest.me" | "lvh.me") && host.ends_with(&format!(".{name}")))
    })
}

/// `data:text/plain;base64,…`: inline content where a URL is expected.
/// Images, audio, video and fonts are common in real forms and left alone.
fn data_uri(s: &str) -> bool {
    s.match_indices("data:").any(|(at, _)| {
        let before_ok = at == 0 || !s.as_bytes()[at - 1].is_ascii_alphanumeric();
        let mime = &s[at + "data:".len()..];
        let kind = mime.split('/').next().unwrap_or_default();
        before_ok
            && mime.contains('/')
            && kind.bytes().all(|b| b.is_ascii_alphabetic())
            && !kind.is_empty()
            && !matches!(kind, "image" | "audio" | "video" | "font")
    })
}

/// A value that looks like base64 of something readable, decoded.
fn base64_text(s: &str) -> Option<String> {
    let t = s.trim();
    if t.len() < 12 || t.len() > 8192 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b)) {
        return None;
    }
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = engine.decode(t.replace(['-', '_'], "+")).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let printable = text.chars().all(|c| !c.is_control() || c.is_whitespace());
    printable.then(|| normalize::code_escapes(&text).to_lowercase())
}

/// Where this family looks: parameters, cookies and bodies (not headers,
/// whose `Host: localhost` is ordinary).
fn inspected(location: &Location) -> bool {
    matches!(
        location,
        Location::Query(_)
            | Location::QueryName(_)
            | Location::Body(_)
            | Location::BodyName(_)
            | Location::BodyRaw
            | Location::Cookie(_)
            | Location::CookieName(_)
    )
}

fn check_text(v: &Value<'_>, s: &str, out: &mut Vec<Finding>) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let found = if is_name(&v.field.location) {
        // Names are the application's vocabulary (`process[step]` is a
        // fine form field); only a walk into prototypes is an attack there.
        prototype_pollution(s).then(|| ("prototype-pollution", s.to_owned()))
    } else if let Some(m) = DESERIALIZATION_MARKERS.iter().find(|m| compact.contains(*m)) {
        Some(("node-deserialization", (*m).to_owned()))
    } else if let Some(m) = JS_CODE_WORDS.first_in(&compact) {
        Some(("node-code", (*m).to_owned()))
    } else if console_call(&compact) || function_literal(&compact) || flight_prototype_walk(&compact) {
        Some(("node-code", compact.clone()))
    } else if prototype_pollution(s) {
        Some(("prototype-pollution", s.to_owned()))
    } else if busy_loop(s) {
        Some(("js-busy-loop", s.to_owned()))
    } else if let Some(t) = template_expression(s) {
        Some(("template-injection", t))
    } else if let Some(host) = internal_host(s) {
        Some(("internal-host", host.to_owned()))
    } else if data_uri(s) {
        Some(("data-uri", s.to_owned()))
    } else {
        None
    };
    match found {
        Some((check, what)) => {
            out.push(finding(check, v, &what));
            true
        }
        None => false,
    }
}

fn is_name(location: &Location) -> bool {
    matches!(location, Location::QueryName(_) | Location::BodyName(_) | Location::CookieName(_))
}

pub fn check(values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values.iter().filter(|v| inspected(&v.field.location)) {
        let mut texts: Vec<String> = v.forms.iter().map(|f| f.to_lowercase()).collect();
        // A JSON key path is a name the client chose: look for prototype
        // walks in it.
        if let Location::Body(name) = &v.field.location
            && prototype_pollution(&name.to_lowercase())
        {
            out.push(finding("prototype-pollution", v, name));
            continue;
        }
        let decoded: Vec<String> = v.forms.iter().filter_map(|f| base64_text(f)).collect();
        texts.extend(decoded);
        for text in texts {
            if check_text(v, &text, out) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loops_are_told_from_ordinary_whiles() {
        for yes in ["while(true)", "while(!0);", "while(!!{})", "while((true)))", "while(-1)", "while(!undefined)"] {
            assert!(busy_loop(yes), "{yes}");
        }
        for no in ["while (foo) is bar.", "while(!true);", "while(0)", "a while ago", "while(x<10)"] {
            assert!(!busy_loop(no), "{no}");
        }
    }

    #[test]
    fn templates_that_compute_but_not_plain_placeholders() {
        for yes in ["{{7*7}}", "{{''.__class__.__mro__}}", "#{runtime.exec('id')}", "<%=7*7%>", "<% system('id') %>"] {
            assert!(template_expression(yes).is_some(), "{yes}");
        }
        for no in ["{{username}}", "<%=title%>", "#{name}", "Hi {{ first_name }}", "50% off {sale}"] {
            assert!(template_expression(no).is_none(), "{no}");
        }
    }

    #[test]
    fn internal_hosts_only_when_addressed() {
        for yes in ["localhost/", "http://localhost/", "host.docker.internal/", "http:127.0.0.1", "x.lvh.me/a"] {
            assert!(internal_host(yes).is_some(), "{yes}");
        }
        for no in ["localhost", "mylocalhost", "example.com/", "https://shop.example/"] {
            assert!(internal_host(no).is_none(), "{no}");
        }
    }

    #[test]
    fn data_uris_other_than_media() {
        assert!(data_uri("data:text/plain;base64,SSBsb3ZlIFBIUAo="));
        assert!(!data_uri("data:image/png;base64,iVBORw0KGgo="));
        assert!(!data_uri("metadata:foo/bar"));
    }

    #[test]
    fn base64_is_read_once() {
        assert_eq!(base64_text("XyQkTkRfRlVOQyQkXwo=").as_deref(), Some("_$$nd_func$$_\n"));
        assert_eq!(base64_text("short"), None);
    }
}
