//! Checkout and orders: the steps the spine runs inside one [`WriteTx`], and
//! order reads.

use crate::Store;
use crate::carts::line_title;
use crate::error::StoreError;
use crate::ledger::{order_personal, order_snapshot};
use crate::tx::WriteTx;
use serde_json::json;
use sqlx::Row;
use storefort_core::order::StockEffect;
use storefort_core::{OrderStatus, PricedLine, Totals};
use storefort_ledger::Entry;
use storefort_ledger::receipt::{personal_commitment, snapshot_hash};

/// The result of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// The key is new: go on and place the order.
    Claimed,
    /// The key was used before with the same request: this order answers it.
    Replay { order_id: String },
}

/// An order to insert: the snapshot taken at checkout.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: String,
    /// The signed-in customer placing it; `None` for a guest.
    pub customer_id: Option<String>,
    /// For a guest order: the data key (subject) its personal data is under.
    pub data_subject: Option<String>,
    pub cart_id_hash: String,
    pub currency: String,
    pub totals: Totals,
    pub email: String,
    /// The validated shipping address as JSON.
    pub shipping_address: String,
    pub lines: Vec<PricedLine>,
    pub expires_at: i64,
}

impl NewOrder {
    /// The order as it will be stored, for snapshot hashing.
    pub(crate) fn view(&self, number: i64, now_ms: i64) -> Result<OrderView, StoreError> {
        let lines = self
            .lines
            .iter()
            .map(|l| {
                let total =
                    l.unit_price.checked_mul(l.quantity).map_err(|_| StoreError::Corrupt { what: "line total" })?;
                Ok(OrderLineView {
                    variant_id: l.variant_id.clone(),
                    sku: l.sku.clone(),
                    title: l.title.clone(),
                    unit_price: l.unit_price.amount,
                    quantity: i64::from(l.quantity),
                    line_total: total.amount,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(OrderView {
            id: self.id.clone(),
            customer_id: self.customer_id.clone(),
            data_subject: self.data_subject.clone(),
            number,
            status: OrderStatus::PendingPayment,
            currency: self.currency.clone(),
            subtotal: self.totals.subtotal.amount,
            shipping: self.totals.shipping.amount,
            tax: self.totals.tax.amount,
            total: self.totals.total.amount,
            email: self.email.clone(),
            shipping_address: self.shipping_address.clone(),
            created_at: now_ms,
            updated_at: now_ms,
            expires_at: self.expires_at,
            lines,
        })
    }
}

/// One line of a placed order, as snapshotted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLineView {
    pub variant_id: String,
    pub sku: String,
    pub title: String,
    pub unit_price: i64,
    pub quantity: i64,
    pub line_total: i64,
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub id: String,
    pub customer_id: Option<String>,
    pub data_subject: Option<String>,
    pub number: i64,
    pub status: OrderStatus,
    pub currency: String,
    pub subtotal: i64,
    pub shipping: i64,
    pub tax: i64,
    pub total: i64,
    pub email: String,
    pub shipping_address: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub lines: Vec<OrderLineView>,
}

/// A status change that was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

impl WriteTx {
    /// Claims an idempotency key for `order_id`. On PostgreSQL a concurrent
    /// claim of the same key waits here until the first transaction ends, so
    /// only one order is ever placed per key.
    pub async fn claim_idempotency_key(
        &mut self,
        key_hash: &str,
        request_hash: &str,
        order_id: &str,
    ) -> Result<CheckoutOutcome, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key_hash, request_hash, order_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(key_hash)
        .bind(request_hash)
        .bind(order_id)
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(CheckoutOutcome::Claimed);
        }
        let row = sqlx::query("SELECT request_hash, order_id FROM idempotency_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_one(&mut *self.tx)
            .await?;
        let stored: String = row.try_get("request_hash")?;
        if stored != request_hash {
            return Err(StoreError::IdempotencyMismatch);
        }
        Ok(CheckoutOutcome::Replay { order_id: row.try_get("order_id")? })
    }

    /// Marks an open cart checked out. This is also the lock that keeps two
    /// checkouts of one cart from both going through.
    pub async fn close_cart(&mut self, id_hash: &str) -> Result<(), StoreError> {
        let closed = sqlx::query(
            "UPDATE carts SET status = 'checked_out', updated_at = $1 WHERE id_hash = $2 AND status = 'open'",
        )
        .bind(self.now_ms)
        .bind(id_hash)
        .execute(&mut *self.tx)
        .await?;
        if closed.rows_affected() == 1 {
            return Ok(());
        }
        let exists = sqlx::query("SELECT status FROM carts WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&mut *self.tx)
            .await?;
        Err(if exists.is_some() { StoreError::CartCheckedOut } else { StoreError::NotFound { what: "cart" } })
    }

    /// The cart's lines priced from the catalog as it is inside this
    /// transaction: the prices the order will be charged.
    pub async fn price_cart(&mut self, id_hash: &str) -> Result<Vec<(PricedLine, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.variant_id, v.sku, p.title AS product_title, v.title AS variant_title, v.price_amount, \
                    v.currency, l.quantity \
             FROM cart_lines l JOIN variants v ON v.id = l.variant_id JOIN products p ON p.id = v.product_id \
             WHERE l.cart_id_hash = $1 ORDER BY l.added_at, l.variant_id",
        )
        .bind(id_hash)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                let product: String = r.try_get("product_title")?;
                let variant: String = r.try_get("variant_title")?;
                let currency: String = r.try_get("currency")?;
                let amount: i64 = r.try_get("price_amount")?;
                let quantity: i64 = r.try_get("quantity")?;
                let unit_price = storefort_core::Currency::parse(&currency)
                    .and_then(|c| storefort_core::Money::new(amount, c))
                    .map_err(|_| StoreError::Corrupt { what: "variant price" })?;
                let line = PricedLine {
                    variant_id: r.try_get("variant_id")?,
                    sku: r.try_get("sku")?,
                    title: line_title(&product, &variant),
                    unit_price,
                    quantity: u32::try_from(quantity).map_err(|_| StoreError::Corrupt { what: "cart quantity" })?,
                };
                Ok((line, currency))
            })
            .collect()
    }

