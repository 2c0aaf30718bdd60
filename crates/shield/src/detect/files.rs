//! Family 930: path traversal and local file inclusion, and requests for
//! files no shop serves (dot-files such as `/.env` and `/.git/`, backups,
//! logs, development servers' internals).

use super::Value;
use crate::normalize::{fold, hex_notation, url_decode_fully};
use crate::request::{Location, Request};
use crate::score::{Finding, Severity, fragment};

/// Files and directories whose very name in a request means someone is
/// looking for secrets or system files. Matched in decoded, folded values.
static SENSITIVE_PATH_WORDS: super::Needles = super::Needles::new(SENSITIVE_PATHS);

const SENSITIVE_PATHS: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/motd",
    "etc/crontab",
    "etc/sudoers",
    "etc/apache2/",
    "etc/httpd/",
    "etc/nginx/",
    "etc/mysql/",
    "etc/ssh/",
    "/proc/",
    "/sys/class",
    "/sys/kernel",
    "/sys/devices",
    "/sys/firmware",
    "etc/subuid",
    "etc/subgid",
    "/tmp/",
    "/dev/tcp/",
    "/var/log/",
    "/var/www/",
    "/root/",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "inetpub/",
    "/.ssh/",
    "id_rsa",
    "id_dsa",
    "authorized_keys",
    "known_hosts",
    ".bash_history",
    ".bashrc",
    ".profile",
    ".htpasswd",
    ".htaccess",
    "web.config",
    "wp-config",
    "php.ini",
    "httpd.conf",
    "my.cnf",
    ".aws/credentials",
    ".docker/",
    ".kube/config",
    ".git/config",
    ".npmrc",
    ".netrc",
];

/// Dot-files and dot-directories (`.env`, `.git/`, editors' and AI tools'
/// settings) are never public, with the one standard exception.
const PUBLIC_DOT_SEGMENTS: &[&str] = &[".well-known"];

/// Development servers' internal routes, which leak files when exposed.
const DEV_SERVER_PREFIXES: &[&str] = &["/@fs/", "/@id/", "/@vite/"];

/// File endings of backups, dumps, logs and editor leftovers.
/// (Archives such as `.zip` are not here: shops sell downloads.)
const BACKUP_ENDINGS: &[&str] =
    &[".bak", ".old", ".orig", ".swp", ".sql", ".sql.gz", ".sql.zip", "~", ".save", ".backup", ".log"];

fn finding(check: &'static str, paranoia: u8, severity: Severity, v: &Value<'_>, what: &str) -> Finding {
    Finding { family: 930, check, paranoia, severity, location: v.field.location.owned(), fragment: fragment(what) }
}

/// A path step made only of dots (`..`, `...`), once backslashes are
/// slashes, NULs are gone and `;parameters` are cut from each step (a
/// trick servers like Tomcat fall for). `foo..` is a name, not a step.
fn traverses(s: &str) -> bool {
    let s = hex_notation(s).replace('\\', "/").replace('\0', "");
    if !s.contains('/') {
        return false;
    }
    let steps: Vec<&str> = s.split('/').map(|step| step.split(';').next().unwrap_or_default()).collect();
    let dots = |step: &str| {
        let step = step.trim();
        step.len() >= 2 && step.bytes().all(|b| b == b'.')
    };
    // A step of dots leads somewhere: to another step that is not prose
    // (`../ dot dot slash` is a T-shirt slogan), or off the end.
    steps.iter().enumerate().any(|(i, step)| {
        dots(step) && steps.get(i + 1).is_none_or(|next| !next.starts_with(char::is_whitespace) || dots(next))
    })
}

/// A value that names a dump or backup file (one word, a backup ending).
fn names_backup_file(s: &str) -> bool {
    !s.contains(' ') && [".sql", ".sql.gz", ".sql.zip", ".bak", ".dump"].iter().any(|e| s.ends_with(e))
}

pub fn check(_: &Request, values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        match v.field.location {
            Location::Method => continue,
            // The path is a value like any other, so what it asks for is
            // judged (and remembered) with it.
            Location::Path => restricted_file(&v.field.value, out),
            _ => {}
        }
        if v.forms.iter().any(|f| traverses(f)) {
            out.push(finding("lfi-traversal", 1, Severity::Critical, v, &v.folded));
        }
        let folded = hex_notation(&v.folded);
        if let Some(hit) = SENSITIVE_PATH_WORDS.first_in(&folded) {
            out.push(finding("lfi-system-file", 1, Severity::Critical, v, hit));
        } else if !matches!(v.field.location, Location::Path) && names_backup_file(&folded) {
            out.push(finding("lfi-backup-file", 1, Severity::Critical, v, &folded));
        }
    }
}

/// The path asks for a file no shop serves: hidden files, backups, a
/// development server's internals.
fn restricted_file(raw_path: &str, out: &mut Vec<Finding>) {
    let path = fold(&url_decode_fully(raw_path, false));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let hidden = segments
        .iter()
        .any(|seg| seg.starts_with('.') && !seg.bytes().all(|b| b == b'.') && !PUBLIC_DOT_SEGMENTS.contains(seg));
    let backup = segments.last().is_some_and(|last| BACKUP_ENDINGS.iter().any(|e| last.ends_with(e)));
    let dev_server = DEV_SERVER_PREFIXES.iter().any(|p| path.starts_with(p));
    if hidden || backup || dev_server {
        out.push(Finding {
            family: 930,
            check: "restricted-file",
            paranoia: 1,
            severity: Severity::Critical,
            location: Location::Path,
            fragment: fragment(&path),
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
    fn traversal_and_system_files_in_any_encoding() {
        for attack in [
            "/download?file=../../../etc/passwd",
            "/download?file=..%2f..%2fsecret",
            "/download?file=%252e%252e%252fsecret",
            "/download?file=..%c0%afsecret",
            "/x?f=C:\\windows\\win.ini",
            "/x?f=/proc/self/environ",
            "/.env",
            "/.git/HEAD",
            "/shop/db.sql.gz",
            "/index.php.bak",
            "/.cursor/mcp.json",
            "/wp-content/debug.log",
            "/get?x=0x2e.%000x2f0x2e.%00/secret",
            "/get?a=..;.\\.;\\.",
            "/get?f=backup.sql.zip",
        ] {
            assert!(blocked(attack), "{attack}");
        }
    }

    #[test]
    fn ordinary_shop_urls_pass() {
        for benign in [
            "/products/aeropress-go",
            "/search?q=espresso..maybe",
            "/search?q=50%25+off",
            "/static/app.js",
            "/products?page=2&sort=price",
            "/blog/2026/11/black-friday",
            "/.well-known/storefort/ledger-key",
            "/get/foo../1234",
            "/search?q=0x2e",
        ] {
            assert!(!blocked(benign), "{benign}");
        }
    }
}
