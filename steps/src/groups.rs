//! Where the implementation's consumers are: the committed offsets of its consumer groups,
//! read through the Kafka admin protocol (OffsetFetch) without joining the groups or
//! committing anything. A "nothing new happens" window starts once the implementation has
//! consumed the record the suite injected — its group's committed offset is past it — so a
//! slow consumer cannot pass a check by not having looked yet.

use crate::Service;
use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use saga_contract::SagaTopic;
use std::collections::HashMap;
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
}
