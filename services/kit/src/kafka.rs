//! Kafka clients with the settings the contract's guarantees rest on: an idempotent producer
//! with `acks=all` (no loss, no duplicates from retries), and topic creation so a service
//! started against an empty broker finds its topics (auto-creation would give 1 partition).

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Producer tuned for latency without giving up durability: `linger.ms=1` still batches
/// bursts, and `enable.idempotence` keeps order and dedupes retries.
pub fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .create()
        .with_context(|| format!("creating Kafka producer for {bootstrap}"))
}

/// Creates each topic with `partitions` partitions and `replication` replicas (-1: the broker's
/// `default.replication.factor`) if missing.
pub async fn ensure_topics(bootstrap: &str, names: &[String], partitions: i32, replication: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .with_context(|| format!("creating Kafka admin client for {bootstrap}"))?;
    let new_topics: Vec<NewTopic> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(replication))).collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(20)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new_topics, &options).await.map_err(|e| {
        anyhow::anyhow!("Kafka at {bootstrap} did not answer topic creation: {e}; is the broker running?")
    })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic} on {bootstrap} failed: {code}"),
        }
    }
    Ok(())
}
