//! Storefort's identity primitives, free of I/O: password hashing and
//! policy, RFC 6238 one-time codes with replay refusal, recovery codes.
//!
//! Accounts, sessions and routes (the rest of the identity issue) build on
//! these; this crate must never touch the database or the network, and
//! never log or print a secret.

pub mod access;
pub mod password;
pub mod policy;
pub mod recovery;
pub mod throttle;
pub mod totp;

pub use access::{AccountRole, Permission, allows};
pub use password::{PasswordError, PasswordHasher, Verification};
pub use policy::{PolicyError, Role};
pub use throttle::ThrottlePolicy;
pub use totp::{TotpError, TotpSecret};
