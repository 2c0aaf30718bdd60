//! Guest carts.
//!
//! Carts are short-lived and anonymous, so their writes use plain short
//! transactions rather than the spine: nothing about a cart is a business
//! commitment until checkout, which does go through the spine.

use crate::Store;
use crate::error::StoreError;
use sqlx::Row;
use storefort_core::CartLimits;
use storefort_core::cart::check_new_line;

/// One line of a cart, priced at today's catalog prices.
#[derive(Debug, Clone)]
pub struct CartLineView {
    pub variant_id: String,
    pub product_id: String,
    pub sku: String,
    pub title: String,
    pub unit_price: i64,
    pub currency: String,
    pub quantity: i64,
    pub available: i64,
}

/// A cart and its lines.
#[derive(Debug, Clone)]
pub struct CartView {
    pub status: String,
    pub lines: Vec<CartLineView>,
}

impl Store {
    /// Creates an open cart whose secret id hashes to `id_hash`.
    pub async fn create_cart(&self, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        let writer = self.lock_writer().await;
        sqlx::query("INSERT INTO carts (id_hash, status, created_at, updated_at) VALUES ($1, 'open', $2, $2)")
            .bind(id_hash)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        drop(writer);
        self.durable().await
    }

    /// Adds `quantity` units of a variant to an open cart, merging with an
    /// existing line. Refuses more than the cart limits or the units on sale.
    pub async fn add_cart_line(
        &self,
        id_hash: &str,
        variant_id: &str,
        quantity: u32,
        limits: &CartLimits,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let writer = self.lock_writer().await;
        let mut tx = self.pool.begin().await?;
        // Touching the cart row first locks it on PostgreSQL, so concurrent
        // adds to one cart run one after the other, and checks it is open.
        let touched = sqlx::query("UPDATE carts SET updated_at = $1 WHERE id_hash = $2 AND status = 'open'")
            .bind(now_ms)
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        if touched.rows_affected() == 0 {
            return Err(cart_state_error(&mut tx, id_hash).await);
        }
        let variant = sqlx::query("SELECT sku, available FROM variants WHERE id = $1")
            .bind(variant_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound { what: "variant" })?;
        let existing = sqlx::query("SELECT quantity FROM cart_lines WHERE cart_id_hash = $1 AND variant_id = $2")
            .bind(id_hash)
            .bind(variant_id)
            .fetch_optional(&mut *tx)
            .await?;
        let new_quantity = match existing {
            Some(row) => row.try_get::<i64, _>("quantity")? + i64::from(quantity),
            None => {
                let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM cart_lines WHERE cart_id_hash = $1")
                    .bind(id_hash)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                check_new_line(usize::try_from(count).unwrap_or(usize::MAX), limits)?;
                i64::from(quantity)
            }
        };
        if new_quantity > i64::from(limits.max_quantity) {
            return Err(storefort_core::CartError::QuantityOutOfRange { max: limits.max_quantity }.into());
        }
        let available: i64 = variant.try_get("available")?;
        if new_quantity > available {
            return Err(StoreError::OutOfStock { sku: variant.try_get("sku")?, line: 0 });
        }
        sqlx::query(
            "INSERT INTO cart_lines (cart_id_hash, variant_id, quantity, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (cart_id_hash, variant_id) DO UPDATE SET quantity = excluded.quantity",
        )
        .bind(id_hash)
        .bind(variant_id)
        .bind(new_quantity)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        drop(writer);
        self.durable().await
    }

    /// Removes a variant's line from an open cart.
    pub async fn remove_cart_line(&self, id_hash: &str, variant_id: &str, now_ms: i64) -> Result<(), StoreError> {
        let writer = self.lock_writer().await;
        let mut tx = self.pool.begin().await?;
        let touched = sqlx::query("UPDATE carts SET updated_at = $1 WHERE id_hash = $2 AND status = 'open'")
            .bind(now_ms)
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        if touched.rows_affected() == 0 {
            return Err(cart_state_error(&mut tx, id_hash).await);
        }
        let removed = sqlx::query("DELETE FROM cart_lines WHERE cart_id_hash = $1 AND variant_id = $2")
            .bind(id_hash)
            .bind(variant_id)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "cart line" });
        }
        tx.commit().await?;
        drop(writer);
        self.durable().await
    }

    /// A cart with its lines priced at current catalog prices.
    pub async fn cart(&self, id_hash: &str) -> Result<CartView, StoreError> {
        let status: String = sqlx::query("SELECT status FROM carts WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { what: "cart" })?
            .try_get("status")?;
        let rows = sqlx::query(
            "SELECT l.variant_id, v.product_id, v.sku, p.title AS product_title, v.title AS variant_title, \
                    v.price_amount, v.currency, l.quantity, v.available \
             FROM cart_lines l JOIN variants v ON v.id = l.variant_id JOIN products p ON p.id = v.product_id \
             WHERE l.cart_id_hash = $1 ORDER BY l.added_at, l.variant_id",
        )
        .bind(id_hash)
        .fetch_all(&self.pool)
        .await?;
        let lines = rows
            .iter()
            .map(|r| {
                let product: String = r.try_get("product_title")?;
                let variant: String = r.try_get("variant_title")?;
                Ok(CartLineView {
                    variant_id: r.try_get("variant_id")?,
                    product_id: r.try_get("product_id")?,
                    sku: r.try_get("sku")?,
                    title: line_title(&product, &variant),
                    unit_price: r.try_get("price_amount")?,
                    currency: r.try_get("currency")?,
                    quantity: r.try_get("quantity")?,
                    available: r.try_get("available")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(CartView { status, lines })
    }

    /// Holds SQLite's single writer slot for a write outside a [`crate::WriteTx`].
    pub(crate) async fn lock_writer(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        }
    }
}

/// Why an update of an open cart matched nothing: gone, or checked out.
/// Asked inside the caller's transaction: a second connection per refused
/// request would let a flood of bogus cart ids drain the pool.
async fn cart_state_error(tx: &mut sqlx::AnyConnection, id_hash: &str) -> StoreError {
    match sqlx::query("SELECT status FROM carts WHERE id_hash = $1").bind(id_hash).fetch_optional(tx).await {
        Ok(Some(_)) => StoreError::CartCheckedOut,
        Ok(None) => StoreError::NotFound { what: "cart" },
        Err(e) => StoreError::from(e),
    }
}

/// "Product — Variant", or just the product when the variant is the default.
pub(crate) fn line_title(product: &str, variant: &str) -> String {
    if variant.is_empty() || variant.eq_ignore_ascii_case("default") {
        product.to_owned()
    } else {
        format!("{product} — {variant}")
    }
}
