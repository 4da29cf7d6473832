//! The tap: one consumer assigned to every partition of every saga topic (and its `.dlt`, when
//! the implementation declares dead-letter topics), starting at the end offsets of the moment it
//! starts, so it records everything the run produces. Each record is kept with its coordinates
//! (topic, partition, offset, key, timestamp, headers), its Confluent schema id and its decoded
//! value, and is validated against the contract in `avro/` as it arrives. Steps wait on the log
//! with deadlines.
//!
//! Like any consumer of the saga, the tap reads committed records only (`read_committed`): an
//! implementation that publishes in Kafka transactions is judged on what its consumers see, and
//! the records of an aborted transaction never reach a check.

use crate::kafka::{self, Fetch};
use crate::observed::TapRecord;
use crate::poll;

mod caught_up;
use anyhow::Context as _;
use apache_avro::types::Value;
pub use caught_up::Behind;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use saga_contract::{EventCodec, Money, SagaTopic, Topics};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// How eagerly the tap fetches (see [`assigned_consumer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    Live,
    Batched,
}

struct Inner {
    log: RwLock<Vec<TapRecord>>,
    /// Where the tap started reading each partition: (topic, partition) → offset.
    started_at: BTreeMap<(String, i32), i64>,
    bootstrap: String,
    changed: watch::Sender<usize>,
    /// Set when the tap is closed; the consumer task ends.
    closed: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Tap {
    inner: Arc<Inner>,
    pub topics: Topics,
}

impl Tap {
    /// Assigns every partition of the saga topics — and, when the implementation has them
    /// (`dead_letters`), their dead-letter topics — at their current end and starts recording
    /// (`pace`: see [`assigned_consumer`]). Without `dead_letters` no `.dlt` topic need exist.
    pub async fn start(
        bootstrap: &str,
        registry_url: &str,
        topics: Topics,
        dead_letters: bool,
        pace: Pace,
    ) -> anyhow::Result<Tap> {
        let names = topic_names(&topics, dead_letters);
        let (consumer, assignment) = assigned_consumer(bootstrap, &names, StartAt::End, pace, "tap").await?;
        let started_at = assignment
            .elements()
            .iter()
            .filter_map(|p| match p.offset() {
                Offset::Offset(at) => Some(((p.topic().to_string(), p.partition()), at)),
                _ => None,
            })
            .collect();
        let codec = EventCodec::new(registry_url)?;
        let (changed, _) = watch::channel(0);
        let (closed, close) = watch::channel(false);
        let inner = Arc::new(Inner {
            log: RwLock::new(Vec::new()),
            started_at,
            bootstrap: bootstrap.to_string(),
            changed,
            closed,
        });
        let tap = Tap { inner: inner.clone(), topics: topics.clone() };
        tokio::spawn(receive(consumer, codec, topics, "tap", close, move |mut record| {
            let len = {
                let mut log = inner.log.write().expect("tap log poisoned");
                record.seq = log.len();
                log.push(record);
                log.len()
            };
            inner.changed.send_replace(len);
        }));
        Ok(tap)
    }

    /// Stops recording (before the broker goes away at the end of a run).
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    /// A copy of the whole log.
    pub fn records(&self) -> Vec<TapRecord> {
        self.inner.log.read().expect("tap log poisoned").clone()
    }

    /// The records of one order, in arrival order.
    pub fn for_order(&self, order_id: &str) -> Vec<TapRecord> {
        self.inner
            .log
            .read()
            .expect("tap log poisoned")
            .iter()
            .filter(|r| r.order_id.as_deref() == Some(order_id) || r.key.as_deref() == Some(order_id))
            .cloned()
            .collect()
    }

    /// The records of several orders, in arrival order.
    pub fn for_orders(&self, order_ids: &std::collections::BTreeSet<String>) -> Vec<TapRecord> {
        let of = |id: &Option<String>| id.as_ref().is_some_and(|id| order_ids.contains(id));
        self.inner
            .log
            .read()
            .expect("tap log poisoned")
            .iter()
            .filter(|r| of(&r.order_id) || of(&r.key))
            .cloned()
            .collect()
    }

