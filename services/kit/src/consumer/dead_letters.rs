//! Dead letters: a record that poisons its batch alone is copied to `<topic>.dlt` with headers
//! saying where it came from and why, so the partition can move on without losing it.

use super::handler::HandleError;
use crate::Shutdown;
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

pub(super) struct DeadLetters {
    pub(super) producer: FutureProducer,
}

impl DeadLetters {
    /// Copies the record to `dlt` (same key and value, original headers kept, context headers
    /// added). Retries until it is written: dropping it would lose data. `false` on shutdown.
    pub(super) async fn send(
        &self,
        dlt: &str,
        service: &str,
        message: &OwnedMessage,
        error: &HandleError,
        shutdown: &Shutdown,
    ) -> bool {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let error_text = error.to_string();
        let mut attempt = 0u32;
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for h in original.iter() {
                    headers = headers.insert(Header { key: h.key, value: h.value });
                }
            }
            let headers = headers
                .insert(Header { key: "dlt.original.topic", value: Some(message.topic()) })
                .insert(Header { key: "dlt.original.partition", value: Some(&partition) })
                .insert(Header { key: "dlt.original.offset", value: Some(&offset) })
                .insert(Header { key: "dlt.error", value: Some(&error_text) })
                .insert(Header { key: "dlt.service", value: Some(service) });
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dlt).headers(headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            match self.producer.send(record, Duration::from_secs(10)).await {
                Ok(_) => {
                    tracing::warn!(dlt, original = message.topic(), partition = message.partition(), offset = message.offset(), error = %error_text, "record dead-lettered");
                    return true;
                }
                Err((e, _)) => {
                    attempt += 1;
                    tracing::error!(dlt, error = %e, attempt, "writing dead letter failed; retrying");
                    let mut stop = shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25)))) => {},
                        _ = stop.changed() => return false,
                    }
                }
            }
        }
    }
}
