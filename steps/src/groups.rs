//! Where the implementation's consumers are: the committed offsets of its consumer groups,
//! read through the Kafka admin protocol (OffsetFetch) without joining the groups or
//! committing anything. A "nothing new happens" window starts once the implementation has
//! consumed the record the suite injected — its group's committed offset is past it — so a
//! slow consumer cannot pass a check by not having looked yet.

use crate::Service;
use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
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

/// The implementation's consumer groups, by service, and readers of their offsets.
pub struct ConsumerGroups {
    bootstrap: String,
    names: HashMap<Service, String>,
    readers: Mutex<HashMap<Service, Arc<BaseConsumer>>>,
}

impl ConsumerGroups {
    pub fn new(bootstrap: &str, names: HashMap<Service, String>) -> ConsumerGroups {
        ConsumerGroups { bootstrap: bootstrap.to_string(), names, readers: Mutex::default() }
    }

    /// The group names of the reference services (`<service>-service`).
    pub fn reference_names() -> HashMap<Service, String> {
        Service::ALL.into_iter().map(|s| (s, s.binary().to_string())).collect()
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn group_of(&self, service: Service) -> Option<&str> {
        self.names.get(&service).map(String::as_str)
    }

    fn reader(&self, service: Service) -> anyhow::Result<Option<Arc<BaseConsumer>>> {
        let Some(group) = self.names.get(&service) else { return Ok(None) };
        let mut readers = self.readers.lock().expect("group readers lock poisoned");
        if let Some(reader) = readers.get(&service) {
            return Ok(Some(reader.clone()));
        }
        // Never subscribed and never committing: this only asks the coordinator for offsets.
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .with_context(|| format!("creating an offset reader for group {group}"))?;
        let reader = Arc::new(reader);
        readers.insert(service, reader.clone());
        Ok(Some(reader))
    }

    /// The group's committed offsets (the next offset it will read) on `partitions`; `None`
    /// for a partition it never committed on.
    async fn committed_on(
        reader: Arc<BaseConsumer>,
        partitions: &[(String, i32)],
    ) -> anyhow::Result<Vec<((String, i32), Option<i64>)>> {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition(topic, *partition);
        }
        let committed =
            tokio::task::spawn_blocking(move || reader.committed_offsets(list, Duration::from_secs(5))).await??;
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

    /// `service`'s group's committed offsets on `partitions` (`Ok(None)`: the group is not known).
    pub async fn committed(
        &self,
        service: Service,
        partitions: &[(String, i32)],
    ) -> anyhow::Result<Option<Vec<((String, i32), Option<i64>)>>> {
        let Some(reader) = self.reader(service)? else { return Ok(None) };
        let group = &self.names[&service];
        Self::committed_on(reader, partitions)
            .await
            .map(Some)
            .with_context(|| format!("reading the committed offsets of group {group}"))
    }

    /// Waits until `service`'s group has committed past `offset` on `topic[partition]`.
    /// `Ok(false)` when the group is unknown (the caller falls back to a longer quiet period).
    pub async fn wait_consumed(
        &self,
        service: Service,
        topic: &str,
        partition: i32,
        offset: i64,
        deadline: Duration,
    ) -> Result<bool, String> {
        let reader = match self.reader(service) {
            Ok(Some(reader)) => reader,
            Ok(None) => return Ok(false),
            Err(e) => return Err(format!("{e:#}")),
        };
        let group = self.names[&service].clone();
        let last = crate::poll::until(deadline, Duration::from_millis(100), async || {
            match Self::committed_on(reader.clone(), &[(topic.to_string(), partition)]).await {
                Ok(seen) if seen[0].1.is_some_and(|committed| committed > offset) => Ok(()),
                Ok(seen) => Err(format!("committed offset {:?}", seen[0].1)),
                Err(e) => Err(format!("{e:#}")),
            }
        })
        .await;
        last.map(|()| true).map_err(|seen| format!("the {service}'s group {group} did not consume {topic}[{partition}]@{offset} within {deadline:?} ({seen})"))
    }
}