    /// Waits, woken by each record, until `check` over the whole log returns `Ok`, or
    /// `deadline` passes; then `check`'s last `Err` (what it saw instead). `check` runs under
    /// the log's lock, so it must not call back into the tap.
    pub async fn wait_until<T, E>(
        &self,
        deadline: Duration,
        mut check: impl FnMut(&[TapRecord]) -> Result<T, E>,
    ) -> Result<T, E> {
        let log = &self.inner.log;
        poll::until(deadline, self.inner.changed.subscribe(), async || check(&log.read().expect("tap log poisoned")))
            .await
    }

    /// Whether `check` over the whole log stays `Ok` for `period`, looked at on each record;
    /// the first `Err` (what broke it) as soon as it does not.
    pub async fn holds_for<E>(
        &self,
        period: Duration,
        mut check: impl FnMut(&[TapRecord]) -> Result<(), E>,
    ) -> Result<(), E> {
        let log = &self.inner.log;
        poll::holds_for(period, self.inner.changed.subscribe(), async || check(&log.read().expect("tap log poisoned")))
            .await
    }

    /// Waits for a record of `topic` for `order_id`; on timeout, the order's records so far.
    pub async fn wait_for(
        &self,
        topic: SagaTopic,
        order_id: &str,
        deadline: Duration,
    ) -> Result<TapRecord, Vec<TapRecord>> {
        let name = self.topics.name(topic).to_string();
        let found = self
            .wait_until(deadline, |log| {
                log.iter().find(|r| r.topic == name && r.order_id.as_deref() == Some(order_id)).cloned().ok_or(())
            })
            .await;
        found.map_err(|()| self.for_order(order_id))
    }
}

/// Receives, decodes and hands each record to `deliver` until `close` turns true.
pub async fn receive(
    consumer: StreamConsumer,
    codec: EventCodec,
    topics: Topics,
    role: &'static str,
    mut close: watch::Receiver<bool>,
    mut deliver: impl FnMut(TapRecord),
) {
    // While the broker is down (a fault scenario) librdkafka reports every reconnect attempt;
    // the first error of an outage is enough.
    let mut failing = false;
    loop {
        let received = tokio::select! {
            m = consumer.recv() => m,
            _ = close.changed() => return,
        };
        let message = match received {
            Ok(m) => m,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "{role} consumer error (more until it recovers are not shown)");
                    failing = true;
                }
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("{role} consumer receiving again");
        }
        deliver(decode(&codec, &topics, &message).await);
    }
}

/// Where a reader of the saga topics starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Each partition's end when the reader starts: only what is produced from then on.
    End,
    /// The first record at or after this time (epoch ms); a partition with none starts at its end.
    TimeMs(i64),
}

/// The saga topics, and their dead-letter topics when `dead_letters`.
fn topic_names(topics: &Topics, dead_letters: bool) -> Vec<String> {
    let saga = SagaTopic::ALL.into_iter().map(|t| topics.name(t).to_string());
    let dead = SagaTopic::ALL.into_iter().filter(|_| dead_letters).map(|t| topics.dead_letter(t));
    saga.chain(dead).collect()
}

/// A consumer assigned every partition of `names` at `start`, and that assignment. Its group id is its own
/// (`saga-conformance-<role>-<uuid>`) and it never commits: it joins no one's group and moves
/// no one's offsets. It reads committed records only (`read_committed`), as the saga's own
/// consumers do.
///
/// `Pace::Live` sees each record as soon as the broker has it (the suite's waits wake on
/// it). `Pace::Batched` lets the broker hold a fetch up to 200 ms to fill it: for the bench,
/// which reads record timestamps, not arrival times, so its observer costs the measured
/// machine a few fetches a second instead of one per record.
pub async fn assigned_consumer(
    bootstrap: &str,
    names: &[String],
    start: StartAt,
    pace: Pace,
    role: &str,
) -> anyhow::Result<(StreamConsumer, TopicPartitionList)> {
    let fetch = match pace {
        Pace::Live => Fetch { wait_ms: 100, min_bytes: 1 },
        Pace::Batched => Fetch { wait_ms: 200, min_bytes: 1_048_576 },
    };
    let consumer = kafka::assigned_consumer(bootstrap, role, fetch)?;
    let assignment = tokio::task::spawn_blocking({
        let (bootstrap, names) = (bootstrap.to_string(), names.to_vec());
        move || start_offsets(&bootstrap, &names, start)
    })
    .await??;
    consumer.assign(&assignment).with_context(|| format!("assigning the {role}'s partitions"))?;
    Ok((consumer, assignment))
}

