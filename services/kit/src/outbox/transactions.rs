//! An opt-in way for the Kafka relay to publish: each batch in a Kafka transaction
//! ([`TransactionalSink`], `OUTBOX_KAFKA_TRANSACTIONS`, see [`crate::config::KafkaTransactions`]),
//! as exactly-once pipelines do, and with `abort-every:N` every Nth batch's transaction is
//! aborted after the broker acknowledged its records — which stay in the topic, marked aborted,
//! for no `read_committed` consumer to see — and the batch is published again in a new one. The
//! records keep their `eventId`s: those are in the outbox row's payload, written with the state
//! change, not assigned here. It exists to try the suite against an implementation that does so
//! (its tap must read committed records only); the reference publishes without transactions.
//!
//! One transaction at a time per producer: batches queue to one task, in the order the relay
//! starts them (so per-partition order is kept), and what queued meanwhile goes in the next.

use super::Row;
use super::relay::Sink;
use super::sinks::record;
use crate::config::KafkaTransactions;
use crate::metrics::Metrics;
use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a commit, an abort or `init_transactions` may take before it counts as failed.
const TRANSACTION_WAIT: Duration = Duration::from_secs(30);

type Batch = (Vec<Row>, oneshot::Sender<Vec<i64>>);

pub(super) struct TransactionalSink {
    batches: mpsc::UnboundedSender<Batch>,
}

impl TransactionalSink {
    /// Starts the task that publishes: `client` is the producer's configuration (its
    /// `transactional.id` set), made into a producer — and made again after a fatal error.
    pub(super) fn spawn(client: rdkafka::ClientConfig, mode: KafkaTransactions, metrics: Metrics) -> Self {
        let (batches, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish(client, mode, metrics, rx));
        TransactionalSink { batches }
    }
}

impl Sink for TransactionalSink {
    fn start(&self, rows: &[Row]) -> impl Future<Output = Vec<i64>> + Send + 'static {
        let (reply, sent) = oneshot::channel();
        // A closed channel (the task ended) sends nothing: the rows stay in the table.
        let _ = self.batches.send((rows.to_vec(), reply));
        async move { sent.await.unwrap_or_default() }
    }
}

/// The publishing task: the batches queued so far in one transaction, then the next.
async fn publish(
    client: rdkafka::ClientConfig,
    mode: KafkaTransactions,
    metrics: Metrics,
    mut batches: mpsc::UnboundedReceiver<Batch>,
) {
    let mut producer: Option<FutureProducer> = None;
    let (mut transactions, mut aborted) = (0u64, 0u64);
    while let Some(first) = batches.recv().await {
        let mut queued = vec![first];
        while let Ok(more) = batches.try_recv() {
            queued.push(more);
        }
        let rows: Vec<Row> = queued.iter().flat_map(|(rows, _)| rows.iter().cloned()).collect();
        let tx_producer = match &producer {
            Some(p) => p.clone(),
            None => match ready(&client).await {
                Ok(p) => producer.insert(p).clone(),
                Err(error) => {
                    tracing::error!(%error, "the outbox's transactional producer could not start; the rows are retried");
                    continue; // the replies drop: nothing sent, the fallback retries
                }
            },
        };
        transactions += 1;
        let mut outcome = Ok(());
        if mode.aborts(transactions) {
            outcome = transaction(&tx_producer, &rows, &metrics, false).await;
            if outcome.is_ok() {
                aborted += 1;
                tracing::info!(
                    records = rows.len(),
                    aborted,
                    transactions,
                    "outbox Kafka transaction aborted on purpose (OUTBOX_KAFKA_TRANSACTIONS); publishing its records again in a new one"
                );
            }
        }
        if outcome.is_ok() {
            outcome = transaction(&tx_producer, &rows, &metrics, true).await;
        }
        let sent = match outcome {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, records = rows.len(), "outbox Kafka transaction failed; the fallback scan retries its rows");
                if !recover(&tx_producer, &error).await {
                    producer = None;
                }
                false
            }
        };
        for (rows, reply) in queued {
            let _ = reply.send(if sent { rows.iter().map(|r| r.id).collect() } else { Vec::new() });
        }
    }
}

/// A producer of `client` with its transactions initialised (fencing a previous instance of the
/// same `transactional.id`).
async fn ready(client: &rdkafka::ClientConfig) -> Result<FutureProducer, KafkaError> {
    let producer: FutureProducer = client.create()?;
    let init = producer.clone();
    tokio::task::spawn_blocking(move || init.init_transactions(TRANSACTION_WAIT))
        .await
        .map_err(|_| KafkaError::Canceled)??;
    Ok(producer)
}

/// `rows` in one transaction, committed (`commit`) or aborted once the broker acknowledged
/// every record.
async fn transaction(
    producer: &FutureProducer,
    rows: &[Row],
    metrics: &Metrics,
    commit: bool,
) -> Result<(), KafkaError> {
    producer.begin_transaction()?;
    let deliveries: Vec<_> = rows.iter().map(|row| producer.send_result(record(row)).map_err(|(e, _)| e)).collect();
    let acknowledged = join_all(deliveries.into_iter().zip(rows).map(|(delivery, row)| async move {
        let outcome = match delivery {
            Ok(future) => match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_) => Err(KafkaError::Canceled),
            },
            Err(error) => Err(error),
        };
        metrics.published(&row.topic, outcome.is_ok());
        outcome
    }))
    .await;
    let ending = producer.clone();
    let commit = commit && acknowledged.iter().all(Result::is_ok);
    let ended = tokio::task::spawn_blocking(move || {
        if commit { ending.commit_transaction(TRANSACTION_WAIT) } else { ending.abort_transaction(TRANSACTION_WAIT) }
    })
    .await
    .map_err(|_| KafkaError::Canceled)?;
    acknowledged.into_iter().collect::<Result<Vec<()>, _>>()?;
    ended
}

/// After a failed transaction: aborts it if it is still open. `false`: the producer cannot go
/// on (a fatal error, e.g. fenced by a newer instance) and is made again for the next batch.
async fn recover(producer: &FutureProducer, error: &KafkaError) -> bool {
    if let KafkaError::Transaction(e) = error
        && e.is_fatal()
    {
        return false;
    }
    let aborting = producer.clone();
    match tokio::task::spawn_blocking(move || aborting.abort_transaction(TRANSACTION_WAIT)).await {
        Ok(Ok(())) => true,
        // No transaction open (it failed at begin, or the abort above already ended it).
        Ok(Err(KafkaError::Transaction(e))) if !e.is_fatal() && e.code() == rdkafka::types::RDKafkaErrorCode::State => {
            true
        }
        _ => false,
    }
}
