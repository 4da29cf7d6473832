//! The partition workers: each takes what its partitions have ready (up to [`MAX_BATCH`]
//! records, never waiting for more), decodes it, hands it to the handler in one transaction on
//! the worker's own connection ([`crate::db::HeldConnection`]), and stores the offsets only
//! once that transaction has committed — so a crash redelivers the batch and the claims make
//! the redelivery change nothing.

use super::dead_letters::DeadLetters;
use super::handler::{HandleError, Incoming, Outcome, SharedHandler};
use super::membership::LagContext;
use crate::db::HeldConnection;
use crate::metrics::Metrics;
use crate::outbox::RelayHandle;
use crate::{ServiceConfig, Shutdown};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use saga_contract::{Decoded, EventCodec, SagaTopic};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Instant;

/// Most records handled in one transaction: what a worker has ready, up to this many.
pub(super) const MAX_BATCH: usize = 128;
/// Records waiting per partition worker; a full queue stops the fetch loop (backpressure).
/// Twice a batch, so the next batch gathers while one is in its transaction.
pub(super) const WORKER_QUEUE: usize = 2 * MAX_BATCH;

/// What every partition worker shares.
pub(super) struct Worker {
    pub(super) handler: SharedHandler,
    pub(super) pool: PgPool,
    pub(super) relay: RelayHandle,
    pub(super) codec: Arc<EventCodec>,
    pub(super) config: ServiceConfig,
    pub(super) dead_letters: DeadLetters,
    pub(super) metrics: Metrics,
    pub(super) consumer: Arc<StreamConsumer<LagContext>>,
    pub(super) shutdown: Shutdown,
}

impl Worker {
    pub(super) async fn work(self: Arc<Self>, mut records: tokio::sync::mpsc::Receiver<OwnedMessage>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut held = HeldConnection::new(self.pool.clone());
        while let Some(first) = records.recv().await {
            batch.push(first);
            // What is ready now, never waiting for more: a lone record goes at once.
            while batch.len() < MAX_BATCH
                && let Ok(more) = records.try_recv()
            {
                batch.push(more);
            }
            if *self.shutdown.borrow() || !self.process(&batch, &mut held).await {
                return; // the batch's offsets are not stored: it is redelivered next time
            }
            batch.clear();
        }
    }

    /// Handles a batch and stores its offsets; `false` when shutdown interrupted it.
    async fn process(&self, batch: &[OwnedMessage], held: &mut HeldConnection) -> bool {
        crate::throttle::admit(batch.len()).await;
        let started = Instant::now();
        if let Some(pause) = crate::failpoint::delay("kit::offset-before-effect") {
            // Seeded fault: the offsets are committed before the handler's transaction (as with
            // auto-commit on poll); a crash in this window loses the records.
            for message in batch {
                let _ = self.consumer.store_offset(message.topic(), message.partition(), message.offset());
            }
            let _ = self.consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Async);
            tokio::time::sleep(pause).await;
        }
        let Some(labels) = self.handle_split(batch, held).await else { return false };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.batch(seconds);
        for (message, label) in batch.iter().zip(labels) {
            self.metrics.consumed(message.topic(), label);
            self.metrics.stage(message.topic(), seconds);
            if let Err(error) = self.consumer.store_offset(message.topic(), message.partition(), message.offset()) {
                // After a rebalance took the partition away: its new owner redelivers the record.
                tracing::warn!(%error, topic = message.topic(), partition = message.partition(), "storing offset failed");
            }
        }
        true
    }
}

/// Decodes every record of the batch (any undecodable one poisons it), hands them to the
/// handler in one transaction on the worker's connection, and commits it.
pub(super) async fn handle_once(
    worker: &Worker,
    batch: &[OwnedMessage],
    held: &mut HeldConnection,
) -> Result<Vec<Outcome>, HandleError> {
    let (codec, config) = (&worker.codec, &worker.config);
    let mut incoming = Vec::with_capacity(batch.len());
    for message in batch {
        let topic = config.topics.topic_of(message.topic()).ok_or_else(|| {
            HandleError::Poison(format!("{} is not a saga topic {} consumes", message.topic(), config.service_name))
        })?;
        let payload = message.payload().ok_or_else(|| HandleError::Poison("record has no value".into()))?;
        let record = if crate::failpoint::active("kit::decode-with-own-schema") {
            decode_with_own_schema(topic, payload)?
        } else {
            codec.decode(payload).await?
        };
        let expected = topic.record_full_name();
        if record.record_name.as_deref() != Some(expected) {
            return Err(HandleError::Poison(format!("expected {expected}, got {:?}", record.record_name)));
        }
        incoming.push(Incoming { topic, record });
    }
    let mut tx = worker.relay.begin(held).await?;
    let outcomes = worker.handler.handle_boxed(&mut tx, &incoming).await?;
    if outcomes.len() != batch.len() {
        // A handler bug, not the records' fault: retried (and logged) until fixed.
        return Err(HandleError::Transient(anyhow::anyhow!(
            "the handler gave {} outcomes for a batch of {} records",
            outcomes.len(),
            batch.len()
        )));
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Seeded fault (self-test): the record decoded with the consumer's own contract schema, the
/// frame's schema id ignored — right until a producer writes with a newer compatible version.
fn decode_with_own_schema(topic: SagaTopic, payload: &[u8]) -> Result<Decoded, HandleError> {
    let poison = |e: &dyn std::fmt::Display| HandleError::Poison(format!("decoding with the own schema: {e}"));
    let schema = apache_avro::Schema::parse_str(topic.schema_json()).map_err(|e| poison(&e))?;
    let (header, mut body) = payload.split_at_checked(5).ok_or_else(|| poison(&"shorter than a frame"))?;
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema).build();
    let value = reader.and_then(|r| r.read_value(&mut body)).map_err(|e| poison(&e))?;
    let schema_id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    Ok(Decoded { schema_id, record_name: Some(topic.record_full_name().to_string()), value })
}