/// Every partition of `names` at `start`.
fn start_offsets(bootstrap: &str, names: &[String], start: StartAt) -> anyhow::Result<TopicPartitionList> {
    let list = end_offsets(bootstrap, names)?;
    let StartAt::TimeMs(ms) = start else { return Ok(list) };
    let probe = kafka::metadata_client(bootstrap)?;
    let mut at = TopicPartitionList::new();
    for p in list.elements() {
        at.add_partition_offset(p.topic(), p.partition(), Offset::Offset(ms))?;
    }
    // A partition with no record at or after `ms` comes back as `Offset::End`, which assigns as
    // its end: what is produced from now on.
    probe
        .offsets_for_times(at, Duration::from_secs(10))
        .with_context(|| format!("looking up the offsets at {ms} ms (epoch) on {bootstrap}"))
}

/// Every partition of `names` at its high watermark.
fn end_offsets(bootstrap: &str, names: &[String]) -> anyhow::Result<TopicPartitionList> {
    let probe = kafka::metadata_client(bootstrap)?;
    let mut list = TopicPartitionList::new();
    for name in names {
        let metadata = probe
            .fetch_metadata(Some(name), Duration::from_secs(10))
            .with_context(|| format!("reading metadata of {name} from {bootstrap}"))?;
        let Some(topic) = metadata.topics().first() else { continue };
        if topic.error().is_some() || topic.partitions().is_empty() {
            anyhow::bail!(
                "topic {name} does not exist on {bootstrap}: the implementation must create it (3 partitions) before the suite starts"
            );
        }
        for p in topic.partitions() {
            // Right after a topic is created its partitions may have no leader for a moment.
            let until = std::time::Instant::now() + Duration::from_secs(30);
            let high = loop {
                match probe.fetch_watermarks(name, p.id(), Duration::from_secs(10)) {
                    Ok((_, high)) => break high,
                    Err(e) if std::time::Instant::now() < until => {
                        tracing::debug!(topic = %name, partition = p.id(), error = %e, "end offset not available yet");
                        std::thread::sleep(Duration::from_millis(100)); // retry pacing
                    }
                    Err(e) => return Err(e).with_context(|| format!("end offset of {name}[{}]", p.id())),
                }
            };
            list.add_partition_offset(name, p.id(), Offset::Offset(high))?;
        }
    }
    Ok(list)
}

async fn decode(codec: &EventCodec, topics: &Topics, message: &rdkafka::message::BorrowedMessage<'_>) -> TapRecord {
    let topic = message.topic().to_string();
    let (saga_topic, dead_letter) = match topics.topic_of(&topic) {
        Some(t) => (Some(t), false),
        None => (SagaTopic::ALL.into_iter().find(|t| topics.dead_letter(*t) == topic), true),
    };
    let raw = message.payload().unwrap_or_default().to_vec();
    let headers = message
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
        .unwrap_or_default();
    let mut record = TapRecord {
        seq: 0,
        topic,
        saga_topic,
        dead_letter,
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
        seen_at_ms: saga_contract::now_millis(),
        headers,
        schema_id: None,
        record_name: None,
        value: None,
        event_id: None,
        order_id: None,
        contract_error: None,
        raw,
    };
    match decode_patiently(codec, &record.raw).await {
        Ok(decoded) => {
            record.schema_id = Some(decoded.schema_id);
            record.record_name = decoded.record_name.clone();
            let json = avro_to_json(&decoded.value);
            record.event_id = json.get("eventId").and_then(|v| v.as_str()).map(str::to_string);
            record.order_id = json.get("orderId").and_then(|v| v.as_str()).map(str::to_string);
            record.value = Some(json);
            if let (Some(t), false) = (saga_topic, dead_letter) {
                record.contract_error = validate(t, &decoded).err();
            }
        }
        Err(e) => {
            if !dead_letter {
                record.contract_error = Some(format!("cannot decode: {e}"));
            }
        }
    }
    record
}

