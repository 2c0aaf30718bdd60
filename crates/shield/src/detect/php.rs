//! Family 933: PHP injection: code tags, superglobals, variable variables
//! and variable functions, dangerous functions called, stream wrappers,
//! php.ini directives, serialized objects, and PHP or session files
//! uploaded.

use super::Value;
use crate::normalize::strip_sql_comments;
use crate::request::{Location, Request};
use crate::score::{Finding, Severity, fragment};

/// Functions that run code, commands or decoders an attacker chains.
const FUNCTIONS: &[&str] = &[
    "eval",
    "assert",
    "exec",
    "system",
    "passthru",
    "shell_exec",
    "popen",
    "proc_open",
    "pcntl_exec",
    "create_function",
    "call_user_func",
    "call_user_func_array",
    "preg_replace",
    "array_map",
    "usort",
    "base64_decode",
    "bzdecompress",
    "gzinflate",
    "gzuncompress",
    "gzdecode",
    "str_rot13",
    "convert_uudecode",
    "hex2bin",
    "chr",
    "unserialize",
    "file_put_contents",
    "file_get_contents",
    "fopen",
    "fwrite",
    "readfile",
    "highlight_file",
    "show_source",
    "phpinfo",
    "include",
    "include_once",
    "require",
    "require_once",
    "move_uploaded_file",
    "posix_getpwuid",
    "fsockopen",
    "pfsockopen",
    "stream_socket_client",
    "curl_exec",
    "mail",
    "putenv",
    "ini_set",
    "dl",
];

/// Superglobals: names that only mean something inside PHP code.
const SUPERGLOBALS: &[&str] = &[
    "$_server",
    "$_get",
    "$_post",
    "$_cookie",
    "$_request",
    "$_files",
    "$_env",
    "$_session",
    "$globals",
    "$http_raw_post_data",
    "$http_response_header",
    "$argv",
];

/// Stream wrappers that read, unpack or run through PHP's file functions.
const WRAPPERS: &[&str] = &[
    "php://",
    "phar://",
    "zip://",
    "compress.zlib://",
    "compress.bzip2://",
    "glob://",
    "expect://",
    "data://",
    "rar://",
    "ogg://",
    "zlib:",
];

/// php.ini directives whose change through a request is an attack.
const INI_DIRECTIVES: &[&str] = &[
    "allow_url_fopen",
    "allow_url_include",
    "auto_prepend_file",
    "auto_append_file",
    "disable_functions",
    "disable_classes",
    "open_basedir",
    "safe_mode",
    "register_globals",
    "display_errors",
    "error_log",
    "include_path",
    "extension",
    "extension_dir",
    "engine",
    "short_open_tag",
    "file_uploads",
    "upload_tmp_dir",
    "sendmail_path",
    "log_errors",
    "expose_php",
    "max_execution_time",
    "memory_limit",
    "zend_extension",
];
const INI_PREFIXES: &[&str] =
    &["opcache.", "session.", "zend.", "xdebug.", "mbstring.", "pcre.", "phar.", "assert.", "mail.", "mysqli.", "pdo_"];

/// File endings PHP would execute.
const PHP_ENDINGS: &[&str] =
    &[".php", ".phtml", ".php3", ".php4", ".php5", ".php7", ".php8", ".phar", ".pht", ".phps", ".inc"];

fn finding(check: &'static str, v: &Value<'_>, what: &str) -> Finding {
    Finding {
        family: 933,
        check,
        paranoia: 1,
        severity: Severity::Critical,
        location: v.field.location.clone(),
        fragment: fragment(what),
    }
}

/// `name` called: the name (as a whole word, or glued to a prefix such as
/// `FOOcall_user_func`), then only spaces or comments, then `(`.
fn calls(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let after = strip_sql_comments(&text[at + name.len()..]);
        let glued_ok =
            name.len() > 6 || text[..at].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        glued_ok && after.trim_start().starts_with('(')
    })
}

