//! Confluent wire framing through a schema registry, via `schema_registry_converter`:
//! values are registered under `<topic>-value` (TopicNameStrategy) and framed as
//! magic byte 0 + 4-byte big-endian schema id + Avro binary.

use crate::{ContractError, Event};
use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("schema registry at {url}: {source}")]
    Registry { url: String, source: SRCError },
    #[error("not Confluent-framed Avro: {0}")]
    NotFramed(String),
    #[error("record {found} on a topic that carries {expected}")]
    WrongRecord { expected: &'static str, found: String },
    #[error(transparent)]
    Contract(#[from] ContractError),
}

impl FramingError {
    /// Whether retrying could help (registry unreachable) as opposed to a bad record.
    pub fn is_transient(&self) -> bool {
        matches!(self, FramingError::Registry { source, .. } if source.retriable)
    }
}

/// A decoded record: the schema id from its frame, the writer's record name, the Avro value.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub schema_id: u32,
    pub record_name: Option<String>,
    pub value: Value,
}

/// Encoder + decoder sharing one registry; both cache schemas, so after the first record of
/// each topic no registry call is made.
pub struct EventCodec {
    url: String,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
}

impl EventCodec {
    pub fn new(registry_url: &str) -> Result<EventCodec, FramingError> {
        let settings = || {
            SrSettings::new_builder(registry_url.trim_end_matches('/').to_string())
                .set_timeout(Duration::from_secs(5))
                .build()
                .map_err(|source| FramingError::Registry { url: registry_url.to_string(), source })
        };
        Ok(EventCodec { url: registry_url.to_string(), encoder: AvroEncoder::new(settings()?), decoder: AvroDecoder::new(settings()?) })
    }

    /// Frames `event` for `topic`, registering the contract schema under `<topic>-value` the
    /// first time.
    pub async fn encode<E: Event>(&self, topic: &str, event: E) -> Result<Vec<u8>, FramingError> {
        let schema = SuppliedSchema::new(Some(E::FULL_NAME.to_string()), SchemaType::Avro, E::SCHEMA_JSON.to_string());
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_string(), false, schema);
        self.encoder.encode_value(event.into_value(), &strategy).await.map_err(|source| self.registry_error(source))
    }

    /// Decodes any framed record (looking its writer schema up by id).
    pub async fn decode(&self, bytes: &[u8]) -> Result<Decoded, FramingError> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(FramingError::NotFramed(format!("{} bytes, first byte {:?}", bytes.len(), bytes.first())));
        }
        let schema_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let result = self.decoder.decode(Some(bytes)).await.map_err(|source| {
            if source.retriable { self.registry_error(source) } else { FramingError::NotFramed(source.to_string()) }
        })?;
        Ok(Decoded { schema_id, record_name: result.name.map(|n| n.fullname(None)), value: result.value })
    }

    /// Decodes a record that must be an `E`.
    pub async fn decode_as<E: Event>(&self, bytes: &[u8]) -> Result<E, FramingError> {
        let decoded = self.decode(bytes).await?;
        match decoded.record_name.as_deref() {
            Some(name) if name == E::FULL_NAME => Ok(E::from_value(&decoded.value)?),
            other => Err(FramingError::WrongRecord { expected: E::FULL_NAME, found: other.unwrap_or("<no name>").to_string() }),
        }
    }

    fn registry_error(&self, source: SRCError) -> FramingError {
        FramingError::Registry { url: self.url.clone(), source }
    }
}