/// How long the tap keeps asking a registry that cannot answer (its database is down in a
/// fault scenario) before it reports the record as undecodable.
const REGISTRY_PATIENCE: Duration = Duration::from_secs(60);

/// Decodes `raw`, asking again while the registry is unavailable: the suite must not blame the
/// implementation for a schema it could not look up. The records behind wait meanwhile.
async fn decode_patiently(
    codec: &EventCodec,
    raw: &[u8],
) -> Result<saga_contract::Decoded, saga_contract::FramingError> {
    let give_up = std::time::Instant::now() + REGISTRY_PATIENCE;
    loop {
        match codec.decode(raw).await {
            // Retry pacing while the registry is down, not a wait for a condition of the run.
            Err(e) if e.is_transient() && std::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            decoded => return decoded,
        }
    }
}

/// The record on `topic` must be that topic's contract record and parse as its type.
pub(crate) fn validate(topic: SagaTopic, decoded: &saga_contract::Decoded) -> Result<(), String> {
    let expected = topic.record_full_name();
    if decoded.record_name.as_deref() != Some(expected) {
        return Err(format!("expected {expected}, got {:?}", decoded.record_name));
    }
    let parsed = match topic {
        SagaTopic::OrderCreated => saga_contract::OrderCreated::from_value(&decoded.value).map(|_| ()),
        SagaTopic::StockReserved => saga_contract::StockReserved::from_value(&decoded.value).map(|_| ()),
        SagaTopic::StockReservationFailed => {
            saga_contract::StockReservationFailed::from_value(&decoded.value).map(|_| ())
        }
        SagaTopic::OrderConfirmed => saga_contract::OrderConfirmed::from_value(&decoded.value).map(|_| ()),
        SagaTopic::OrderCancelled => saga_contract::OrderCancelled::from_value(&decoded.value).map(|_| ()),
    };
    parsed.map_err(|e| e.to_string())
}

/// Avro → JSON for reports and assertions; decimals become numbers with two decimals.
pub fn avro_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => json!(b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => json!(i),
        Value::Long(l) | Value::TimestampMillis(l) | Value::TimestampMicros(l) | Value::TimeMicros(l) => json!(l),
        Value::Float(f) => json!(f),
        Value::Double(d) => json!(d),
        Value::String(s) | Value::Enum(_, s) => json!(s),
        Value::Decimal(_) => Money::from_avro(value, "").map(Money::to_json).unwrap_or(serde_json::Value::Null),
        Value::Bytes(b) | Value::Fixed(_, b) => json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::Union(_, inner) => avro_to_json(inner),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(avro_to_json).collect()),
        Value::Map(map) => serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), avro_to_json(v))).collect()),
        Value::Record(fields) => {
            serde_json::Value::Object(fields.iter().map(|(k, v)| (k.clone(), avro_to_json(v))).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topics_are_read_only_when_declared() {
        let topics = Topics::default();
        let without = topic_names(&topics, false);
        assert_eq!(without.len(), SagaTopic::ALL.len());
        assert!(without.iter().all(|t| !t.ends_with(".dlt")), "{without:?}");
        let with = topic_names(&topics, true);
        assert_eq!(with.len(), 2 * SagaTopic::ALL.len());
        assert!(with.contains(&"order.created.dlt".to_string()), "{with:?}");
    }
}
