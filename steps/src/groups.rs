//! Where the implementation's consumers are: the committed offsets of its consumer groups,
//! read through the Kafka admin protocol (OffsetFetch) without joining the groups or
//! committing anything. A "nothing new happens" window starts once the implementation has
//! consumed the record the suite injected — its group's committed offset is past it — so a
//! slow consumer cannot pass a check by not having looked yet. Where each group stands against
//! the partitions' ends ([`ConsumerGroups::positions`]) is its lag, the monitor's gauge, and
//! whether the implementation is [`idle`] — the precondition of a measurement.

use crate::Service;
use anyhow::Context;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use saga_contract::{SagaTopic, Topics};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The service whose consumer group handles `topic` in the saga (`None`: no service consumes it).
pub fn consumer_of(topic: SagaTopic) -> Option<Service> {
    match topic {
        SagaTopic::OrderCreated => Some(Service::Product),
        SagaTopic::StockReserved | SagaTopic::StockReservationFailed => Some(Service::Order),
        SagaTopic::OrderConfirmed => Some(Service::Payment),
        SagaTopic::OrderCancelled => None,
    }
}

/// The implementation's consumer groups, by service (a service may have several, e.g. one per
/// topic it consumes), and readers of their offsets.
pub struct ConsumerGroups {
    bootstrap: String,
    names: HashMap<Service, Vec<String>>,
    readers: Mutex<HashMap<String, Arc<BaseConsumer>>>,
}

impl ConsumerGroups {
    pub fn new(bootstrap: &str, names: HashMap<Service, Vec<String>>) -> ConsumerGroups {
        let names = names.into_iter().filter(|(_, groups)| !groups.is_empty()).collect();
        ConsumerGroups { bootstrap: bootstrap.to_string(), names, readers: Mutex::default() }
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// `service`'s groups (empty: not known).
    pub fn groups_of(&self, service: Service) -> &[String] {
        self.names.get(&service).map(Vec::as_slice).unwrap_or_default()
    }

    fn reader(&self, group: &str) -> anyhow::Result<Arc<BaseConsumer>> {
        let mut readers = self.readers.lock().expect("group readers lock poisoned");
        if let Some(reader) = readers.get(group) {
            return Ok(reader.clone());
        }
        let reader = Arc::new(crate::kafka::offset_reader(&self.bootstrap, group)?);
        readers.insert(group.to_string(), reader.clone());
        Ok(reader)
    }

    /// `group`'s committed offsets (the next offset it will read) on `partitions`; `None` for a
    /// partition it never committed on.
    pub async fn committed(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> anyhow::Result<Vec<((String, i32), Option<i64>)>> {
        let reader = self.reader(group)?;
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition(topic, *partition);
        }
        let committed = tokio::task::spawn_blocking(move || reader.committed_offsets(list, Duration::from_secs(5)))
            .await?
            .with_context(|| format!("reading the committed offsets of group {group}"))?;
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                let offset = committed.find_partition(topic, *partition).and_then(|p| match p.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
                ((topic.clone(), *partition), offset)
            })
            .collect())
    }

    /// Waits until `service`'s groups that consume `topic[partition]` have committed past
    /// `offset`. `Ok(false)` when no group of the service is known (the caller falls back to a
    /// longer quiet period).
    pub async fn wait_consumed(
        &self,
        service: Service,
        topic: &str,
        partition: i32,
        offset: i64,
        deadline: Duration,
    ) -> Result<bool, String> {
        let groups = self.groups_of(service);
        if groups.is_empty() {
            return Ok(false);
        }
        let at = [(topic.to_string(), partition)];
        let last = crate::poll::until(deadline, Duration::from_millis(100), async || {
            let mut seen = Vec::new();
            for group in groups {
                let committed = self.committed(group, &at).await.map_err(|e| format!("{e:#}"))?;
                seen.push((group.as_str(), committed[0].1));
            }
            consumed_past(&seen, offset)
        })
        .await;
        let names = groups.join(", ");
        last.map(|()| true).map_err(|seen| format!("the {service}'s group(s) {names} did not consume {topic}[{partition}]@{offset} within {deadline:?} ({seen})"))
    }
}

/// Where a consumer group stands on a partition of a saga topic its service consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub service: Service,
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will read.
    pub committed: i64,
    /// The partition's end (its high watermark) when the position was read.
    pub end: i64,
}

