//! Consent: what a shopper or customer agreed to, and the code paths that
//! ask before acting (analytics counting, the newsletter).
//!
//! The only cookies the store sets are strictly necessary: the session
//! cookie at sign-in, and, once someone makes a consent choice without an
//! account, a cookie remembering whose choice it was. Nothing non-essential
//! is set before (or without) consent.

use super::account::in_spine;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::identity::Principal;
use crate::identity::mailer::Mail;
use crate::middleware::ReqId;
use crate::secrets::{is_token_shaped, random_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use storefort_core::consent::{Purpose, Source};
use storefort_core::{EventKind, SecurityEvent};
use storefort_store::{ConsentChange, hash_secret};
use utoipa::ToSchema;

/// The cookie naming a visitor's consent record (strictly necessary).
pub const CONSENT_COOKIE: &str = "__Host-storefort_consent";

/// A purpose as offered.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurposeOut {
    pub purpose: Purpose,
    pub text: &'static str,
    /// Changes whenever the text does; a grant is for one version.
    pub version: String,
    /// False only for `necessary`.
    pub optional: bool,
}

/// The purposes and the caller's current choices.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentOut {
    pub purposes: Vec<PurposeOut>,
    /// Purpose → granted (for the current text). Absent means no.
    pub choices: BTreeMap<String, bool>,
}

/// Choices to record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    /// Purpose → granted; only optional purposes.
    pub choices: BTreeMap<String, bool>,
    pub source: Source,
}

/// A page view to count (with analytics consent only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageView {
    #[schema(example = "/products/aeropress")]
    pub path: String,
}

/// Whether a view was counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counted {
    pub counted: bool,
}

/// A newsletter to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Newsletter {
    pub subject: String,
    pub body: String,
}

/// How many received it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sent {
    pub sent: u64,
}

/// The version of a purpose's current text.
pub fn text_version(purpose: Purpose) -> String {
    hex::encode(&Sha256::digest(purpose.default_text().as_bytes())[..8])
}

/// The visitor id in the consent cookie, if any.
fn visitor_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == CONSENT_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| is_token_shaped(v))
}

/// Whose choices these are: the account, or the visitor behind the cookie
/// (by a hash of its id, so the table holds nothing the cookie could be
/// recovered from).
fn subject(principal: &Option<Principal>, headers: &HeaderMap) -> Option<String> {
    match principal {
        Some(p) => Some(p.account_id.clone()),
        None => visitor_token(headers).map(|t| format!("visitor:{}", hash_secret(&t))),
    }
}

/// Whether `subject` consents to `purpose` under its current text.
pub async fn consents(state: &AppState, subject: &str, purpose: Purpose) -> Result<bool, ApiError> {
    if !purpose.optional() {
        return Ok(true);
    }
    Ok(state.store().consents_to(subject, purpose.as_str(), &text_version(purpose)).await?)
}

async fn current(state: &AppState, subject: Option<&str>) -> Result<ConsentOut, ApiError> {
    let purposes = Purpose::ALL
        .into_iter()
        .map(|p| PurposeOut { purpose: p, text: p.default_text(), version: text_version(p), optional: p.optional() })
        .collect();
    let mut choices = BTreeMap::new();
    choices.insert(Purpose::Necessary.as_str().to_owned(), true);
    if let Some(subject) = subject {
        for c in state.store().consents_of(subject).await? {
            let current = Purpose::parse(&c.purpose).is_some_and(|p| c.text_version == text_version(p));
            choices.insert(c.purpose, c.granted && current);
        }
    }
    Ok(ConsentOut { purposes, choices })
}

/// The purposes, their texts and your current choices.
#[utoipa::path(get, path = "/consent", tag = "privacy",
    responses((status = 200, description = "Purposes and choices", body = ConsentOut)))]
pub async fn get_consent(
    State(state): State<AppState>,
    principal: Option<Principal>,
    headers: HeaderMap,
) -> Result<Json<ConsentOut>, ApiError> {
    Ok(Json(current(&state, subject(&principal, &headers).as_deref()).await?))
}

/// Grant or withdraw optional purposes. Without an account, the choice is
/// remembered by a strictly necessary cookie set here.
#[utoipa::path(put, path = "/consent", tag = "privacy", request_body = ConsentIn,
    responses((status = 200, description = "Recorded; the current choices", body = ConsentOut),
              (status = 422, description = "Unknown or compulsory purpose", body = ErrorBody)))]
