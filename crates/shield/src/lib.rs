//! Storefort's shield: a web application firewall as a library.
//!
//! Requests are taken apart into the places an attack can hide (path,
//! query arguments, headers, cookies, body fields), each value is
//! normalized into the forms a backend would see, and detectors score what
//! they find; the anomaly score decides, as the OWASP Core Rule Set does.
//!
//! Around the detectors sit the availability guards (client IP behind
//! trusted proxies, rate limits, bans, load shedding) and `layer`, which
//! puts it all in front of any axum service, and `proxy`, which forwards
//! what passes to another store. Nothing here may log a request body or a
//! secret.

pub mod ban;
pub mod config;
pub mod detect;
pub mod eval;
pub mod layer;
pub mod limit;
pub mod net;
pub mod normalize;
pub mod proxy;
pub mod request;
pub mod score;
pub mod shed;

pub use config::{Mode, ShieldConfig};
pub use layer::{ClientIp, Observation, Observer, Refusal, Responder, ShieldLayer, ShieldState};
pub use request::{Location, Request};
pub use score::{Finding, Inspector, Paranoia, Verdict, inspect};
