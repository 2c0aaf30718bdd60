//! Family 941: cross-site scripting. Values are read the way a browser
//! would: as markup (tags, attributes, event handlers, URL schemes in
//! attributes, CSS) and as script (DOM sinks, code-running calls,
//! obfuscations such as JSFuck, UTF-7 and template-literal calls).

use super::Value;
use crate::normalize::{html_entities, strip_sql_comments};
use crate::request::Location;
use crate::score::{Finding, Severity, fragment};

/// Elements that run script, load content or change how the page is read.
const DANGEROUS_TAGS: &[&str] = &[
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "svg",
    "math",
    "style",
    "link",
    "meta",
    "base",
    "form",
    "isindex",
    "xml",
    "import",
    "vmlframe",
    "xss",
    "marquee",
    "bgsound",
    "layer",
    "ilayer",
    "xmp",
    "plaintext",
    "template",
    "portal",
    "animate",
    "set",
    "handler",
    "listener",
    "entity",
];

/// Elements harmless on their own that carry script in attributes.
const ATTRIBUTE_TAGS: &[&str] = &[
    "img", "image", "video", "audio", "source", "body", "input", "a", "div", "details", "select", "textarea", "button",
    "p", "x", "span", "table", "td", "html",
];

/// Attributes that load or run something, besides `on…` handlers.
const ACTIVE_ATTRIBUTES: &[&str] = &["formaction", "srcdoc", "implementation", "dynsrc", "lowsrc", "datasrc"];

/// Globals through which `x["alert"]` reaches any function by name.
const GLOBALS: &[&str] = &["self[", "window[", "top[", "parent[", "this[", "globalthis[", "document[", "frames["];

static JS_CALL_WORDS: super::Needles = super::Needles::new(JS_CALLS);
static GLOBAL_WORDS: super::Needles = super::Needles::new(GLOBALS);
static JS_SINK_WORDS: super::Needles = super::Needles::new(JS_SINKS);
static SCRIPT_SCHEME_WORDS: super::Needles = super::Needles::new(SCRIPT_SCHEMES);

/// Where page script gets at data or runs code.
const JS_SINKS: &[&str] = &[
    "document.cookie",
    "document.write",
    "document.domain",
    "document.location",
    "window.location",
    "location.href",
    "location.hash",
    "location.search",
    ".innerhtml",
    ".outerhtml",
    "window.name",
    "localstorage.",
    "sessionstorage.",
    "document.body",
    "fromcharcode",
    "srcdoc",
];

/// Functions that run a string as code, or exist only to prove a hole.
const JS_CALLS: &[&str] =
    &["eval", "settimeout", "setinterval", "function", "alert", "prompt", "confirm", "execscript", "import", "atob"];

/// URL schemes that run script when followed.
const SCRIPT_SCHEMES: &[&str] =
    &["javascript:", "vbscript:", "livescript:", "mocha:", "data:text/html", "data:image/svg"];

fn finding(check: &'static str, v: &Value<'_>, what: &str) -> Finding {
    Finding {
        family: 941,
        check,
        paranoia: 1,
        severity: Severity::Critical,
        location: v.field.location.owned(),
        fragment: fragment(what),
    }
}

/// The text as a browser would read it: entities decoded (twice, for
/// `&amp;lt;`), UTF-7 brackets, 7-bit-stripped Latin-1 (`¼script¾`).
fn as_browser_reads(s: &str) -> String {
    let decoded = html_entities(&html_entities(s));
    let utf7 = decoded.replace("+adw-", "<").replace("+ad4-", ">").replace("+ACI-", "\"");
    utf7.chars()
        .map(|c| match c as u32 {
            0xA0..=0xFF if matches!(c as u32 & 0x7F, 0x3C | 0x3E | 0x22 | 0x27) => char::from((c as u32 & 0x7F) as u8),
            _ => c,
        })
        .collect()
}

/// The tag names opened in `s` (`<name`, `</name`, `<ns:name`, `<?name`).
fn tags(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in s.match_indices('<') {
        let after = &s[at + 1..];
        let instruction = after.starts_with('?');
        let rest = after.trim_start_matches(['/', '?', '!', ':']);
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-').collect();
        // Processing instructions (`<?xml …?>`) are not elements, except
        // IE's `<?import`, which loads behaviour.
        if instruction && name != "import" {
            continue;
        }
        if name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            // `x:script`: the local name decides.
            names.push(name.rsplit(':').next().unwrap_or(&name).to_owned());
        }
    }
    names
}

/// `on…=` as an attribute: after a space, quote or slash (or at the start),
/// `on` and letters, optional spaces, `=`.
/// One of [`ACTIVE_ATTRIBUTES`] set: `formaction=`, `srcdoc =`.
fn active_attribute(s: &str) -> bool {
    ACTIVE_ATTRIBUTES.iter().any(|a| {
        s.match_indices(a).any(|(at, _)| {
            let before = s[..at].chars().next_back();
            before.is_none_or(|c| !c.is_ascii_alphanumeric()) && s[at + a.len()..].trim_start().starts_with('=')
        })
    })
}

fn event_handler(s: &str) -> bool {
    s.match_indices("on").any(|(at, _)| {
        let before = s[..at].chars().next_back();
        let boundary = before.is_none_or(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '/' | ';' | '`'));
        let letters = s[at + 2..].chars().take_while(char::is_ascii_alphabetic).count();
        boundary && letters >= 3 && s[at + 2 + letters..].trim_start().starts_with('=')
    })
}

