//! The monitor's reader of the saga topics: the tap's consumer (manual assignment in a group
//! id of its own, never committing — the services' groups are untouched) and its decoding,
//! feeding each record to the sagas as it arrives.

use super::Shared;
use crate::tap::{self, Pace, StartAt};
use anyhow::Context as _;
use saga_contract::{EventCodec, SagaTopic, Topics, now_millis};
use std::sync::Arc;
use tokio::sync::watch;

/// Assigns every saga topic's partitions at `start` and starts reading; returns them as
/// (topic, partition). Dead-letter topics are not read: they hold copies, and an implementation
/// need not have them.
pub async fn start(
    bootstrap: &str,
    registry_url: &str,
    topics: Topics,
    start: StartAt,
    shared: Arc<Shared>,
    closed: watch::Receiver<bool>,
) -> anyhow::Result<Vec<(String, i32)>> {
    let names: Vec<String> = SagaTopic::ALL.into_iter().map(|t| topics.name(t).to_string()).collect();
    let (consumer, assignment) = tap::assigned_consumer(bootstrap, &names, start, Pace::Live, "monitor").await?;
    let partitions = assignment.elements().iter().map(|p| (p.topic().to_string(), p.partition())).collect();
    let codec =
        EventCodec::new(registry_url).with_context(|| format!("using the schema registry at {registry_url}"))?;
    tokio::spawn(tap::receive(consumer, codec, topics, "monitor", closed, move |record| {
        shared.metrics.record(&record.topic);
        shared.update(|sagas| sagas.record(record, now_millis()));
    }));
    Ok(partitions)
}
