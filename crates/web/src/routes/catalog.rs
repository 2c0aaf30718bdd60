//! Browsing the catalog: products, variants, collections, search.

use super::{is_uuid, money};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use storefort_core::Money;
use storefort_core::text;
use storefort_store::{ProductFilter, ProductView, VariantView};
use utoipa::{IntoParams, ToSchema};

/// A purchasable variant of a product.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantOut {
    pub id: String,
    pub sku: String,
    pub title: String,
    pub price: Money,
    /// Units on sale now.
    pub available: i64,
}

/// A product and its variants.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductOut {
    pub id: String,
    pub handle: String,
    pub title: String,
    pub description: String,
    /// Handles of the collections the product belongs to.
    pub collections: Vec<String>,
    pub variants: Vec<VariantOut>,
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    pub items: Vec<ProductOut>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next: Option<String>,
}

/// A collection.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionOut {
    pub id: String,
    pub handle: String,
    pub title: String,
}

/// Collections, in handle order.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionList {
    pub items: Vec<CollectionOut>,
}

/// Filters for listing products.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Text to search for in titles, descriptions and SKUs.
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Only products in the collection with this handle.
    #[param(max_length = 64)]
    pub collection: Option<String>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

pub(crate) fn variant_out(v: &VariantView) -> Result<VariantOut, ApiError> {
    Ok(VariantOut {
        id: v.id.clone(),
        sku: v.sku.clone(),
        title: v.title.clone(),
        price: money(v.price_amount, &v.currency)?,
        available: v.available,
    })
}

fn product_out(p: ProductView) -> Result<ProductOut, ApiError> {
    Ok(ProductOut {
        variants: p.variants.iter().map(variant_out).collect::<Result<_, _>>()?,
        id: p.id,
        handle: p.handle,
        title: p.title,
        description: p.description,
        collections: p.collections,
    })
}

fn is_handle(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// List and search products.
#[utoipa::path(get, path = "/products", tag = "catalog", params(ProductQuery),
    responses(
        (status = 200, description = "A page of products", body = ProductList),
        (status = 400, description = "Invalid query", body = crate::error::ErrorBody),
    ))]
pub async fn list_products(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProductQuery>,
) -> Result<Response, ApiError> {
    let q = text::clean_optional(query.q.as_deref(), 100)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("q {e}")).field("q"))?;
    if query.collection.as_deref().is_some_and(|c| !is_handle(c)) {
        return Err(ApiError::bad_request("invalid_query", "collection must be a handle").field("collection"));
    }
    if query.cursor.as_deref().is_some_and(|c| !is_uuid(c)) {
        return Err(ApiError::bad_request("invalid_query", "cursor is not a valid cursor").field("cursor"));
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 100").field("limit"));
    }
    // The key is built from the validated values, not the raw query string.
    let key = format!(
        "list\0{}\0{}\0{}\0{limit}",
        q.as_deref().unwrap_or(""),
        query.collection.as_deref().unwrap_or(""),
        query.cursor.as_deref().unwrap_or("")
    );
    if let Some(hit) = state.catalog_cache().get(&key) {
        return Ok(json_bytes(hit));
    }
    let filter = ProductFilter { query: q, collection: query.collection, after: query.cursor, limit };
    let page = state.store().list_products(&filter).await?;
    let list =
        ProductList { items: page.items.into_iter().map(product_out).collect::<Result<_, _>>()?, next: page.next };
    cached(&state, key, &list)
}

fn json_bytes(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Serializes `value`, remembers it under `key` and answers with it.
fn cached<T: Serialize>(state: &AppState, key: String, value: &T) -> Result<Response, ApiError> {
    let body = Bytes::from(serde_json::to_vec(value).map_err(|e| ApiError::internal(&e))?);
    state.catalog_cache().put(key, body.clone());
    Ok(json_bytes(body))
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductOut),
        (status = 404, description = "No such product", body = crate::error::ErrorBody),
    ))]
pub async fn get_product(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    if !is_uuid(&id) {
        return Err(ApiError::not_found("product"));
    }
    let key = format!("product\0{id}");
    if let Some(hit) = state.catalog_cache().get(&key) {
        return Ok(json_bytes(hit));
    }
    let product = product_out(state.store().product(&id).await?)?;
    cached(&state, key, &product)
}

/// All collections.
#[utoipa::path(get, path = "/collections", tag = "catalog",
    responses((status = 200, description = "Collections", body = CollectionList)))]
pub async fn list_collections(State(state): State<AppState>) -> Result<Json<CollectionList>, ApiError> {
    let items = state
        .store()
        .collections()
        .await?
        .into_iter()
        .map(|c| CollectionOut { id: c.id, handle: c.handle, title: c.title })
        .collect();
    Ok(Json(CollectionList { items }))
}
