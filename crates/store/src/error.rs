//! What the store can refuse, as business facts, plus database failures.

use storefort_core::TransitionError;

/// A refused or failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("not enough stock for {sku}")]
    OutOfStock { sku: String, line: usize },
    #[error("the cart has already been checked out")]
    CartCheckedOut,
    #[error("the idempotency key was already used with a different request")]
    IdempotencyMismatch,
    #[error(transparent)]
    Cart(#[from] storefort_core::CartError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the change conflicts with the current state ({constraint})")]
    Conflict { constraint: String },
    #[error("a stored {what} is corrupt")]
    Corrupt { what: &'static str },
    #[error("the refund is more than is left to refund ({available})")]
    RefundExceedsCaptured { available: i64 },
    #[error("the order is held for review")]
    HeldForReview,
    #[error("a change was about to be committed without a ledger entry")]
    Unrecorded,
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    /// Constraint violations are conflicts with the current state (4xx at the
    /// edge), not server failures; everything else is a database error.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            use sqlx::error::ErrorKind::*;
            if matches!(db.kind(), UniqueViolation | ForeignKeyViolation | CheckViolation | NotNullViolation) {
                return StoreError::Conflict { constraint: db.constraint().unwrap_or("constraint").to_owned() };
            }
        }
        StoreError::Database(e)
    }
}

impl StoreError {
    /// True when retrying the same operation may succeed (busy database).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
    }
}
