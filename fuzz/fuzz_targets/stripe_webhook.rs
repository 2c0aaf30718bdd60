//! Any bytes as a Stripe webhook (the first line is the `Stripe-Signature`
//! header, the rest the body): the header parse, the verification and the
//! event parse must never panic; a body signed with the endpoint secret
//! must verify, and once changed must not; whatever parses as an event
//! keeps the invariants the store relies on.

#![no_main]

use libfuzzer_sys::fuzz_target;
use storefort_pay::signature::{sign, verify};
use storefort_pay::stripe::event::parse;
use storefort_pay::GatewayEvent;

const SECRET: &[u8] = b"whsec_fuzz";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (header, body) = (String::from_utf8_lossy(&data[..split]), data.get(split + 1..).unwrap_or_default());
    let signed = sign(body, SECRET, NOW);
    // A header verifies only if it carries the real MAC of this body.
    let mac = &signed[signed.find("v1=").expect("v1") + 3..];
    assert!(verify(body, Some(&header), &[SECRET], NOW, 300).is_err() || header.contains(mac));
    assert_eq!(verify(body, Some(&signed), &[SECRET], NOW, 300), Ok(NOW));
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert!(verify(&changed, Some(&signed), &[SECRET], NOW, 300).is_err());

    if let Ok(event) = parse(body) {
        assert!(!event.id.is_empty() && event.id.len() <= 255);
        match event.event {
            GatewayEvent::CheckoutCompleted { amount, ref currency, .. }
            | GatewayEvent::PaymentSucceeded { amount, ref currency, .. }
            | GatewayEvent::Refunded { amount_refunded: amount, ref currency, .. } => {
                assert!(amount >= 0);
                assert!(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()));
            }
            GatewayEvent::CardReported { ref card, .. } => {
                assert!(card.last4.len() == 4 && card.last4.bytes().all(|b| b.is_ascii_digit()));
            }
            _ => {}
        }
    }
});
