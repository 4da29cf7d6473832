//! A single-node Apache Kafka broker (KRaft, combined broker + controller) run from the jars
//! that `docker/fetch-maven.sh kafka` resolves from Maven Central into the cache directory.

use super::process::{Proc, free_port};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

pub struct Kafka {
    pub port: u16,
    pub proc: Proc,
    /// How to start this broker again on its data (the broker-restart fault).
    pub launch: BrokerLaunch,
}

/// The broker's command line, kept so a stopped broker can be started on the same port and
/// data directory.
#[derive(Debug, Clone)]
pub struct BrokerLaunch {
    classpath: String,
    properties: PathBuf,
    logs_dir: PathBuf,
    log_file: PathBuf,
}

impl BrokerLaunch {
    /// Starts the broker and waits for "Kafka Server started".
    pub async fn spawn(&self) -> anyhow::Result<Proc> {
        let mut broker = Command::new("java");
        broker
            .args(["-Xms128m", "-Xmx512m", "-Djava.awt.headless=true"])
            .args(jvm_performance_options().split_whitespace())
            .arg(format!("-Dlog4j2.configurationFile={}", repo_file("docker/kafka/log4j2.yaml").display()))
            .arg(format!("-Dkafka.logs.dir={}", self.logs_dir.display()))
            .args(["-cp", &self.classpath, "kafka.Kafka"])
            .arg(&self.properties);
        let mut proc = Proc::spawn("kafka", broker, &self.log_file, Some("Kafka Server started"))?;
        proc.wait_ready(Duration::from_secs(120)).await?;
        Ok(proc)
    }
}

impl Kafka {
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn start(libs: &Path, work: &Path, logs: &Path) -> anyhow::Result<Kafka> {
        let classpath = format!("{}/*", libs.display());
        let port = free_port()?;
        let controller_port = free_port()?;
        let data = work.join("kafka-data");
        let properties = work.join("server.properties");
        std::fs::write(&properties, server_properties(port, controller_port, &data)?)?;
        let format = Command::new("java")
            .args(["-cp", &classpath, "kafka.tools.StorageTool", "format", "-t", "c2FnYS1jb25mb3JtYW5jZQ", "-c"])
            .arg(&properties)
            .arg("--ignore-formatted")
            .output()
            .await
            .context("running java (is a JRE 17+ installed? ./saga setup installs one)")?;
        if !format.status.success() {
            bail!(
                "formatting Kafka storage failed: {}{}",
                String::from_utf8_lossy(&format.stdout),
                String::from_utf8_lossy(&format.stderr)
            );
        }
        let launch =
            BrokerLaunch { classpath, properties, logs_dir: work.join("kafka-logs"), log_file: logs.join("kafka.log") };
        let proc = launch.spawn().await?;
        Ok(Kafka { port, proc, launch })
    }
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
