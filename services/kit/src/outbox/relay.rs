//! The relays: one for Kafka and (with a push gateway) one for pushes. Rows committed by an
//! [`super::OutboxTx`] arrive in memory through the [`RelayHandle`] and are sent at once (the
//! hot path); what went out is deleted in gathered batches; every [`FALLBACK_POLL`] the
//! fallback scan sends what the hot path did not.

use super::fallback::{FALLBACK_MIN_AGE_MS, FALLBACK_POLL};
use super::sinks::{GatewaySink, KafkaSink};
use super::transactions::TransactionalSink;
use super::tx::{Conn, OutboxTx};
use super::{Kind, Row};
use crate::db::HeldConnection;
use crate::metrics::Metrics;
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long sent ids are gathered into one DELETE (off the latency path). At a steady trickle
/// every window costs a statement, so a longer one saves PostgreSQL work (at 100 orders/s,
/// 20 ms meant ~160 deletes a second over the five relays); the price is that a crash resends
/// up to this much more, which consumers drop by eventId.
const DELETE_GATHER: Duration = Duration::from_millis(100);

/// The way into the relays; cheap to clone.
#[derive(Clone)]
pub struct RelayHandle {
    kafka: mpsc::UnboundedSender<Vec<Row>>,
    /// `None` without a push gateway: push rows then stay in the table.
    push: Option<mpsc::UnboundedSender<Vec<Row>>>,
}

impl RelayHandle {
    /// A transaction on `held`'s connection whose rows reach this relay on commit (nothing is
    /// sent to the database until it is used, see [`OutboxTx`]).
    pub async fn begin<'c>(&self, held: &'c mut HeldConnection) -> sqlx::Result<OutboxTx<'c>> {
        let conn = Conn::Idle(held.connection().await?);
        Ok(OutboxTx { conn, last_writes: None, queued: Vec::new(), relay: self.clone() })
    }

    pub(super) fn hand_over(&self, queued: Vec<(Kind, Row)>) {
        let (kafka, push): (Vec<_>, Vec<_>) = queued.into_iter().partition(|(kind, _)| *kind == Kind::Kafka);
        // A closed channel means the relay stopped (shutdown): the rows wait in the table.
        if !kafka.is_empty() {
            let _ = self.kafka.send(kafka.into_iter().map(|(_, row)| row).collect());
        }
        if let (Some(channel), false) = (&self.push, push.is_empty()) {
            let _ = channel.send(push.into_iter().map(|(_, row)| row).collect());
        }
    }
}

/// Starts the Kafka relay and (when a gateway is configured) the push relay. Each first sends
/// whatever a previous run committed but did not send. `relay_pool` should be a small pool of
/// its own with `synchronous_commit=off` (see [`crate::db::connect_relay_pool`]).
pub fn start_relays(
    relay_pool: PgPool,
    kafka: KafkaOut,
    push_gateway: Option<String>,
    metrics: Metrics,
    shutdown: crate::Shutdown,
) -> RelayHandle {
    let (kafka_tx, kafka_rx) = mpsc::unbounded_channel();
    match kafka {
        KafkaOut::Idempotent(producer) => {
            let kafka = KafkaSink { producer, metrics: metrics.clone() };
            tokio::spawn(Relay::new(Kind::Kafka, relay_pool.clone(), kafka).run(kafka_rx, shutdown.clone()));
        }
        KafkaOut::Transactions(client, mode) => {
            tracing::info!(?mode, "the outbox publishes to Kafka in transactions (OUTBOX_KAFKA_TRANSACTIONS)");
            let kafka = TransactionalSink::spawn(client, mode, metrics.clone());
            tokio::spawn(Relay::new(Kind::Kafka, relay_pool.clone(), kafka).run(kafka_rx, shutdown.clone()));
        }
    }
    let push = match push_gateway {
        Some(url) => {
            let (push_tx, push_rx) = mpsc::unbounded_channel();
            let sink = GatewaySink {
                client: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client"),
                url,
                metrics,
            };
            tokio::spawn(Relay::new(Kind::Push, relay_pool, sink).run(push_rx, shutdown));
            Some(push_tx)
        }
        None => {
            tracing::warn!("PUSH_GATEWAY_URL is not set: push notifications stay queued in the outbox");
            None
        }
    };
    RelayHandle { kafka: kafka_tx, push }
}

/// How the Kafka relay publishes: with the service's idempotent producer (the reference's
/// way), or in transactions of a producer of its own made from these settings
/// ([`super::transactions`]).
pub enum KafkaOut {
    Idempotent(FutureProducer),
    Transactions(rdkafka::ClientConfig, crate::config::KafkaTransactions),
}

