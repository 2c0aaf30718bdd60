//! The session cookie.
//!
//! `__Host-` makes browsers refuse it unless it is Secure, has no Domain and
//! has Path=/, so a sibling subdomain cannot plant or overwrite it. HttpOnly
//! keeps it from scripts. SameSite is Strict for staff, whose sessions can
//! change prices and refund money, and Lax for shoppers, who arrive from
//! links in mails and search results.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use storefort_auth::AccountRole;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "__Host-storefort_session";

/// The `Set-Cookie` value that stores `token` for `max_age_ms`.
pub fn session_cookie(token: &str, role: AccountRole, max_age_ms: i64) -> HeaderValue {
    let same_site = if role.is_staff() { "Strict" } else { "Lax" };
    let max_age = (max_age_ms / 1000).max(1);
    cookie_header(&format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}"
    ))
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie() -> HeaderValue {
    cookie_header(&format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"))
}

fn cookie_header(v: &str) -> HeaderValue {
    // Tokens are base64url, so the value is always a valid header.
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Appends a `Set-Cookie` header.
pub fn set(headers: &mut HeaderMap, value: HeaderValue) {
    headers.append(SET_COOKIE, value);
}

/// The session token the request carries, if any. With several cookies of
/// the name, none is trusted.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    named(headers, SESSION_COOKIE)
}

/// The value of the cookie `cookie_name`; with several of the name, none.
fn named(headers: &HeaderMap, cookie_name: &str) -> Option<String> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == cookie_name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(value.to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_cookies_are_strict_and_every_cookie_is_host_only() {
        let staff = session_cookie("t", AccountRole::Admin, 60_000);
        let shopper = session_cookie("t", AccountRole::Customer, 60_000);
        for c in [&staff, &shopper] {
            let c = c.to_str().expect("ascii");
            assert!(c.starts_with("__Host-storefort_session=t; Path=/; Secure; HttpOnly;"), "{c}");
            assert!(!c.contains("Domain"), "{c}");
        }
        assert!(staff.to_str().expect("ascii").contains("SameSite=Strict"));
        assert!(shopper.to_str().expect("ascii").contains("SameSite=Lax"));
    }

    #[test]
    fn reads_the_cookie_and_distrusts_duplicates() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; __Host-storefort_session=abc; b=2"));
        assert_eq!(session_token(&h).as_deref(), Some("abc"));
        h.append(COOKIE, HeaderValue::from_static("__Host-storefort_session=evil"));
        assert_eq!(session_token(&h), None);
    }
}
