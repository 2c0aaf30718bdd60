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

/// Function names no shopper writes: flagged even without a call.
const DISTINCTIVE: &[&str] = &[
    "shell_exec",
    "proc_open",
    "pcntl_exec",
    "create_function",
    "call_user_func",
    "base64_decode",
    "zlib_decode",
    "gzinflate",
    "gzuncompress",
    "bzdecompress",
    "str_rot13",
    "convert_uudecode",
    "assert_options",
    "file_put_contents",
    "file_get_contents",
    "move_uploaded_file",
    "highlight_file",
    "show_source",
    "stream_socket_client",
    "posix_getpwuid",
    "get_defined_vars",
    "ini_get_all",
    "phpinfo",
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
    "smtp",
    "smtp_port",
    "sendmail_from",
    "precision",
    "serialize_precision",
    "default_charset",
    "variables_order",
    "request_order",
    "output_buffering",
    "post_max_size",
    "upload_max_filesize",
    "max_input_vars",
    "max_input_time",
    "user_ini.filename",
    "html_errors",
    "error_reporting",
    "implicit_flush",
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
        location: v.field.location.owned(),
        fragment: fragment(what),
    }
}

/// Drops PHP comments (`/* */`, `//` and `#` to the end of the line).
fn php_uncomment(s: &str) -> String {
    let no_block = strip_sql_comments(s);
    no_block.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// `name` called: the name (as a whole word, or glued to a prefix such as
/// `FOOcall_user_func`), then only spaces or comments, then `(`.
fn calls(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| call_at(text, name, at))
}

/// Whether `name`, found at `at` in `text`, is called there.
fn call_at(text: &str, name: &str, at: usize) -> bool {
    let after = php_uncomment(&text[at + name.len()..]);
    let glued_ok =
        name.len() > 6 || text[..at].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
    glued_ok && after.trim_start().starts_with('(')
}

/// The first function of `FUNCTIONS` (in list order) that `text` calls.
fn first_call(text: &str) -> Option<&'static str> {
    // No call without a bracket: most values end here.
    if !text.contains('(') {
        return None;
    }
    FUNCTION_WORDS.first_where(text, |name, at| call_at(text, name, at))
}

static FUNCTION_WORDS: super::Needles = super::Needles::new(FUNCTIONS);
static SUPERGLOBAL_WORDS: super::Needles = super::Needles::new(SUPERGLOBALS);
static DISTINCTIVE_WORDS: super::Needles = super::Needles::new(DISTINCTIVE);
static WRAPPER_WORDS: super::Needles = super::Needles::new(WRAPPERS);

