//! Guest carts, addressed by an unguessable id.

use super::{is_uuid, money};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::secrets::{is_token_shaped, random_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use storefort_core::{Money, Quantity};
use storefort_store::hash_secret;
use utoipa::ToSchema;

/// A cart line at today's prices.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartLineOut {
    pub variant_id: String,
    pub product_id: String,
    pub sku: String,
    pub title: String,
    pub unit_price: Money,
    pub quantity: i64,
    pub line_total: Money,
    /// Units on sale now; checkout fails if fewer than `quantity`.
    pub available: i64,
}

/// A cart. Prices are indicative until checkout, which prices the order.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartOut {
    /// The cart's secret id: whoever holds it can change the cart.
    pub id: String,
    /// `open`, or `checked_out` once an order was placed from it.
    pub status: String,
    pub lines: Vec<CartLineOut>,
    pub subtotal: Money,
}

/// Add units of a variant to a cart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLine {
    #[schema(format = Uuid)]
    pub variant_id: String,
    /// Units to add, 1 to 100 in total per variant.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
}

/// Rejects ids that cannot be cart ids before touching the database.
fn cart_hash(id: &str) -> Result<String, ApiError> {
    if is_token_shaped(id) { Ok(hash_secret(id)) } else { Err(ApiError::not_found("cart")) }
}

async fn cart_out(state: &AppState, id: String, hash: &str) -> Result<CartOut, ApiError> {
    let cart = state.store().cart(hash).await?;
    let mut subtotal = Money::zero(state.settings().currency);
    let mut lines = Vec::with_capacity(cart.lines.len());
    for l in cart.lines {
        let unit_price = money(l.unit_price, &l.currency)?;
        let too_large = || ApiError::unprocessable("amount_too_large", "the cart total is out of range");
        let line_total =
            unit_price.checked_mul(u32::try_from(l.quantity).unwrap_or(u32::MAX)).map_err(|_| too_large())?;
        subtotal = subtotal.checked_add(line_total).map_err(|e| match e {
            storefort_core::MoneyError::CurrencyMismatch => {
                ApiError::unprocessable("currency_mismatch", "the cart holds items in another currency")
            }
            _ => too_large(),
        })?;
        lines.push(CartLineOut {
            variant_id: l.variant_id,
            product_id: l.product_id,
            sku: l.sku,
            title: l.title,
            unit_price,
            quantity: l.quantity,
            line_total,
            available: l.available,
        });
    }
    Ok(CartOut { id, status: cart.status, lines, subtotal })
}

/// Create an empty cart.
#[utoipa::path(post, path = "/carts", tag = "carts",
    responses((status = 201, description = "The new cart", body = CartOut)))]
pub async fn create_cart(State(state): State<AppState>) -> Result<(StatusCode, Json<CartOut>), ApiError> {
    let id = random_token().map_err(|e| ApiError::internal(&e))?;
    let hash = hash_secret(&id);
    state.store().create_cart(&hash, state.now_ms()).await?;
    Ok((StatusCode::CREATED, Json(cart_out(&state, id, &hash).await?)))
}

/// A cart with its lines.
#[utoipa::path(get, path = "/carts/{id}", tag = "carts",
    params(("id" = String, Path, description = "Cart id")),
    responses(
        (status = 200, description = "The cart", body = CartOut),
        (status = 404, description = "No such cart", body = crate::error::ErrorBody),
    ))]
pub async fn get_cart(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<CartOut>, ApiError> {
    let hash = cart_hash(&id)?;
    Ok(Json(cart_out(&state, id, &hash).await?))
}

/// Add units of a variant to a cart (merged with an existing line).
#[utoipa::path(post, path = "/carts/{id}/lines", tag = "carts",
    params(("id" = String, Path, description = "Cart id")),
    request_body = AddLine,
    responses(
        (status = 200, description = "The updated cart", body = CartOut),
        (status = 404, description = "No such cart or variant", body = crate::error::ErrorBody),
        (status = 409, description = "Out of stock, or the cart was checked out", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid quantity or too many lines", body = crate::error::ErrorBody),
    ))]
pub async fn add_line(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddLine>,
) -> Result<Json<CartOut>, ApiError> {
    let hash = cart_hash(&id)?;
    let limits = state.settings().cart_limits;
    let quantity = Quantity::parse(body.quantity, &limits)
        .map_err(|e| ApiError::unprocessable("quantity_out_of_range", e.to_string()).field("quantity"))?;
    if !is_uuid(&body.variant_id) {
        return Err(ApiError::not_found("variant").field("variant_id"));
    }
    state.store().add_cart_line(&hash, &body.variant_id, quantity.get(), &limits, state.now_ms()).await.map_err(
        |e| match e {
            storefort_store::StoreError::OutOfStock { sku, .. } => {
                ApiError::conflict("out_of_stock", format!("not enough stock for {sku}")).field("quantity")
            }
            storefort_store::StoreError::NotFound { what: "variant" } => {
                ApiError::not_found("variant").field("variant_id")
            }
            other => other.into(),
        },
    )?;
    Ok(Json(cart_out(&state, id, &hash).await?))
}

/// Remove a variant's line from a cart.
#[utoipa::path(delete, path = "/carts/{id}/lines/{variant_id}", tag = "carts",
    params(("id" = String, Path, description = "Cart id"), ("variant_id" = String, Path, description = "Variant id")),
    responses(
        (status = 200, description = "The updated cart", body = CartOut),
        (status = 404, description = "No such cart or line", body = crate::error::ErrorBody),
        (status = 409, description = "The cart was checked out", body = crate::error::ErrorBody),
    ))]
pub async fn remove_line(
    State(state): State<AppState>,
    ApiPath((id, variant_id)): ApiPath<(String, String)>,
) -> Result<Json<CartOut>, ApiError> {
    let hash = cart_hash(&id)?;
    if !is_uuid(&variant_id) {
        return Err(ApiError::not_found("cart line"));
    }
    state.store().remove_cart_line(&hash, &variant_id, state.now_ms()).await?;
    Ok(Json(cart_out(&state, id, &hash).await?))
}
