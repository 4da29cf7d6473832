//! The idempotent consumer loop (after rust-rdkafka's at-least-once example): a record's offset
//! is stored only once its handler's transaction has committed, so a crash redelivers it; the
//! handler claims the record's `eventId` in that same transaction, so a redelivery changes
//! nothing. A record that cannot be decoded or handled is retried a bounded number of times,
//! then copied to `<topic>.dlt` with headers saying where it came from and why — the partition
//! keeps moving. Partitions are worked on concurrently, each in offset order (see [`run`]).

use crate::metrics::Metrics;
use crate::{ServiceConfig, Shutdown};
use anyhow::Context as _;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::Message;
use saga_contract::{Decoded, EventCodec, FramingError, SagaTopic};
use sqlx::PgConnection;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a handler did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect was applied (and its events/pushes queued in the same transaction).
    Processed,
    /// The `eventId` was seen before: nothing changed, nothing published.
    Duplicate,
}

/// Why a record could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The record itself is wrong (undecodable, not the contract's shape); retrying won't help.
    #[error("{0}")]
    Poison(String),
    /// Something we depend on failed (database, registry); worth retrying.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        HandleError::Transient(e.into())
    }
}

impl From<FramingError> for HandleError {
    fn from(e: FramingError) -> Self {
        if e.is_transient() { HandleError::Transient(e.into()) } else { HandleError::Poison(e.to_string()) }
    }
}

/// A service's reaction to the saga topics it subscribes to.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, topic: SagaTopic, record: Decoded) -> impl Future<Output = Result<Outcome, HandleError>> + Send;
}

/// Claims `event_id` inside the handler's transaction: `true` the first time, `false` for a
/// redelivery (the handler then commits nothing else and reports [`Outcome::Duplicate`]).
pub async fn claim_event(tx: &mut PgConnection, event_id: &str, topic: &str) -> sqlx::Result<bool> {
    // Seeded faults (self-test): no dedupe at all, or one kept in memory (forgotten on restart).
    static CLAIMED_IN_MEMORY: std::sync::Mutex<std::collections::BTreeSet<String>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
    if crate::failpoint::active("kit::no-dedupe") {
        return Ok(true);
    }
    if crate::failpoint::active("kit::dedupe-in-memory") {
        return Ok(CLAIMED_IN_MEMORY.lock().expect("claims").insert(event_id.to_string()));
    }
    let inserted = sqlx::query("INSERT INTO processed_events (event_id, topic) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(event_id)
        .bind(topic)
        .execute(tx)
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

/// Attempts for a poison record before it is dead-lettered (it will not get better, but a
/// registry hiccup can look like one).
const POISON_ATTEMPTS: u32 = 3;
/// Attempts for a transient failure (≈ 25 s of backoff) before the record is dead-lettered.
const TRANSIENT_ATTEMPTS: u32 = 10;

struct LagContext {
    metrics: Metrics,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {}

/// Everything the loop needs besides the handler.
pub struct ConsumerSetup {
    pub config: ServiceConfig,
    pub topics: Vec<SagaTopic>,
    pub codec: Arc<EventCodec>,
    pub producer: FutureProducer,
    pub metrics: Metrics,
}

/// Records waiting per partition worker; a full queue stops the fetch loop (backpressure).
const WORKER_QUEUE: usize = 32;

/// Runs until `shutdown`, then commits the stored offsets and leaves the group.
///
/// Partitions are handled concurrently: partition `p` of every subscribed topic goes to
/// worker `p % workers`, which handles its records one at a time in offset order. All saga
/// topics have the same partition count and key (orderId), so an order's records meet in
/// one worker and keep their causal order, while other orders' records overlap their
/// database round trips and commits.
pub async fn run<H: Handler>(setup: ConsumerSetup, handler: H, shutdown: Shutdown) -> anyhow::Result<()> {
    let ConsumerSetup { config, topics, codec, producer, metrics } = setup;
    let consumer: Arc<StreamConsumer<LagContext>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &config.kafka_bootstrap_servers)
            .set("group.id", config.consumer_group())
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "500")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // The broker answers a fetch as soon as data arrives (fetch.min.bytes=1); this only
            // bounds idle polling, so a longer wait costs no latency and saves CPU.
            .set("fetch.wait.max.ms", "100")
            .set("statistics.interval.ms", "5000")
            .create_with_context(LagContext { metrics: metrics.clone() })
            .with_context(|| format!("creating Kafka consumer for {}", config.kafka_bootstrap_servers))?,
    );
    let names: Vec<&str> = topics.iter().map(|t| config.topics.name(*t)).collect();
    consumer.subscribe(&names).with_context(|| format!("subscribing to {names:?}"))?;
    let worker_count = usize::try_from(config.topic_partitions).unwrap_or(1).clamp(1, 16);
    tracing::info!(topics = ?names, group = %config.consumer_group(), workers = worker_count, "consuming");

    let worker = Arc::new(Worker { handler, codec, config, dead_letters: DeadLetters { producer }, metrics, consumer: consumer.clone(), shutdown: shutdown.clone() });
    let mut queues = Vec::with_capacity(worker_count);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..worker_count {
        let (queue, records) = tokio::sync::mpsc::channel(WORKER_QUEUE);
        queues.push(queue);
        workers.spawn(worker.clone().work(records));
    }
    let mut stop = shutdown.clone();
    loop {
        let message = tokio::select! {
            m = consumer.recv() => m,
            _ = stop.changed() => break,
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(error) => {
                tracing::warn!(%error, "consumer error");
                continue;
            }
        };
        let queue = &queues[usize::try_from(message.partition()).unwrap_or(0) % worker_count];
        tokio::select! {
            sent = queue.send(message) => if sent.is_err() { break },
            _ = stop.changed() => break,
        }
    }
    drop(queues);
    while workers.join_next().await.is_some() {}
    drop(worker);
    if let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        tracing::warn!(%error, "final offset commit failed; records since the last commit will be redelivered (and deduplicated)");
    }
    // The last handle goes here: closing the consumer leaves the group at once, so a restarted
    // instance gets the partitions without waiting for the session to time out.
    drop(consumer);
    Ok(())
}

