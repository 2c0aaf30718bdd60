//! Catalog reads (products, variants, collections) and catalog writes (price
//! and stock changes, seeding).

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// A variant as shoppers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantView {
    pub id: String,
    pub product_id: String,
    pub sku: String,
    pub title: String,
    pub price_amount: i64,
    pub currency: String,
    pub available: i64,
}

/// A product with its variants and the handles of its collections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductView {
    pub id: String,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub collections: Vec<String>,
    pub variants: Vec<VariantView>,
}

/// A collection of products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionView {
    pub id: String,
    pub handle: String,
    pub title: String,
}

/// Which products to list. `query` is matched case-insensitively against
/// titles, descriptions and SKUs.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub query: Option<String>,
    pub collection: Option<String>,
    /// Return products after this id (the previous page's cursor).
    pub after: Option<String>,
    pub limit: u32,
}

/// One page of products.
#[derive(Debug, Clone)]
pub struct ProductPage {
    pub items: Vec<ProductView>,
    /// Cursor for the next page, if there is one.
    pub next: Option<String>,
}

/// A product to insert (seeding and, later, the admin catalog).
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub id: String,
    pub handle: String,
    pub title: String,
    pub description: String,
    pub collections: Vec<(String, String)>,
    pub variants: Vec<NewVariant>,
}

/// A variant to insert.
#[derive(Debug, Clone)]
pub struct NewVariant {
    pub id: String,
    pub sku: String,
    pub title: String,
    pub price_amount: i64,
    pub currency: String,
    pub stock: i64,
}

/// Escapes LIKE wildcards so a search for `50%` means the text "50%".
fn like_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `$start, $start+1, …` for an IN list of `n` bound values. Only numbers
/// are formatted into the SQL; the values themselves are bound.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn variant_from_row(r: &AnyRow) -> Result<VariantView, sqlx::Error> {
    Ok(VariantView {
        id: r.try_get("id")?,
        product_id: r.try_get("product_id")?,
        sku: r.try_get("sku")?,
        title: r.try_get("title")?,
        price_amount: r.try_get("price_amount")?,
        currency: r.try_get("currency")?,
        available: r.try_get("available")?,
    })
}