/// Whitespace, control characters and JS comments removed: how `java
/// script:` and `document /**/ . cookie` read to a parser.
fn squeezed(s: &str) -> String {
    strip_sql_comments(s).chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect()
}

/// JSFuck: script written with `[]()!+` alone.
fn jsfuck(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    compact.len() >= 4
        && (compact.contains("![]") || compact.contains("+[]"))
        && compact.chars().all(|c| "[]()!+".contains(c))
}

pub fn check(values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        if matches!(v.field.location, Location::Method) {
            continue;
        }
        let read = as_browser_reads(&v.folded);
        let squeezed = squeezed(&read);
        // Tag names spaced out (`<f o r m`) count as written together.
        let mut tag_names = tags(&read);
        tag_names.extend(tags(&squeezed));
        if let Some(t) = tag_names.iter().find(|t| DANGEROUS_TAGS.contains(&t.as_str())) {
            out.push(finding("xss-tag", v, t));
        } else if !tag_names.is_empty()
            && (event_handler(&read)
                || (!matches!(v.field.location, Location::BodyRaw)
                    && (read.contains("xmlns") || read.contains("xlink:href"))))
        {
            out.push(finding("xss-attribute", v, &read));
        } else if tag_names.iter().any(|t| ATTRIBUTE_TAGS.contains(&t.as_str())) && read.contains("style=") {
            out.push(finding("xss-style-attribute", v, &read));
        } else if event_handler(&read) || active_attribute(&read) {
            out.push(finding("xss-event-handler", v, &read));
        }
        if read.contains("<!--#") {
            out.push(finding("xss-server-side-include", v, "<!--#"));
        }
        // `¼tag¾`: markup for browsers that drop the eighth bit.
        if v.folded.contains('\u{bc}') && v.folded.contains('\u{be}') {
            out.push(finding("xss-7bit-markup", v, &v.folded));
        }
        if squeezed.contains("data:,") && squeezed.contains('<') {
            out.push(finding("xss-data-url", v, &squeezed));
        }
        if GLOBAL_WORDS
            .first_where(&squeezed, |g, at| matches!(squeezed.as_bytes().get(at + g.len()), Some(b'"' | b'\'')))
            .is_some()
        {
            out.push(finding("xss-global-lookup", v, &squeezed));
        }
        if squeezed.contains("newfunction(") {
            out.push(finding("xss-code-call", v, "new Function("));
        }
        if let Some(scheme) = SCRIPT_SCHEME_WORDS.first_in(&squeezed) {
            out.push(finding("xss-script-url", v, scheme));
        }
        if ["expression(", "-moz-binding", "@import", "behavior:", "url(javascript"]
            .iter()
            .any(|p| squeezed.contains(p))
        {
            out.push(finding("xss-css", v, &squeezed));
        }
        let unquoted = squeezed.replace(['"', '\''], "").replace("[", ".").replace("]", "");
        if let Some(sink) = JS_SINK_WORDS.first_in(&unquoted) {
            out.push(finding("xss-dom-sink", v, sink));
        }
        let code_call = JS_CALL_WORDS.first_where(&squeezed, |f, at| {
            let before = squeezed[..at].chars().next_back();
            let after = &squeezed[at + f.len()..];
            before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_')
                && (after.starts_with('(') || after.starts_with('`'))
        });
        if let Some(f) = code_call {
            out.push(finding("xss-code-call", v, f));
        }
        if squeezed.contains(".call`")
            || squeezed.contains(".apply`")
            || (squeezed.contains('`') && squeezed.contains("${"))
        {
            out.push(finding("xss-template-call", v, &squeezed));
        }
        if jsfuck(&read) {
            out.push(finding("xss-jsfuck", v, &read));
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
    fn script_in_its_many_disguises_is_caught() {
        for attack in [
            "/?q=<script>alert(1)</script>",
            "/?q=%3Cimg%20src=x%20onerror=alert(1)%3E",
            "/?q=%26%2360%3Bscript%26%2362%3B",
            "/?q=ja%26tab%3Bvascript%3Aalert(1)",
            "/?q=%2BADw-script%2BAD4-",
            "/?q=document%20/*x*/%20.%20cookie",
            "/?q=window[%22location%22]",
            "/?q=setTimeout(name,1)",
            "/?q=[].sort.call`${alert}1`",
            "/?q=(![]+[])[+!+[]]",
            "/?%20onload%3D=x",
            "/?q=%3Cx:script%20xmlns:x=%22http://www.w3.org/1999/xhtml%22%3E",
            "/?q=$%3Cf%20o%20r%20m",
            "/?q=%27formaction%3D",
            "/?q=%3C!--%23exec%20cmd=%22ls%22--%3E",
            "/?q=self%5B%22%5Cx24%22%5D",
            "/?q=new%20Function%28%29",
            "/?q=%3C%3Avmlframe",
        ] {
            assert!(blocked(attack), "{attack}");
        }
    }

    #[test]
    fn shop_text_with_brackets_and_words_passes() {
        for benign in [
            "/?q=size+<+10",
            "/?q=I+<3+this+coffee",
            "/?q=<b>great</b>+beans",
            "/?q=status%3Donline",
            "/?q=function+of+a+grinder",
            "/?q=alert+sound+kettle",
            "/?q=100%25+arabica+(single+origin)",
            "/?q=on+sale",
        ] {
            assert!(!blocked(benign), "{benign}");
        }
    }
}