/// What every partition worker shares.
struct Worker<H> {
    handler: H,
    codec: Arc<EventCodec>,
    config: ServiceConfig,
    dead_letters: DeadLetters,
    metrics: Metrics,
    consumer: Arc<StreamConsumer<LagContext>>,
    shutdown: Shutdown,
}

impl<H: Handler> Worker<H> {
    async fn work(self: Arc<Self>, mut records: tokio::sync::mpsc::Receiver<OwnedMessage>) {
        while let Some(message) = records.recv().await {
            if *self.shutdown.borrow() || !self.process(&message).await {
                return; // the record's offset is not stored: it is redelivered next time
            }
        }
    }

    /// Handles one record and stores its offset; `false` when shutdown interrupted it.
    async fn process(&self, message: &OwnedMessage) -> bool {
        let Some(topic) = self.config.topics.topic_of(message.topic()) else { return true };
        let started = Instant::now();
        if let Some(pause) = crate::failpoint::delay("kit::offset-before-effect") {
            // Seeded fault: the offset is committed before the handler's transaction (as with
            // auto-commit on poll); a crash in this window loses the record.
            let _ = self.consumer.store_offset(message.topic(), message.partition(), message.offset());
            let _ = self.consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Async);
            tokio::time::sleep(pause).await;
        }
        let label = match handle_with_retries(&self.handler, &self.codec, topic, message, &self.shutdown).await {
            Some(Ok(Outcome::Processed)) => "processed",
            Some(Ok(Outcome::Duplicate)) => "duplicate",
            Some(Err(error)) => {
                let dlt = self.config.topics.dead_letter(topic);
                if !self.dead_letters.send(&dlt, self.config.service_name, message, &error, &self.shutdown).await {
                    return false;
                }
                "dead_letter"
            }
            None => return false,
        };
        self.metrics.consumed(message.topic(), label);
        self.metrics.stage(message.topic(), started.elapsed().as_secs_f64());
        if let Err(error) = self.consumer.store_offset(message.topic(), message.partition(), message.offset()) {
            // After a rebalance took the partition away: its new owner redelivers the record.
            tracing::warn!(%error, topic = message.topic(), partition = message.partition(), "storing offset failed");
        }
        true
    }
}

/// `None` when shutdown interrupted the retries.
async fn handle_with_retries<H: Handler>(handler: &H, codec: &EventCodec, topic: SagaTopic, message: &OwnedMessage, shutdown: &Shutdown) -> Option<Result<Outcome, HandleError>> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = handle_once(handler, codec, topic, message).await;
        let limit = match &result {
            Ok(_) => return Some(result),
            Err(HandleError::Poison(_)) if crate::failpoint::active("kit::poison-retried-forever") => u32::MAX,
            Err(HandleError::Poison(_)) => POISON_ATTEMPTS,
            Err(HandleError::Transient(_)) => TRANSIENT_ATTEMPTS,
        };
        let error = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        if attempt >= limit {
            tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(), attempt, %error, "giving up on record");
            return Some(result);
        }
        tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), attempt, %error, "record failed; retrying");
        // Retry pacing: 50 ms, 100 ms, … capped at 5 s.
        let pause = Duration::from_millis((50u64 << (attempt - 1).min(7)).min(5000));
        let mut stop = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = stop.changed() => return None,
        }
    }
}

async fn handle_once<H: Handler>(handler: &H, codec: &EventCodec, topic: SagaTopic, message: &OwnedMessage) -> Result<Outcome, HandleError> {
    let payload = message.payload().ok_or_else(|| HandleError::Poison("record has no value".into()))?;
    let decoded = codec.decode(payload).await?;
    let expected = topic.record_full_name();
    if decoded.record_name.as_deref() != Some(expected) {
        return Err(HandleError::Poison(format!("expected {expected}, got {:?}", decoded.record_name)));
    }
    handler.handle(topic, decoded).await
}

struct DeadLetters {
    producer: FutureProducer,
}

impl DeadLetters {
    /// Copies the record to `dlt` (same key and value, original headers kept, context headers
    /// added). Retries until it is written: dropping it would lose data. `false` on shutdown.
    async fn send(&self, dlt: &str, service: &str, message: &OwnedMessage, error: &HandleError, shutdown: &Shutdown) -> bool {
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
