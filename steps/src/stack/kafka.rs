//! A single-node Apache Kafka broker (KRaft, combined broker + controller) run from the jars
//! that `docker/fetch-maven.sh kafka` resolves from Maven Central into the cache directory.
//! Or (`kafka_brokers = 3` in `conformance.toml`) a cluster of 3 or more such nodes sharing one
//! controller quorum, with replication factor 3 and `min.insync.replicas` 2.

use super::process::{Proc, free_port};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::Mutex;

/// The broker nodes of the stack: one, or a KRaft cluster in which every node is both broker
/// and controller (a static quorum of all of them). Nodes can be stopped, killed, frozen and
/// started again one at a time — the broker faults pick one with [`Cluster::target`].
pub struct Cluster {
    nodes: Vec<Node>,
    running: Mutex<BTreeMap<i32, Proc>>,
    /// Nodes a fault took down, most recent last: [`Cluster::restart`] brings the last back.
    down: Mutex<Vec<i32>>,
    /// The saga topics, whose partition leaders decide which node a fault targets.
    saga_topics: Vec<String>,
}

struct Node {
    id: i32,
    port: u16,
    launch: BrokerLaunch,
}

/// The broker's command line, kept so a stopped broker can be started on the same port and
/// data directory.
#[derive(Debug, Clone)]
pub struct BrokerLaunch {
    name: String,
    classpath: String,
    properties: PathBuf,
    logs_dir: PathBuf,
    log_file: PathBuf,
}

impl BrokerLaunch {
    /// Starts the broker; with `wait`, returns once it logged "Kafka Server started".
    async fn spawn(&self, wait: bool) -> anyhow::Result<Proc> {
        let mut broker = Command::new("java");
        broker
            .args(["-Xms128m", "-Xmx512m", "-Djava.awt.headless=true"])
            .args(jvm_performance_options().split_whitespace())
            .arg(format!("-Dlog4j2.configurationFile={}", repo_file("docker/kafka/log4j2.yaml").display()))
            .arg(format!("-Dkafka.logs.dir={}", self.logs_dir.display()))
            .args(["-cp", &self.classpath, "kafka.Kafka"])
            .arg(&self.properties);
        let mut proc = Proc::spawn(&self.name, broker, &self.log_file, Some("Kafka Server started"))?;
        if wait {
            proc.wait_ready(Duration::from_secs(120)).await?;
        }
        Ok(proc)
    }
}

impl Cluster {
    /// The bootstrap list clients are given: every node.
    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// The saga topics' names (in [`saga_contract::SagaTopic::ALL`] order).
    pub fn saga_topics(&self) -> &[String] {
        &self.saga_topics
    }

    /// The ids of the nodes running now.
    pub async fn live(&self) -> Vec<i32> {
        self.running.lock().await.keys().copied().collect()
    }

