//! The push-notification payload — part of the contract although it is JSON over HTTP, not
//! Avro over Kafka: every service POSTs it to `PUSH_GATEWAY_URL`.

use serde::{Deserialize, Serialize};

/// `{"userId", "orderId", "type", "message", "eventId"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushNotification {
    pub user_id: String,
    pub order_id: String,
    /// ORDER_CONFIRMED, PAYMENT_WAIT or ORDER_CANCELLED.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// The event that caused the push; a gateway can drop a retry on it.
    pub event_id: String,
}
