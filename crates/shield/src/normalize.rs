//! Normalization: the forms an attacker's bytes take once a server, a
//! framework or a database has decoded them, so that detectors match what
//! would actually be executed rather than its disguise.
//!
//! Every function here is total (never panics, on any input) and bounded:
//! decoding loops stop after a fixed number of rounds, and input longer
//! than [`MAX_INSPECTED`] is inspected by its first bytes only.

/// Longest value inspected; the rest of a longer value is not examined.
/// (Bodies this long are still limited elsewhere by the body size limit.)
pub const MAX_INSPECTED: usize = 64 * 1024;

/// Rounds of repeated URL decoding (double and triple encoding).
const DECODE_ROUNDS: usize = 3;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Truncates to at most [`MAX_INSPECTED`] bytes, on a character boundary.
pub fn bounded(s: &str) -> &str {
    if s.len() <= MAX_INSPECTED {
        return s;
    }
    let mut end = MAX_INSPECTED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One round of percent-decoding. `%uXXXX` (IIS) is decoded too; `+` becomes
/// a space when `plus_is_space` (form and query encoding). Invalid escapes
/// stay as they are. Bytes that do not form UTF-8 become U+FFFD, except the
/// overlong forms of `.`, `/` and `\` that old servers accepted, which are
/// decoded to those characters.
pub fn url_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 5 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') => {
                let code = (2..6).try_fold(0u32, |acc, k| hex(b[i + k]).map(|h| acc * 16 + u32::from(h)));
                match code.and_then(char::from_u32) {
                    Some(c) => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    utf8_with_overlongs(&out)
}

/// Bytes to text: valid UTF-8 as is, the overlong encodings of `.`, `/`
/// and `\` (`C0 AE`, `C0 AF`, `C1 9C`, and the 3-byte `E0 80 AE` …) as the
/// characters they spell, anything else invalid as U+FFFD.
fn utf8_with_overlongs(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let (c, used) = match after {
                    [0xC0, 0xAE, ..] | [0xE0, 0x80, 0xAE, ..] => ('.', if after[0] == 0xC0 { 2 } else { 3 }),
                    [0xC0, 0xAF, ..] | [0xE0, 0x80, 0xAF, ..] => ('/', if after[0] == 0xC0 { 2 } else { 3 }),
                    [0xC1, 0x9C, ..] | [0xC1, 0x1C, ..] => ('\\', 2),
                    _ => ('\u{FFFD}', e.error_len().unwrap_or(after.len()).max(1)),
                };
                out.push(c);
                rest = &after[used.min(after.len())..];
            }
        }
    }
    out
}