impl Store {
    /// Lists products in id order, filtered and paginated by cursor.
    pub async fn list_products(&self, filter: &ProductFilter) -> Result<ProductPage, StoreError> {
        let pattern = filter.query.as_deref().map(like_pattern).unwrap_or_default();
        let collection = filter.collection.clone().unwrap_or_default();
        // Fetch one extra row to learn whether a next page exists.
        let rows = sqlx::query(
            "SELECT id, handle, title, description FROM products \
             WHERE id > $1 \
               AND ($2 = '' OR search_text LIKE $2 ESCAPE '\\') \
               AND ($3 = '' OR id IN (SELECT cp.product_id FROM collection_products cp \
                                      JOIN collections c ON c.id = cp.collection_id WHERE c.handle = $3)) \
             ORDER BY id LIMIT $4",
        )
        .bind(filter.after.clone().unwrap_or_default())
        .bind(pattern)
        .bind(collection)
        .bind(i64::from(filter.limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows
            .iter()
            .map(|r| {
                Ok(ProductView {
                    id: r.try_get("id")?,
                    handle: r.try_get("handle")?,
                    title: r.try_get("title")?,
                    description: r.try_get("description")?,
                    collections: Vec::new(),
                    variants: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let next = if items.len() > filter.limit as usize {
            items.truncate(filter.limit as usize);
            items.last().map(|p| p.id.clone())
        } else {
            None
        };
        self.attach_details(&mut items).await?;
        Ok(ProductPage { items, next })
    }

    /// One product by id.
    pub async fn product(&self, id: &str) -> Result<ProductView, StoreError> {
        let row = sqlx::query("SELECT id, handle, title, description FROM products WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { what: "product" })?;
        let mut items = vec![ProductView {
            id: row.try_get("id")?,
            handle: row.try_get("handle")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            collections: Vec::new(),
            variants: Vec::new(),
        }];
        self.attach_details(&mut items).await?;
        Ok(items.remove(0))
    }

    /// Fills in variants and collection handles with one query each.
    async fn attach_details(&self, items: &mut [ProductView]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let list = placeholders(1, items.len());
        let sql = format!(
            "SELECT id, product_id, sku, title, price_amount, currency, available FROM variants \
             WHERE product_id IN ({list}) ORDER BY product_id, position"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for p in items.iter() {
            q = q.bind(p.id.clone());
        }
        let mut variants: HashMap<String, Vec<VariantView>> = HashMap::new();
        for r in q.fetch_all(&self.pool).await? {
            let v = variant_from_row(&r)?;
            variants.entry(v.product_id.clone()).or_default().push(v);
        }
        let sql = format!(
            "SELECT cp.product_id, c.handle FROM collection_products cp \
             JOIN collections c ON c.id = cp.collection_id \
             WHERE cp.product_id IN ({list}) ORDER BY c.handle"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for p in items.iter() {
            q = q.bind(p.id.clone());
        }
        let mut collections: HashMap<String, Vec<String>> = HashMap::new();
        for r in q.fetch_all(&self.pool).await? {
            collections.entry(r.try_get("product_id")?).or_default().push(r.try_get("handle")?);
        }
        for p in items.iter_mut() {
            p.variants = variants.remove(&p.id).unwrap_or_default();
            p.collections = collections.remove(&p.id).unwrap_or_default();
        }
        Ok(())
    }

    /// Every collection, by handle.
    pub async fn collections(&self) -> Result<Vec<CollectionView>, StoreError> {
        let rows =
            sqlx::query("SELECT id, handle, title FROM collections ORDER BY handle").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(CollectionView { id: r.try_get("id")?, handle: r.try_get("handle")?, title: r.try_get("title")? })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// One variant by id.
    pub async fn variant(&self, id: &str) -> Result<VariantView, StoreError> {
        let row = sqlx::query(
            "SELECT id, product_id, sku, title, price_amount, currency, available FROM variants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound { what: "variant" })?;
        Ok(variant_from_row(&row)?)
    }

    /// Stock counters of one variant: (available, reserved, sold).
    pub async fn stock_counts(&self, variant_id: &str) -> Result<(i64, i64, i64), StoreError> {
        let row = sqlx::query("SELECT available, reserved, sold FROM variants WHERE id = $1")
            .bind(variant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { what: "variant" })?;
        Ok((row.try_get("available")?, row.try_get("reserved")?, row.try_get("sold")?))
    }

    /// True when the catalog has no products (first start).
    pub async fn catalog_is_empty(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM products").fetch_one(&self.pool).await?;
        let n: i64 = row.try_get("n")?;
        Ok(n == 0)
    }
}

impl WriteTx {
    /// Takes the variant's row lock (PostgreSQL) and checks it exists.
    async fn lock_variant(&mut self, variant_id: &str) -> Result<(), StoreError> {
        let touched = sqlx::query("UPDATE variants SET updated_at = $1 WHERE id = $2")
            .bind(self.now_ms)
            .bind(variant_id)
            .execute(&mut *self.tx)
            .await?;
        if touched.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "variant" });
        }
        Ok(())
    }

    /// Sets a variant's price; returns the old amount.
    pub async fn set_price(&mut self, variant_id: &str, amount: i64, currency: &str) -> Result<i64, StoreError> {
        // Lock the row before reading the old value, and before the ledger
        // head: every write locks variants first, then the head, so two
        // transactions can never wait on each other in a cycle.
        self.lock_variant(variant_id).await?;
        let row = sqlx::query("SELECT price_amount, currency FROM variants WHERE id = $1")
            .bind(variant_id)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::NotFound { what: "variant" })?;
        let old: i64 = row.try_get("price_amount")?;
        let change = json!({"variant": variant_id, "old": old, "new": amount, "currency": currency});
        let entry = self.append("price_changed", vec![variant_id.to_owned()], change).await?;
        sqlx::query(
            "UPDATE variants SET price_amount = $1, currency = $2, updated_at = $3, ledger_hash = $4 WHERE id = $5",
        )
        .bind(amount)
        .bind(currency)
        .bind(self.now_ms)
        .bind(entry.leaf_hex())
        .bind(variant_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(old)
    }

    /// Sets the units of a variant available for sale (a stock count or
    /// delivery); reserved and sold units are untouched. Returns the old count.
    pub async fn set_available(&mut self, variant_id: &str, available: i64) -> Result<i64, StoreError> {
        // Lock the row before reading the old value, and before the ledger
        // head: every write locks variants first, then the head, so two
        // transactions can never wait on each other in a cycle.
        self.lock_variant(variant_id).await?;
        let row = sqlx::query("SELECT available FROM variants WHERE id = $1")
            .bind(variant_id)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::NotFound { what: "variant" })?;
        let old: i64 = row.try_get("available")?;
        let change = json!({"variant": variant_id, "old": old, "new": available});
        let entry = self.append("stock_changed", vec![variant_id.to_owned()], change).await?;
        sqlx::query("UPDATE variants SET available = $1, updated_at = $2, ledger_hash = $3 WHERE id = $4")
            .bind(available)
            .bind(self.now_ms)
            .bind(entry.leaf_hex())
            .bind(variant_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(old)
    }

    /// Inserts a product with its variants and collection memberships.
    pub async fn insert_product(&mut self, p: &NewProduct) -> Result<(), StoreError> {
        let skus: Vec<&str> = p.variants.iter().map(|v| v.sku.as_str()).collect();
        let variants: Vec<_> = p
            .variants
            .iter()
            .map(|v| json!({"id": v.id, "sku": v.sku, "price": v.price_amount, "currency": v.currency, "available": v.stock}))
            .collect();
        let mut targets = vec![p.id.clone()];
        targets.extend(p.variants.iter().map(|v| v.id.clone()));
        let change = json!({"product": p.id, "handle": p.handle, "variants": variants});
        let entry = self.append("product_created", targets, change).await?;
        let search = format!("{} {} {}", p.title, p.description, skus.join(" ")).to_lowercase();
        sqlx::query(
            "INSERT INTO products (id, handle, title, description, search_text, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(p.id.clone())
        .bind(p.handle.clone())
        .bind(p.title.clone())
        .bind(p.description.clone())
        .bind(search)
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        for (position, v) in p.variants.iter().enumerate() {
            sqlx::query(
                "INSERT INTO variants (id, product_id, sku, title, price_amount, currency, available, \
                 reserved, sold, position, updated_at, ledger_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $9, $10)",
            )
            .bind(v.id.clone())
            .bind(p.id.clone())
            .bind(v.sku.clone())
            .bind(v.title.clone())
            .bind(v.price_amount)
            .bind(v.currency.clone())
            .bind(v.stock)
            .bind(position as i64)
            .bind(self.now_ms)
            .bind(entry.leaf_hex())
            .execute(&mut *self.tx)
            .await?;
        }
        for (handle, title) in &p.collections {
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query(
                "INSERT INTO collections (id, handle, title) VALUES ($1, $2, $3) ON CONFLICT (handle) DO NOTHING",
            )
            .bind(id)
            .bind(handle.clone())
            .bind(title.clone())
            .execute(&mut *self.tx)
            .await?;
            sqlx::query(
                "INSERT INTO collection_products (collection_id, product_id) \
                 SELECT id, $1 FROM collections WHERE handle = $2",
            )
            .bind(p.id.clone())
            .bind(handle.clone())
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Tee"), "%tee%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(placeholders(1, 3), "$1, $2, $3");
    }
}