    /// Moves each line's units from available to reserved. The conditional
    /// update is the stock check: the database refuses to go below zero, so
    /// concurrent checkouts can never oversell. Variants are locked in id
    /// order so two checkouts cannot deadlock on PostgreSQL.
    pub async fn reserve_stock(&mut self, lines: &[PricedLine]) -> Result<(), StoreError> {
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by(|a, b| lines[*a].variant_id.cmp(&lines[*b].variant_id));
        for i in order {
            let line = &lines[i];
            let q = i64::from(line.quantity);
            let done = sqlx::query(
                "UPDATE variants SET available = available - $1, reserved = reserved + $1, updated_at = $2 \
                 WHERE id = $3 AND available >= $1",
            )
            .bind(q)
            .bind(self.now_ms)
            .bind(line.variant_id.clone())
            .execute(&mut *self.tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::OutOfStock { sku: line.sku.clone(), line: i });
            }
        }
        Ok(())
    }

    /// Inserts the order snapshot with the next order number, and appends
    /// its `order_placed` ledger entry: a hash of the snapshot, a keyed
    /// commitment to the personal data, and the stock it reserved.
    pub async fn insert_order(&mut self, order: &NewOrder) -> Result<i64, StoreError> {
        // Taken late, so the counter row is locked for as short a time as
        // possible on PostgreSQL.
        let number: i64 =
            sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'order_number' RETURNING value")
                .fetch_one(&mut *self.tx)
                .await?
                .try_get("value")?;
        let view = order.view(number, self.now_ms)?;
        let mut personal_key = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(personal_key.as_mut())
            .map_err(|_| StoreError::Corrupt { what: "system random number generator" })?;
        let snapshot =
            snapshot_hash(&order_snapshot(&view)).map_err(|_| StoreError::Corrupt { what: "order snapshot" })?;
        let commitment = personal_commitment(personal_key.as_ref(), &order_personal(&view))
            .map_err(|_| StoreError::Corrupt { what: "order snapshot" })?;
        let lines: Vec<_> =
            order.lines.iter().map(|l| json!({"variant": l.variant_id, "quantity": l.quantity})).collect();
        let change = json!({
            "number": number,
            "snapshot_sha256": snapshot,
            "personal_commitment": commitment,
            "total": order.totals.total.amount,
            "currency": order.currency,
            "reserved": lines,
            "customer": order.customer_id,
        });
        let entry = self.append("order_placed", vec![order.id.clone()], change).await?;
        sqlx::query(
            "INSERT INTO orders (id, number, cart_id_hash, status, currency, subtotal, shipping, tax, total, \
             email, shipping_address, created_at, updated_at, expires_at, ledger_hash, personal_key, customer_id, \
             data_subject) \
             VALUES ($1, $2, $3, 'pending_payment', $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16)",
        )
        .bind(order.id.clone())
        .bind(number)
        .bind(order.cart_id_hash.clone())
        .bind(order.currency.clone())
        .bind(order.totals.subtotal.amount)
        .bind(order.totals.shipping.amount)
        .bind(order.totals.tax.amount)
        .bind(order.totals.total.amount)
        .bind(order.email.clone())
        .bind(order.shipping_address.clone())
        .bind(self.now_ms)
        .bind(order.expires_at)
        .bind(entry.leaf_hex())
        .bind(hex::encode(personal_key.as_ref()))
        .bind(order.customer_id.clone())
        .bind(order.data_subject.clone())
        .execute(&mut *self.tx)
        .await?;
        for (position, line) in view.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO order_lines (order_id, position, variant_id, sku, title, unit_price, quantity, line_total) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(order.id.clone())
            .bind(position as i64)
            .bind(line.variant_id.clone())
            .bind(line.sku.clone())
            .bind(line.title.clone())
            .bind(line.unit_price)
            .bind(line.quantity)
            .bind(line.line_total)
            .execute(&mut *self.tx)
            .await?;
        }
        self.enqueue_webhook(
            "order.created",
            json!({"order": {"id": order.id, "number": number, "status": "pending_payment",
                             "total": order.totals.total.amount, "currency": order.currency}}),
        )
        .await?;
        Ok(number)
    }

    /// Moves an order to `to` if the state machine allows it from its current
    /// status, and applies the transition's effect on stock.
    pub async fn transition_order(&mut self, order_id: &str, to: OrderStatus) -> Result<StatusChange, StoreError> {
        let row = sqlx::query("SELECT status FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::NotFound { what: "order" })?;
        let status: String = row.try_get("status")?;
        let from = OrderStatus::parse(&status).ok_or(StoreError::Corrupt { what: "order status" })?;
        let effect = from.transition(to)?;
        // An order held by risk review ships only after staff approve it.
        if to == OrderStatus::Fulfilled && self.is_held(order_id).await? {
            return Err(StoreError::HeldForReview);
        }
        // Conditional on the status we read: a concurrent change makes this
        // match nothing, and the caller sees a conflict instead of a double
        // release of stock. Locks are taken in the order every write uses:
        // the order, its variants, then the ledger head.
        let updated = sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(to.as_str())
            .bind(self.now_ms)
            .bind(order_id)
            .bind(from.as_str())
            .execute(&mut *self.tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict { constraint: "order_status".into() });
        }
        let sql = match effect {
            StockEffect::None => None,
            StockEffect::Sell => Some(
                "UPDATE variants SET reserved = reserved - $1, sold = sold + $1, updated_at = $2 WHERE id = $3 AND reserved >= $1",
            ),
            StockEffect::Release => Some(
                "UPDATE variants SET reserved = reserved - $1, available = available + $1, updated_at = $2 WHERE id = $3 AND reserved >= $1",
            ),
        };
        if let Some(sql) = sql {
            let lines =
                sqlx::query("SELECT variant_id, quantity FROM order_lines WHERE order_id = $1 ORDER BY variant_id")
                    .bind(order_id)
                    .fetch_all(&mut *self.tx)
                    .await?;
            for line in lines {
                let variant: String = line.try_get("variant_id")?;
                let quantity: i64 = line.try_get("quantity")?;
                let done =
                    sqlx::query(sql).bind(quantity).bind(self.now_ms).bind(variant).execute(&mut *self.tx).await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Corrupt { what: "stock reservation" });
                }
            }
        }
        // The new entry repeats the commitments of the placement entry, taken
        // from the ledger (not from the row, which could have been edited), so
        // a receipt for this entry proves the same order.
        let placed: String =
            sqlx::query("SELECT entry FROM ledger_entries WHERE target = $1 AND kind = 'order_placed'")
                .bind(order_id)
                .fetch_optional(&mut *self.tx)
                .await?
                .ok_or(StoreError::Corrupt { what: "order ledger entry" })?
                .try_get("entry")?;
        let placed = Entry::from_canonical(&placed).map_err(|_| StoreError::Corrupt { what: "order ledger entry" })?;
        let change = json!({
            "from": from.as_str(),
            "to": to.as_str(),
            "snapshot_sha256": placed.change["snapshot_sha256"],
            "personal_commitment": placed.change["personal_commitment"],
        });
        let entry = self.append("order_status_changed", vec![order_id.to_owned()], change).await?;
        sqlx::query("UPDATE orders SET ledger_hash = $1 WHERE id = $2")
            .bind(entry.leaf_hex())
            .bind(order_id)
            .execute(&mut *self.tx)
            .await?;
        let totals = sqlx::query("SELECT number, total, currency FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&mut *self.tx)
            .await?;
        let number: i64 = totals.try_get("number")?;
        let total: i64 = totals.try_get("total")?;
        let currency: String = totals.try_get("currency")?;
        self.enqueue_webhook(
            &format!("order.{}", to.as_str()),
            json!({"order": {"id": order_id, "number": number, "status": to.as_str(), "total": total,
                             "currency": currency, "previous_status": from.as_str()}}),
        )
        .await?;
        Ok(StatusChange { from, to })
    }
}

