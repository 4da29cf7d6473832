//! Connecting and membership: the consumer client (static membership, cooperative-sticky
//! assignment, offsets stored by the workers and committed in the background, consumer lag
//! reported to the metrics), the fetch loop that hands each partition's records to its worker,
//! and [`run`], which replaces a consumer librdkafka declares fatally failed.

use super::dead_letters::DeadLetters;
use super::handler::SharedHandler;
use super::worker::{WORKER_QUEUE, Worker};
use crate::metrics::Metrics;
use crate::outbox::RelayHandle;
use crate::{ServiceConfig, Shutdown};
use anyhow::Context as _;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use saga_contract::{EventCodec, SagaTopic};
use sqlx::PgPool;
use std::sync::Arc;

pub(super) struct LagContext {
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
pub(crate) async fn run(setup: ConsumerSetup, handler: SharedHandler, shutdown: Shutdown) -> anyhow::Result<()> {
    let ConsumerSetup { config, pool, relay, topics, codec, producer, metrics } = setup;
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
async fn consume(worker: Worker, shutdown: &Shutdown) -> Membership {
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
