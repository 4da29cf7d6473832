//! The push-notification payload — part of the contract although it is JSON over HTTP, not
//! Avro over Kafka: every service POSTs it to `PUSH_GATEWAY_URL`.

use crate::PushKind;
use serde::{Deserialize, Serialize};

/// `{"userId", "orderId", "type", "message", "eventId"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PushNotification {
    pub user_id: String,
    pub order_id: String,
    #[serde(rename = "type")]
    pub kind: PushKind,
    pub message: String,
    /// The event that caused the push; a gateway can drop a retry on it.
    pub event_id: String,
}
