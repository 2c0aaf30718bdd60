//! Payments, gateway events, refunds and order risk: the statements the
//! payment spine runs inside one [`WriteTx`], and their reads.
//!
//! Amount merges are idempotent on purpose: a gateway reports refunds as a
//! running total, events arrive out of order and twice, so stored totals
//! only ever move to the larger of what is stored and what is reported.

use crate::Store;
use crate::error::StoreError;
use crate::tx::WriteTx;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use storefort_core::OrderStatus;

/// The payment of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub order_id: String,
    pub gateway: String,
    pub session_id: Option<String>,
    pub session_url: Option<String>,
    pub attempts: i64,
    pub payment_intent: Option<String>,
    /// `open`, `succeeded` or `expired`.
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub amount_received: i64,
    pub amount_refunded: i64,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub failures: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const PAYMENT_COLUMNS: &str = "order_id, gateway, session_id, session_url, attempts, payment_intent, status, amount, \
     currency, amount_received, amount_refunded, card_brand, card_last4, failures, created_at, updated_at";

fn payment_row(r: &AnyRow) -> Result<PaymentRow, sqlx::Error> {
    Ok(PaymentRow {
        order_id: r.try_get("order_id")?,
        gateway: r.try_get("gateway")?,
        session_id: r.try_get("session_id")?,
        session_url: r.try_get("session_url")?,
        attempts: r.try_get("attempts")?,
        payment_intent: r.try_get("payment_intent")?,
        status: r.try_get("status")?,
        amount: r.try_get("amount")?,
        currency: r.try_get("currency")?,
        amount_received: r.try_get("amount_received")?,
        amount_refunded: r.try_get("amount_refunded")?,
        card_brand: r.try_get("card_brand")?,
        card_last4: r.try_get("card_last4")?,
        failures: r.try_get("failures")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A refund and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub id: String,
    pub order_id: String,
    pub key_hash: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub gateway_refund_id: Option<String>,
    pub failure: Option<String>,
    pub requested_by: String,
    pub created_at: i64,
}

const REFUND_COLUMNS: &str =
    "id, order_id, key_hash, amount, currency, status, gateway_refund_id, failure, requested_by, created_at";

fn refund_row(r: &AnyRow) -> Result<RefundRow, sqlx::Error> {
    Ok(RefundRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        key_hash: r.try_get("key_hash")?,
        amount: r.try_get("amount")?,
        currency: r.try_get("currency")?,
        status: r.try_get("status")?,
        gateway_refund_id: r.try_get("gateway_refund_id")?,
        failure: r.try_get("failure")?,
        requested_by: r.try_get("requested_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// An order's risk verdict as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskRow {
    pub order_id: String,
    pub decision: String,
    pub score: i64,
    /// The reasons as JSON, as the scorer wrote them.
    pub reasons: String,
    /// `held`, `approved` or `rejected` for orders sent to review.
    pub review: Option<String>,
    pub reviewed_by: Option<String>,
}

/// Counts over the risk window, for scoring a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RiskCounts {
    pub orders_from_ip: i64,
    pub orders_from_device: i64,
    pub attempts_from_ip: i64,
    pub failed_payments: i64,
}

/// Where a payment attempt came from (keyed hashes, never addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptOrigin {
    pub ip_hash: Option<String>,
    pub device_hash: Option<String>,
    pub customer_id: Option<String>,
}

/// What a proof of payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentApplied {
    /// The order went from pending_payment to paid.
    Paid,
    /// It was already paid (a duplicate or second proof): nothing changed.
    AlreadyPaid,
    /// The amount or currency differs from the snapshot: held for review.
    Mismatch { expected: i64 },
    /// The order was cancelled before the money arrived: held for review so
    /// staff refund it.
    OrderClosed,
}

/// The outcome of claiming a refund's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundClaim {
    /// A new refund, recorded as pending.
    New(RefundRow),
    /// The key was used before for the same amount: this refund answers it.
    Existing(RefundRow),
}

