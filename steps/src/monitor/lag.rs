//! The services' consumer groups, read every poll without joining them: per partition of the
//! topic each consumes, the lag (high watermark − committed offset), and for the Payment
//! Service's group how far it has consumed `order.confirmed` — the saga's last step, which
//! leaves no record of its own.

use super::Shared;
use crate::Service;
use crate::groups::ConsumerGroups;
use rdkafka::consumer::BaseConsumer;
use saga_contract::{SagaTopic, Topics, now_millis};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Polls every `every` until `closed` turns true. `partitions`: the saga topics' partitions.
pub async fn watch(
    groups: ConsumerGroups,
    topics: Topics,
    partitions: Vec<(String, i32)>,
    every: Duration,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<bool>,
) {
    let bootstrap = groups.bootstrap().to_string();
    let probe: Arc<BaseConsumer> = match crate::kafka::metadata_client(&bootstrap) {
        Ok(probe) => Arc::new(probe),
        Err(e) => {
            tracing::error!(error = %e, "cannot create a Kafka client for high watermarks on {bootstrap}: no lag");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    // One warning per outage, not one per poll.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closed.changed() => return,
        }
        match poll(&groups, &topics, &partitions, &probe, &shared).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                tracing::warn!(error = %format!("{e:#}"), "reading the services' consumer groups (more until it recovers are not shown)");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

async fn poll(
    groups: &ConsumerGroups,
    topics: &Topics,
    partitions: &[(String, i32)],
    probe: &Arc<BaseConsumer>,
    shared: &Shared,
) -> anyhow::Result<()> {
    for p in groups.positions(topics, partitions, probe).await? {
        shared.metrics.lag(&p.group, &p.topic, p.partition, p.lag());
        if p.service == Service::Payment && topics.topic_of(&p.topic) == Some(SagaTopic::OrderConfirmed) {
            shared.update(|sagas| sagas.consumed(p.partition, p.committed, now_millis()));
        }
    }
    Ok(())
}
