//! The idempotent consumer loop (after rust-rdkafka's at-least-once example), batched: a
//! partition worker takes what its partition has ready (up to [`MAX_BATCH`], never waiting for
//! more) and hands it to the handler, which claims every `eventId` and applies the effects in
//! one transaction (begun by the loop on the worker's own connection, see
//! [`crate::db::HeldConnection`]); the offsets are stored only once it has committed, so a crash redelivers
//! the batch and the claims make the redelivery change nothing. A record that is itself wrong
//! (undecodable, unknown schema, not the contract's shape) poisons its batch: the batch is
//! split and retried until the record is alone, and it is copied to `<topic>.dlt` with headers
//! saying where it came from and why — its neighbours are handled and the partition keeps
//! moving. A failure of something the handler depends on (database, registry) is retried with
//! backoff until it heals, holding the partition so its order is kept. Partitions are worked on
//! concurrently, each in offset order (see [`run`]).
//!
//! Group membership is static (`group.instance.id`, see [`ServiceConfig::instance_id`]): a
//! restarted instance takes its partitions back as soon as it joins, instead of waiting for
//! the broker to time the old member out; the assignment is cooperative, so a member joining
//! or leaving moves only the partitions that change owner.

use crate::db::HeldConnection;
use crate::metrics::Metrics;
use crate::outbox::{OutboxTx, RelayHandle};
use crate::{ServiceConfig, Shutdown};
use anyhow::Context as _;
use futures::future::BoxFuture;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use saga_contract::{Decoded, EventCodec, FramingError, SagaTopic};
use sqlx::PgPool;
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
    /// The database refusing the record's data (SQLSTATE class 22 data exception, 23 integrity
    /// violation) is the record's fault and will not change; anything else (connection lost,
    /// pool exhausted, server shutting down, serialization failure) may heal.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")) => {
                HandleError::Poison(format!("the database refused the record's data: {e}"))
            }
            _ => HandleError::Transient(e.into()),
        }
    }
}

impl From<FramingError> for HandleError {
    fn from(e: FramingError) -> Self {
        if e.is_transient() { HandleError::Transient(e.into()) } else { HandleError::Poison(e.to_string()) }
    }
}

/// A record handed to a [`Handler`]: its topic and its value, already checked to be that
/// topic's record.
pub struct Incoming {
    pub topic: SagaTopic,
    pub record: Decoded,
}

/// A service's reaction to the saga topics it subscribes to.
pub trait Handler: Send + Sync + 'static {
    /// Handles records of one partition, in offset order, in `tx`: all of them (one outcome
    /// per record, in the batch's order) or none (an error). The loop begins `tx` on the
    /// worker's own connection and commits it when this returns `Ok`. A poisoned batch is
    /// split by the loop so the poison goes to the dead letters alone; a transient failure is
    /// retried.
    fn handle(
        &self,
        tx: &mut OutboxTx<'_>,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<Outcome>, HandleError>> + Send;
}

/// The longest pause between two attempts at a record whose handler failed transiently.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

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
    /// Where each partition worker takes the connection it keeps.
    pub pool: PgPool,
    pub relay: RelayHandle,
    pub topics: Vec<SagaTopic>,
    pub codec: Arc<EventCodec>,
    pub producer: FutureProducer,
    pub metrics: Metrics,
}

/// Most records handled in one transaction: what a worker has ready, up to this many.
const MAX_BATCH: usize = 128;
/// Records waiting per partition worker; a full queue stops the fetch loop (backpressure).
/// Twice a batch, so the next batch gathers while one is in its transaction.
const WORKER_QUEUE: usize = 2 * MAX_BATCH;

/// Runs until `shutdown`, then commits the stored offsets and leaves the group.
///
/// Partitions are handled concurrently: partition `p` of every subscribed topic goes to
/// worker `p % workers`, which handles its records in batches, in offset order. All saga
/// topics have the same partition count and key (orderId), so an order's records meet in
/// one worker and keep their causal order, while other orders' records overlap their
/// database round trips and commits.
///
/// A consumer that librdkafka declares fatally failed is replaced by a new one. That happens
/// to a static member after a broker outage longer than its session timeout: the client
/// rejoins with an empty member id, its next offset commit is refused as fenced, and the
/// client never consumes again. The new consumer joins under the same instance id and takes
/// the partitions back; what the old one handled but had not committed is redelivered and
/// deduplicated by eventId.
pub async fn run<H: Handler>(setup: ConsumerSetup, handler: H, shutdown: Shutdown) -> anyhow::Result<()> {
    let ConsumerSetup { config, pool, relay, topics, codec, producer, metrics } = setup;
    let handler = Arc::new(handler);
    let names: Vec<&str> = topics.iter().map(|t| config.topics.name(*t)).collect();
    loop {
        let consumer = Arc::new(connect(&config, &names, &metrics)?);
        let worker = Worker {
            handler: handler.clone(),
            pool: pool.clone(),
            relay: relay.clone(),
            codec: codec.clone(),
            config: config.clone(),
            dead_letters: DeadLetters { producer: producer.clone() },
            metrics: metrics.clone(),
            consumer,
            shutdown: shutdown.clone(),
        };
        match consume(worker, &shutdown).await {
            Membership::Shutdown => return Ok(()),
            Membership::Fatal(reason) => {
                tracing::error!(%reason, "Kafka consumer failed fatally; replacing it with a new one")
            }
        }
    }
}

