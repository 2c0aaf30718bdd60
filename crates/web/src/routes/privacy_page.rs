//! The record of processing (`/privacy/processing.json`, GDPR Art. 30) and
//! a privacy policy draft (`/privacy`), both generated from the schema's
//! annotations and the configuration, so they say what the store does.

use super::export_page::escape;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::fmt::Write;
use storefort_core::consent::Purpose;
use storefort_store::processing::{Keep, SCHEMA, TableNote};

/// What the store needs from the owner to describe its processing.
#[derive(Debug, Clone)]
pub struct PrivacySettings {
    /// Who to write to about personal data.
    pub contact_email: String,
    /// Outside services that receive personal data (payment gateway, mail).
    pub processors: Vec<String>,
    pub abandoned_cart_days: u32,
    /// Guest orders' personal data, counted from fulfilment (or refund or
    /// cancellation).
    pub guest_data_days: u32,
    pub security_event_days: u32,
    /// How long the operator keeps request logs (the store writes them to
    /// standard error and keeps none itself).
    pub request_log_days: u32,
}

impl PrivacySettings {
    pub fn demo() -> Self {
        PrivacySettings {
            contact_email: "privacy@example.com".into(),
            processors: Vec::new(),
            abandoned_cart_days: 30,
            guest_data_days: 365,
            security_event_days: 365,
            request_log_days: 90,
        }
    }

    fn days(&self, key: &str) -> Option<u32> {
        match key {
            "abandoned_cart_days" => Some(self.abandoned_cart_days),
            "guest_data_days" => Some(self.guest_data_days),
            "security_event_days" => Some(self.security_event_days),
            _ => None,
        }
    }
}

/// One processing activity.
#[derive(Debug, Serialize)]
struct Activity {
    table: &'static str,
    data: &'static str,
    personal: bool,
    purpose: &'static str,
    legal_basis: &'static str,
    retention: String,
    access: &'static str,
    encrypted_at_rest: bool,
}

/// The record, as served.
#[derive(Debug, Serialize)]
struct Record {
    controller: String,
    contact: String,
    processors: Vec<String>,
    activities: Vec<Activity>,
    request_logs: String,
    key_storage: &'static str,
}

fn retention(note: &TableNote, p: &PrivacySettings) -> String {
    match note.keep {
        Keep::While(text) => text.to_owned(),
        Keep::Configured(key) => match p.days(key) {
            Some(days) => format!("{days} days ([privacy] {key})"),
            None => format!("see [privacy] {key}"),
        },
    }
}

fn record(state: &AppState) -> Record {
    let p = &state.settings().privacy;
    Record {
        controller: state.settings().store_name.clone(),
        contact: p.contact_email.clone(),
        processors: p.processors.clone(),
        activities: SCHEMA
            .iter()
            .map(|n| Activity {
                table: n.table,
                data: n.data,
                personal: n.personal,
                purpose: n.purpose,
                legal_basis: n.legal_basis,
                retention: retention(n, p),
                access: n.access,
                encrypted_at_rest: n.personal && matches!(n.table, "orders" | "accounts" | "totp_credentials"),
            })
            .collect(),
        request_logs: format!(
            "written to standard error, without personal data; kept {} days by the operator",
            p.request_log_days
        ),
        key_storage: "per-customer data keys in a key store separate from the database, wrapped by a master key",
    }
}

/// The record of processing activities, as JSON.
pub async fn processing(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(record(&state)).unwrap_or_default())
}

/// A privacy policy draft generated from the configuration and the record.
pub async fn policy(State(state): State<AppState>) -> Response {
    let r = record(&state);
    let p = &state.settings().privacy;
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Privacy</title>\
         <style>body{font-family:sans-serif;max-width:50rem;margin:2rem auto}</style></head><body>",
    );
    let _ = write!(out, "<h1>Privacy at {}</h1>", escape(&r.controller));
    if r.contact.is_empty() {
        out.push_str("<p>Questions and requests: write to the shop (set <code>[privacy] contact_email</code>).</p>");
    } else {
        let _ = write!(out, "<p>Questions and requests: <a href=\"mailto:{c}\">{c}</a>.</p>", c = escape(&r.contact));
    }
    out.push_str("<h2>What we keep, why, and for how long</h2><ul>");
    for a in r.activities.iter().filter(|a| a.personal) {
        let _ = write!(
            out,
            "<li><strong>{}</strong>: for {} ({}); kept {}; seen by {}.</li>",
            escape(a.data),
            escape(a.purpose),
            escape(a.legal_basis),
            escape(&a.retention),
            escape(a.access)
        );
    }
    out.push_str("</ul><h2>Your choices</h2><ul>");
    for purpose in Purpose::ALL {
        let _ = write!(out, "<li>{}</li>", escape(purpose.default_text()));
    }
    out.push_str(
        "</ul><h2>Cookies</h2><p>Only two, both strictly necessary: a session cookie while you are signed in, \
         and, once you make a privacy choice without an account, a cookie remembering it. No tracking cookies.</p>",
    );
    out.push_str("<h2>Who else receives data</h2>");
    if p.processors.is_empty() {
        out.push_str("<p>No one: payments are made on the payment provider's own page.</p>");
    } else {
        out.push_str("<ul>");
        for processor in &p.processors {
            let _ = write!(out, "<li>{}</li>", escape(processor));
        }
        out.push_str("</ul>");
    }
    out.push_str(
        "<h2>Your rights</h2><p>You can download everything we hold about you (your account page, or \
         <code>GET /api/v1/account/export</code>), and have it erased (<code>POST /api/v1/account/erase</code>). \
         Erasure destroys the key your data is encrypted with, so it is unreadable in every copy, backups included; \
         orders stay for accounting with amounts but nothing personal.</p>\
         <h2>Security</h2><p>Your personal data is encrypted at rest, card numbers never reach us, and every \
         change is recorded in a tamper-evident ledger.</p></body></html>",
    );
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], out).into_response()
}
