//! A request taken apart into everything a detector should look at: the
//! path, each query argument (names and values), each header and cookie,
//! and each body field (form, JSON or multipart), or the raw body.

/// Where a value was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    Method,
    Path,
    /// A query argument's value (`Query(name)`), or its name (`QueryName`).
    Query(String),
    QueryName(String),
    Header(String),
    Cookie(String),
    CookieName(String),
    /// A body field's value, by name or JSON path.
    Body(String),
    BodyName(String),
    /// The body as a whole, when it is not a form, JSON or multipart.
    BodyRaw,
}

impl Location {
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
}

/// One value to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub location: Location,
    /// As sent (not yet decoded).
    pub value: String,
}

/// A request, ready for the detectors.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The request target as sent.
    pub target: String,
    /// The path, before `?`, as sent.
    pub path: String,
    /// Method, path, headers and cookies, then query arguments, then body
    /// fields, in that order.
    pub fields: Vec<Field>,
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

impl Request {
    /// Takes a request apart. `headers` as received (names in any case).
    pub fn from_parts<N, V>(
        method: &str,
        target: &str,
        headers: impl IntoIterator<Item = (N, V)>,
        body: &[u8],
    ) -> Request
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let without_fragment = target.split('#').next().unwrap_or_default();
        let (path, query) = match without_fragment.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (without_fragment, None),
        };
        let mut fields = vec![
            Field { location: Location::Method, value: method.to_owned() },
            Field { location: Location::Path, value: path.to_owned() },
        ];
        // Headers come first: the server bounds how many there are, so the
        // request-level checks always find them.
        for (name, value) in headers {
            let (name, value) = (name.as_ref(), value.as_ref());
            if name.eq_ignore_ascii_case("cookie") {
                for pair in value.split(';') {
                    let (n, v) = pair.trim().split_once('=').unwrap_or((pair.trim(), ""));
                    fields.push(Field { location: Location::CookieName(n.to_owned()), value: n.to_owned() });
                    fields.push(Field { location: Location::Cookie(n.to_owned()), value: v.to_owned() });
                }
            } else {
                fields.push(Field { location: Location::Header(name.to_ascii_lowercase()), value: value.to_owned() });
            }
        }
        let content_type =
            match fields.iter().find(|f| matches!(&f.location, Location::Header(n) if n == "content-type")) {
                Some(f) => f.value.clone(),
                None => String::new(),
            };
        if let Some(q) = query {
            pairs(q, &mut fields, Location::Query, Location::QueryName);
        }
        if !body.is_empty() {
            body_fields(&content_type, body, &mut fields);
        }
        let truncated = fields.len() > MAX_FIELDS;
        fields.truncate(MAX_FIELDS);
        Request { method: method.to_owned(), target: target.to_owned(), path: path.to_owned(), fields, truncated }
    }

    /// A header's value (first of that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|f| match &f.location {
            Location::Header(n) if n.eq_ignore_ascii_case(name) => Some(f.value.as_str()),
            _ => None,
        })
    }

    /// Header names and values, in the order received (cookies excepted).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().filter_map(|f| match &f.location {
            Location::Header(n) => Some((n.as_str(), f.value.as_str())),
            _ => None,
        })
    }
}

fn pairs(text: &str, fields: &mut Vec<Field>, value: fn(String) -> Location, name: fn(String) -> Location) {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        fields.push(Field { location: name(n.to_owned()), value: n.to_owned() });
        fields.push(Field { location: value(n.to_owned()), value: v.to_owned() });
    }
}

fn body_fields(content_type: &str, body: &[u8], fields: &mut Vec<Field>) {
    let text = String::from_utf8_lossy(body);
    // Media types compare case-insensitively; the boundary keeps its case.
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        pairs(&text, fields, Location::Body, Location::BodyName);
    } else if lower.contains("json") {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => json_leaves(&v, String::new(), fields, 0),
            Err(_) => fields.push(Field { location: Location::BodyRaw, value: text.into_owned() }),
        }
    } else if let Some(at) = lower.find("boundary=").filter(|_| lower.starts_with("multipart/")) {
        let boundary = &content_type[at + "boundary=".len()..];
        let boundary = boundary.split(';').next().unwrap_or_default().trim().trim_matches('"');
        multipart(&text, boundary, fields);
    } else {
        if lower.contains("xml") {
            xml_values(&text, fields);
        }
        fields.push(Field { location: Location::BodyRaw, value: text.into_owned() });
    }
}

/// The attribute values and text of an XML body, each as a field, as an
/// XML parser would hand them to the application (entities stay encoded:
/// the normalizers decode them).
fn xml_values(text: &str, fields: &mut Vec<Field>) {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let content = rest[..open].trim();
        if !content.is_empty() {
            fields.push(Field { location: Location::Body("xml".into()), value: content.to_owned() });
        }
        let Some(close) = rest[open..].find('>') else { break };
        let tag = &rest[open + 1..open + close];
        for quote in ['"', '\''] {
            let mut parts = tag.split(quote);
            parts.next();
            while let Some(value) = parts.next() {
                fields.push(Field { location: Location::Body("xml@".into()), value: value.to_owned() });
                parts.next();
            }
        }
        rest = &rest[open + close + 1..];
        if fields.len() > MAX_FIELDS {
            break;
        }
    }
}

fn json_leaves(v: &serde_json::Value, path: String, fields: &mut Vec<Field>, depth: usize) {
    if fields.len() > MAX_FIELDS {
        return;
    }
    if depth > 32 {
        // Deeper than any shop's form: the rest is inspected as text
        // rather than skipped.
        fields.push(Field { location: Location::Body(path), value: v.to_string() });
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                fields.push(Field { location: Location::BodyName(p.clone()), value: k.clone() });
                json_leaves(child, p, fields, depth + 1);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                json_leaves(child, format!("{path}[{i}]"), fields, depth + 1);
            }
        }
        serde_json::Value::String(s) => fields.push(Field { location: Location::Body(path), value: s.clone() }),
        other => fields.push(Field { location: Location::Body(path), value: other.to_string() }),
    }
}

fn multipart(text: &str, boundary: &str, fields: &mut Vec<Field>) {
    if boundary.is_empty() {
        fields.push(Field { location: Location::BodyRaw, value: text.to_owned() });
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
            fields.push(Field { location: Location::Body(format!("{name}#filename")), value: filename });
        }
        for line in head.lines().filter(|l| !l.is_empty()) {
            fields.push(Field { location: Location::Body(format!("{name}#header")), value: line.to_owned() });
        }
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        fields.push(Field { location: Location::Body(name), value: content.to_owned() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(r: &Request) -> Vec<(String, String)> {
        r.fields.iter().map(|f| (f.location.label(), f.value.clone())).collect()
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
