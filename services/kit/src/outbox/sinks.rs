//! Where the relays send rows: Kafka ([`KafkaSink`], the idempotent producer, acknowledged ids
//! only) and the push gateway ([`GatewaySink`], a 2xx or a 4xx counts as done).

use super::Row;
use super::relay::Sink;
use crate::failpoint;
use crate::metrics::Metrics;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[derive(Clone)]
pub(super) struct KafkaSink {
    pub(super) producer: FutureProducer,
    pub(super) metrics: Metrics,
}

impl Sink for KafkaSink {
    /// Enqueues every record now, in order (the idempotent producer keeps per-partition order),
    /// and resolves to the ids the broker acknowledged.
    fn start(&self, rows: &[Row]) -> impl Future<Output = Vec<i64>> + Send + 'static {
        let deliveries: Vec<_> = rows
            .iter()
            .map(|row| {
                let delivery = self.producer.send_result(record(row)).map_err(|(error, _)| error);
                (row.id, row.topic.clone(), row.msg_key.clone(), delivery)
            })
            .collect();
        let metrics = self.metrics.clone();
        async move {
            let outcomes = deliveries.into_iter().map(|(id, topic, key, delivery)| {
                let metrics = metrics.clone();
                async move {
                    let result = match delivery {
                        Ok(future) => match future.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((error, _))) => Err(error.to_string()),
                            Err(_) => Err("producer dropped the delivery".to_string()),
                        },
                        Err(error) => Err(error.to_string()),
                    };
                    metrics.published(&topic, result.is_ok());
                    match result {
                        Ok(()) => Some(id),
                        Err(error) => {
                            tracing::warn!(%topic, %key, %error, "publish failed");
                            None
                        }
                    }
                }
            });
            join_all(outcomes).await.into_iter().flatten().collect()
        }
    }
}

/// `row` as the Kafka record the relays publish (key = orderId, Confluent-framed Avro).
pub(super) fn record(row: &Row) -> FutureRecord<'_, String, Vec<u8>> {
    FutureRecord::to(&row.topic).key(&row.msg_key).payload(&row.payload).headers(
        OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/vnd.confluent.avro") }),
    )
}

#[derive(Clone)]
pub(super) struct GatewaySink {
    pub(super) client: reqwest::Client,
    pub(super) url: String,
    pub(super) metrics: Metrics,
}

impl Sink for GatewaySink {
    /// POSTs each notification; a 2xx or a 4xx (the gateway refuses it for good) counts as
    /// done, anything else leaves the row for a retry.
    fn start(&self, rows: &[Row]) -> impl Future<Output = Vec<i64>> + Send + 'static {
        let posts: Vec<_> = rows
            .iter()
            .map(|row| {
                let sink = self.clone();
                let (id, order_id) = (row.id, row.msg_key.clone());
                let request = self.client.post(&self.url).header("content-type", "application/json").body(row.payload.clone()).send();
                async move {
                    match request.await {
                        Ok(r) if r.status().is_success() => {
                            sink.metrics.pushed(true);
                            Some(id)
                        }
                        Ok(r) if r.status().is_client_error() => {
                            sink.metrics.pushed(false);
                            tracing::error!(status = %r.status(), %order_id, "push gateway refused the notification; dropping it");
                            Some(id)
                        }
                        Ok(r) => {
                            sink.metrics.pushed(false);
                            tracing::warn!(status = %r.status(), "push gateway failed; will retry");
                            forgotten(id)
                        }
                        Err(error) => {
                            sink.metrics.pushed(false);
                            tracing::warn!(%error, url = %sink.url, "push gateway unreachable; will retry");
                            forgotten(id)
                        }
                    }
                }
            })
            .collect();
        async move { join_all(posts).await.into_iter().flatten().collect() }
    }
}

/// `None`: a push that failed stays in the outbox for a retry. Seeded fault (self-test): it is
/// sent once and forgotten, counted as done although the gateway never took it.
fn forgotten(id: i64) -> Option<i64> {
    failpoint::active("kit::push-forgotten-on-error").then_some(id)
}
