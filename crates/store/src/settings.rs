//! Small named settings the store keeps in its own database.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use sqlx::Row;

impl Store {
    /// Reads a setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT value FROM settings WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }
}

impl WriteTx {
    /// Writes a setting, replacing any earlier value.
    pub async fn set_setting(&mut self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

impl WriteTx {
    /// Writes a setting only if it has no value yet; true when written. Two
    /// instances starting at once therefore cannot both claim a first start.
    pub async fn insert_setting_if_absent(&mut self, name: &str, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
