//! Start-up and run loop shared by the three services, in the order that makes a fresh start
//! safe: config → database (+ migrations) → registry codec → Kafka (topics, producer) →
//! outbox relays (which first send what a previous run left) → consumer + HTTP.
//!
//! [`start`] and [`run`] hand back boxed futures made here, on purpose: the body of an async fn
//! is compiled into every crate that awaits it, and so is everything it awaits, so each service
//! binary used to build the kit's whole start-up, consumer loop and HTTP server again. A boxed
//! future is compiled once, in this crate (docs/performance.md, "Build time"). Not `Send`: a
//! service's `main` awaits them on its own thread, and with seeded faults the fail-point
//! scenario they hold (a mutex guard) cannot move.

use crate::consumer::{self, ConsumerSetup, Handler, SharedHandler};
use crate::metrics::Metrics;
use crate::outbox::{self, OutboxTx, RelayHandle};
use crate::{ServiceConfig, Shutdown, kafka};
use anyhow::Context as _;
use axum::Router;
use futures::future::LocalBoxFuture;
use rdkafka::producer::FutureProducer;
use saga_contract::{Event, EventCodec, SagaTopic};
use sqlx::PgPool;
use std::sync::Arc;

/// What a service's handlers and routes share.
#[derive(Clone)]
pub struct Context {
    pub config: ServiceConfig,
    pub pool: PgPool,
    pub codec: Arc<EventCodec>,
    pub producer: FutureProducer,
    pub metrics: Metrics,
    pub relay: RelayHandle,
}

impl Context {
    /// Frames `event` and queues it on `topic` (key = orderId) in `tx`.
    pub async fn enqueue<E: Event>(
        &self,
        tx: &mut OutboxTx<'_>,
        topic: SagaTopic,
        event: E,
    ) -> Result<(), consumer::HandleError> {
        let name = self.config.topics.name(topic).to_string();
        // Seeded faults (self-test): a key other than the orderId; plain Avro without the
        // Confluent header (a serializer that does not use the registry's framing).
        let key = if crate::failpoint::active("kit::key-by-event-id") { event.event_id() } else { event.order_id() }
            .to_string();
        let mut bytes =
            self.codec.encode(&name, event).await.map_err(|e| consumer::HandleError::Transient(e.into()))?;
        if crate::failpoint::active("kit::plain-avro") {
            bytes.drain(..5.min(bytes.len()));
        }
        tx.event(&name, &key, bytes);
        Ok(())
    }

    /// Seeded fault `order::publish-before-commit` (self-test only): a framed record sent
    /// straight to Kafka, before (and whatever becomes of) the transaction that stores what it
    /// announces — the dual write the outbox exists to avoid.
    pub async fn publish_now(&self, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        use rdkafka::message::{Header, OwnedHeaders};
        let headers =
            OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/vnd.confluent.avro") });
        let record = rdkafka::producer::FutureRecord::to(topic).key(key).payload(payload).headers(headers);
        match self.producer.send(record, std::time::Duration::from_secs(10)).await {
            Ok(_) => Ok(()),
            Err((error, _)) => Err(anyhow::anyhow!("publishing to {topic}: {error}")),
        }
    }
}

pub struct Started {
    pub context: Context,
    pub shutdown: Shutdown,
    _faults: crate::failpoint::Faults,
    _shutdown_tx: tokio::sync::watch::Sender<bool>,
}

/// Everything up to, not including, consuming and serving.
#[inline(never)] // the point is that this is compiled here, not in the service (module doc)
pub fn start(
    service_name: &'static str,
    default_port: u16,
    migrations: &'static [crate::db::Migration],
) -> LocalBoxFuture<'static, anyhow::Result<Started>> {
    Box::pin(start_here(service_name, default_port, migrations))
}