impl Position {
    /// Records on the partition the group has not consumed yet.
    pub fn lag(&self) -> i64 {
        (self.end - self.committed).max(0)
    }
}

impl ConsumerGroups {
    /// Every known group's position on the `partitions` of the saga topics its service consumes.
    /// A group with no committed offset on one is left out: it is a group of the service that
    /// reads other topics, or nothing was written there since it joined. `probe`: a
    /// [`crate::kafka::metadata_client`] for the partitions' ends.
    pub async fn positions(
        &self,
        topics: &Topics,
        partitions: &[(String, i32)],
        probe: &Arc<BaseConsumer>,
    ) -> anyhow::Result<Vec<Position>> {
        let mut positions = Vec::new();
        for service in Service::ALL {
            let consumed: Vec<(String, i32)> = partitions
                .iter()
                .filter(|(topic, _)| topics.topic_of(topic).and_then(consumer_of) == Some(service))
                .cloned()
                .collect();
            for group in self.groups_of(service) {
                for ((topic, partition), committed) in self.committed(group, &consumed).await? {
                    let Some(committed) = committed else { continue };
                    let (probe, name) = (probe.clone(), topic.clone());
                    let (_, end) = tokio::task::spawn_blocking(move || {
                        probe.fetch_watermarks(&name, partition, Duration::from_secs(5))
                    })
                    .await?
                    .with_context(|| format!("reading the end offset of {topic}[{partition}]"))?;
                    positions.push(Position { service, group: group.clone(), topic, partition, committed, end });
                }
            }
        }
        Ok(positions)
    }
}

/// Of `from` — (topic, partition, offset) — those where a `read_committed` consumer would still
/// get a record at or after the offset. A group's lag counts every offset up to the end, and a
/// transaction's commit or abort marker and its aborted records take offsets no such consumer
/// ever gets: an implementation publishing in transactions is idle with a lag of 1. `reader`: a
/// [`crate::kafka::peek_reader`]; `wait`: how long reading to the ends may take.
pub async fn with_records(
    reader: &Arc<BaseConsumer>,
    from: &[(String, i32, i64)],
    wait: Duration,
) -> anyhow::Result<BTreeSet<(String, i32, i64)>> {
    // One topic per round, each partition once (the end-of-partition event names only its number).
    let mut rounds: Vec<Vec<(String, i32, i64)>> = Vec::new();
    for entry in from {
        match rounds.iter_mut().find(|r| r[0].0 == entry.0 && !r.iter().any(|e| e.1 == entry.1)) {
            Some(round) => round.push(entry.clone()),
            None => rounds.push(vec![entry.clone()]),
        }
    }
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || {
        let mut found = BTreeSet::new();
        for round in rounds {
            let mut list = TopicPartitionList::new();
            for (topic, partition, offset) in &round {
                list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
            }
            reader.assign(&list)?;
            let mut open: BTreeSet<i32> = round.iter().map(|e| e.1).collect();
            let stop = std::time::Instant::now() + wait;
            while !open.is_empty() {
                anyhow::ensure!(
                    std::time::Instant::now() < stop,
                    "reading {}[{open:?}] to the end took over {wait:?}",
                    round[0].0
                );
                let ended = match reader.poll(Duration::from_millis(100)) {
                    Some(Ok(record)) => {
                        let got = open.remove(&record.partition());
                        if got && let Some(e) = round.iter().find(|e| e.1 == record.partition()) {
                            found.insert(e.clone());
                        }
                        continue;
                    }
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => partition,
                    Some(Err(e)) => anyhow::bail!("reading {}: {e}", round[0].0),
                    None => continue,
                };
                open.remove(&ended);
            }
        }
        Ok(found)
    })
    .await?
}