impl Store {
    /// The payment of an order, if one was started.
    pub async fn payment(&self, order_id: &str) -> Result<Option<PaymentRow>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(payment_row).transpose()?)
    }

    /// The order a gateway payment id or session id belongs to.
    pub async fn order_of_gateway_ref(&self, reference: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT order_id FROM payments WHERE payment_intent = $1 OR session_id = $1")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("order_id")).transpose()?)
    }

    /// Open payments of unpaid orders last touched before `before_ms`: the
    /// reconciliation job asks the gateway about these.
    pub async fn stale_open_payments(&self, before_ms: i64, limit: i64) -> Result<Vec<PaymentRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM payments p JOIN orders o ON o.id = p.order_id \
             WHERE p.status = 'open' AND p.session_id IS NOT NULL AND o.status = 'pending_payment' \
             AND p.updated_at < $1 ORDER BY p.updated_at LIMIT $2",
            PAYMENT_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before_ms).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(payment_row).collect::<Result<_, _>>()?)
    }

    /// Refunds of an order, oldest first.
    pub async fn refunds_of(&self, order_id: &str) -> Result<Vec<RefundRow>, StoreError> {
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(refund_row).collect::<Result<_, _>>()?)
    }

    /// Refunds still pending that were created before `before_ms` (a crash
    /// or a gateway outage left them): the reconciliation job retries them
    /// with their own idempotency key.
    pub async fn stale_pending_refunds(&self, before_ms: i64, limit: i64) -> Result<Vec<RefundRow>, StoreError> {
        let sql = format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE status = 'pending' AND updated_at < $1 ORDER BY created_at LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before_ms).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(refund_row).collect::<Result<_, _>>()?)
    }

    /// An order's risk verdict.
    pub async fn order_risk(&self, order_id: &str) -> Result<Option<RiskRow>, StoreError> {
        let row = sqlx::query(
            "SELECT order_id, decision, score, reasons, review, reviewed_by FROM order_risk WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(RiskRow {
                order_id: r.try_get("order_id")?,
                decision: r.try_get("decision")?,
                score: r.try_get("score")?,
                reasons: r.try_get("reasons")?,
                review: r.try_get("review")?,
                reviewed_by: r.try_get("reviewed_by")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Totals of the latest `limit` paid orders in `currency`: the history
    /// an order's total is compared with.
    pub async fn paid_order_totals(&self, currency: &str, limit: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT total FROM orders WHERE currency = $1 AND status IN ('paid', 'fulfilled', 'refunded') \
             ORDER BY created_at DESC LIMIT $2",
        )
        .bind(currency)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.try_get("total")).collect::<Result<_, _>>()?)
    }

    /// Orders, attempts and failures since `since_ms` from one origin.
    pub async fn risk_counts(&self, origin: &AttemptOrigin, since_ms: i64) -> Result<RiskCounts, StoreError> {
        let count = |sql: &'static str, key: Option<String>| {
            let pool = self.pool.clone();
            async move {
                let Some(key) = key else { return Ok::<i64, StoreError>(0) };
                let n: i64 = sqlx::query(sql).bind(key).bind(since_ms).fetch_one(&pool).await?.try_get("n")?;
                Ok(n)
            }
        };
        let orders_from_ip = count(
            "SELECT COUNT(*) AS n FROM order_risk WHERE ip_hash = $1 AND created_at >= $2",
            origin.ip_hash.clone(),
        )
        .await?;
        let orders_from_device = count(
            "SELECT COUNT(*) AS n FROM order_risk WHERE device_hash = $1 AND created_at >= $2",
            origin.device_hash.clone(),
        )
        .await?;
        let attempts_from_ip =
            count("SELECT COUNT(*) AS n FROM payment_attempts WHERE ip_hash = $1 AND at >= $2", origin.ip_hash.clone())
                .await?;
        let failed_ip = count(
            "SELECT COUNT(*) AS n FROM payment_attempts WHERE ip_hash = $1 AND at >= $2 AND failed = 1",
            origin.ip_hash.clone(),
        )
        .await?;
        let failed_customer = count(
            "SELECT COUNT(*) AS n FROM payment_attempts WHERE customer_id = $1 AND at >= $2 AND failed = 1",
            origin.customer_id.clone(),
        )
        .await?;
        Ok(RiskCounts {
            orders_from_ip,
            orders_from_device,
            attempts_from_ip,
            failed_payments: failed_ip.max(failed_customer),
        })
    }
}