/// `$x(`, `$$x(`, `${…}(`, `$x[0](`: calling whatever a variable holds.
fn variable_call(s: &str) -> bool {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '$' {
            let mut j = i + 1;
            while j < b.len() && b[j] == '$' {
                j += 1;
            }
            let name_start = j;
            // PHP names start with a letter or `_`: `$20` is a price.
            if j < b.len() && (b[j].is_alphabetic() || b[j] == '_') {
                while j < b.len() && (b[j].is_alphanumeric() || b[j] == '_') {
                    j += 1;
                }
            }
            if j > name_start {
                // Optional index expressions: $a[0], $__['o'].
                while j < b.len() && b[j] == '[' {
                    match b[j..].iter().position(|c| *c == ']') {
                        Some(close) => j += close + 1,
                        None => break,
                    }
                }
                while j < b.len() && b[j] == ' ' {
                    j += 1;
                }
                if j < b.len() && b[j] == '(' {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// `(system)('id')`, `("sys"."tem")(…)`, `(string)"system"(…)`: calling
/// the result of an expression, a way around function-name filters.
fn expression_call(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let letters = compact.chars().any(|c| c.is_ascii_alphabetic());
    letters
        && (compact.contains(")(") || compact.contains("\"(") || compact.contains("'("))
        && compact.contains('(')
        && compact.ends_with([';', ')'])
}

/// A serialized PHP object or custom-serialized class: `O:8:"stdClass":…`.
fn serialized_object(s: &str) -> bool {
    s.match_indices([':']).any(|(at, _)| {
        let before = &s[..at];
        let kind = before.chars().next_back();
        let digits: String = s[at + 1..].chars().take_while(char::is_ascii_digit).collect();
        matches!(kind, Some('o' | 'c'))
            && before[..before.len() - 1].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric())
            && !digits.is_empty()
            && s[at + 1 + digits.len()..].starts_with(":\"")
    })
}

fn ini_directive(s: &str) -> bool {
    let Some((name, _)) = s.split_once('=') else { return false };
    let name = name.trim();
    INI_DIRECTIVES.contains(&name) || INI_PREFIXES.iter().any(|p| name.starts_with(p) && name.len() > p.len())
}

fn php_file(name: &str) -> bool {
    let compact: String = name.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    let compact = compact.trim_end_matches('.');
    PHP_ENDINGS.iter().any(|e| compact.ends_with(e))
}

fn session_file(name: &str) -> bool {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).to_ascii_lowercase();
    base.strip_prefix("sess_").is_some_and(|id| id.len() >= 20 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub fn check(request: &Request, values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        if matches!(v.field.location, Location::Method | Location::Path) {
            continue;
        }
        let s = &v.folded;
        if s.contains("<?php")
            || s.contains("<?=")
            || s.contains("<? ")
            || s.contains("[php]")
            || s.contains("[/php]")
            || s.contains("[\\\\php]")
            || s.contains("[/php")
        {
            out.push(finding("php-open-tag", v, "<?"));
        }
        if let Some(g) = SUPERGLOBALS.iter().find(|g| s.contains(*g)) {
            out.push(finding("php-superglobal", v, g));
        }
        if let Some(at) = s.find('$').filter(|at| s[at + 1..].trim_start().starts_with('{')) {
            out.push(finding("php-variable-variable", v, &s[at..]));
        }
        if let Some(f) = FUNCTIONS.iter().find(|f| calls(s, f)) {
            out.push(finding("php-function-call", v, f));
        }
        if variable_call(s) {
            out.push(finding("php-variable-call", v, s));
        } else if expression_call(s) {
            out.push(finding("php-expression-call", v, s));
        }
        if let Some(w) = WRAPPERS.iter().find(|w| s.contains(*w)) {
            out.push(finding("php-stream-wrapper", v, w));
        }
        if serialized_object(s) {
            out.push(finding("php-serialized-object", v, s));
        }
        if matches!(v.field.location, Location::Query(_) | Location::Body(_)) && ini_directive(s) {
            out.push(finding("php-ini-directive", v, s));
        }
    }
    // PHP or session files uploaded (file-name headers, multipart names).
    let headers = request.headers.iter().filter_map(|(name, value)| {
        let n = name.to_ascii_lowercase().replace(['_', '.'], "-");
        matches!(n.as_str(), "x-filename" | "x-file-name" | "x-file").then(|| (Location::Header(n), value.as_str()))
    });
    let parts = request.fields.iter().filter_map(|f| match &f.location {
        Location::Body(n) if n.ends_with("#filename") => Some((f.location.clone(), f.value.as_str())),
        _ => None,
    });
    for (location, file_name) in headers.chain(parts) {
        let check = if php_file(file_name) {
            "php-file-upload"
        } else if session_file(file_name) {
            "php-session-file"
        } else {
            continue;
        };
        out.push(Finding {
            family: 933,
            check,
            paranoia: 1,
            severity: Severity::Critical,
            location,
            fragment: fragment(file_name),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::Request;
    use crate::score::inspect;

    fn blocked(target: &str) -> bool {
        inspect(&Request::from_parts("GET", target, vec![], b""), 1, 5).blocked
    }

    #[test]
    fn php_injection_is_caught() {
        for attack in [
            "/?q=%3C%3Fphp%20echo%201%3B",
            "/?q=$_SERVER['x']",
            "/?q=${'a'}",
            "/?q=base64_decode('eA==')",
            "/?q=eval%0D($x)",
            "/?q=$a(1)",
            "/?q=(sy.(st).em)('uname');",
            "/?q=php://stdout",
            "/?q=O:8:%22stdClass%22:0:{}",
            "/?q=allow_url_include%3D1",
        ] {
            assert!(blocked(attack), "{attack}");
        }
    }

    #[test]
    fn shop_text_passes() {
        for benign in [
            "/?q=price+$20+(incl.+tax)",
            "/?q=evaluation+kit",
            "/?q=system+requirements",
            "/?q=order:12345",
            "/?q=the+(best)+coffee",
            "/?q=session+beans",
        ] {
            assert!(!blocked(benign), "{benign}");
        }
    }
}