/// Whether the implementation is idle: every group has consumed every partition it reads to its
/// end — its lag is 0, or only offsets no `read_committed` consumer gets (`with_records`: the
/// lagging (topic, partition, committed offset) that do have a record after them). A partition
/// none of them has committed on yet is not counted: nothing tells how far they are on it.
/// `Err`: the groups still behind, with their lag — the figures of a precondition that did not
/// hold.
pub fn idle(positions: &[Position], with_records: &BTreeSet<(String, i32, i64)>) -> Result<(), String> {
    let behind: Vec<&Position> = positions
        .iter()
        .filter(|p| p.lag() > 0 && with_records.contains(&(p.topic.clone(), p.partition, p.committed)))
        .collect();
    if behind.is_empty() {
        return Ok(());
    }
    let total: i64 = behind.iter().map(|p| p.lag()).sum();
    let shown: Vec<String> = behind
        .iter()
        .take(6)
        .map(|p| {
            format!(
                "{} ({}) {}[{}] lag {} (committed {}, end {})",
                p.group,
                p.service,
                p.topic,
                p.partition,
                p.lag(),
                p.committed,
                p.end
            )
        })
        .collect();
    let tail = match behind.len() - shown.len() {
        0 => String::new(),
        more => format!(" and {more} more partition(s)"),
    };
    Err(format!("{total} offset(s) not consumed yet: {}{tail}", shown.join(", ")))
}

/// Whether the groups that consume a partition — those with a committed offset on it, given as
/// (group, committed offset) — have all committed past `offset`, and at least one has.
/// A service's group that consumes other topics never commits on this one and is left out.
pub fn consumed_past(seen: &[(&str, Option<i64>)], offset: i64) -> Result<(), String> {
    let consumers: Vec<(&str, i64)> = seen.iter().filter_map(|(g, o)| o.map(|o| (*g, o))).collect();
    let behind: Vec<String> =
        consumers.iter().filter(|(_, o)| *o <= offset).map(|(g, o)| format!("{g} committed {o}")).collect();
    match (consumers.is_empty(), behind.is_empty()) {
        (true, _) => Err("no group has committed an offset on it yet".into()),
        (false, true) => Ok(()),
        (false, false) => Err(behind.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_consumed_once_every_group_reading_it_committed_past_it() {
        assert_eq!(consumed_past(&[("order-service", Some(8))], 7), Ok(()));
        // A second group of the service that reads another topic has no offset here.
        assert_eq!(consumed_past(&[("orders-reserved", Some(8)), ("orders-failed", None)], 7), Ok(()));
    }

    #[test]
    fn a_group_not_past_the_record_or_none_at_all_is_not_consumed() {
        let behind = consumed_past(&[("a", Some(8)), ("b", Some(7))], 7).unwrap_err();
        assert_eq!(behind, "b committed 7");
        assert!(consumed_past(&[("a", None)], 7).unwrap_err().contains("no group has committed"));
        assert!(consumed_past(&[], 7).is_err());
    }

    fn at(group: &str, partition: i32, committed: i64, end: i64) -> Position {
        let topic = "order.created".to_string();
        Position { service: Service::Product, group: group.into(), topic, partition, committed, end }
    }

    fn records(at: &[(i32, i64)]) -> BTreeSet<(String, i32, i64)> {
        at.iter().map(|(p, o)| ("order.created".to_string(), *p, *o)).collect()
    }

    #[test]
    fn every_group_at_the_end_of_what_it_reads_is_idle() {
        let none = BTreeSet::new();
        assert_eq!(idle(&[at("product-service", 0, 40, 40), at("product-service", 1, 7, 7)], &none), Ok(()));
        // A group committed past the end it was read against (the end moved meanwhile).
        assert_eq!(idle(&[at("product-service", 0, 41, 40)], &none), Ok(()));
        // A lag of transaction markers only: no committed record after the group's offset.
        assert_eq!(idle(&[at("product-service", 0, 39, 40)], &none), Ok(()));
    }

    #[test]
    fn a_group_behind_is_not_idle_with_the_figures() {
        let positions = [at("product-service", 0, 40, 40), at("product-service", 1, 5, 9)];
        let busy = idle(&positions, &records(&[(1, 5)])).unwrap_err();
        assert_eq!(
            busy,
            "4 offset(s) not consumed yet: product-service (Product Service) order.created[1] lag 4 (committed 5, end 9)"
        );
        let many: Vec<Position> = (0..8).map(|p| at("g", p, 0, 1)).collect();
        let err = idle(&many, &records(&(0..8).map(|p| (p, 0)).collect::<Vec<_>>())).unwrap_err();
        assert!(err.starts_with("8 offset(s)") && err.ends_with("and 2 more partition(s)"), "{err}");
    }
}
