//! Stripe event objects, reduced to [`GatewayEvent`]s.
//!
//! Only call this on a body whose signature was verified: the parse trusts
//! what the event says. Types the store does not act on become
//! [`GatewayEvent::Ignored`], so they can be acknowledged (Stripe retries
//! anything that is not a 2xx for days).

use crate::gateway::{Card, GatewayEvent, ParsedEvent};
use serde_json::Value;

/// Why a signed body is still not an event we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event is malformed: {0}")]
pub struct MalformedEvent(pub &'static str);

/// The event types the store acts on; enable these on the webhook endpoint.
pub const HANDLED_EVENTS: [&str; 8] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "charge.refunded",
];

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn owned(v: &Value, key: &str) -> Option<String> {
    str_of(v, key).map(str::to_owned)
}

fn id_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(_) => v.get(key).and_then(|o| owned(o, "id")),
        _ => None,
    }
}

fn amount(v: &Value, key: &str) -> Result<i64, MalformedEvent> {
    v.get(key).and_then(Value::as_i64).filter(|a| *a >= 0).ok_or(MalformedEvent("an amount is missing or negative"))
}

fn currency(v: &Value) -> Result<String, MalformedEvent> {
    str_of(v, "currency")
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase)
        .ok_or(MalformedEvent("the currency is missing"))
}

/// The order an object belongs to: our metadata first, then the session's
/// client reference.
fn order_of(object: &Value) -> Option<String> {
    object.get("metadata").and_then(|m| owned(m, "order_id")).or_else(|| owned(object, "client_reference_id"))
}

