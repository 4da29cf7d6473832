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

/// Producer tuned for latency without giving up durability. `linger.ms=0`: a record goes out
/// at once instead of waiting 1 ms for company, which at a light load was a millisecond on each
/// of the saga's three hops (docs/performance.md); under load records still share requests,
/// because those that arrive while the connection's in-flight requests are outstanding wait and
/// go together. `enable.idempotence` keeps order and dedupes retries.
pub fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    producer_settings(bootstrap).create().with_context(|| format!("creating Kafka producer for {bootstrap}"))
}

/// The settings of [`producer`].
fn producer_settings(bootstrap: &str) -> ClientConfig {
    let mut client = client(bootstrap);
    client
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000");
    apply_overrides(&mut client, PRODUCER_OVERRIDES, std::env::vars());
    client
}

/// The settings of a transactional producer (the outbox relay's, with
/// `OUTBOX_KAFKA_TRANSACTIONS`): [`producer`]'s, `transactional.id`, and a transaction timeout
/// of 10 s (Kafka Streams' choice; the client's default is 60 s): a transaction left open by an
/// instance that was paused, or killed and not restarted, holds back every `read_committed`
/// consumer of its partitions until the broker aborts it. librdkafka wants a record's
/// `message.timeout.ms` within it, so that is 10 s too.
pub fn transactional_settings(bootstrap: &str, transactional_id: &str) -> ClientConfig {
    let mut client = producer_settings(bootstrap);
    client
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "10000")
        .set("message.timeout.ms", "10000");
    client
}

/// The settings every Kafka client of a service starts from. `reconnect.backoff.max.ms=1000`:
/// librdkafka doubles the wait between reconnects up to 10 s by default, so after an outage of
/// ~15 s a service could sit up to 10 s more before it noticed the broker was back (measured:
/// the crash suite's orders settled ~9.5 s after the broker restarted); one second bounds the
/// recovery for a cost of one connection attempt a second while the broker is down.
pub fn client(bootstrap: &str) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap).set("reconnect.backoff.max.ms", "1000");
    client
}

/// Prefix of the environment variables that set any librdkafka producer property:
/// `KAFKA_PRODUCER_LINGER_MS=5` sets `linger.ms=5` (for tuning and benchmarks; docs/reference-implementation.md).
pub const PRODUCER_OVERRIDES: &str = "KAFKA_PRODUCER_";
/// Same for the consumers: `KAFKA_CONSUMER_FETCH_MIN_BYTES=1024` sets `fetch.min.bytes`.
pub const CONSUMER_OVERRIDES: &str = "KAFKA_CONSUMER_";

/// Sets each `<prefix>SOME_PROPERTY=value` variable as `some.property=value` (librdkafka's
/// property names are lower case with dots), after the defaults so an override wins; logged,
/// since a changed setting changes behaviour.
pub fn apply_overrides(client: &mut ClientConfig, prefix: &str, vars: impl Iterator<Item = (String, String)>) {
    for (name, value) in vars {
        if let Some(property) = name.strip_prefix(prefix).filter(|p| !p.is_empty()) {
            let property = property.to_ascii_lowercase().replace('_', ".");
            tracing::info!(%property, %value, "Kafka client property set from {name}");
            client.set(property, value);
        }
    }
}

/// Creates each topic with `partitions` partitions and `replication` replicas (-1: the broker's
/// `default.replication.factor`) if missing.
pub async fn ensure_topics(bootstrap: &str, names: &[String], partitions: i32, replication: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client(bootstrap).create().with_context(|| format!("creating Kafka admin client for {bootstrap}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_names_the_property_and_wins_over_the_default() {
        let mut client = ClientConfig::new();
        client.set("linger.ms", "1");
        let vars =
            [("KAFKA_PRODUCER_LINGER_MS", "5"), ("KAFKA_CONSUMER_FETCH_MIN_BYTES", "9"), ("KAFKA_PRODUCER_", "x")];
        apply_overrides(&mut client, PRODUCER_OVERRIDES, vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(client.get("linger.ms"), Some("5"));
        assert_eq!(client.get("fetch.min.bytes"), None, "another prefix's variable must not apply");
        assert_eq!(client.config_map().len(), 1, "an empty property name must be ignored");
    }
}