/// How one consumer's membership in the group ended.
enum Membership {
    Shutdown,
    Fatal(String),
}

fn connect(config: &ServiceConfig, topics: &[&str], metrics: &Metrics) -> anyhow::Result<StreamConsumer<LagContext>> {
    let mut client = crate::kafka::client(&config.kafka_bootstrap_servers);
    if let Some(id) = &config.instance_id {
        client.set("group.instance.id", id);
    }
    client
        .set("group.id", config.consumer_group())
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (config.session_timeout_ms / 4).to_string())
        // rust-rdkafka's default rebalance callback calls incremental_(un)assign under the
        // cooperative protocol, so the stock ConsumerContext handles it.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // The broker answers a fetch as soon as data arrives (fetch.min.bytes=1); this only
        // bounds idle polling, so a longer wait costs no latency and saves CPU.
        .set("fetch.wait.max.ms", "100")
        .set("statistics.interval.ms", "5000");
    crate::kafka::apply_overrides(&mut client, crate::kafka::CONSUMER_OVERRIDES, std::env::vars());
    let consumer: StreamConsumer<LagContext> = client
        .create_with_context(LagContext { metrics: metrics.clone() })
        .with_context(|| format!("creating Kafka consumer for {}", config.kafka_bootstrap_servers))?;
    consumer.subscribe(topics).with_context(|| format!("subscribing to {topics:?}"))?;
    tracing::info!(?topics, group = %config.consumer_group(), instance = ?config.instance_id, session_timeout_ms = config.session_timeout_ms, "consuming");
    Ok(consumer)
}

/// Fetches and hands records to the partition workers until shutdown or a fatal client error.
async fn consume<H: Handler>(worker: Worker<H>, shutdown: &Shutdown) -> Membership {
    let worker = Arc::new(worker);
    let consumer = worker.consumer.clone();
    let worker_count = usize::try_from(worker.config.topic_partitions).unwrap_or(1).clamp(1, 16);
    let mut queues = Vec::with_capacity(worker_count);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..worker_count {
        let (queue, records) = tokio::sync::mpsc::channel(WORKER_QUEUE);
        queues.push(queue);
        workers.spawn(worker.clone().work(records));
    }
    let mut stop = shutdown.clone();
    let mut ended = Membership::Shutdown;
    loop {
        let message = tokio::select! {
            m = consumer.recv() => m,
            _ = stop.changed() => break,
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(error) => {
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    ended = Membership::Fatal(format!("{code:?}: {reason}"));
                    break;
                }
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
    if matches!(ended, Membership::Shutdown)
        && let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
    {
        tracing::warn!(%error, "final offset commit failed; records since the last commit will be redelivered (and deduplicated)");
    }
    // The last handle goes here. A dynamic member leaves the group on close; a static one stays
    // (librdkafka never sends LeaveGroup for it): its restart rejoins under the same instance id
    // and gets the partitions back at once, while another instance would take them over after
    // the session timeout.
    drop(consumer);
    ended
}

/// What every partition worker shares.
struct Worker<H> {
    handler: Arc<H>,
    pool: PgPool,
    relay: RelayHandle,
    codec: Arc<EventCodec>,
    config: ServiceConfig,
    dead_letters: DeadLetters,
    metrics: Metrics,
    consumer: Arc<StreamConsumer<LagContext>>,
    shutdown: Shutdown,
}

impl<H: Handler> Worker<H> {
    async fn work(self: Arc<Self>, mut records: tokio::sync::mpsc::Receiver<OwnedMessage>) {
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

    /// Handles `batch` in one transaction; when a record poisons it, the halves in turn, in
    /// order, until the poison is alone and goes to the dead letters. One metrics label per
    /// record; `None` when shutdown interrupted it.
    fn handle_split<'a>(
        &'a self,
        batch: &'a [OwnedMessage],
        held: &'a mut HeldConnection,
    ) -> BoxFuture<'a, Option<Vec<&'static str>>> {
        Box::pin(async move {
            match handle_with_retries(self, batch, held).await? {
                Ok(outcomes) => Some(
                    outcomes
                        .into_iter()
                        .map(|o| match o {
                            Outcome::Processed => "processed",
                            Outcome::Duplicate => "duplicate",
                        })
                        .collect(),
                ),
                Err(error) if batch.len() == 1 => {
                    let message = &batch[0];
                    let dlt = format!("{}.dlt", message.topic());
                    let sent =
                        self.dead_letters.send(&dlt, self.config.service_name, message, &error, &self.shutdown).await;
                    sent.then(|| vec!["dead_letter"])
                }
                Err(_) => {
                    let (first, second) = batch.split_at(batch.len() / 2);
                    let mut labels = self.handle_split(first, held).await?;
                    labels.extend(self.handle_split(second, held).await?);
                    Some(labels)
                }
            }
        })
    }
}

/// Handles the batch: poison comes back at the first attempt (to be split, and alone
/// dead-lettered), a transient failure is retried with backoff until it succeeds; `None` when
/// shutdown interrupted the retries.
async fn handle_with_retries<H: Handler>(
    worker: &Worker<H>,
    batch: &[OwnedMessage],
    held: &mut HeldConnection,
) -> Option<Result<Vec<Outcome>, HandleError>> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let error = match handle_once(worker, batch, held).await {
            Err(HandleError::Transient(error)) => error,
            // Seeded fault: poison retried as if it could heal, stalling its partition.
            Err(HandleError::Poison(reason)) if crate::failpoint::active("kit::poison-retried-forever") => {
                anyhow::anyhow!(reason)
            }
            result => return Some(result),
        };
        if gives_up(attempt) {
            let first = &batch[0];
            tracing::error!(topic = first.topic(), partition = first.partition(), offset = first.offset(), records = batch.len(), attempt, error = %format!("{error:#}"), "giving up on the batch; skipping it");
            return Some(Ok(batch.iter().map(|_| Outcome::Processed).collect()));
        }
        // The connection may be what failed (the database restarted): the next attempt takes
        // a fresh one.
        held.forget();
        let pause = retry_pause(attempt);
        let (first, last) = (&batch[0], &batch[batch.len() - 1]);
        tracing::warn!(topic = first.topic(), partition = first.partition(), offsets = %format!("{}..={}", first.offset(), last.offset()), records = batch.len(), attempt, error = %format!("{error:#}"), retry_in_ms = pause.as_millis(), "batch failed on something it depends on; retrying (the partition waits)");
        let mut stop = worker.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = stop.changed() => return None,
        }
    }
}