/// The index of the bracket closing the one at `open`.
fn matching_close(b: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in b.iter().enumerate().skip(open) {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
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
                // Index expressions, nested too: $a[0], $__[$_[1]], $_{_}.
                while j < b.len() && (b[j] == '[' || b[j] == '{') {
                    match matching_close(&b, j) {
                        Some(close) => j = close + 1,
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

/// `(system)('id')`, `[system][0](ls)`, `("sys"."tem")(…)`,
/// `(string)"system"(…)`: calling the result of an expression, a way
/// around function-name filters.
fn expression_call(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let called_result = [")(", "}("]
        .iter()
        .any(|p| compact.match_indices(p).any(|(at, _)| compact[..at].chars().any(|c| c.is_ascii_alphabetic())));
    // `$f['x'](…)`, `$_GET[0](…)`: an element called. A Markdown link
    // `[text](url)` has words in its brackets, not a key.
    let called_element = compact.match_indices("](").any(|(at, _)| {
        let Some(open) = compact[..at].rfind('[') else { return false };
        let key = &compact[open + 1..at];
        let quoted = key.len() >= 2 && (key.starts_with(['"', '\'']) && key.ends_with(['"', '\'']));
        let keyish = quoted || (!key.is_empty() && key.bytes().all(|b| b.is_ascii_digit())) || key.starts_with('$');
        keyish && compact[..open].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ']')
    });
    // A quoted name called directly, or built by concatenation.
    let concatenated = compact.contains("\".\"") || compact.contains("'.'");
    let quoted_call = ['"', '\''].iter().any(|q| {
        compact.match_indices(*q).any(|(at, _)| {
            if !compact[at + 1..].starts_with('(') {
                return false;
            }
            let before = &compact[..at];
            let literal = before.rsplit(*q).next().unwrap_or_default();
            !literal.is_empty() && (concatenated || FUNCTIONS.contains(&literal))
        })
    });
    called_result || called_element || quoted_call
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

/// `<?php`, `<?=`, a bare `<?` (short tags), Smarty's `{php}` and the
/// `[php]` forms some templates honour. An XML declaration is not PHP.
fn php_tag(s: &str) -> bool {
    let tags = ["[php]", "[/php]", "[\\php]", "{php}", "{/php}", "<script language=\"php\"", "<script language=php"];
    tags.iter().any(|t| s.contains(t)) || s.match_indices("<?").any(|(at, _)| opens_php(&s[at + 2..]))
}

/// What follows `<?` opens PHP: nothing, `php`, `=`, whitespace, or an
/// `<?xml` that is not a real declaration. Processing instructions such
/// as `<?xml-stylesheet` or `<?xpacket` are not PHP.
fn opens_php(after: &str) -> bool {
    if after.is_empty() || after.starts_with("php") || after.starts_with('=') || after.starts_with(char::is_whitespace)
    {
        return true;
    }
    after.strip_prefix("xml").is_some_and(|rest| {
        let rest = rest.trim_start();
        !(rest.starts_with("version") || rest.starts_with('-') || rest.starts_with("?>") || rest.is_empty())
    })
}

/// `ssh2.shell://`, `compress.lzf://`: PHP's dotted wrapper schemes.
fn dotted_wrapper(s: &str) -> bool {
    s.match_indices("://").any(|(at, _)| {
        let scheme: String = s[..at].chars().rev().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        scheme.contains('.') && !scheme.starts_with('.') && !scheme.ends_with('.')
    })
}

fn ini_directive(s: &str) -> bool {
    let Some((name, _)) = s.split_once('=') else { return false };
    let name = name.trim();
    INI_DIRECTIVES.contains(&name) || INI_PREFIXES.iter().any(|p| name.starts_with(p) && name.len() > p.len())
}

fn php_file(name: &str) -> bool {
    let compact: String = name.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    // Trailing dots go (Windows), and digits after `.php` (`.php907`).
    let compact = compact.trim_end_matches('.');
    let without_digits = compact.trim_end_matches(|c: char| c.is_ascii_digit());
    PHP_ENDINGS.iter().any(|e| compact.ends_with(e)) || without_digits.ends_with(".php")
}

fn session_file(name: &str) -> bool {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).to_ascii_lowercase();
    base.strip_prefix("sess_")
        .is_some_and(|id| id.len() >= 20 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

pub fn check(request: &Request, values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        if matches!(v.field.location, Location::Method) {
            continue;
        }
        if matches!(v.field.location, Location::Path) {
            // Only a function call is meaningful in a path (`/get/substr()`).
            let path = v.folded.as_str();
            if let Some(f) =
                first_call(path).or_else(|| ["substr", "strrev", "implode"].into_iter().find(|f| calls(path, f)))
            {
                out.push(finding("php-function-call", v, f));
            }
            continue;
        }
        let s = &v.folded;
        if php_tag(s) {
            out.push(finding("php-open-tag", v, "<?"));
        }
        if let Some(g) = SUPERGLOBAL_WORDS.first_in(s) {
            out.push(finding("php-superglobal", v, g));
        }
        if let Some(at) = s.find('$').filter(|at| s[at + 1..].trim_start().starts_with('{')) {
            out.push(finding("php-variable-variable", v, &s[at..]));
        }
        // Line breaks matter to `//` comments: look at the unfolded text.
        let lines = v.forms.last().map(|f| f.to_lowercase()).unwrap_or_default();
        if let Some(f) = first_call(&lines) {
            out.push(finding("php-function-call", v, f));
        } else if let Some(f) = DISTINCTIVE_WORDS.first_in(&lines) {
            out.push(finding("php-function-name", v, f));
        }
        if variable_call(&php_uncomment(&lines)) {
            out.push(finding("php-variable-call", v, s));
        } else if expression_call(s) {
            out.push(finding("php-expression-call", v, s));
        }
        if let Some(w) = WRAPPER_WORDS.first_in(s) {
            out.push(finding("php-stream-wrapper", v, w));
        } else if dotted_wrapper(s) {
            out.push(finding("php-stream-wrapper", v, s));
        }
        if serialized_object(s) {
            out.push(finding("php-serialized-object", v, s));
        }
        let directive = match v.field.location {
            Location::Query(_) | Location::Body(_) => ini_directive(s),
            // Inside XML or text bodies: any token of the form `name=value`.
            Location::BodyRaw => s.split(|c: char| c.is_whitespace() || "\"'<>".contains(c)).any(ini_directive),
            _ => false,
        };
        if directive {
            out.push(finding("php-ini-directive", v, s));
        }
    }
    // PHP or session files uploaded (file-name headers, multipart names).
    for (location, file_name) in super::uploaded_file_names(request) {
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
        inspect(&Request::from_parts("GET", target, crate::request::NO_HEADERS, b""), 1, 5).blocked
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
            "/?q=%7Bphp%7Decho+1",
            "/?q=exec%20%2f%2fcomment%0d%0a%20%28blah%29",
            "/?q=%24__%5B%24_%5B1%5D%5D%287%29",
            "/?q=%5bsystem%5d%5b0%5d%28ls%29%3B",
            "/?q=return%22system%22%28xyz%29.s",
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
            "/?search=this+is+a+%22dog%22+%28not+a+cat%29",
            "/?q=%3C%3Fxml+version%3D%221.0%22%3F%3E",
        ] {
            assert!(!blocked(benign), "{benign}");
        }
    }
}
