//! Storefort's shield: a web application firewall as a library.
//!
//! Requests are taken apart into the places an attack can hide (path,
//! query arguments, headers, cookies, body fields), each value is
//! normalized into the forms a backend would see, and detectors score what
//! they find; the anomaly score decides, as the OWASP Core Rule Set does.
//!
//! This crate does no I/O and must never log a request body or a secret.

pub mod detect;
pub mod eval;
pub mod normalize;
pub mod request;
pub mod score;

pub use request::{Location, Request};
pub use score::{Finding, Paranoia, Verdict, inspect};
