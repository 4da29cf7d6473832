//! # saga-contract
//!
//! The order-creation saga's contract as code: the Avro schemas under `avro/schemas/` (the
//! language-neutral source of truth any implementation reads), the Rust types generated from
//! them at build time, the topic map, and the Confluent wire framing (magic byte 0, 4-byte
//! schema id, Avro binary; subject `<topic>-value`) through `schema_registry_converter`.
//!
//! Wire-compatibility with the published contract hub is proved by `tests/compatibility.rs`.

mod codec;
mod framing;
mod money;
mod push;
mod topics;
mod vocabulary;

pub use framing::{Decoded, EventCodec, FramingError};
pub use money::Money;
pub use push::PushNotification;
pub use topics::{SagaTopic, Topics};
pub use vocabulary::{OrderStatus, PaymentStatus, PushKind, UnknownValue};

/// Errors turning a decoded Avro value into a contract type.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("record does not match the contract: {0}")]
    Shape(String),
    #[error("avro: {0}")]
    Avro(#[from] apache_avro::Error),
}

/// What every saga event has in common; implemented by the generated types.
pub trait Event: Sized + Send + Sync + 'static {
    /// Avro full name, e.g. `com.groom.ecommerce.order.event.avro.OrderCreated`.
    const FULL_NAME: &'static str;
    /// The `.avsc` text, registered under `<topic>-value`.
    const SCHEMA_JSON: &'static str;
    fn event_id(&self) -> &str;
    fn order_id(&self) -> &str;
    fn into_value(self) -> apache_avro::types::Value;
    fn from_value(value: &apache_avro::types::Value) -> Result<Self, ContractError>;
}

/// The generated record types (`OrderCreated`, `StockReserved`, …).
pub mod events {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/contract.rs"));
}

pub use events::{OrderCancelled, OrderConfirmed, OrderCreated, StockReservationFailed, StockReserved};

/// Every schema of the contract: (Avro full name, schema JSON).
pub fn all_schemas() -> [(&'static str, &'static str); 5] {
    [
        (OrderCreated::FULL_NAME, OrderCreated::SCHEMA_JSON),
        (StockReserved::FULL_NAME, StockReserved::SCHEMA_JSON),
        (StockReservationFailed::FULL_NAME, StockReservationFailed::SCHEMA_JSON),
        (OrderConfirmed::FULL_NAME, OrderConfirmed::SCHEMA_JSON),
        (OrderCancelled::FULL_NAME, OrderCancelled::SCHEMA_JSON),
    ]
}

/// Epoch milliseconds now, the unit of every `*At`/`eventTimestamp` field.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}
