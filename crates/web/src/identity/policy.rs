//! Every route's required permission, in one table.
//!
//! The guard looks each request's route up here before any handler runs; a
//! route missing from the table is refused (fail closed), and a test walks
//! the router's routes so a missing line fails the build's tests instead.

use axum::http::Method;
use storefort_auth::Permission::{self, *};

/// The permission `method` on `route` (the route template, such as
/// `/api/v1/products/{id}`) requires; `None` for an undeclared route.
pub fn required(method: &Method, route: &str) -> Option<Permission> {
    let m = method.as_str();
    let p = match (m, route) {
        // Browsing, carts, checkout and capability-token order reads.
        ("GET", "/api/v1/products" | "/api/v1/products/{id}" | "/api/v1/collections") => Public,
        ("POST", "/api/v1/carts" | "/api/v1/carts/{id}/lines" | "/api/v1/checkout") => Public,
        ("GET", "/api/v1/carts/{id}") => Public,
        ("DELETE", "/api/v1/carts/{id}/lines/{variant_id}") => Public,
        ("GET", "/api/v1/orders/{id}" | "/api/v1/orders/{id}/receipt") => Public,
        ("POST", "/api/v1/orders/{id}/payment") => Public,
        // The gateway, authenticated by its signature in the handler.
        ("POST", "/api/v1/webhooks/stripe") => Public,
        ("GET", "/api/v1/openapi.json" | "/.well-known/storefort/ledger-key" | "/healthz" | "/readyz") => Public,
        // Consent choices (a visitor's or an account's) and consented analytics.
        ("GET" | "PUT", "/api/v1/consent") => Public,
        ("POST", "/api/v1/analytics/events") => Public,
        ("GET", "/privacy" | "/privacy/processing.json") => Public,
        // Signing in: public, each handler checks what it is given.
        (
            "POST",
            "/api/v1/auth/sign-up"
            | "/api/v1/auth/verify-email"
            | "/api/v1/auth/sign-in"
            | "/api/v1/auth/second-factor"
            | "/api/v1/auth/password-reset"
            | "/api/v1/auth/password-reset/confirm"
            | "/api/v1/auth/passkey/start"
            | "/api/v1/auth/passkey/finish",
        ) => Public,
        // Any signed-in account, including staff who must still enroll.
        ("GET", "/api/v1/auth/session" | "/api/v1/account/sessions") => SignedIn,
        ("POST", "/api/v1/auth/sign-out") => SignedIn,
        ("DELETE", "/api/v1/account/sessions/{id}") => SignedIn,
        ("POST", "/api/v1/account/totp" | "/api/v1/account/totp/confirm") => SignedIn,
        ("POST", "/api/v1/account/passkeys/start" | "/api/v1/account/passkeys/finish") => SignedIn,
        // The account's own security settings.
        ("POST", "/api/v1/auth/step-up" | "/api/v1/account/recovery-codes") => OwnAccount,
        ("DELETE", "/api/v1/account/totp" | "/api/v1/account/passkeys/{id}") => OwnAccount,
        ("GET", "/api/v1/account/passkeys" | "/api/v1/account/export") => OwnAccount,
        ("POST", "/api/v1/account/erase") => OwnAccount,
        ("GET" | "POST", "/api/v1/account/api-tokens") => ManageApiTokens,
        ("DELETE", "/api/v1/account/api-tokens/{id}") => ManageApiTokens,
        // Staff work.
        ("PUT", "/api/v1/admin/variants/{id}/price") => ChangePrices,
        ("PUT", "/api/v1/admin/variants/{id}/stock") => EditCatalog,
        ("GET", "/api/v1/admin/orders/{id}") => ReadOrders,
        ("POST", "/api/v1/admin/orders/{id}/status") => ManageOrders,
        ("GET", "/api/v1/admin/orders/{id}/payment") => ReadOrders,
        ("POST", "/api/v1/admin/orders/{id}/refunds") => Refund,
        ("POST", "/api/v1/admin/orders/{id}/review") => ManageOrders,
        ("GET" | "POST", "/api/v1/admin/webhooks") => ManageWebhooks,
        ("DELETE", "/api/v1/admin/webhooks/{id}") => ManageWebhooks,
        ("GET", "/api/v1/admin/webhooks/{id}/deliveries") => ManageWebhooks,
        ("GET", "/api/v1/admin/events") => ReadSecurityEvents,
        ("GET" | "POST", "/api/v1/admin/staff") => ManageStaff,
        ("PUT", "/api/v1/admin/staff/{id}/role") => ManageStaff,
        ("GET" | "DELETE", "/api/v1/admin/staff/{id}/sessions") => ManageStaff,
        ("POST", "/api/v1/admin/staff/{id}/reset-second-factor") => ManageStaff,
        // Privacy requests handled by staff.
        ("GET", "/api/v1/admin/customers/{id}/export") => ExportData,
        ("POST", "/api/v1/admin/customers/{id}/erase" | "/api/v1/admin/orders/{id}/erase-personal-data") => {
            ErasePersonalData
        }
        ("PUT" | "DELETE", "/api/v1/admin/customers/{id}/legal-hold") => ErasePersonalData,
        ("POST", "/api/v1/admin/newsletter") => SendNewsletter,
        _ => return None,
    };
    Some(p)
}
