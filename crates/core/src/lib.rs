//! Storefort's domain: the rules of a store, free of I/O.
//!
//! Everything a client sends is parsed here into validated newtypes before any
//! other layer sees it, and every price the store charges is computed here.
//! This crate must never do I/O, async, SQL or logging: it is the part of the
//! store that is tested exhaustively and trusted by every other part.

pub mod address;
pub mod cart;
pub mod consent;
pub mod email;
pub mod event;
pub mod money;
pub mod order;
pub mod pricing;
pub mod sku;
pub mod text;

pub use text::TextError;

pub use address::{Address, AddressError, AddressInput, CountryCode};
pub use cart::{CartError, CartLimits, Quantity};
pub use email::{Email, EmailError};
pub use event::{Actor, EventKind, SecurityEvent, Severity};
pub use money::{Currency, Money, MoneyError};
pub use order::{OrderStatus, StockEffect, TransitionError};
pub use pricing::{PricedLine, PricingError, ShippingTable, TaxTable, Totals, compute_totals};
pub use sku::{Sku, SkuError};
