//! A request taken apart into everything a detector should look at: the
//! path, each query argument (names and values), each header and cookie,
//! and each body field (form, JSON or multipart), or the raw body.
//!
//! Names and values borrow from the request where they can: a shopper's
//! request is mostly values the inspector has seen before, and taking it
//! apart should not copy every header and cookie only to look them up.

use std::borrow::Cow;

/// Where a value was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location<'a> {
    Method,
    Path,
    /// A query argument's value (`Query(name)`), or its name (`QueryName`).
    Query(Cow<'a, str>),
    QueryName(Cow<'a, str>),
    Header(Cow<'a, str>),
    Cookie(Cow<'a, str>),
    CookieName(Cow<'a, str>),
    /// A body field's value, by name or JSON path.
    Body(Cow<'a, str>),
    BodyName(Cow<'a, str>),
    /// The body as a whole, when it is not a form, JSON or multipart.
    BodyRaw,
}

impl Location<'_> {
    /// A short label for logs and events (names are client input: cut short).
    pub fn label(&self) -> String {
        let short = |s: &str| s.chars().take(40).collect::<String>();
        match self {
            Location::Method => "method".into(),
            Location::Path => "path".into(),
            Location::Query(n) => format!("query:{}", short(n)),
            Location::QueryName(n) => format!("query-name:{}", short(n)),
            Location::Header(n) => format!("header:{}", short(n)),
            Location::Cookie(n) => format!("cookie:{}", short(n)),
            Location::CookieName(n) => format!("cookie-name:{}", short(n)),
            Location::Body(n) => format!("body:{}", short(n)),
            Location::BodyName(n) => format!("body-name:{}", short(n)),
            Location::BodyRaw => "body".into(),
        }
    }

    /// Whether `+` in the raw value means a space (form encoding).
    pub fn form_encoded(&self) -> bool {
        matches!(self, Location::Query(_) | Location::QueryName(_) | Location::Body(_) | Location::BodyName(_))
    }

    /// The same location, owning its name (for findings and memories that
    /// outlive the request).
    pub fn owned(&self) -> Location<'static> {
        let own = |n: &Cow<'_, str>| Cow::Owned(n.as_ref().to_owned());
        match self {
            Location::Method => Location::Method,
            Location::Path => Location::Path,
            Location::Query(n) => Location::Query(own(n)),
            Location::QueryName(n) => Location::QueryName(own(n)),
            Location::Header(n) => Location::Header(own(n)),
            Location::Cookie(n) => Location::Cookie(own(n)),
            Location::CookieName(n) => Location::CookieName(own(n)),
            Location::Body(n) => Location::Body(own(n)),
            Location::BodyName(n) => Location::BodyName(own(n)),
            Location::BodyRaw => Location::BodyRaw,
        }
    }
}

/// One value to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub location: Location<'a>,
    /// As sent (not yet decoded).
    pub value: Cow<'a, str>,
}

impl Field<'_> {
    /// The same field, owning its name and value.
    pub fn owned(&self) -> Field<'static> {
        Field { location: self.location.owned(), value: Cow::Owned(self.value.as_ref().to_owned()) }
    }
}

/// A request, ready for the detectors.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: Cow<'a, str>,
    /// The path, before `?`, as sent.
    pub path: Cow<'a, str>,
    /// Method, path, headers and cookies, then query arguments, then body
    /// fields, in that order.
    pub fields: Vec<Field<'a>>,
    /// The request had more parts than are inspected; what is past the
    /// limit is not among `fields` (and the request is refused for it).
    pub truncated: bool,
}

/// For requests built without headers (tests, tools).
pub const NO_HEADERS: [(&str, &str); 0] = [];

/// Most fields taken from one request. Past it the rest is not inspected,
/// and the request is blocked for it: no shopper sends a thousand values,
/// and an attack hidden past the limit must not pass unseen.
pub const MAX_FIELDS: usize = 1000;

