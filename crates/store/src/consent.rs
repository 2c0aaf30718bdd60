//! Consent history and the aggregated analytics that depend on it.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use serde_json::json;
use sqlx::Row;

/// A subject's latest choice for one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    pub purpose: String,
    pub granted: bool,
    pub text_version: String,
    pub source: String,
    pub at: i64,
}

/// One grant or withdrawal to record.
#[derive(Debug, Clone)]
pub struct ConsentChange<'a> {
    pub subject: &'a str,
    pub purpose: &'a str,
    pub granted: bool,
    pub text_version: &'a str,
    pub source: &'a str,
}

impl Store {
    /// The latest choice per purpose of `subject`.
    pub async fn consents_of(&self, subject: &str) -> Result<Vec<ConsentState>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.purpose, c.granted, c.text_version, c.source, c.at FROM consents c \
             WHERE c.subject = $1 AND c.id = (SELECT d.id FROM consents d WHERE d.subject = c.subject \
               AND d.purpose = c.purpose ORDER BY d.at DESC, d.id DESC LIMIT 1) ORDER BY c.purpose",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentState {
                    purpose: r.try_get("purpose")?,
                    granted: r.try_get::<i64, _>("granted")? == 1,
                    text_version: r.try_get("text_version")?,
                    source: r.try_get("source")?,
                    at: r.try_get("at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Whether `subject`'s latest choice for `purpose` is a grant of the
    /// text version `version` (a grant of an older text does not count).
    pub async fn consents_to(&self, subject: &str, purpose: &str, version: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT granted, text_version FROM consents WHERE subject = $1 AND purpose = $2 \
             ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(subject)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>("granted")? == 1 && r.try_get::<String, _>("text_version")? == version,
            None => false,
        })
    }

    /// Accounts whose latest choice for `purpose` grants `version`.
    pub async fn accounts_consenting(&self, purpose: &str, version: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id FROM accounts a JOIN consents c ON c.subject = a.id \
             WHERE a.status = 'active' AND c.purpose = $1 AND c.id = (SELECT d.id FROM consents d \
               WHERE d.subject = a.id AND d.purpose = $1 ORDER BY d.at DESC, d.id DESC LIMIT 1) \
             AND c.granted = 1 AND c.text_version = $2 ORDER BY a.id",
        )
        .bind(purpose)
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
    }

    /// Counts a page view (callers check analytics consent first).
    pub async fn count_page_view(&self, day: &str, path: &str) -> Result<(), StoreError> {
        let writer = self.lock_writer().await;
        sqlx::query(
            "INSERT INTO analytics_daily (day, path, views) VALUES ($1, $2, 1) \
             ON CONFLICT (day, path) DO UPDATE SET views = analytics_daily.views + 1",
        )
        .bind(day)
        .bind(path)
        .execute(&self.pool)
        .await?;
        drop(writer);
        Ok(())
    }

    /// Views counted for a day and path.
    pub async fn page_views(&self, day: &str, path: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT views FROM analytics_daily WHERE day = $1 AND path = $2")
            .bind(day)
            .bind(path)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("views")).transpose()?.unwrap_or(0))
    }
}

impl WriteTx {
    /// Records a grant or withdrawal, with its ledger entry.
    pub async fn record_consent(&mut self, c: &ConsentChange<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (id, subject, purpose, granted, text_version, source, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(c.subject)
        .bind(c.purpose)
        .bind(i64::from(c.granted))
        .bind(c.text_version)
        .bind(c.source)
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        self.append(
            if c.granted { "consent_granted" } else { "consent_withdrawn" },
            vec![c.subject.to_owned()],
            json!({"purpose": c.purpose, "text_version": c.text_version, "source": c.source}),
        )
        .await?;
        Ok(())
    }
}
