//! The transactional outbox. A handler writes its state change and the rows here in one
//! transaction; after commit it wakes the relay, which publishes (Kafka) or delivers (push)
//! and deletes what went out. A crash between commit and publish leaves the rows, and the
//! relay sends them when the service is back — nothing is lost.
//!
//! Delivery is at-least-once (a crash after publishing but before the delete resends), which
//! the consumers' `eventId` dedupe and the push payload's `eventId` absorb.

use crate::metrics::Metrics;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
pub use saga_contract::PushNotification;
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Most rows taken per relay round.
const BATCH: i64 = 256;
/// How often the relay looks even without a wake-up: retries after a failure and rows left
/// by another instance. The normal path is the in-process wake-up on commit.
const FALLBACK_POLL: Duration = Duration::from_millis(500);

/// Queues a framed Kafka record in the caller's transaction.
pub async fn enqueue_event(tx: &mut Transaction<'_, Postgres>, topic: &str, key: &str, payload: &[u8]) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO outbox (kind, topic, msg_key, payload) VALUES ('kafka', $1, $2, $3)")
        .bind(topic)
        .bind(key)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Queues a push notification in the caller's transaction.
pub async fn enqueue_push(tx: &mut Transaction<'_, Postgres>, push: &PushNotification) -> sqlx::Result<()> {
    let payload = serde_json::to_vec(push).expect("a notification serialises");
    sqlx::query("INSERT INTO outbox (kind, topic, msg_key, payload) VALUES ('push', 'push', $1, $2)")
        .bind(&push.order_id)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Handle to wake the relays after a commit.
#[derive(Clone)]
pub struct RelayHandle {
    kafka: Arc<Notify>,
    push: Arc<Notify>,
}

impl RelayHandle {
    /// Call after committing a transaction that enqueued rows.
    pub fn wake(&self) {
        self.kafka.notify_one();
        self.push.notify_one();
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    topic: String,
    msg_key: String,
    payload: Vec<u8>,
}

/// Starts the Kafka relay and (when a gateway is configured) the push relay.
pub fn start_relays(pool: PgPool, producer: FutureProducer, push_gateway: Option<String>, metrics: Metrics, shutdown: crate::Shutdown) -> RelayHandle {
    let handle = RelayHandle { kafka: Arc::new(Notify::new()), push: Arc::new(Notify::new()) };
    let kafka = KafkaSink { producer, metrics: metrics.clone() };
    tokio::spawn(relay_loop("kafka", pool.clone(), handle.kafka.clone(), shutdown.clone(), move |rows| {
        let kafka = kafka.clone();
        async move { kafka.publish(rows).await }
    }));
    match push_gateway {
        Some(url) => {
            let push = PushSink { client: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client"), url, metrics };
            tokio::spawn(relay_loop("push", pool, handle.push.clone(), shutdown, move |rows| {
                let push = push.clone();
                async move { push.deliver(rows).await }
            }));
        }
        None => tracing::warn!("PUSH_GATEWAY_URL is not set: push notifications stay queued in the outbox"),
    }
    handle
}

/// One relay: lock a batch (SKIP LOCKED lets several instances share the table), send it,
/// delete what was sent, repeat while there is work; otherwise wait for a wake-up.
async fn relay_loop<F, Fut>(kind: &'static str, pool: PgPool, wake: Arc<Notify>, shutdown: crate::Shutdown, send: F)
where
    F: Fn(Vec<Row>) -> Fut,
    Fut: Future<Output = Vec<i64>>,
{
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let round = async {
            let mut tx = pool.begin().await?;
            // The DELETE need not wait for its WAL flush: if it is lost in a crash the rows are
            // sent again, and consumers drop the repeat by eventId. Saves an fsync per round.
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            let rows: Vec<Row> = sqlx::query_as("SELECT id, topic, msg_key, payload FROM outbox WHERE kind = $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED")
                .bind(kind)
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
            let taken = rows.len();
            let sent = if rows.is_empty() { Vec::new() } else { send(rows).await };
            if !sent.is_empty() {
                sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&sent).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>((taken, sent.len()))
        };
        match round.await {
            Ok((taken, sent)) if sent == taken => {
                failures = 0;
                if taken as i64 == BATCH {
                    continue; // a full batch: there may be more
                }
            }
            Ok((taken, sent)) => {
                failures += 1;
                tracing::warn!(kind, taken, sent, "relay round left rows unsent; retrying");
            }
            Err(error) => {
                failures += 1;
                tracing::error!(kind, %error, "relay round failed; retrying");
            }
        }
        // Back off after failures (pacing, not synchronisation); otherwise wait for a commit.
        let pause = if failures > 0 { Duration::from_millis(50 * 2u64.pow(failures.min(6))) } else { FALLBACK_POLL };
        let mut shutdown_wait = shutdown.clone();
        tokio::select! {
            _ = wake.notified(), if failures == 0 => {},
            _ = tokio::time::sleep(pause) => {},
            _ = shutdown_wait.changed() => {},
        }
    }
}

#[derive(Clone)]
struct KafkaSink {
    producer: FutureProducer,
    metrics: Metrics,
}

impl KafkaSink {
    /// Sends the batch concurrently (the idempotent producer keeps per-partition order) and
    /// returns the ids the broker acknowledged.
    async fn publish(&self, rows: Vec<Row>) -> Vec<i64> {
        let deliveries = rows.iter().map(|row| {
            let record = FutureRecord::to(&row.topic).key(&row.msg_key).payload(&row.payload).headers(OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/vnd.confluent.avro") }));
            async move {
                let result = self.producer.send(record, Duration::from_secs(30)).await;
                self.metrics.published(&row.topic, result.is_ok());
                match result {
                    Ok(_) => Some(row.id),
                    Err((error, _)) => {
                        tracing::warn!(topic = %row.topic, key = %row.msg_key, %error, "publish failed");
                        None
                    }
                }
            }
        });
        join_all(deliveries).await.into_iter().flatten().collect()
    }
}

#[derive(Clone)]
struct PushSink {
    client: reqwest::Client,
    url: String,
    metrics: Metrics,
}

impl PushSink {
    /// POSTs each notification; a 2xx or a 4xx (the gateway refuses it for good) removes the
    /// row, anything else keeps it for the next round.
    async fn deliver(&self, rows: Vec<Row>) -> Vec<i64> {
        let posts = rows.iter().map(|row| async move {
            let response = self.client.post(&self.url).header("content-type", "application/json").body(row.payload.clone()).send().await;
            match response {
                Ok(r) if r.status().is_success() => {
                    self.metrics.pushed(true);
                    Some(row.id)
                }
                Ok(r) if r.status().is_client_error() => {
                    self.metrics.pushed(false);
                    tracing::error!(status = %r.status(), order_id = %row.msg_key, "push gateway refused the notification; dropping it");
                    Some(row.id)
                }
                Ok(r) => {
                    self.metrics.pushed(false);
                    tracing::warn!(status = %r.status(), "push gateway failed; will retry");
                    None
                }
                Err(error) => {
                    self.metrics.pushed(false);
                    tracing::warn!(%error, url = %self.url, "push gateway unreachable; will retry");
                    None
                }
            }
        });
        join_all(posts).await.into_iter().flatten().collect()
    }
}