/// Fields room is made for up front: a browser's headers, cookies and a
/// few query arguments, without growing the list on the way.
const USUAL_FIELDS: usize = 32;

impl<'a> Request<'a> {
    /// Takes a request apart. `headers` as received (names in any case).
    /// Method, target and headers are borrowed where they can be; body
    /// fields are always copied out of the body.
    pub fn from_parts<N, V>(
        method: &'a str,
        target: &'a str,
        headers: impl IntoIterator<Item = (N, V)>,
        body: &[u8],
    ) -> Request<'a>
    where
        N: Into<Cow<'a, str>>,
        V: Into<Cow<'a, str>>,
    {
        let without_fragment = target.split('#').next().unwrap_or_default();
        let (path, query) = match without_fragment.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (without_fragment, None),
        };
        let mut fields = Vec::with_capacity(USUAL_FIELDS);
        fields.push(Field { location: Location::Method, value: Cow::Borrowed(method) });
        fields.push(Field { location: Location::Path, value: Cow::Borrowed(path) });
        // Headers come first: the server bounds how many there are, so the
        // request-level checks always find them.
        let mut content_type = Cow::Borrowed("");
        for (name, value) in headers {
            let (name, value) = (lower_case(name.into()), value.into());
            if name == "cookie" {
                match value {
                    Cow::Borrowed(text) => cookies(text, &mut fields, Cow::Borrowed),
                    Cow::Owned(text) => cookies(&text, &mut fields, |s| Cow::Owned(s.to_owned())),
                }
                continue;
            }
            if name == "content-type" && content_type.is_empty() {
                content_type = value.clone();
            }
            fields.push(Field { location: Location::Header(name), value });
        }
        if let Some(q) = query {
            pairs(q, &mut fields, Location::Query, Location::QueryName, Cow::Borrowed);
        }
        if !body.is_empty() {
            body_fields(&content_type, body, &mut fields);
        }
        let truncated = fields.len() > MAX_FIELDS;
        fields.truncate(MAX_FIELDS);
        Request { method: Cow::Borrowed(method), path: Cow::Borrowed(path), fields, truncated }
    }

    /// The same request, owning all it holds.
    pub fn into_owned(self) -> Request<'static> {
        Request {
            method: Cow::Owned(self.method.into_owned()),
            path: Cow::Owned(self.path.into_owned()),
            fields: self.fields.iter().map(Field::owned).collect(),
            truncated: self.truncated,
        }
    }

    /// A header's value (first of that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|f| match &f.location {
            Location::Header(n) if n.eq_ignore_ascii_case(name) => Some(f.value.as_ref()),
            _ => None,
        })
    }

    /// Header names and values, in the order received (cookies excepted).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().filter_map(|f| match &f.location {
            Location::Header(n) => Some((n.as_ref(), f.value.as_ref())),
            _ => None,
        })
    }
}

/// A header name in lower case; copied only when it is not already (HTTP
/// libraries hand names over lower-cased).
fn lower_case(name: Cow<'_, str>) -> Cow<'_, str> {
    match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(name.to_ascii_lowercase()),
        false => name,
    }
}

