//! What the kit observed of the implementation, as plain data for the checkers: each Kafka
//! record the tap recorded ([`TapRecord`]) and each push the sink received ([`Arrival`] of a
//! [`Push`]). The tap ([`crate::tap`]) and the sink ([`crate::sink`]) fill them in.

use saga_contract::SagaTopic;

/// One recorded Kafka record.
#[derive(Debug, Clone)]
pub struct TapRecord {
    /// Arrival order at the tap.
    pub seq: usize,
    pub topic: String,
    /// The saga topic this record is on (for a dead letter: the topic it came from).
    pub saga_topic: Option<SagaTopic>,
    pub dead_letter: bool,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The record's timestamp (producer CreateTime), epoch ms.
    pub timestamp_ms: i64,
    /// When the tap received it, epoch ms.
    pub seen_at_ms: i64,
    /// The record's headers, values as sent (bytes: text, or binary as Spring writes some).
    pub headers: Vec<(String, Vec<u8>)>,
    /// From the Confluent frame, when the value has one.
    pub schema_id: Option<u32>,
    pub record_name: Option<String>,
    /// The decoded value as JSON (decimals as numbers).
    pub value: Option<serde_json::Value>,
    pub event_id: Option<String>,
    pub order_id: Option<String>,
    /// Why the record does not satisfy the contract, if it does not.
    pub contract_error: Option<String>,
    pub raw: Vec<u8>,
}

impl TapRecord {
    /// The one-line form used in evidence.
    pub fn summary(&self) -> String {
        format!(
            "{}[{}]@{} key={} ts={} schema_id={} event_id={} value={}{}",
            self.topic,
            self.partition,
            self.offset,
            self.key.as_deref().unwrap_or("<none>"),
            self.timestamp_ms,
            self.schema_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            self.event_id.as_deref().unwrap_or("-"),
            self.value
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| format!("<{} undecodable bytes>", self.raw.len())),
            self.contract_error.as_ref().map(|e| format!(" CONTRACT VIOLATION: {e}")).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
impl TapRecord {
    /// A decoded record of `topic` holding `value`, keyed and identified by its `orderId` and
    /// `eventId` and timed by its `eventTimestamp`: what the checkers' tests build logs from.
    pub(crate) fn of(topic: SagaTopic, value: serde_json::Value) -> TapRecord {
        TapRecord {
            seq: 0,
            topic: topic.default_name().into(),
            saga_topic: Some(topic),
            dead_letter: false,
            partition: 0,
            offset: 0,
            key: value["orderId"].as_str().map(str::to_string),
            timestamp_ms: value["eventTimestamp"].as_i64().unwrap_or_default(),
            seen_at_ms: value["eventTimestamp"].as_i64().unwrap_or_default(),
            headers: vec![],
            schema_id: Some(1),
            record_name: None,
            event_id: value["eventId"].as_str().map(str::to_string),
            order_id: value["orderId"].as_str().map(str::to_string),
            value: Some(value),
            contract_error: None,
            raw: vec![],
        }
    }
}

/// A push as the contract defines it.
pub use saga_contract::PushNotification as Push;

/// A push and when it arrived (epoch ms), for the timing scenarios.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at_ms: i64,
    pub push: Result<Push, String>,
}

/// A push as the contract defines it; a body the contract cannot read (an unknown type, a
/// missing field) is kept as text with the reason, for the evidence and the whole-run check.
pub fn read_push(body: &[u8]) -> Result<Push, String> {
    serde_json::from_slice::<Push>(body).map_err(|e| format!("{} — {e}", String::from_utf8_lossy(body)))
}
