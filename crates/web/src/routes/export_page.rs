//! The readable form of a data export: one self-contained HTML page, every
//! value escaped, no script and no external resource.

use super::privacy::Export;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn row(out: &mut String, label: &str, value: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(label), escape(value));
}

/// The export as a page.
pub fn render(e: &Export) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your data</title>\
         <style>body{font-family:sans-serif;max-width:50rem;margin:2rem auto}th{text-align:left;padding-right:1rem}\
         table{margin-bottom:1.5rem}</style></head><body><h1>Everything we hold about you</h1>",
    );
    let _ = write!(out, "<p>Generated {}.</p><h2>Profile</h2><table>", escape(&e.generated_at));
    let p = &e.profile;
    row(&mut out, "Account id", &p.id);
    row(&mut out, "Email", p.email.as_deref().unwrap_or("(erased)"));
    row(&mut out, "Role", &p.role);
    row(&mut out, "Status", &p.status);
    row(&mut out, "Email verified", if p.email_verified { "yes" } else { "no" });
    row(&mut out, "Two-factor sign-in", if p.second_factor { "on" } else { "off" });
    row(&mut out, "Created", &p.created_at);
    out.push_str("</table><h2>Orders</h2>");
    if e.orders.is_empty() {
        out.push_str("<p>None.</p>");
    }
    for o in &e.orders {
        let _ = write!(out, "<h3>Order {}</h3><table>", o.number);
        row(&mut out, "Placed", &o.created_at);
        row(&mut out, "Status", o.status.as_str());
        row(&mut out, "Total", &format!("{} {}", o.total.amount, o.total.currency.code()));
        row(&mut out, "Email", o.email.as_deref().unwrap_or("(erased)"));
        let address = o
            .shipping_address
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default())
            .unwrap_or_else(|| "(erased)".into());
        row(&mut out, "Shipping address", &address);
        for l in &o.lines {
            row(&mut out, &format!("{} × {}", l.quantity, l.sku), &l.title);
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Signed-in sessions</h2><table>");
    for s in &e.sessions {
        row(&mut out, &s.id, &format!("since {}, last seen {}", s.created_at, s.last_seen_at));
    }
    out.push_str("</table><h2>Passkeys</h2><table>");
    for k in &e.passkeys {
        row(&mut out, &k.id, &format!("added {}", k.created_at));
    }
    out.push_str("</table><h2>Security events about you</h2><table>");
    for ev in &e.security_events {
        row(&mut out, &ev.at, &ev.kind);
    }
    out.push_str("</table><h2>Consents</h2><p>None recorded.</p></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
