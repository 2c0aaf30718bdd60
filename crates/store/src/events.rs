//! The security event sink: a table plus the `security` log target.

use crate::Store;
use crate::error::StoreError;
use sqlx::{AnyConnection, Row};
use storefort_core::SecurityEvent;
use storefort_core::event::DetailValue;

/// An event as read back from the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredEvent {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub severity: String,
    pub actor: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

fn detail_json(e: &SecurityEvent) -> String {
    let map: serde_json::Map<String, serde_json::Value> = e
        .detail
        .iter()
        .map(|(k, v)| {
            let v = match v {
                DetailValue::Int(i) => serde_json::Value::from(*i),
                DetailValue::Code(s) => serde_json::Value::from(s.as_str()),
            };
            ((*k).to_owned(), v)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

pub(crate) async fn insert(conn: &mut AnyConnection, e: &SecurityEvent, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO security_events (id, at, kind, severity, actor, target, request_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(now_ms)
    .bind(e.kind.as_str())
    .bind(e.severity.as_str())
    .bind(e.actor.label().into_owned())
    .bind(e.target.clone())
    .bind(e.request_id.clone())
    .bind(detail_json(e))
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the event to the structured log under the `security` target.
pub(crate) fn log(e: &SecurityEvent) {
    let detail = detail_json(e);
    tracing::info!(
        target: "security",
        kind = e.kind.as_str(),
        severity = e.severity.as_str(),
        actor = %e.actor.label(),
        target_id = e.target.as_deref().unwrap_or(""),
        request_id = e.request_id.as_deref().unwrap_or(""),
        detail = %detail,
        "security event"
    );
}

impl Store {
    /// Records an event that accompanies no state change (a refused login,
    /// a denied order lookup).
    pub async fn record_event(&self, e: &SecurityEvent, now_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert(&mut conn, e, now_ms).await?;
        log(e);
        Ok(())
    }

    /// The most recent events, newest first.
    pub async fn recent_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, kind, severity, actor, target, request_id, detail FROM security_events \
             ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_event).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }

    /// Events about an account (as target or actor), newest first.
    pub async fn events_about(&self, account_id: &str, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, kind, severity, actor, target, request_id, detail FROM security_events \
             WHERE target = $1 OR actor = $2 ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(format!("account:{account_id}"))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_event).collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)
    }
}

fn stored_event(r: &sqlx::any::AnyRow) -> Result<StoredEvent, sqlx::Error> {
    let detail: String = r.try_get("detail")?;
    Ok(StoredEvent {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        kind: r.try_get("kind")?,
        severity: r.try_get("severity")?,
        actor: r.try_get("actor")?,
        target: r.try_get("target")?,
        request_id: r.try_get("request_id")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}
