//! The Kafka of the containers backend: one node through testcontainers-modules' Kafka module,
//! or (`kafka_brokers = 3`) a KRaft cluster of our image's containers on the stack's network,
//! every node broker and controller, replication factor 3 and `min.insync.replicas` 2 — the
//! same settings as the processes backend's cluster (`broker_config.rs`).
//!
//! Listeners of a cluster node: `PLAINTEXT` on 9092, published on a fixed 127.0.0.1 port and
//! advertised as such (the services run on the host network, the suite on the host);
//! `BROKER` (replication) and `CONTROLLER` (the quorum) by container name on the network.

use super::infra::{Infra, docker_kill, split_image};
use crate::backend::broker_config::image_env;
use crate::backend::kafka_meta::{leading_node, wait_leaders, wait_replicated, wait_until_serving};
use anyhow::Context;
use std::collections::BTreeMap;
use std::time::Duration;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};
use testcontainers_modules::kafka::apache::{KAFKA_PORT, Kafka};
use tokio::sync::Mutex;

/// Where the nodes run and what they are called.
pub struct Placement<'a> {
    pub image: &'a str,
    pub network: &'a str,
    pub run: &'a str,
}

pub struct KafkaNodes {
    /// Running or not, by node id; removed at shutdown.
    nodes: Mutex<BTreeMap<i32, Infra>>,
    /// Nodes a fault took down, most recent last.
    down: Mutex<Vec<i32>>,
    pub bootstrap: String,
    saga_topics: Vec<String>,
}

impl KafkaNodes {
    /// Starts `count` nodes (all at once: a quorum member cannot finish starting alone) and
    /// returns once every one logged "Kafka Server started".
    /// One node per port in `ports` (the published 127.0.0.1 port of each).
    pub async fn start(place: &Placement<'_>, ports: &[u16], saga_topics: Vec<String>) -> anyhow::Result<KafkaNodes> {
        let count = ports.len();
        let bootstrap = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let nodes = if count == 1 {
            BTreeMap::from([(1, single(place, ports[0]).await?)])
        } else {
            let name = |id: usize| format!("saga-{}-kafka-{id}", place.run);
            let voters = (1..=count).map(|id| format!("{id}@{}:9093", name(id))).collect::<Vec<_>>().join(",");
            let names: Vec<String> = (1..=count).map(name).collect();
            let starts = ports
                .iter()
                .zip(&names)
                .zip(1..)
                .map(|((port, name), id)| cluster_node(place, id, name, *port, &voters, count));
            futures::future::try_join_all(starts).await?.into_iter().collect()
        };
        Ok(KafkaNodes { nodes: Mutex::new(nodes), down: Mutex::default(), bootstrap, saga_topics })
    }

    async fn live(&self) -> Vec<i32> {
        let down = self.down.lock().await;
        self.nodes.lock().await.keys().copied().filter(|id| !down.contains(id)).collect()
    }

    /// Stops (`docker stop`) or kills (`docker kill`) the node leading the most saga partitions
    /// (the only one when there is one); its data and published port stay for [`KafkaNodes::restart`].
    pub async fn take_down(&self, crash: bool) -> anyhow::Result<()> {
        let node = leading_node(&self.bootstrap, &self.saga_topics, &self.live().await).await?;
        {
            let nodes = self.nodes.lock().await;
            let infra = nodes.get(&node).with_context(|| format!("no Kafka node {node}"))?;
            if crash { docker_kill(infra.id(), &infra.name()).await } else { infra.stop().await }?;
        }
        self.down.lock().await.push(node);
        Ok(())
    }

    /// `docker start` of the node taken down last, then waits until the cluster serves
    /// the saga's topics and (in a cluster) the node holds a full copy again.
    pub async fn restart(&self) -> anyhow::Result<()> {
        let node = self.down.lock().await.pop().context("no Kafka node is down")?;
        let many = {
            let nodes = self.nodes.lock().await;
            nodes.get(&node).with_context(|| format!("no Kafka node {node}"))?.start().await?;
            nodes.len() > 1
        };
        wait_until_serving(&self.bootstrap, &self.saga_topics, Duration::from_secs(120)).await?;
        if many {
            wait_replicated(&self.bootstrap, &self.saga_topics, Duration::from_secs(120)).await?;
        }
        Ok(())
    }

    pub async fn wait_leaders(&self, deadline: Duration) -> anyhow::Result<Duration> {
        wait_leaders(&self.bootstrap, &self.saga_topics, &self.live().await, deadline).await
    }

    /// Hands the containers over for their logs and removal.
    pub async fn drain(&self) -> Vec<Infra> {
        std::mem::take(&mut *self.nodes.lock().await).into_values().collect()
    }
}

/// One node through the Kafka module with the broker settings of the template.
async fn single(place: &Placement<'_>, port: u16) -> anyhow::Result<Infra> {
    let (name, tag) = split_image(place.image);
    let mut kafka = Kafka::default()
        .with_jvm_image()
        .with_name(name)
        .with_tag(tag)
        .with_network(place.network)
        .with_container_name(format!("saga-{}-kafka", place.run))
        .with_label("saga.run", place.run)
        // A fixed host port: the module advertises the port it finds mapped at the first
        // start, and a restarted broker (the broker-restart faults) must keep it.
        .with_mapped_port(port, KAFKA_PORT)
        .with_startup_timeout(Duration::from_secs(180));
    for (key, value) in image_env(1, "", 1) {
        kafka = kafka.with_env_var(key, value);
    }
    let kafka = kafka.start().await.context("starting the Kafka container (testcontainers-modules kafka::apache)")?;
    Ok(Infra::Kafka(kafka))
}

/// Node `id` of a `count`-node cluster, named `name` on the network, published on `port`.
async fn cluster_node(
    place: &Placement<'_>,
    id: i32,
    name: &str,
    port: u16,
    voters: &str,
    count: usize,
) -> anyhow::Result<(i32, Infra)> {
    let (image, tag) = split_image(place.image);
    let mut node = GenericImage::new(image, tag)
        .with_wait_for(WaitFor::message_on_either_std("Kafka Server started"))
        .with_network(place.network)
        .with_container_name(name)
        .with_label("saga.run", place.run)
        .with_mapped_port(port, 9092.tcp())
        .with_startup_timeout(Duration::from_secs(180))
        .with_env_var("CLUSTER_ID", "c2FnYS1jb25mb3JtYW5jZQ")
        .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", voters)
        .with_env_var("KAFKA_LISTENERS", "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:19092,CONTROLLER://0.0.0.0:9093")
        .with_env_var("KAFKA_ADVERTISED_LISTENERS", format!("PLAINTEXT://127.0.0.1:{port},BROKER://{name}:19092"))
        .with_env_var(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .with_env_var("KAFKA_INTER_BROKER_LISTENER_NAME", "BROKER")
        .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER");
    for (key, value) in image_env(id, voters, count) {
        node = node.with_env_var(key, value);
    }
    let node = node.start().await.with_context(|| format!("starting Kafka node {id} ({name})"))?;
    Ok((id, Infra::KafkaNode(id, node)))
}