impl Store {
    /// Ids of a customer's orders, newest first.
    pub async fn order_ids_of(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM orders WHERE customer_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(customer_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
    }

    /// One order with its lines.
    pub async fn order(&self, id: &str) -> Result<OrderView, StoreError> {
        let r = sqlx::query(
            "SELECT id, customer_id, data_subject, number, status, currency, subtotal, shipping, tax, total, email, \
                    shipping_address, created_at, updated_at, expires_at FROM orders WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound { what: "order" })?;
        let status: String = r.try_get("status")?;
        let lines = sqlx::query(
            "SELECT variant_id, sku, title, unit_price, quantity, line_total FROM order_lines \
             WHERE order_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|l| {
            Ok(OrderLineView {
                variant_id: l.try_get("variant_id")?,
                sku: l.try_get("sku")?,
                title: l.try_get("title")?,
                unit_price: l.try_get("unit_price")?,
                quantity: l.try_get("quantity")?,
                line_total: l.try_get("line_total")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        Ok(OrderView {
            id: r.try_get("id")?,
            customer_id: r.try_get("customer_id")?,
            data_subject: r.try_get("data_subject")?,
            number: r.try_get("number")?,
            status: OrderStatus::parse(&status).ok_or(StoreError::Corrupt { what: "order status" })?,
            currency: r.try_get("currency")?,
            subtotal: r.try_get("subtotal")?,
            shipping: r.try_get("shipping")?,
            tax: r.try_get("tax")?,
            total: r.try_get("total")?,
            email: r.try_get("email")?,
            shipping_address: r.try_get("shipping_address")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            expires_at: r.try_get("expires_at")?,
            lines,
        })
    }

    /// The ledger fields of an order: its latest entry's leaf hash and the
    /// key of its personal-data commitment (None once erased).
    pub async fn order_ledger_fields(&self, id: &str) -> Result<(String, Option<String>), StoreError> {
        let row = sqlx::query("SELECT ledger_hash, personal_key FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { what: "order" })?;
        Ok((row.try_get("ledger_hash")?, row.try_get("personal_key")?))
    }

    /// Ids of unpaid orders whose reservation has run out, oldest first.
    pub async fn expired_order_ids(&self, now_ms: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM orders WHERE status = 'pending_payment' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("id")).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    /// Number of orders, for tests and the status page.
    pub async fn order_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM orders").fetch_one(&self.pool).await?.try_get("n")?)
    }
}

impl Store {
    /// Forgets idempotency keys created before `before_ms`; a retry after
    /// that long is a new request. Returns how many were removed.
    pub async fn purge_idempotency_keys(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.purge_before(&["DELETE FROM idempotency_keys WHERE created_at < $1"], before_ms).await
    }
}
