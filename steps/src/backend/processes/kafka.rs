//! A single-node Apache Kafka broker (KRaft, combined broker + controller) run from the jars
//! that `docker/fetch-maven.sh kafka` resolves from Maven Central into the cache directory.
//! Or (`kafka_brokers = 3` in `conformance.toml`) a cluster of 3 or more such nodes sharing one
//! controller quorum, with replication factor 3 and `min.insync.replicas` 2.

use super::process::{Proc, free_port};
use crate::backend::broker_config::{cluster_properties, server_properties};
use crate::backend::kafka_meta::{leading_node, wait_leaders, wait_replicated};
use crate::backend::paths::{KAFKA_LOG4J2, source_file};
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
    /// The broker's log4j2 configuration (the built-in `docker/kafka/log4j2.yaml`, written out).
    log_config: PathBuf,
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
            .arg(format!("-Dlog4j2.configurationFile={}", self.log_config.display()))
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
        let log_config = work.join("kafka-log4j2.yaml");
        std::fs::write(&log_config, KAFKA_LOG4J2).with_context(|| format!("writing {}", log_config.display()))?;
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
            let text = server_properties(*port, *controller_port, &dir.join("kafka-data"));
            std::fs::write(&properties, cluster_properties(&text, id, &voters.join(","), count))?;
            let launch = BrokerLaunch {
                name: format!("kafka{suffix}"),
                classpath: classpath.clone(),
                properties,
                log_config: log_config.clone(),
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
    /// partitions of the saga topics.
    pub async fn target(&self) -> anyhow::Result<i32> {
        leading_node(&self.bootstrap(), &self.saga_topics, &self.live().await).await
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
            wait_replicated(&self.bootstrap(), &self.saga_topics, Duration::from_secs(120)).await?;
        }
        Ok(node)
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

    /// Waits until every saga partition is led by a running node (see [`wait_leaders`]).
    pub async fn wait_leaders(&self, deadline: Duration) -> anyhow::Result<Duration> {
        wait_leaders(&self.bootstrap(), &self.saga_topics, &self.live().await, deadline).await
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

/// GC and JIT flags: `KAFKA_JVM_PERFORMANCE_OPTS` as in the official image and ours, else the
/// serial GC and the C1 JIT only (what a single-node test broker on a small machine wants:
/// measured at 100 orders/s over 25 s, the full tiered JIT spent more CPU compiling — broker
/// 0.78 cores against 0.60 — and doubled the saga's latency).
fn jvm_performance_options() -> String {
    std::env::var("KAFKA_JVM_PERFORMANCE_OPTS")
        .unwrap_or_else(|_| "-XX:+UseSerialGC -XX:TieredStopAtLevel=1".to_string())
}

/// Makes sure a Java part of the stack is in `dest`, resolving it from Maven Central the first
/// time: `part` is `kafka` (the broker's jars) or `apicurio` (the registry's distribution), see
/// `docker/fetch-maven.sh`. Without a checkout of the kit (an installed binary) a complete copy
/// already in the cache is used as it is: the script that checks it against its pom is not there.
pub async fn fetch_from_maven(part: &str, dest: &Path) -> anyhow::Result<()> {
    let script = match source_file("docker/fetch-maven.sh") {
        Ok(script) => script,
        Err(_) if dest.join(".fetch-complete").is_file() => return Ok(()),
        Err(e) => {
            return Err(e.context(format!(
                "{part} is not in {} yet and fetching it needs docker/fetch-maven.sh",
                dest.display()
            )));
        }
    };
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