/// Never: a batch that failed on something it depends on is retried until it succeeds. Seeded
/// fault (self-test, `kit::skip-after-retries=return(N)`): a retry budget — after N failed
/// attempts the batch counts as handled and its offset is committed past it.
fn gives_up(attempt: u32) -> bool {
    crate::failpoint::seeded("kit::skip-after-retries")
        .is_some_and(|budget| attempt >= budget.trim().parse().unwrap_or(5))
}

/// Retry pacing after `attempt` failures: 50 ms, 100 ms, … capped at [`MAX_RETRY_PAUSE`].
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.saturating_sub(1).min(7)).min(MAX_RETRY_PAUSE)
}

/// Decodes every record of the batch (any undecodable one poisons it), hands them to the
/// handler in one transaction on the worker's connection, and commits it.
async fn handle_once<H: Handler>(
    worker: &Worker<H>,
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
    let outcomes = worker.handler.handle(&mut tx, &incoming).await?;
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

struct DeadLetters {
    producer: FutureProducer,
}

impl DeadLetters {
    /// Copies the record to `dlt` (same key and value, original headers kept, context headers
    /// added). Retries until it is written: dropping it would lose data. `false` on shutdown.
    async fn send(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A database error with a given SQLSTATE, as PostgreSQL would send it.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn is_poison(error: HandleError) -> bool {
        matches!(error, HandleError::Poison(_))
    }

    #[test]
    fn bad_data_is_poison_and_an_unavailable_database_is_transient() {
        for poison in ["22003", "22P02", "23505", "23503"] {
            assert!(
                is_poison(sqlx::Error::Database(Box::new(Sqlstate(poison))).into()),
                "SQLSTATE {poison} should be poison"
            );
        }
        for transient in ["08006", "57P01", "40001", "40P01", "53300"] {
            assert!(
                !is_poison(sqlx::Error::Database(Box::new(Sqlstate(transient))).into()),
                "SQLSTATE {transient} should be transient"
            );
        }
        assert!(!is_poison(sqlx::Error::PoolTimedOut.into()));
        assert!(!is_poison(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)).into()));
    }

    #[test]
    fn framing_errors_keep_their_classification() {
        assert!(is_poison(FramingError::NotFramed("3 bytes".into()).into()));
        assert!(is_poison(FramingError::UnknownSchema { id: 9, url: "http://registry".into() }.into()));
        assert!(is_poison(FramingError::WrongRecord { expected: "a", found: "b".into() }.into()));
        let unreachable =
            schema_registry_converter::error::SRCError::new("http call to schema registry failed", None, true);
        assert!(!is_poison(FramingError::Registry { url: "http://registry".into(), source: unreachable }.into()));
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_pause(1), Duration::from_millis(50));
        assert_eq!(retry_pause(2), Duration::from_millis(100));
        assert_eq!(retry_pause(7), MAX_RETRY_PAUSE.min(Duration::from_millis(3200)));
        assert_eq!(retry_pause(1000), MAX_RETRY_PAUSE);
    }
}