/// A Cookie header's pairs, each as a name field and a value field.
/// `keep` turns a slice of `text` into a field's text: borrowed when the
/// header was, copied when it was not.
fn cookies<'t, 'a>(text: &'t str, fields: &mut Vec<Field<'a>>, keep: impl Fn(&'t str) -> Cow<'a, str>) {
    for pair in text.split(';') {
        let (n, v) = pair.trim().split_once('=').unwrap_or((pair.trim(), ""));
        fields.push(Field { location: Location::CookieName(keep(n)), value: keep(n) });
        fields.push(Field { location: Location::Cookie(keep(n)), value: keep(v) });
    }
}

/// `name=value&…` pairs (a query or a form body), each as a name field and
/// a value field; `keep` as for `cookies`.
fn pairs<'t, 'a>(
    text: &'t str,
    fields: &mut Vec<Field<'a>>,
    value: fn(Cow<'a, str>) -> Location<'a>,
    name: fn(Cow<'a, str>) -> Location<'a>,
    keep: impl Fn(&'t str) -> Cow<'a, str>,
) {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        fields.push(Field { location: name(keep(n)), value: keep(n) });
        fields.push(Field { location: value(keep(n)), value: keep(v) });
    }
}

/// A copy of a slice of the body: the body is not kept past taking apart.
fn copied<'a>(s: &str) -> Cow<'a, str> {
    Cow::Owned(s.to_owned())
}

fn body_fields(content_type: &str, body: &[u8], fields: &mut Vec<Field<'_>>) {
    let text = String::from_utf8_lossy(body);
    // Media types compare case-insensitively; the boundary keeps its case.
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        pairs(&text, fields, Location::Body, Location::BodyName, copied);
    } else if lower.contains("json") {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => json_leaves(&v, String::new(), fields, 0),
            Err(_) => fields.push(Field { location: Location::BodyRaw, value: Cow::Owned(text.into_owned()) }),
        }
    } else if let Some(at) = lower.find("boundary=").filter(|_| lower.starts_with("multipart/")) {
        let boundary = &content_type[at + "boundary=".len()..];
        let boundary = boundary.split(';').next().unwrap_or_default().trim().trim_matches('"');
        multipart(&text, boundary, fields);
    } else {
        if lower.contains("xml") {
            xml_values(&text, fields);
        }
        fields.push(Field { location: Location::BodyRaw, value: Cow::Owned(text.into_owned()) });
    }
}

/// A body field's location by name.
fn body(name: impl Into<String>) -> Location<'static> {
    Location::Body(Cow::Owned(name.into()))
}

/// The attribute values and text of an XML body, each as a field, as an
/// XML parser would hand them to the application (entities stay encoded:
/// the normalizers decode them).
fn xml_values(text: &str, fields: &mut Vec<Field<'_>>) {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let content = rest[..open].trim();
        if !content.is_empty() {
            fields.push(Field { location: Location::Body(Cow::Borrowed("xml")), value: copied(content) });
        }
        let Some(close) = rest[open..].find('>') else { break };
        let tag = &rest[open + 1..open + close];
        for quote in ['"', '\''] {
            let mut parts = tag.split(quote);
            parts.next();
            while let Some(value) = parts.next() {
                fields.push(Field { location: Location::Body(Cow::Borrowed("xml@")), value: copied(value) });
                parts.next();
            }
        }
        rest = &rest[open + close + 1..];
        if fields.len() > MAX_FIELDS {
            break;
        }
    }
}

fn json_leaves(v: &serde_json::Value, path: String, fields: &mut Vec<Field<'_>>, depth: usize) {
    if fields.len() > MAX_FIELDS {
        return;
    }
    if depth > 32 {
        // Deeper than any shop's form: the rest is inspected as text
        // rather than skipped.
        fields.push(Field { location: body(path), value: Cow::Owned(v.to_string()) });
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                fields.push(Field { location: Location::BodyName(Cow::Owned(p.clone())), value: copied(k) });
                json_leaves(child, p, fields, depth + 1);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                json_leaves(child, format!("{path}[{i}]"), fields, depth + 1);
            }
        }
        serde_json::Value::String(s) => fields.push(Field { location: body(path), value: copied(s) }),
        other => fields.push(Field { location: body(path), value: Cow::Owned(other.to_string()) }),
    }
}