async fn start_here(
    service_name: &'static str,
    default_port: u16,
    migrations: &'static [crate::db::Migration],
) -> anyhow::Result<Started> {
    crate::telemetry::init(service_name);
    let faults = crate::failpoint::setup();
    let config = ServiceConfig::from_env(service_name, default_port)?;
    let (shutdown_tx, shutdown) = crate::shutdown_on_signals();
    let pool = crate::db::connect(&config.database_url).await?;
    crate::db::migrator(migrations).run(&pool).await.context("running database migrations")?;
    let codec = Arc::new(EventCodec::new(&config.schema_registry_url)?);
    let mut topic_names: Vec<String> = Vec::new();
    for topic in SagaTopic::ALL {
        topic_names.push(config.topics.name(topic).to_string());
        topic_names.push(config.topics.dead_letter(topic));
    }
    kafka::ensure_topics(
        &config.kafka_bootstrap_servers,
        &topic_names,
        config.topic_partitions,
        config.topic_replication,
    )
    .await?;
    let producer = kafka::producer(&config.kafka_bootstrap_servers)?;
    let metrics = Metrics::new(service_name);
    let relay_pool = crate::db::connect_relay_pool(&config.database_url).await?;
    let kafka_out = match config.kafka_transactions {
        None => outbox::KafkaOut::Idempotent(producer.clone()),
        Some(mode) => {
            // One per instance: a restarted instance fences its previous self, two live ones never clash.
            let id = match &config.instance_id {
                Some(instance) => format!("{instance}-outbox"),
                None => format!("{service_name}-outbox-{}", std::process::id()),
            };
            outbox::KafkaOut::Transactions(kafka::transactional_settings(&config.kafka_bootstrap_servers, &id), mode)
        }
    };
    let relay =
        outbox::start_relays(relay_pool, kafka_out, config.push_gateway_url.clone(), metrics.clone(), shutdown.clone());
    Ok(Started {
        context: Context { config, pool, codec, producer, metrics, relay },
        shutdown,
        _faults: faults,
        _shutdown_tx: shutdown_tx,
    })
}

/// Consumes `topics` with `handler` and serves `routes` (plus `/health`, `/metrics`) until a
/// signal; a failing consumer stops the service rather than leaving it half alive.
pub fn run<H: Handler>(
    started: Started,
    topics: Vec<SagaTopic>,
    handler: H,
    routes: Router,
) -> LocalBoxFuture<'static, anyhow::Result<()>> {
    run_shared(started, topics, Arc::new(handler), routes)
}

/// [`run`] for any handler ([`SharedHandler`]), compiled once, here (module doc).
#[inline(never)]
fn run_shared(
    started: Started,
    topics: Vec<SagaTopic>,
    handler: SharedHandler,
    routes: Router,
) -> LocalBoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run_here(started, topics, handler, routes))
}

async fn run_here(
    started: Started,
    topics: Vec<SagaTopic>,
    handler: SharedHandler,
    routes: Router,
) -> anyhow::Result<()> {
    let Started { context, shutdown, _faults, _shutdown_tx } = started;
    let setup = ConsumerSetup {
        config: context.config.clone(),
        pool: context.pool.clone(),
        relay: context.relay.clone(),
        topics,
        codec: context.codec.clone(),
        producer: context.producer.clone(),
        metrics: context.metrics.clone(),
    };
    let mut consumer_task = tokio::spawn(consumer::run(setup, handler, shutdown.clone()));
    let router = routes.merge(crate::http::operational_routes(context.metrics.clone()));
    let server = crate::http::serve(router, context.config.http_port, shutdown.clone());
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => {
            served?;
            let _ = _shutdown_tx.send(true);
            consumer_task.await.context("consumer task panicked")??;
        }
        consumed = &mut consumer_task => {
            consumed.context("consumer task panicked")??;
            if !*shutdown.borrow() {
                anyhow::bail!("consumer stopped unexpectedly");
            }
            server.await?;
        }
    }
    context.pool.close().await;
    tracing::info!("stopped");
    Ok(())
}