pub async fn put_consent(
    State(state): State<AppState>,
    req: ReqId,
    principal: Option<Principal>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConsentIn>,
) -> Result<Response, ApiError> {
    let mut wanted = Vec::new();
    for (name, granted) in &body.choices {
        let purpose = Purpose::parse(name).filter(|p| p.optional()).ok_or_else(|| {
            ApiError::unprocessable("invalid_purpose", "not an optional purpose").field(format!("choices.{name}"))
        })?;
        wanted.push((purpose, *granted));
    }
    if wanted.is_empty() {
        return Err(ApiError::unprocessable("invalid_field", "give at least one choice").field("choices"));
    }
    let mut new_cookie = None;
    let subject = match subject(&principal, &headers) {
        Some(s) => s,
        None => {
            let token = random_token().map_err(|e| ApiError::internal(&e))?;
            let subject = format!("visitor:{}", hash_secret(&token));
            new_cookie = Some(token);
            subject
        }
    };
    let before = current(&state, Some(&subject)).await?.choices;
    let changes: Vec<(Purpose, bool)> = wanted
        .into_iter()
        .filter(|(p, g)| before.get(p.as_str()).copied().unwrap_or(false) != *g || !before.contains_key(p.as_str()))
        .collect();
    if !changes.is_empty() {
        let actor = principal.as_ref().map_or("anonymous".into(), |p| p.actor().label().into_owned());
        let tx = state.store().begin_write(state.now_ms(), &actor, req.as_deref()).await?;
        let granted = changes.iter().filter(|(_, g)| *g).count() as i64;
        let event = SecurityEvent::new(EventKind::ConsentChanged, storefort_core::Actor::Anonymous)
            .target(subject.clone())
            .request(req.as_deref())
            .with("granted", granted)
            .with("withdrawn", changes.len() as i64 - granted);
        let source = body.source.as_str();
        in_spine(tx, event, async |tx| {
            for (purpose, granted) in &changes {
                let version = text_version(*purpose);
                let change = ConsentChange {
                    subject: &subject,
                    purpose: purpose.as_str(),
                    granted: *granted,
                    text_version: &version,
                    source,
                };
                tx.record_consent(&change).await?;
            }
            Ok(())
        })
        .await?;
    }
    let mut response = Json(current(&state, Some(&subject)).await?).into_response();
    if let Some(token) = new_cookie {
        let cookie = format!("{CONSENT_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Count a page view, if (and only if) the caller consented to analytics.
#[utoipa::path(post, path = "/analytics/events", tag = "privacy", request_body = PageView,
    responses((status = 200, description = "Counted or, without consent, dropped", body = Counted),
              (status = 422, description = "Not a path", body = ErrorBody)))]
pub async fn page_view(
    State(state): State<AppState>,
    principal: Option<Principal>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PageView>,
) -> Result<Json<Counted>, ApiError> {
    let path = body.path.trim();
    if !path.starts_with('/') || path.len() > 200 || path.chars().any(char::is_control) {
        return Err(ApiError::unprocessable("invalid_field", "path must be a path such as /products/x").field("path"));
    }
    // Query strings can carry personal data (emails in links): never kept.
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let Some(subject) = subject(&principal, &headers) else { return Ok(Json(Counted { counted: false })) };
    if !consents(&state, &subject, Purpose::Analytics).await? {
        return Ok(Json(Counted { counted: false }));
    }
    let day = crate::clock::rfc3339(state.now_ms())[..10].to_owned();
    state.store().count_page_view(&day, path).await?;
    Ok(Json(Counted { counted: true }))
}

/// Send the newsletter to every customer who consented to marketing email
/// under the current text, and to no one else.
#[utoipa::path(post, path = "/admin/newsletter", tag = "privacy", request_body = Newsletter,
    responses((status = 200, description = "Queued for the consenting customers", body = Sent),
              (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn send_newsletter(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiJson(body): ApiJson<Newsletter>,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    let subject = storefort_core::text::clean(&body.subject, 200)
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("subject {e}")).field("subject"))?;
    if body.body.is_empty() || body.body.len() > 100_000 {
        return Err(ApiError::unprocessable("invalid_field", "body must be 1 to 100000 bytes").field("body"));
    }
    let version = text_version(Purpose::MarketingEmail);
    let recipients = state.store().accounts_consenting(Purpose::MarketingEmail.as_str(), &version).await?;
    let mut sent = 0u64;
    for id in &recipients {
        let Some(account) = state.store().account(id).await? else { continue };
        let Some(email) = state.vault().reveal(id, "email", &account.email).await? else { continue };
        state.mailer().send_later(Mail {
            to: email,
            subject: subject.clone(),
            body: format!(
                "{}\n\n--\nYou get this because you agreed to our newsletter. Withdraw at any time in your account \
                 settings ({}/account).\n",
                body.body,
                state.settings().auth.public_origin
            ),
        });
        sent += 1;
    }
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let event = SecurityEvent::new(EventKind::NewsletterSent, principal.actor())
        .request(req.as_deref())
        .with("recipients", sent as i64);
    in_spine(tx, event, async |tx| {
        tx.append("newsletter_sent", vec!["newsletter".into()], serde_json::json!({"recipients": sent})).await
    })
    .await?;
    Ok((StatusCode::OK, Json(Sent { sent })))
}