fn multipart(text: &str, boundary: &str, fields: &mut Vec<Field<'_>>) {
    if boundary.is_empty() {
        fields.push(Field { location: Location::BodyRaw, value: copied(text) });
        return;
    }
    let delimiter = format!("--{boundary}");
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let (head, content) = part.split_once("\r\n\r\n").or_else(|| part.split_once("\n\n")).unwrap_or(("", part));
        let disposition =
            head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition")).unwrap_or_default();
        let param = |key: &str| {
            disposition.split(';').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                k.eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        let name = param("name").unwrap_or_default();
        if let Some(filename) = param("filename") {
            fields.push(Field { location: body(format!("{name}#filename")), value: Cow::Owned(filename) });
        }
        for line in head.lines().filter(|l| !l.is_empty()) {
            fields.push(Field { location: body(format!("{name}#header")), value: copied(line) });
        }
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        fields.push(Field { location: body(name), value: copied(content) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(r: &Request) -> Vec<(String, String)> {
        r.fields.iter().map(|f| (f.location.label(), f.value.to_string())).collect()
    }

    #[test]
    fn query_headers_cookies_and_forms_come_apart() {
        let headers = vec![("Cookie", "sid=abc; theme=dark"), ("Content-Type", "application/x-www-form-urlencoded")];
        let r = Request::from_parts("POST", "/a/b?x=1&y=%27#frag", headers, b"q=hello+world");
        let v = values(&r);
        assert_eq!(r.path, "/a/b");
        for expected in [("query:y", "%27"), ("cookie:theme", "dark"), ("body:q", "hello+world"), ("path", "/a/b")] {
            assert!(v.contains(&(expected.0.into(), expected.1.into())), "{expected:?} in {v:?}");
        }
    }

    #[test]
    fn a_browser_request_is_taken_apart_without_copying_it() {
        // What HTTP libraries hand over: lower-case names, borrowed values.
        let headers = [("user-agent", "Mozilla/5.0"), ("cookie", "sid=abc; theme=dark"), ("accept", "*/*")];
        let r = Request::from_parts("GET", "/p/1?utm_source=mail&page=2", headers, b"");
        let borrowed = |c: &Cow<'_, str>| matches!(c, Cow::Borrowed(_));
        for f in &r.fields {
            let name = match &f.location {
                Location::Method | Location::Path | Location::BodyRaw => None,
                Location::Query(n) | Location::QueryName(n) | Location::Header(n) => Some(n),
                Location::Cookie(n) | Location::CookieName(n) | Location::Body(n) | Location::BodyName(n) => Some(n),
            };
            assert!(borrowed(&f.value) && name.is_none_or(borrowed), "{f:?} was copied");
        }
        assert_eq!(r.fields.len(), 2 + 2 + 4 + 4, "method, path, 2 headers, 2 cookies, 2 arguments");
        // Names in other cases are lower-cased (copied), values still borrowed.
        let r = Request::from_parts("GET", "/", [("User-Agent", "Mozilla/5.0")], b"");
        assert_eq!(r.header("user-agent"), Some("Mozilla/5.0"));
        assert!(r.headers().all(|(n, _)| n == "user-agent"));
        // Owned header values (not UTF-8 as received) come apart the same.
        let owned = [("cookie".to_owned(), "sid=abc".to_owned())];
        let r = Request::from_parts("GET", "/", owned, b"");
        let v = values(&r);
        assert!(v.contains(&("cookie:sid".into(), "abc".into())), "{v:?}");
    }

    #[test]
    fn json_and_multipart_bodies_yield_their_leaves() {
        let json = vec![("Content-Type", "application/json")];
        let r = Request::from_parts("POST", "/", json, br#"{"a": {"b": ["x", 1]}, "c": true}"#);
        let v = values(&r);
        assert!(v.contains(&("body:a.b[0]".into(), "x".into())), "{v:?}");
        assert!(v.contains(&("body-name:a.b".into(), "b".into())), "{v:?}");
        let multi = vec![("Content-Type", "multipart/form-data; boundary=XX")];
        let body =
            b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\n\r\n<?php x ?>\r\n--XX--\r\n";
        let r = Request::from_parts("POST", "/", multi, body);
        let v = values(&r);
        assert!(v.contains(&("body:f".into(), "<?php x ?>".into())), "{v:?}");
        assert!(v.contains(&("body:f#filename".into(), "a.php".into())), "{v:?}");
    }
}