/// Repeated URL decoding until nothing changes (at most a few rounds).
pub fn url_decode_fully(s: &str, plus_is_space: bool) -> String {
    let mut current = url_decode(s, plus_is_space);
    for _ in 1..DECODE_ROUNDS {
        let next = url_decode(&current, false);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// HTML character references: named ones that matter for markup and
/// script (`&lt;` `&gt;` `&amp;` `&quot;` `&apos;` `&colon;` …), and numeric
/// ones (`&#60;` `&#x3c;`), with or without the trailing `;`.
pub fn html_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        match decode_entity(tail) {
            Some((c, used)) => {
                out.push(c);
                rest = &tail[used..];
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the entity at the start of `s` (after the `&`): the character
/// and how many bytes it used (including an optional `;`).
fn decode_entity(s: &str) -> Option<(char, usize)> {
    let semi = |n: usize| if s.as_bytes().get(n) == Some(&b';') { n + 1 } else { n };
    if let Some(num) = s.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(h) => (h, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits.bytes().take(8).take_while(|b| (*b as char).is_digit(radix)).count();
        if len == 0 {
            return None;
        }
        let code = u32::from_str_radix(&digits[..len], radix).ok()?;
        return Some((char::from_u32(code).unwrap_or('\u{FFFD}'), semi(skip + len)));
    }
    const NAMED: [(&str, char); 14] = [
        ("lt", '<'),
        ("gt", '>'),
        ("amp", '&'),
        ("quot", '"'),
        ("apos", '\''),
        ("colon", ':'),
        ("lpar", '('),
        ("rpar", ')'),
        ("sol", '/'),
        ("bsol", '\\'),
        ("period", '.'),
        ("semi", ';'),
        ("tab", '\t'),
        ("newline", '\n'),
    ];
    let lower: String = s.chars().take(8).flat_map(char::to_lowercase).collect();
    NAMED.iter().find(|(name, _)| lower.starts_with(name)).map(|(name, c)| (*c, semi(name.len())))
}

/// Escapes as programming languages write them: `\uXXXX`, `\u{X…}`,
/// `\xHH` and octal `\NNN`.
pub fn code_escapes(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let hexval = |cs: &[char]| cs.iter().try_fold(0u32, |acc, c| c.to_digit(16).map(|d| acc * 16 + d));
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            let next = chars[i + 1];
            if next == 'u' && chars.get(i + 2) == Some(&'{') {
                let close = chars[i + 3..].iter().take(7).position(|c| *c == '}');
                if let Some(close) = close
                    && let Some(c) = hexval(&chars[i + 3..i + 3 + close]).and_then(char::from_u32)
                {
                    out.push(c);
                    i += 4 + close;
                    continue;
                }
            } else if next == 'u' && i + 6 <= chars.len() {
                if let Some(c) = hexval(&chars[i + 2..i + 6]).and_then(char::from_u32) {
                    out.push(c);
                    i += 6;
                    continue;
                }
            } else if next == 'x' && i + 4 <= chars.len() {
                if let Some(c) = hexval(&chars[i + 2..i + 4]).and_then(char::from_u32) {
                    out.push(c);
                    i += 4;
                    continue;
                }
            } else if next.is_digit(8) {
                let len = chars[i + 1..].iter().take(3).take_while(|c| c.is_digit(8)).count();
                let code = chars[i + 1..i + 1 + len].iter().fold(0u32, |acc, c| acc * 8 + c.to_digit(8).unwrap_or(0));
                if len == 3 {
                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                    i += 1 + len;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// `0x2e`, `0x2f` and `0x5c` written out for `.`, `/` and `\\` (a disguise
/// for path steps that some decoders honour). Other hex numbers stay.
pub fn hex_notation(s: &str) -> String {
    if !s.contains("0x") && !s.contains("0X") {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('0') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let replacement = match tail.get(..4).map(str::to_ascii_lowercase).as_deref() {
            Some("0x2e") => Some('.'),
            Some("0x2f") => Some('/'),
            Some("0x5c") => Some('\\'),
            _ => None,
        };
        match replacement {
            Some(c) => {
                out.push(c);
                rest = &tail[4..];
            }
            None => {
                out.push('0');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Lower case, backslashes as slashes, runs of whitespace (and NUL) as
/// one space: how paths and commands compare.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        let c = if c == '\\' { '/' } else { c };
        if c.is_whitespace() || c == '\0' {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Removes SQL comments (`/* … */`, including MySQL's `/*! … */`
/// version comments, whose content is kept, `-- …` and `# …` to the end of
/// the line), replacing each with a space.
pub fn strip_sql_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let block = rest.find("/*");
        let line = rest.find("--").or_else(|| rest.find('#'));
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                let after = &rest[b + 2..];
                let close = after.find("*/");
                let content = &after[..close.unwrap_or(after.len())];
                // MySQL executes /*!50000 … */: keep what is inside.
                if let Some(kept) = content.strip_prefix('!') {
                    out.push(' ');
                    out.push_str(kept.trim_start_matches(|c: char| c.is_ascii_digit()));
                }
                out.push(' ');
                rest = close.map_or("", |c| &after[c + 2..]);
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                out.push(' ');
                let after = &rest[l..];
                match after.find('\n') {
                    Some(nl) => rest = &after[nl..],
                    None => break,
                }
            }
            _ => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}

/// The distinct forms of a value worth inspecting: as sent, fully
/// URL-decoded, then with HTML entities and code escapes decoded too.
pub fn variants(raw: &str, plus_is_space: bool) -> Vec<String> {
    let raw = bounded(raw);
    let mut forms = vec![raw.to_owned()];
    let decoded = url_decode_fully(raw, plus_is_space);
    let entities = html_entities(&decoded);
    let escapes = code_escapes(&entities);
    for f in [decoded, entities, escapes] {
        if !forms.contains(&f) {
            forms.push(f);
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn url_decoding_handles_double_encoding_iis_and_overlongs() {
        assert_eq!(url_decode_fully("%252e%252e%252f", false), "../");
        assert_eq!(url_decode("a+b%20c", true), "a b c");
        assert_eq!(url_decode("%u002e%u002e/", false), "../");
        assert_eq!(url_decode("%c0%ae%c0%ae%c0%af", false), "../");
        assert_eq!(url_decode("%zz%", false), "%zz%");
        assert_eq!(url_decode("%e9", false), "\u{FFFD}");
    }

    #[test]
    fn entities_and_escapes_decode() {
        assert_eq!(html_entities("&lt;script&gt;&#x61;&#98&colon;"), "<script>ab:");
        assert_eq!(html_entities("fish & chips &unknown;"), "fish & chips &unknown;");
        assert_eq!(code_escapes(r"\u0061\x62\u{63}\144"), "abcd");
        assert_eq!(fold("C:\\Windows\\\tSystem32"), "c:/windows/ system32");
    }

    #[test]
    fn sql_comments_become_spaces_but_mysql_version_comments_keep_their_code() {
        assert_eq!(strip_sql_comments("1/**/union/**/select"), "1 union select");
        assert_eq!(strip_sql_comments("1 /*!50000union*/ select"), "1  union  select");
        assert_eq!(strip_sql_comments("admin'-- x\nand"), "admin' \nand");
        assert_eq!(strip_sql_comments("a#b"), "a ");
    }

    proptest! {
        #[test]
        fn normalization_is_total_and_bounded(s in any::<String>(), plus in any::<bool>()) {
            let forms = variants(&s, plus);
            prop_assert!(!forms.is_empty() && forms.len() <= 4);
            for f in &forms {
                // Decoding only shrinks or keeps text (entities and escapes
                // are longer than what they spell); U+FFFD may grow bytes 3x.
                prop_assert!(f.len() <= 3 * bounded(&s).len() + 3);
            }
            let _ = strip_sql_comments(&s);
            let _ = fold(&s);
        }

        #[test]
        fn arbitrary_bytes_percent_encoded_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let encoded: String = bytes.iter().map(|b| format!("%{b:02x}")).collect();
            let _ = url_decode_fully(&encoded, true);
        }
    }
}