impl Store {
    /// Forgets the origin hashes risk scoring no longer needs: attempts
    /// before `before_ms` go, and orders placed before it keep their
    /// verdict but lose the hashes. Returns how many rows changed.
    pub async fn purge_risk_origins(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.purge_before(
            &[
                "DELETE FROM payment_attempts WHERE at < $1",
                "UPDATE order_risk SET ip_hash = NULL, device_hash = NULL \
                 WHERE created_at < $1 AND (ip_hash IS NOT NULL OR device_hash IS NOT NULL)",
            ],
            before_ms,
        )
        .await
    }
}

impl WriteTx {
    async fn payment_for_update(&mut self, order_id: &str) -> Result<Option<PaymentRow>, StoreError> {
        // A no-op update first: on PostgreSQL it locks the row, so two
        // events or refunds for one order apply one after the other.
        sqlx::query("UPDATE payments SET updated_at = updated_at WHERE order_id = $1")
            .bind(order_id)
            .execute(&mut *self.tx)
            .await?;
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_optional(&mut *self.tx).await?;
        Ok(row.as_ref().map(payment_row).transpose()?)
    }

    async fn order_status_and_total(&mut self, order_id: &str) -> Result<(OrderStatus, i64, String), StoreError> {
        let row = sqlx::query("SELECT status, total, currency FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::NotFound { what: "order" })?;
        let status: String = row.try_get("status")?;
        let status = OrderStatus::parse(&status).ok_or(StoreError::Corrupt { what: "order status" })?;
        Ok((status, row.try_get("total")?, row.try_get("currency")?))
    }

    /// Records a newly opened payment page as attempt `attempt` (the
    /// previous count plus one). False when another request opened that
    /// attempt first; its page is then the one to use.
    #[expect(clippy::too_many_arguments, reason = "one row's worth of facts, named at the call")]
    pub async fn record_payment_session(
        &mut self,
        order_id: &str,
        gateway: &str,
        attempt: i64,
        session_id: &str,
        session_url: Option<&str>,
        amount: i64,
        currency: &str,
        holds_until: i64,
        origin: &AttemptOrigin,
    ) -> Result<bool, StoreError> {
        let updated = if attempt == 1 {
            sqlx::query(
                "INSERT INTO payments (order_id, gateway, session_id, session_url, attempts, status, amount, currency, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, 1, 'open', $5, $6, $7, $7) ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order_id)
            .bind(gateway)
            .bind(session_id)
            .bind(session_url)
            .bind(amount)
            .bind(currency)
            .bind(self.now_ms)
            .execute(&mut *self.tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE payments SET session_id = $1, session_url = $2, attempts = $3, status = 'open', gateway = $4, \
                 updated_at = $5 WHERE order_id = $6 AND attempts = $7 AND status <> 'succeeded'",
            )
            .bind(session_id)
            .bind(session_url)
            .bind(attempt)
            .bind(gateway)
            .bind(self.now_ms)
            .bind(order_id)
            .bind(attempt - 1)
            .execute(&mut *self.tx)
            .await?
        };
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        // The reservation lasts at least as long as the payment page, so a
        // customer paying on time never pays for a cancelled order.
        sqlx::query(
            "UPDATE orders SET expires_at = $1 WHERE id = $2 AND status = 'pending_payment' AND expires_at < $1",
        )
        .bind(holds_until)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO payment_attempts (id, order_id, ip_hash, device_hash, customer_id, failed, at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(order_id)
        .bind(origin.ip_hash.clone())
        .bind(origin.device_hash.clone())
        .bind(origin.customer_id.clone())
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        self.append(
            "payment_session_opened",
            vec![order_id.to_owned()],
            json!({"gateway": gateway, "session": session_id, "attempt": attempt, "amount": amount, "currency": currency,
                   "holds_until": holds_until}),
        )
        .await?;
        Ok(true)
    }

    /// Claims a gateway event id. False if it was seen before: a replay,
    /// which must change nothing. On PostgreSQL a concurrent claim of the
    /// same id waits for the first transaction, then sees the conflict.
    pub async fn claim_gateway_event(
        &mut self,
        event_id: &str,
        gateway: &str,
        kind: &str,
        order_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO gateway_events (event_id, gateway, kind, order_id, outcome, received_at) \
             VALUES ($1, $2, $3, $4, 'received', $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(gateway)
        .bind(kind)
        .bind(order_id)
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notes what an event did, for the delivery log.
    pub async fn set_gateway_event_outcome(&mut self, event_id: &str, outcome: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE gateway_events SET outcome = $1 WHERE event_id = $2")
            .bind(outcome)
            .bind(event_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Applies proof of payment from a verified gateway event: the order is
    /// marked paid only when amount and currency equal its snapshot.
    pub async fn record_payment_proof(
        &mut self,
        order_id: &str,
        gateway: &str,
        payment_intent: Option<&str>,
        amount: i64,
        currency: &str,
    ) -> Result<PaymentApplied, StoreError> {
        // The payment row is locked first (payments, then the order, then
        // its variants, then the ledger head: the order every payment write
        // takes its locks in), so two proofs for one order apply in turn.
        let payment = self.payment_for_update(order_id).await?;
        let (status, total, order_currency) = self.order_status_and_total(order_id).await?;
        if payment.is_none() {
            // Paid without a page the store opened (a manual payment, or a
            // session whose record was lost): keep the facts anyway.
            sqlx::query(
                "INSERT INTO payments (order_id, gateway, attempts, status, amount, currency, created_at, updated_at) \
                 VALUES ($1, $2, 0, 'open', $3, $4, $5, $5)",
            )
            .bind(order_id)
            .bind(gateway)
            .bind(total)
            .bind(order_currency.clone())
            .bind(self.now_ms)
            .execute(&mut *self.tx)
            .await?;
        }
        if amount != total || !currency.eq_ignore_ascii_case(&order_currency) {
            // Recorded by the caller, with the review it triggers.
            return Ok(PaymentApplied::Mismatch { expected: total });
        }
        sqlx::query(
            "UPDATE payments SET status = 'succeeded', amount_received = $1, \
             payment_intent = COALESCE(payment_intent, $2), updated_at = $3 WHERE order_id = $4",
        )
        .bind(amount)
        .bind(payment_intent)
        .bind(self.now_ms)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        match status {
            OrderStatus::PendingPayment => {
                self.transition_order(order_id, OrderStatus::Paid).await?;
                self.append(
                    "payment_received",
                    vec![order_id.to_owned()],
                    json!({"gateway": gateway, "payment": payment_intent, "amount": amount, "currency": order_currency}),
                )
                .await?;
                // Refunds the gateway reported before this proof arrived.
                self.settle_refunded(order_id).await?;
                Ok(PaymentApplied::Paid)
            }
            // Recorded by the caller, with the review it triggers.
            OrderStatus::Cancelled => Ok(PaymentApplied::OrderClosed),
            _ => Ok(PaymentApplied::AlreadyPaid),
        }
    }

    /// Records the payment id the gateway uses, once known.
    pub async fn record_payment_intent(&mut self, order_id: &str, payment_intent: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE payments SET payment_intent = $1, updated_at = $2 WHERE order_id = $3 AND payment_intent IS NULL",
        )
        .bind(payment_intent)
        .bind(self.now_ms)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Counts a failed payment attempt. The order stays payable.
    pub async fn record_payment_failure(&mut self, order_id: &str, reason: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE payments SET failures = failures + 1, updated_at = $1 WHERE order_id = $2")
            .bind(self.now_ms)
            .bind(order_id)
            .execute(&mut *self.tx)
            .await?;
        // Each failure counts as an attempt of its own that failed, from the
        // origin of the page it happened on: three declined cards on one
        // page are three failures.
        sqlx::query(
            "INSERT INTO payment_attempts (id, order_id, ip_hash, device_hash, customer_id, failed, at) \
             SELECT $1, order_id, ip_hash, device_hash, customer_id, 1, $2 FROM payment_attempts \
             WHERE order_id = $3 ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(self.now_ms)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        self.append("payment_failed", vec![order_id.to_owned()], json!({"reason": reason})).await?;
        Ok(())
    }

    /// Stores the card brand and last four digits the gateway reported.
    pub async fn record_card(&mut self, order_id: &str, brand: &str, last4: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE payments SET card_brand = $1, card_last4 = $2, updated_at = $3 WHERE order_id = $4 \
             AND (card_brand IS NULL OR card_brand <> $1 OR card_last4 <> $2)",
        )
        .bind(brand)
        .bind(last4)
        .bind(self.now_ms)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 1 {
            // The digits stay out of the ledger: it is forever.
            self.append("payment_card_reported", vec![order_id.to_owned()], json!({})).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// Merges the gateway's running refund total. True when it grew.
    pub async fn record_gateway_refunds(&mut self, order_id: &str, cumulative: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE payments SET amount_refunded = $1, updated_at = $2 WHERE order_id = $3 AND amount_refunded < $1",
        )
        .bind(cumulative)
        .bind(self.now_ms)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        self.settle_refunded(order_id).await?;
        self.append("refund_reported", vec![order_id.to_owned()], json!({"refunded_total": cumulative})).await?;
        Ok(true)
    }

    /// Marks a paid order refunded once everything received went back.
    async fn settle_refunded(&mut self, order_id: &str) -> Result<(), StoreError> {
        let (status, _, _) = self.order_status_and_total(order_id).await?;
        let Some(p) = self.payment_for_update(order_id).await? else { return Ok(()) };
        let fully = p.amount_received > 0 && p.amount_refunded >= p.amount_received;
        if fully && matches!(status, OrderStatus::Paid | OrderStatus::Fulfilled) {
            self.transition_order(order_id, OrderStatus::Refunded).await?;
        }
        Ok(())
    }

    /// The page expired unpaid: the next payment attempt opens a new one.
    pub async fn record_session_expired(&mut self, order_id: &str, session_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE payments SET status = 'expired', updated_at = $1 WHERE order_id = $2 AND session_id = $3 AND status = 'open'",
        )
        .bind(self.now_ms)
        .bind(order_id)
        .bind(session_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 1 {
            self.append("payment_session_expired", vec![order_id.to_owned()], json!({"session": session_id})).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// Claims a refund for `key_hash`. The amount must fit in what was
    /// received minus what is refunded or being refunded; a key reused for
    /// another amount is refused.
    pub async fn claim_refund(
        &mut self,
        order_id: &str,
        key_hash: &str,
        amount: i64,
        requested_by: &str,
    ) -> Result<RefundClaim, StoreError> {
        let payment = self.payment_for_update(order_id).await?;
        let (status, _, currency) = self.order_status_and_total(order_id).await?;
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE key_hash = $1");
        if let Some(existing) =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key_hash).fetch_optional(&mut *self.tx).await?
        {
            let existing = refund_row(&existing)?;
            if existing.order_id != order_id || existing.amount != amount {
                return Err(StoreError::IdempotencyMismatch);
            }
            return Ok(RefundClaim::Existing(existing));
        }
        // A cancelled order can still hold money (paid on a page left open
        // after it was cancelled): that money must be able to go back.
        let took_money = payment.as_ref().is_some_and(|p| p.amount_received > 0);
        let refundable = matches!(status, OrderStatus::Paid | OrderStatus::Fulfilled)
            || (status == OrderStatus::Cancelled && took_money);
        if !refundable {
            return Err(StoreError::Transition(storefort_core::TransitionError {
                from: status,
                to: OrderStatus::Refunded,
            }));
        }
        let payment = payment.ok_or(StoreError::NotFound { what: "payment" })?;
        let in_flight: i64 =
            sqlx::query("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM refunds WHERE order_id = $1 AND status = 'pending'")
                .bind(order_id)
                .fetch_one(&mut *self.tx)
                .await?
                .try_get("n")?;
        let succeeded: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM refunds WHERE order_id = $1 AND status = 'succeeded'",
        )
        .bind(order_id)
        .fetch_one(&mut *self.tx)
        .await?
        .try_get("n")?;
        // Refunds made outside the store show up only in the gateway's
        // running total, so the larger of the two is what is gone.
        let refunded = payment.amount_refunded.max(succeeded);
        let available = payment.amount_received - refunded - in_flight;
        if amount > available {
            return Err(StoreError::RefundExceedsCaptured { available: available.max(0) });
        }
        let row = RefundRow {
            id: uuid::Uuid::now_v7().to_string(),
            order_id: order_id.to_owned(),
            key_hash: key_hash.to_owned(),
            amount,
            currency,
            status: "pending".into(),
            gateway_refund_id: None,
            failure: None,
            requested_by: requested_by.to_owned(),
            created_at: self.now_ms,
        };
        sqlx::query(
            "INSERT INTO refunds (id, order_id, key_hash, amount, currency, status, requested_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7)",
        )
        .bind(row.id.clone())
        .bind(order_id)
        .bind(key_hash)
        .bind(amount)
        .bind(row.currency.clone())
        .bind(requested_by)
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        self.append(
            "refund_requested",
            vec![order_id.to_owned(), row.id.clone()],
            json!({"amount": amount, "currency": row.currency}),
        )
        .await?;
        Ok(RefundClaim::New(row))
    }

    /// Settles a pending refund with the gateway's answer. Returns false if
    /// it was already settled (a retry).
    pub async fn finish_refund(
        &mut self,
        refund_id: &str,
        succeeded: bool,
        gateway_refund_id: Option<&str>,
        failure: Option<&str>,
    ) -> Result<bool, StoreError> {
        let status = if succeeded { "succeeded" } else { "failed" };
        let order_id: String = sqlx::query("SELECT order_id FROM refunds WHERE id = $1")
            .bind(refund_id)
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::NotFound { what: "refund" })?
            .try_get("order_id")?;
        self.payment_for_update(&order_id).await?;
        let done = sqlx::query(
            "UPDATE refunds SET status = $1, gateway_refund_id = $2, failure = $3, updated_at = $4 \
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status)
        .bind(gateway_refund_id)
        .bind(failure)
        .bind(self.now_ms)
        .bind(refund_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let amount: i64 = sqlx::query("SELECT amount FROM refunds WHERE id = $1")
            .bind(refund_id)
            .fetch_one(&mut *self.tx)
            .await?
            .try_get("amount")?;
        if succeeded {
            let total: i64 = sqlx::query(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM refunds WHERE order_id = $1 AND status = 'succeeded'",
            )
            .bind(order_id.clone())
            .fetch_one(&mut *self.tx)
            .await?
            .try_get("n")?;
            sqlx::query(
                "UPDATE payments SET amount_refunded = $1, updated_at = $2 WHERE order_id = $3 AND amount_refunded < $1",
            )
            .bind(total)
            .bind(self.now_ms)
            .bind(order_id.clone())
            .execute(&mut *self.tx)
            .await?;
            self.settle_refunded(&order_id).await?;
            let currency: String = sqlx::query("SELECT currency FROM refunds WHERE id = $1")
                .bind(refund_id)
                .fetch_one(&mut *self.tx)
                .await?
                .try_get("currency")?;
            self.enqueue_webhook(
                "refund.succeeded",
                json!({"refund": {"id": refund_id, "order_id": order_id, "amount": amount, "currency": currency},
                       "order": {"id": order_id}}),
            )
            .await?;
        }
        self.append(
            if succeeded { "refund_completed" } else { "refund_failed" },
            vec![order_id.clone(), refund_id.to_owned()],
            json!({"amount": amount, "gateway_refund": gateway_refund_id}),
        )
        .await?;
        Ok(true)
    }

    /// Stores an order's risk verdict; a `review` verdict holds the order.
    pub async fn insert_order_risk(
        &mut self,
        order_id: &str,
        decision: &str,
        score: i64,
        reasons_json: &str,
        origin: &AttemptOrigin,
    ) -> Result<(), StoreError> {
        let review = (decision == "review").then_some("held");
        sqlx::query(
            "INSERT INTO order_risk (order_id, decision, score, reasons, review, ip_hash, device_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(order_id)
        .bind(decision)
        .bind(score)
        .bind(reasons_json)
        .bind(review)
        .bind(origin.ip_hash.clone())
        .bind(origin.device_hash.clone())
        .bind(self.now_ms)
        .execute(&mut *self.tx)
        .await?;
        let reasons: serde_json::Value = serde_json::from_str(reasons_json).unwrap_or_default();
        self.append(
            "order_risk_assessed",
            vec![order_id.to_owned()],
            json!({"decision": decision, "score": score, "reasons": reasons}),
        )
        .await?;
        Ok(())
    }

    /// Replaces an order's verdict after a later finding (an amount
    /// mismatch); a held order stays held.
    pub async fn update_order_risk(
        &mut self,
        order_id: &str,
        decision: &str,
        score: i64,
        reasons_json: &str,
    ) -> Result<(), StoreError> {
        let review = matches!(decision, "review" | "block").then_some("held");
        let done = sqlx::query(
            "UPDATE order_risk SET decision = $1, score = $2, reasons = $3, review = COALESCE($4, review), \
             updated_at = $5 WHERE order_id = $6",
        )
        .bind(decision)
        .bind(score)
        .bind(reasons_json)
        .bind(review)
        .bind(self.now_ms)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            // Orders placed before risk scoring existed have no row yet.
            sqlx::query(
                "INSERT INTO order_risk (order_id, decision, score, reasons, review, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(order_id)
            .bind(decision)
            .bind(score)
            .bind(reasons_json)
            .bind(review)
            .bind(self.now_ms)
            .execute(&mut *self.tx)
            .await?;
        }
        let reasons: serde_json::Value = serde_json::from_str(reasons_json).unwrap_or_default();
        self.append(
            "order_risk_assessed",
            vec![order_id.to_owned()],
            json!({"decision": decision, "score": score, "reasons": reasons}),
        )
        .await?;
        Ok(())
    }

    /// Staff decide on a held order: approved orders may be fulfilled.
    pub async fn review_order(&mut self, order_id: &str, approve: bool, reviewer: &str) -> Result<(), StoreError> {
        let outcome = if approve { "approved" } else { "rejected" };
        let done = sqlx::query(
            "UPDATE order_risk SET review = $1, reviewed_by = $2, updated_at = $3 WHERE order_id = $4 AND review = 'held'",
        )
        .bind(outcome)
        .bind(reviewer)
        .bind(self.now_ms)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict { constraint: "order_not_held".into() });
        }
        self.append("order_reviewed", vec![order_id.to_owned()], json!({"review": outcome})).await?;
        Ok(())
    }

    /// True while an order waits for staff review.
    pub(crate) async fn is_held(&mut self, order_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT review FROM order_risk WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        let review: Option<String> = match row {
            Some(r) => r.try_get("review")?,
            None => None,
        };
        Ok(matches!(review.as_deref(), Some("held" | "rejected")))
    }

    /// Forgets the card digits and origin hashes of an erased person's orders.
    pub(crate) async fn erase_payment_details(&mut self, order_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE payments SET card_brand = NULL, card_last4 = NULL WHERE order_id = $1")
            .bind(order_id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("UPDATE order_risk SET ip_hash = NULL, device_hash = NULL WHERE order_id = $1")
            .bind(order_id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "UPDATE payment_attempts SET ip_hash = NULL, device_hash = NULL, customer_id = NULL WHERE order_id = $1",
        )
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