/// Where a relay sends rows. `start` begins sending synchronously (so records enqueued in
/// commit order keep that order per partition) and returns a future of the ids that went out.
pub(super) trait Sink: Send + Sync + 'static {
    fn start(&self, rows: &[Row]) -> impl Future<Output = Vec<i64>> + Send + 'static;
}

pub(super) struct Relay<S> {
    pub(super) kind: Kind,
    pub(super) pool: PgPool,
    pub(super) sink: Arc<S>,
    /// Ids handed over by the hot path and not yet deleted; the fallback scan skips them.
    pub(super) in_flight: Arc<Mutex<HashSet<i64>>>,
}

impl<S: Sink> Relay<S> {
    fn new(kind: Kind, pool: PgPool, sink: S) -> Relay<S> {
        Relay { kind, pool, sink: Arc::new(sink), in_flight: Arc::default() }
    }

    async fn run(self, mut hot: mpsc::UnboundedReceiver<Vec<Row>>, shutdown: crate::Shutdown) {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        tokio::spawn(delete_sent(self.kind, self.pool.clone(), self.in_flight.clone(), done_rx));
        let mut min_age_ms = 0; // the first round takes everything a previous run left
        let mut fallback = tokio::time::interval(FALLBACK_POLL);
        fallback.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = shutdown.clone();
        loop {
            tokio::select! {
                Some(rows) = hot.recv() => self.send_hot(rows, &mut hot, &done_tx),
                _ = fallback.tick() => {
                    // Rows already handed over are the hot path's: claim them before scanning.
                    self.send_hot(Vec::new(), &mut hot, &done_tx);
                    if let Err(error) = self.fallback_round(min_age_ms).await {
                        tracing::error!(kind = self.kind.as_str(), %error, "outbox fallback round failed; retrying");
                    }
                    min_age_ms = FALLBACK_MIN_AGE_MS;
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Starts sending `rows` and everything else already handed over; the outcome goes to
    /// [`delete_sent`].
    fn send_hot(
        &self,
        mut rows: Vec<Row>,
        hot: &mut mpsc::UnboundedReceiver<Vec<Row>>,
        done: &mpsc::UnboundedSender<(Vec<i64>, Vec<i64>)>,
    ) {
        while let Ok(more) = hot.try_recv() {
            rows.extend(more);
        }
        if rows.is_empty() {
            return;
        }
        let all: Vec<i64> = rows.iter().map(|r| r.id).collect();
        self.in_flight.lock().expect("in-flight set").extend(all.iter().copied());
        let sending = self.sink.start(&rows);
        let done = done.clone();
        tokio::spawn(async move {
            let sent = sending.await;
            let _ = done.send((sent, all));
        });
    }
}

/// Deletes what the hot path sent, many ids per statement, and only then forgets them as in
/// flight (so the fallback never resends a row that went out). Ids that failed to send are
/// forgotten at once: the fallback retries them.
async fn delete_sent(
    kind: Kind,
    pool: PgPool,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    mut done: mpsc::UnboundedReceiver<(Vec<i64>, Vec<i64>)>,
) {
    while let Some((mut sent, mut all)) = done.recv().await {
        let gather = tokio::time::sleep(DELETE_GATHER);
        tokio::pin!(gather);
        loop {
            tokio::select! {
                more = done.recv() => match more {
                    Some((s, a)) => { sent.extend(s); all.extend(a); }
                    None => break,
                },
                _ = &mut gather => break,
            }
        }
        let failed: HashSet<i64> = {
            let sent: HashSet<i64> = sent.iter().copied().collect();
            all.iter().copied().filter(|id| !sent.contains(id)).collect()
        };
        if !failed.is_empty() {
            tracing::warn!(
                kind = kind.as_str(),
                rows = failed.len(),
                "outbox rows not sent; the fallback scan retries them"
            );
            in_flight.lock().expect("in-flight set").retain(|id| !failed.contains(id));
        }
        if let Err(error) = sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&sent).execute(&pool).await {
            // Left in the table and forgotten here, the rows are resent by the fallback —
            // duplicates the consumers drop by eventId, never a loss.
            tracing::error!(kind = kind.as_str(), %error, rows = sent.len(), "deleting sent outbox rows failed");
        }
        let sent: HashSet<i64> = sent.into_iter().collect();
        in_flight.lock().expect("in-flight set").retain(|id| !sent.contains(id));
    }
}
