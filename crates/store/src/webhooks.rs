//! Outgoing webhooks: the endpoints integrations registered, and their
//! deliveries. A delivery is written in the same transaction as the change
//! it reports (an outbox), so integrations hear of every committed change
//! and of nothing that was rolled back.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

/// The event types integrations can subscribe to.
pub const WEBHOOK_EVENTS: [&str; 6] =
    ["order.created", "order.paid", "order.fulfilled", "order.cancelled", "order.refunded", "refund.succeeded"];

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    /// The signing secret, sealed under the server key.
    pub secret_sealed: String,
    /// Subscribed event types; `*` for all.
    pub events: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub created_by: String,
    pub created_at: i64,
}

fn endpoint_row(r: &AnyRow) -> Result<EndpointRow, sqlx::Error> {
    let events: String = r.try_get("events")?;
    Ok(EndpointRow {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        secret_sealed: r.try_get("secret")?,
        events: events.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
        status: r.try_get("status")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// One event for one endpoint, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, \
     last_status, last_error, created_at, delivered_at";

fn delivery_row(r: &AnyRow) -> Result<DeliveryRow, sqlx::Error> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The endpoint answered 2xx.
    Delivered { status: i64 },
    /// Try again at `next_attempt_at`.
    Retry { status: Option<i64>, error: String, next_attempt_at: i64 },
    /// No more tries.
    Failed { status: Option<i64>, error: String },
}

impl WriteTx {
    /// Registers an endpoint, through the ledger (an integration that
    /// receives order events is an admin decision worth proving).
    pub async fn insert_webhook_endpoint(
        &mut self,
        id: &str,
        url: &str,
        secret_sealed: &str,
        events: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, secret, events, status, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $6)",
        )
        .bind(id)
        .bind(url)
        .bind(secret_sealed)
        .bind(format!(",{},", events.join(",")))
        .bind(self.actor.clone())
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        self.append("webhook_endpoint_created", vec![id.to_owned()], json!({"url": url, "events": events})).await?;
        Ok(())
    }

    /// Disables an endpoint; its pending deliveries are dropped.
    pub async fn disable_webhook_endpoint(&mut self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET status = 'disabled', updated_at = $1 WHERE id = $2 AND status = 'active'",
        )
        .bind(self.now_ms)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint disabled' \
             WHERE endpoint_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        self.append("webhook_endpoint_disabled", vec![id.to_owned()], json!({})).await?;
        Ok(true)
    }

    /// Queues `event_type` with `data` for every active endpoint that
    /// subscribed to it, in this transaction.
    pub(crate) async fn enqueue_webhook(&mut self, event_type: &str, data: Value) -> Result<(), StoreError> {
        let event_id = format!("evt_{}", uuid::Uuid::now_v7().simple());
        let payload = json!({"id": event_id, "object": "event", "type": event_type, "created": self.now_ms / 1000,
                             "data": data});
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload, status, attempts, \
             next_attempt_at, created_at) \
             SELECT $1 || ':' || id, id, $1, $2, $3, 'pending', 0, $4, $4 FROM webhook_endpoints \
             WHERE status = 'active' AND (events = ',*,' OR events LIKE $5)",
        )
        .bind(event_id)
        .bind(event_type)
        .bind(payload.to_string())
        .bind(self.now_ms)
        .bind(format!("%,{event_type},%"))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Every endpoint, newest first.
    pub async fn webhook_endpoints(&self) -> Result<Vec<EndpointRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, url, secret, events, status, created_by, created_at FROM webhook_endpoints \
             ORDER BY created_at DESC, id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(endpoint_row).collect::<Result<_, _>>()?)
    }

    /// One endpoint.
    pub async fn webhook_endpoint(&self, id: &str) -> Result<Option<EndpointRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, url, secret, events, status, created_by, created_at FROM webhook_endpoints WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(endpoint_row).transpose()?)
    }

    /// An endpoint's deliveries, newest first: the delivery log.
    pub async fn webhook_deliveries(&self, endpoint_id: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(endpoint_id).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(delivery_row).collect::<Result<_, _>>()?)
    }

    /// Takes up to `limit` due deliveries for this instance: each is leased
    /// (its next attempt moved `lease_ms` ahead by a conditional update), so
    /// two instances never send the same attempt, and one that dies
    /// mid-send leaves the delivery to be retried when the lease runs out.
    pub async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2"
        );
        let due = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(limit).fetch_all(&self.pool).await?;
        let mut claimed = Vec::new();
        for r in &due {
            let mut d = delivery_row(r)?;
            let writer = self.lock_writer().await;
            let done = sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id = $2 AND status = 'pending' \
                 AND next_attempt_at = $3",
            )
            .bind(now_ms + lease_ms)
            .bind(d.id.clone())
            .bind(d.next_attempt_at)
            .execute(&self.pool)
            .await?;
            drop(writer);
            if done.rows_affected() == 1 {
                d.next_attempt_at = now_ms + lease_ms;
                claimed.push(d);
            }
        }
        Ok(claimed)
    }

    /// Forgets finished deliveries created before `before_ms`.
    pub async fn purge_webhook_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.purge_before(&["DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1"], before_ms)
            .await
    }

    /// Records one attempt's outcome.
    pub async fn record_delivery_attempt(
        &self,
        id: &str,
        now_ms: i64,
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        let (status, code, error, next, delivered) = match outcome {
            AttemptOutcome::Delivered { status } => ("delivered", Some(*status), None, now_ms, Some(now_ms)),
            AttemptOutcome::Retry { status, error, next_attempt_at } => {
                ("pending", *status, Some(error.clone()), *next_attempt_at, None)
            }
            AttemptOutcome::Failed { status, error } => ("failed", *status, Some(error.clone()), now_ms, None),
        };
        let writer = self.lock_writer().await;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status = $2, last_error = $3, \
             next_attempt_at = $4, delivered_at = $5 WHERE id = $6 AND status = 'pending'",
        )
        .bind(status)
        .bind(code)
        .bind(error)
        .bind(next)
        .bind(delivered)
        .bind(id)
        .execute(&self.pool)
        .await?;
        drop(writer);
        self.durable().await?;
        Ok(())
    }
}
