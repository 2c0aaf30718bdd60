//! Storefort's HTTP application: `app(state)` builds the whole router.
//!
//! Wiring only: handlers validate input into core types, run the spine
//! through the store, and map every failure to the one error shape. This
//! crate must never hold SQL (that is `store`) or business rules (`core`).

pub mod cache;
pub mod clock;
pub mod demo;
pub mod error;
pub mod extract;
pub mod hashing;
pub mod identity;
pub mod jobs;
pub mod ledger;
pub mod middleware;
pub mod payments;
mod redact;
pub mod retention;
pub mod routes;
pub mod sampler;
pub mod secrets;
pub mod shield;
pub mod state;
pub mod vault;
pub mod webhooks;
pub mod witness;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ApiError;
pub use secrets::ServerKey;
pub use state::{AppState, Settings};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use routes::{account, admin, auth, carts, catalog, checkout, consent, health, orders, passkeys, privacy, staff};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Storefort API",
        description = "A secure-by-default online store. Every error is `{\"error\": {\"code\", \"message\", \"field\"}}` \
                       and every response carries an `x-request-id` header.",
        license(name = "AGPL-3.0-or-later")
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, about) in [
            ("order_token", "The access_token returned by checkout"),
            ("api_token", "An API token (`sfa_…`) created under /account/api-tokens or with `storefort admin token`"),
        ] {
            let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(about)).build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
        let cookie = utoipa::openapi::security::ApiKeyValue::with_description(
            identity::cookie::SESSION_COOKIE,
            "The session cookie set by sign-in; writes also need X-CSRF-Token",
        );
        components
            .add_security_scheme("session", SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(cookie)));
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(catalog::list_products))
        .routes(routes!(catalog::get_product))
        .routes(routes!(catalog::list_collections))
        .routes(routes!(carts::create_cart))
        .routes(routes!(carts::get_cart))
        .routes(routes!(carts::add_line))
        .routes(routes!(carts::remove_line))
        .routes(routes!(checkout::checkout))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::get_receipt))
        .routes(routes!(routes::payments::start_payment))
        .routes(routes!(routes::payments::stripe_webhook))
        .routes(routes!(routes::payments::order_money))
        .routes(routes!(routes::payments::create_refund))
        .routes(routes!(routes::payments::review_order))
        .routes(routes!(routes::webhooks::create_endpoint, routes::webhooks::list_endpoints))
        .routes(routes!(routes::webhooks::disable_endpoint))
        .routes(routes!(routes::webhooks::list_deliveries))
        .routes(routes!(admin::set_price))
        .routes(routes!(admin::set_stock))
        .routes(routes!(admin::get_order))
        .routes(routes!(admin::set_order_status))
        .routes(routes!(admin::list_events))
        .routes(routes!(auth::sign_up))
        .routes(routes!(auth::verify_email))
        .routes(routes!(auth::sign_in))
        .routes(routes!(auth::second_factor))
        .routes(routes!(auth::step_up))
        .routes(routes!(auth::sign_out))
        .routes(routes!(auth::session))
        .routes(routes!(auth::password_reset))
        .routes(routes!(auth::password_reset_confirm))
        .routes(routes!(account::list_sessions))
        .routes(routes!(account::revoke_session))
        .routes(routes!(account::start_totp, account::remove_totp))
        .routes(routes!(account::confirm_totp))
        .routes(routes!(account::regenerate_recovery_codes))
        .routes(routes!(account::list_tokens, account::create_token))
        .routes(routes!(account::revoke_token))
        .routes(routes!(passkeys::start_registration))
        .routes(routes!(passkeys::finish_registration))
        .routes(routes!(passkeys::list))
        .routes(routes!(passkeys::remove))
        .routes(routes!(passkeys::start_sign_in))
        .routes(routes!(passkeys::finish_sign_in))
        .routes(routes!(staff::list_staff, staff::invite_staff))
        .routes(routes!(staff::change_role))
        .routes(routes!(staff::staff_sessions, staff::revoke_staff_sessions))
        .routes(routes!(staff::reset_second_factor))
        .routes(routes!(privacy::export_own))
        .routes(routes!(privacy::erase_own))
        .routes(routes!(privacy::export_customer))
        .routes(routes!(privacy::erase_customer))
        .routes(routes!(privacy::erase_guest_order))
        .routes(routes!(privacy::set_legal_hold, privacy::lift_legal_hold))
        .routes(routes!(consent::get_consent, consent::put_consent))
        .routes(routes!(consent::page_view))
        .routes(routes!(consent::send_newsletter));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1)
}

/// Every operation can also fail in ways common to all routes (malformed
/// input, oversized body, timeout); say so, with the one error shape.
fn with_default_errors(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = ResponseBuilder::new()
        .description("Any other error, always in the error shape with a stable `code`")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build();
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            op.responses.responses.entry("default".into()).or_insert_with(|| error.clone().into());
        }
    }
    doc
}

/// The OpenAPI 3.1 document of the API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_default_errors(api_routes().into_openapi())
}

/// The routes outside the OpenAPI document, with their handlers. Their
/// permissions are declared in `identity::policy` like every other route.
pub const PLAIN_ROUTES: [&str; 6] = [
    "/api/v1/openapi.json",
    "/.well-known/storefort/ledger-key",
    "/healthz",
    "/readyz",
    "/privacy",
    "/privacy/processing.json",
];

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let doc: Arc<str> = with_default_errors(doc).to_json().unwrap_or_default().into();
    let max_body = state.settings().max_body_bytes;
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { ([(CONTENT_TYPE, "application/json")], doc.to_string()).into_response() }
        }),
    )
    .route("/.well-known/storefort/ledger-key", get(orders::ledger_key))
    .route("/healthz", get(health::healthz))
    .route("/readyz", get(health::readyz))
    .route("/privacy", get(routes::privacy_page::policy))
    .route("/privacy/processing.json", get(routes::privacy_page::processing))
    // Authenticate and authorize every matched route (route_layer: it sees
    // the route template, and unmatched paths fall through to the 404).
    .route_layer(axum::middleware::from_fn_with_state(state.clone(), identity::guard::authorize))
    .fallback(middleware::not_found)
    .method_not_allowed_fallback(middleware::method_not_allowed)
    .layer(DefaultBodyLimit::max(max_body))
    .layer(CatchPanicLayer::custom(middleware::panic_response))
    // Inside the request context, so refusals carry the request id and the
    // security headers too.
    .layer(shield::layer(&state))
    .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::request_context))
    .with_state(state)
}