    /// Formats and starts `count` nodes, all at once (a quorum member cannot finish starting
    /// alone), and returns once every one logged "Kafka Server started".
    pub async fn start(
        libs: &Path,
        work: &Path,
        logs: &Path,
        count: usize,
        saga_topics: Vec<String>,
    ) -> anyhow::Result<Cluster> {
        let classpath = format!("{}/*", libs.display());
        let mut ports = Vec::with_capacity(count);
        for _ in 0..count {
            ports.push((free_port()?, free_port()?));
        }
        let voters: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1)).collect();
        let mut nodes = Vec::with_capacity(count);
        for (i, (port, controller_port)) in ports.iter().enumerate() {
            let id = i32::try_from(i + 1)?;
            let (suffix, dir) = if count == 1 {
                (String::new(), work.to_path_buf())
            } else {
                (format!("-{id}"), work.join(format!("kafka-{id}")))
            };
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let properties = dir.join("server.properties");
            let text = server_properties(*port, *controller_port, &dir.join("kafka-data"))?;
            std::fs::write(&properties, cluster_properties(&text, id, &voters.join(","), count))?;
            let launch = BrokerLaunch {
                name: format!("kafka{suffix}"),
                classpath: classpath.clone(),
                properties,
                logs_dir: dir.join("kafka-logs"),
                log_file: logs.join(format!("kafka{suffix}.log")),
            };
            nodes.push(Node { id, port: *port, launch });
        }
        futures::future::try_join_all(nodes.iter().map(|n| format_storage(&classpath, &n.launch.properties))).await?;
        let mut procs = Vec::with_capacity(count);
        for node in &nodes {
            procs.push(node.launch.spawn(false).await?);
        }
        futures::future::try_join_all(procs.iter_mut().map(|p| p.wait_ready(Duration::from_secs(120)))).await?;
        let running = nodes.iter().map(|n| n.id).zip(procs).collect();
        Ok(Cluster { nodes, running: Mutex::new(running), down: Mutex::default(), saga_topics })
    }

    /// The node a broker fault hits: the only one, or in a cluster the live node leading the most
    /// partitions of the saga topics (the one whose loss moves the most leadership).
    pub async fn target(&self) -> anyhow::Result<i32> {
        let live: Vec<i32> = self.running.lock().await.keys().copied().collect();
        match live.as_slice() {
            [] => bail!("no Kafka broker is running"),
            [only] => Ok(*only),
            _ => {
                let partitions = partitions(&self.bootstrap(), &self.saga_topics).await?;
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

    /// Stops (SIGTERM, `crash` false) or kills (SIGKILL) one node; its port and data stay for
    /// [`Cluster::restart`].
    pub async fn take_down(&self, node: i32, crash: bool) -> anyhow::Result<()> {
        let proc =
            self.running.lock().await.remove(&node).with_context(|| format!("Kafka node {node} is not running"))?;
        if crash {
            proc.kill().await;
        } else {
            proc.stop(Duration::from_secs(30)).await;
        }
        self.down.lock().await.push(node);
        Ok(())
    }

    /// Starts the node a fault took down last, on its port and data, and waits for
    /// "Kafka Server started". Returns its id.
    pub async fn restart(&self) -> anyhow::Result<i32> {
        let node = self.down.lock().await.pop().context("no Kafka broker is down")?;
        let launch = &self.nodes.iter().find(|n| n.id == node).context("unknown Kafka node")?.launch;
        let proc = launch.spawn(true).await?;
        self.running.lock().await.insert(node, proc);
        if self.nodes.len() > 1 {
            // Back only once it holds a full copy again: a fault on another node next must not
            // leave a partition below min.insync.replicas.
            self.wait_replicated(Duration::from_secs(120)).await?;
        }
        Ok(node)
    }

    /// Waits until every replica of every saga partition is in sync.
    async fn wait_replicated(&self, deadline: Duration) -> anyhow::Result<()> {
        let bootstrap = self.bootstrap();
        crate::poll::until(deadline, Duration::from_millis(200), async || {
            let partitions = partitions(&bootstrap, &self.saga_topics).await.map_err(|e| vec![format!("{e:#}")])?;
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

    /// The pid of a running node (to freeze it).
    pub async fn pid(&self, node: i32) -> anyhow::Result<u32> {
        self.running
            .lock()
            .await
            .get(&node)
            .and_then(Proc::id)
            .with_context(|| format!("Kafka node {node} is not running"))
    }

    /// `(process name, pid)` of every running node.
    pub async fn pids(&self) -> Vec<(String, u32)> {
        self.running.lock().await.values().filter_map(|p| p.id().map(|id| (p.name.clone(), id))).collect()
    }

    /// Waits until every saga partition is led by a running node with at least `min(2, live)`
    /// replicas in sync — after a node died, the moment the cluster took over (the controller
    /// fenced it and elected new leaders); returns how long that took.
    pub async fn wait_leaders(&self, deadline: Duration) -> anyhow::Result<Duration> {
        let began = std::time::Instant::now();
        let live = self.live().await;
        let bootstrap = self.bootstrap();
        crate::poll::until(deadline, Duration::from_millis(200), async || {
            let partitions = partitions(&bootstrap, &self.saga_topics).await.map_err(|e| vec![format!("{e:#}")])?;
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

    /// Stops every node (controlled shutdown, all at once so none waits for a quorum that left).
    pub async fn shutdown(&self) {
        let procs: Vec<Proc> = std::mem::take(&mut *self.running.lock().await).into_values().collect();
        futures::future::join_all(procs.into_iter().map(|p| p.stop(Duration::from_secs(20)))).await;
    }
}

/// `kafka.tools.StorageTool format` for one node (idempotent: `--ignore-formatted`).
async fn format_storage(classpath: &str, properties: &Path) -> anyhow::Result<()> {
    let format = Command::new("java")
        .args(["-cp", classpath, "kafka.tools.StorageTool", "format", "-t", "c2FnYS1jb25mb3JtYW5jZQ", "-c"])
        .arg(properties)
        .arg("--ignore-formatted")
        .output()
        .await
        .context("running java (is a JRE 17+ installed? ./saga setup installs one)")?;
    if !format.status.success() {
        bail!(
            "formatting Kafka storage ({}) failed: {}{}",
            properties.display(),
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
    }
    Ok(())
}

/// The single-node template made into node `id` of a `count`-node cluster: its id, the quorum
/// of every node, and — from 3 nodes on — replication factor 3 with `min.insync.replicas` 2 for
/// the topics the services create (broker default) and for the internal topics (consumer
/// offsets, transaction and share state), so one node can fail with nothing lost or refused.
fn cluster_properties(template: &str, id: i32, voters: &str, count: usize) -> String {
    if count == 1 {
        return template.to_string();
    }
    let replicas = count.min(3).to_string();
    let min_isr = if count >= 3 { "2" } else { "1" };
    let settings = [
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.to_string()),
        ("default.replication.factor", replicas.clone()),
        ("min.insync.replicas", min_isr.to_string()),
        ("offsets.topic.replication.factor", replicas.clone()),
        ("transaction.state.log.replication.factor", replicas.clone()),
        ("transaction.state.log.min.isr", min_isr.to_string()),
        ("share.coordinator.state.topic.replication.factor", replicas),
        ("share.coordinator.state.topic.min.isr", min_isr.to_string()),
    ];
    let mut lines: Vec<String> = template
        .lines()
        .filter(|line| !settings.iter().any(|(key, _)| line.starts_with(&format!("{key}="))))
        .map(str::to_string)
        .collect();
    lines.push(format!("\n# node {id} of a {count}-node cluster (steps/src/stack/kafka.rs)"));
    lines.extend(settings.iter().map(|(key, value)| format!("{key}={value}")));
    lines.join("\n") + "\n"
}

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
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating a Kafka metadata client")?;
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

/// GC and JIT flags: `KAFKA_JVM_PERFORMANCE_OPTS` as in the official image and ours, else the
/// serial GC and the C1 JIT only (what a single-node test broker on a small machine wants:
/// measured at 100 orders/s over 25 s, the full tiered JIT spent more CPU compiling — broker
/// 0.78 cores against 0.60 — and doubled the saga's latency).
fn jvm_performance_options() -> String {
    std::env::var("KAFKA_JVM_PERFORMANCE_OPTS")
        .unwrap_or_else(|_| "-XX:+UseSerialGC -XX:TieredStopAtLevel=1".to_string())
}

/// `docker/kafka/server.properties.example` (the one place the broker settings live) with its
/// placeholders filled in.
fn server_properties(port: u16, controller_port: u16, data: &Path) -> anyhow::Result<String> {
    let template = repo_file("docker/kafka/server.properties.example");
    let text = std::fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
    Ok(text
        .replace("@BROKER_PORT@", &port.to_string())
        .replace("@CONTROLLER_PORT@", &controller_port.to_string())
        .replace("@DATA_DIR@", &data.display().to_string()))
}

/// A file of this repository (the CLI and tests run from a clone).
pub fn repo_file(relative: &str) -> PathBuf {
    let steps = Path::new(env!("CARGO_MANIFEST_DIR"));
    steps.parent().unwrap_or(steps).join(relative)
}

/// Makes sure a Java part of the stack is in `dest`, resolving it from Maven Central the first
/// time: `part` is `kafka` (the broker's jars) or `apicurio` (the registry's distribution), see
/// `docker/fetch-maven.sh`.
pub async fn fetch_from_maven(part: &str, dest: &Path) -> anyhow::Result<()> {
    let script = repo_file("docker/fetch-maven.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(part)
        .arg(dest)
        .status()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} could not provide {part} in {} (see its output above)", script.display(), dest.display());
    }
    Ok(())
}

/// Waits until the broker at `bootstrap` serves metadata for `topic` with a leader on every
/// partition — after a restart, the moment clients can produce and fetch again.
pub async fn wait_until_serving(bootstrap: &str, topic: &str, deadline: Duration) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating a Kafka metadata client")?;
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

#[cfg(test)]
mod tests {
    use super::cluster_properties;

    const TEMPLATE: &str = "node.id=1\ncontroller.quorum.voters=1@127.0.0.1:9093\ndefault.replication.factor=1\nmin.insync.replicas=1\noffsets.topic.replication.factor=1\nnum.io.threads=2\n";

    #[test]
    fn one_node_keeps_the_template() {
        assert_eq!(cluster_properties(TEMPLATE, 1, "1@127.0.0.1:9093", 1), TEMPLATE);
    }

    #[test]
    fn a_cluster_node_gets_its_id_the_quorum_and_replication_three() {
        let text = cluster_properties(TEMPLATE, 2, "1@a:1,2@a:2,3@a:3", 3);
        let value = |key: &str| {
            let values: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).collect();
            assert_eq!(values.len(), 1, "{key} set once: {text}");
            values[0].to_string()
        };
        assert_eq!(value("node.id"), "2");
        assert_eq!(value("controller.quorum.voters"), "1@a:1,2@a:2,3@a:3");
        assert_eq!(value("default.replication.factor"), "3");
        assert_eq!(value("min.insync.replicas"), "2");
        assert_eq!(value("offsets.topic.replication.factor"), "3");
        assert_eq!(value("transaction.state.log.min.isr"), "2");
        assert_eq!(value("num.io.threads"), "2", "other settings stay");
    }
}
