//! Family 913: security scanners that announce themselves in User-Agent.
//! Real attackers hide; this catches the automated sweeps that do not
//! bother, which are most of the noise a small shop sees.

use super::Value;
use crate::request::Location;
use crate::score::{Finding, Severity, fragment};

/// Names of vulnerability scanners and attack tools, as they appear in
/// their default User-Agent strings (matched as whole words).
const SCANNERS: &[&str] = &[
    "acunetix",
    "arachni",
    "brutus",
    "burpcollaborator",
    "commix",
    "dirbuster",
    "dirb",
    "dotdotpwn",
    "feroxbuster",
    "ffuf",
    "fimap",
    "gobuster",
    "grabber",
    "havij",
    "hydra",
    "jaeles",
    "jbrofuzz",
    "masscan",
    "metasploit",
    "morfeus",
    "nessus",
    "netsparker",
    "nikto",
    "nmap",
    "nuclei",
    "openvas",
    "paros",
    "qualys",
    "skipfish",
    "sqlmap",
    "sqlninja",
    "w3af",
    "webinspect",
    "whatweb",
    "wfuzz",
    "wpscan",
    "xsser",
    "zgrab",
    "zmeu",
    "zap",
];

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty())
}

pub fn check(values: &[Value<'_>], out: &mut Vec<Finding>) {
    for v in values {
        if matches!(&v.field.location, Location::Header(h) if h == "user-agent") {
            check_agent(&v.field.value, out);
        }
    }
}

fn check_agent(agent: &str, out: &mut Vec<Finding>) {
    let lower = agent.to_ascii_lowercase();
    // `ecairn-grabber` is a feed crawler: a scanner name must stand alone,
    // not as part of a hyphenated product name.
    let standalone = lower
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ';' | ','))
        .map(|token| token.split('/').next().unwrap_or_default())
        .filter(|head| words(head).count() == 1)
        .find_map(|head| SCANNERS.iter().find(|n| **n == head));
    if let Some(name) = standalone {
        out.push(Finding {
            family: 913,
            check: "scanner-user-agent",
            paranoia: 1,
            severity: Severity::Critical,
            location: Location::Header("user-agent".into()),
            fragment: fragment(name),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(agent: &str) -> bool {
        let mut out = Vec::new();
        check_agent(agent, &mut out);
        !out.is_empty()
    }

    #[test]
    fn scanners_but_not_browsers_or_package_managers() {
        for yes in
            ["sqlmap/1.7.2#stable (https://sqlmap.org)", "Mozilla/5.0 zgrab/0.x", "nuclei", "Nikto/2.5.0", "x) Havij"]
        {
            assert!(flagged(yes), "{yes}");
        }
        for no in [
            "urlgrabber/3.10 yum/3.4.3",
            "mozilla/5.0 ecairn-grabber/1.0 (+http://ecairn.com/grabber)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "curl/8.5.0",
        ] {
            assert!(!flagged(no), "{no}");
        }
    }
}
