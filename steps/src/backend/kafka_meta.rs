//! What a Kafka cluster's metadata says about the saga partitions, whoever runs the cluster
//! (our processes, our containers, another team's): which node leads what, how many replicas are
//! in sync, whether the broker serves a topic again. The broker faults pick their target and wait
//! for the cluster to take over through these.

use crate::kafka::metadata_client;
use anyhow::Context;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the cluster's metadata says about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader's node id; -1 while it has none.
    pub leader: i32,
    pub replicas: usize,
    pub in_sync: usize,
}

/// The state of every partition of `topics`, keyed `(topic, partition)`.
pub async fn partitions(bootstrap: &str, topics: &[String]) -> anyhow::Result<BTreeMap<(String, i32), PartitionState>> {
    use rdkafka::consumer::Consumer;
    let consumer = metadata_client(bootstrap)?;
    let (wanted, bootstrap) = (topics.to_vec(), bootstrap.to_string());
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .with_context(|| format!("reading the partitions' metadata from {bootstrap}"))?;
        let mut partitions = BTreeMap::new();
        for topic in metadata.topics().iter().filter(|t| wanted.iter().any(|w| w == t.name())) {
            for p in topic.partitions() {
                let leader = if p.error().is_none() { p.leader() } else { -1 };
                let state = PartitionState { leader, replicas: p.replicas().len(), in_sync: p.isr().len() };
                partitions.insert((topic.name().to_string(), p.id()), state);
            }
        }
        Ok(partitions)
    })
    .await?
}

/// Waits until the broker at `bootstrap` serves metadata for the first of `saga_topics` (the
/// saga's first, order-created) with a leader on every partition — after a restart, the moment
/// clients can produce and fetch again.
pub async fn wait_until_serving(bootstrap: &str, saga_topics: &[String], deadline: Duration) -> anyhow::Result<()> {
    use rdkafka::consumer::Consumer;
    let topic = saga_topics.first().context("no saga topic to see the Kafka broker serve")?;
    let consumer = metadata_client(bootstrap)?;
    let consumer = std::sync::Arc::new(consumer);
    // fetch_metadata itself waits up to 2 s per attempt; the 200 ms paces refused connections.
    crate::poll::until(deadline, Duration::from_millis(200), async || {
        let (probe, name) = (consumer.clone(), topic.to_string());
        let serving = tokio::task::spawn_blocking(move || {
            probe.fetch_metadata(Some(&name), Duration::from_secs(2)).map(|m| {
                m.topics().first().is_some_and(|t| {
                    !t.partitions().is_empty() && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
                })
            })
        })
        .await;
        match serving {
            Ok(Ok(true)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .map_err(|last| {
        anyhow::anyhow!("the Kafka broker at {bootstrap} does not serve {topic} after {deadline:?}: {last}")
    })
}

/// Of the `live` nodes, the one leading the most saga partitions (the one whose loss moves the
/// most leadership); on a tie the lowest id. The only live node when there is one.
pub async fn leading_node(bootstrap: &str, topics: &[String], live: &[i32]) -> anyhow::Result<i32> {
    match live {
        [] => anyhow::bail!("no Kafka broker is running"),
        [only] => Ok(*only),
        _ => {
            let partitions = partitions(bootstrap, topics).await?;
            let mut counts: BTreeMap<i32, usize> = live.iter().map(|id| (*id, 0)).collect();
            for state in partitions.values() {
                if let Some(count) = counts.get_mut(&state.leader) {
                    *count += 1;
                }
            }
            // The most partitions; on a tie, the lowest node id (BTreeMap order, max_by keeps the last max).
            let best = counts.iter().rev().max_by_key(|(_, count)| **count).map(|(id, _)| *id);
            best.context("no live Kafka broker leads a saga partition")
        }
    }
}

/// Waits until every saga partition is led by one of the `live` nodes with at least
/// `min(2, live)` replicas in sync — after a node died, the moment the cluster took over (the
/// controller fenced it and elected new leaders); returns how long that took.
pub async fn wait_leaders(
    bootstrap: &str,
    topics: &[String],
    live: &[i32],
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let began = std::time::Instant::now();
    crate::poll::until(deadline, Duration::from_millis(200), async || {
        let partitions = partitions(bootstrap, topics).await.map_err(|e| vec![format!("{e:#}")])?;
        let off: Vec<String> = partitions
            .iter()
            .filter(|(_, p)| !live.contains(&p.leader) || p.in_sync < live.len().min(2))
            .map(|((t, n), p)| format!("{t}[{n}] leader {} in sync {}", p.leader, p.in_sync))
            .collect();
        if off.is_empty() && !partitions.is_empty() { Ok(()) } else { Err(off) }
    })
    .await
    .map(|()| began.elapsed())
    .map_err(|off| anyhow::anyhow!("after {deadline:?} these saga partitions still have no leader among the running Kafka nodes {live:?} (or too few replicas in sync): {off:?}"))
}

/// Waits until every replica of every saga partition is in sync — a node that came back holds a
/// full copy again, so a fault on another node next cannot leave a partition below
/// `min.insync.replicas`.
pub async fn wait_replicated(bootstrap: &str, topics: &[String], deadline: Duration) -> anyhow::Result<()> {
    crate::poll::until(deadline, Duration::from_millis(200), async || {
        let partitions = partitions(bootstrap, topics).await.map_err(|e| vec![format!("{e:#}")])?;
        let behind: Vec<String> = partitions
            .iter()
            .filter(|(_, p)| p.in_sync < p.replicas)
            .map(|((t, n), p)| format!("{t}[{n}] {}/{} in sync", p.in_sync, p.replicas))
            .collect();
        if behind.is_empty() { Ok(()) } else { Err(behind) }
    })
    .await
    .map_err(|behind| anyhow::anyhow!("the restarted Kafka node did not catch up within {deadline:?}: {behind:?}"))
}

/// The node ids of the brokers the cluster's metadata lists now (a node that died drops out once
/// the controller fences it); an error when no node answers within `wait`.
pub async fn broker_ids(bootstrap: &str, wait: Duration) -> anyhow::Result<Vec<i32>> {
    use rdkafka::consumer::Consumer;
    let consumer = metadata_client(bootstrap)?;
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, wait)
            .with_context(|| format!("reading the cluster's brokers from {bootstrap}"))?;
        let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    })
    .await?
}