/// Parses a verified event body.
pub fn parse(body: &[u8]) -> Result<ParsedEvent, MalformedEvent> {
    let event: Value = serde_json::from_slice(body).map_err(|_| MalformedEvent("not JSON"))?;
    if str_of(&event, "object") != Some("event") {
        return Err(MalformedEvent("not an event object"));
    }
    let id = owned(&event, "id")
        .filter(|id| (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .ok_or(MalformedEvent("the event id is missing"))?;
    let kind = owned(&event, "type").ok_or(MalformedEvent("the event type is missing"))?;
    let created = event.get("created").and_then(Value::as_i64).unwrap_or(0);
    let object = event.get("data").and_then(|d| d.get("object")).ok_or(MalformedEvent("data.object is missing"))?;
    let parsed = match kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => GatewayEvent::CheckoutCompleted {
            order_id: order_of(object),
            session_id: owned(object, "id").ok_or(MalformedEvent("the session id is missing"))?,
            payment_intent: id_of(object, "payment_intent"),
            amount: amount(object, "amount_total")?,
            currency: currency(object)?,
            paid: str_of(object, "payment_status") == Some("paid"),
        },
        "payment_intent.succeeded" => GatewayEvent::PaymentSucceeded {
            order_id: order_of(object),
            payment_intent: owned(object, "id").ok_or(MalformedEvent("the payment intent id is missing"))?,
            amount: amount(object, "amount_received")?,
            currency: currency(object)?,
        },
        "payment_intent.payment_failed" => GatewayEvent::PaymentFailed {
            order_id: order_of(object),
            payment_intent: owned(object, "id"),
            reason: object
                .get("last_payment_error")
                .and_then(|e| owned(e, "decline_code").or_else(|| owned(e, "code"))),
        },
        "checkout.session.async_payment_failed" => GatewayEvent::PaymentFailed {
            order_id: order_of(object),
            payment_intent: id_of(object, "payment_intent"),
            reason: Some("async_payment_failed".into()),
        },
        "charge.succeeded" => {
            let card = object
                .get("payment_method_details")
                .and_then(|d| d.get("card"))
                .and_then(|c| Card::reported(str_of(c, "brand")?, str_of(c, "last4")?));
            match (id_of(object, "payment_intent"), card) {
                (Some(payment_intent), Some(card)) => GatewayEvent::CardReported { payment_intent, card },
                _ => GatewayEvent::Ignored,
            }
        }
        "charge.refunded" => GatewayEvent::Refunded {
            payment_intent: id_of(object, "payment_intent")
                .ok_or(MalformedEvent("the charge has no payment intent"))?,
            amount_refunded: amount(object, "amount_refunded")?,
            currency: currency(object)?,
        },
        "checkout.session.expired" => GatewayEvent::CheckoutExpired {
            order_id: order_of(object),
            session_id: owned(object, "id").ok_or(MalformedEvent("the session id is missing"))?,
        },
        _ => GatewayEvent::Ignored,
    };
    Ok(ParsedEvent { id, kind, created, event: parsed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Vec<u8> {
        json!({"id": "evt_1", "object": "event", "type": kind, "created": 1_700_000_000, "api_version": "2024-06-20",
               "livemode": false, "data": {"object": object}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_completed_session_names_its_order_amount_and_intent() {
        let body = event(
            "checkout.session.completed",
            json!({"id": "cs_1", "object": "checkout.session", "amount_total": 2599, "currency": "eur",
                   "payment_status": "paid", "payment_intent": "pi_1", "client_reference_id": "ord-1",
                   "metadata": {"order_id": "ord-1"}}),
        );
        let parsed = parse(&body).expect("event");
        assert_eq!((parsed.id.as_str(), parsed.created), ("evt_1", 1_700_000_000));
        assert_eq!(
            parsed.event,
            GatewayEvent::CheckoutCompleted {
                order_id: Some("ord-1".into()),
                session_id: "cs_1".into(),
                payment_intent: Some("pi_1".into()),
                amount: 2599,
                currency: "EUR".into(),
                paid: true
            }
        );
    }

    #[test]
    fn intents_charges_and_refunds_parse() {
        let ok = parse(&event(
            "payment_intent.succeeded",
            json!({"id": "pi_1", "object": "payment_intent", "amount": 100, "amount_received": 100, "currency": "usd",
                   "metadata": {"order_id": "o"}}),
        ))
        .expect("event");
        assert!(
            matches!(ok.event, GatewayEvent::PaymentSucceeded { amount: 100, ref currency, .. } if currency == "USD")
        );
        let failed = parse(&event(
            "payment_intent.payment_failed",
            json!({"id": "pi_1", "object": "payment_intent", "last_payment_error": {"code": "card_declined",
                   "decline_code": "insufficient_funds"}, "metadata": {"order_id": "o"}}),
        ))
        .expect("event");
        assert!(
            matches!(failed.event, GatewayEvent::PaymentFailed { reason: Some(ref r), .. } if r == "insufficient_funds")
        );
        let charge = parse(&event(
            "charge.succeeded",
            json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
                   "payment_method_details": {"type": "card", "card": {"brand": "mastercard", "last4": "4444"}}}),
        ))
        .expect("event");
        assert!(matches!(charge.event, GatewayEvent::CardReported { ref card, .. } if card.last4 == "4444"));
        let refunded = parse(&event(
            "charge.refunded",
            json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount_refunded": 50, "currency": "usd"}),
        ))
        .expect("event");
        assert!(matches!(refunded.event, GatewayEvent::Refunded { amount_refunded: 50, .. }));
    }

    #[test]
    fn unknown_types_are_ignored_and_broken_events_named() {
        let other = parse(&event("customer.created", json!({"id": "cus_1"}))).expect("event");
        assert_eq!(other.event, GatewayEvent::Ignored);
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"{"object":"event","id":"evt 1","type":"x","data":{"object":{}}}"#).is_err());
        assert!(
            parse(&event("payment_intent.succeeded", json!({"id": "pi_1", "amount_received": -5, "currency": "usd"})))
                .is_err()
        );
        assert!(
            parse(&event("charge.refunded", json!({"id": "ch_1", "amount_refunded": 5, "currency": "usd"}))).is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }
    }
}
