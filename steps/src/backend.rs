//! Backends: where the implementation under test runs and how the kit reaches it.
//! `processes` starts the reference stack as local processes; `containers` starts it (or
//! another team's images) as Docker containers; `external` points at one already running by
//! URLs, with optional shell commands for the fault scenarios.

use crate::Service;
use crate::config::{BackendKind, Config};
use crate::containers::Containers;
use crate::stack::process::wait_http_ok_url;
use crate::stack::{Endpoints, Stack, StackOptions};
use anyhow::{Context, bail};
use std::time::Duration;

/// What a backend can do beyond HTTP and Kafka. A scenario needing more carries
/// `@needs-<capability>` tags and is skipped, with the reason in the report, when the backend
/// lacks one. The processes and containers backends can do everything; an external one only
/// what its `[external.commands]` allow — per service, so commands for the Product Service
/// alone enable the scenarios that touch only it.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// Capability names: `stop-<svc>`, `pause-<svc>`, `kill-<svc>`, `broker-stop`,
    /// `broker-kill`, `db-kill`, `dead-letters` (`<svc>` is order, product or payment); with
    /// several instances `kill-instance-<svc>`, `pause-instance-<svc>`, `add-instance-<svc>`,
    /// with a cluster of 3 or more Kafka nodes `broker-cluster` (see [`Capabilities::with_scale`]).
    available: std::collections::BTreeSet<String>,
}

/// The capabilities only a scaled-out stack has, and what it takes to get them.
fn scale_capabilities() -> Vec<(String, &'static str)> {
    let instances = "needs 2 or more instances of each service: set instances = 2 in conformance.toml (or SAGA_INSTANCES=2) on the processes backend";
    let mut all: Vec<(String, &'static str)> = Service::ALL
        .into_iter()
        .flat_map(|s| ["kill", "pause", "add"].map(|verb| (format!("{verb}-instance-{}", short_name(s)), instances)))
        .collect();
    all.push((
        "broker-cluster".into(),
        "needs a Kafka cluster of 3 nodes: set kafka_brokers = 3 in conformance.toml (or SAGA_KAFKA_BROKERS=3) on the processes backend",
    ));
    all
}

/// Every capability name, with the external commands that provide it.
fn capability_commands() -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for service in Service::ALL {
        let svc = short_name(service);
        all.push((format!("stop-{svc}"), vec![format!("stop_{svc}"), format!("start_{svc}")]));
        all.push((format!("pause-{svc}"), vec![format!("pause_{svc}"), format!("unpause_{svc}")]));
        all.push((format!("kill-{svc}"), vec![format!("kill_{svc}"), format!("start_{svc}")]));
    }
    all.push(("broker-stop".into(), vec!["stop_kafka".into(), "start_kafka".into()]));
    all.push(("broker-kill".into(), vec!["kill_kafka".into(), "start_kafka".into()]));
    all.push(("db-kill".into(), vec!["kill_postgres".into(), "start_postgres".into()]));
    all
}

impl Capabilities {
    /// Everything (the backends that run the stack themselves).
    pub fn all() -> Capabilities {
        let mut available: std::collections::BTreeSet<String> =
            capability_commands().into_iter().map(|(name, _)| name).collect();
        available.insert("dead-letters".into());
        Capabilities { available }
    }

    /// What an external implementation's commands and declarations allow.
    pub fn from_commands(commands: &std::collections::HashMap<String, String>, dead_letters: bool) -> Capabilities {
        let mut available: std::collections::BTreeSet<String> = capability_commands()
            .into_iter()
            .filter(|(_, needed)| needed.iter().all(|c| commands.contains_key(c)))
            .map(|(name, _)| name)
            .collect();
        if dead_letters {
            available.insert("dead-letters".into());
        }
        Capabilities { available }
    }

    /// Adds what a stack of `instances` per service on `brokers` Kafka nodes can do.
    pub fn with_scale(mut self, scale: crate::stack::Scale) -> Capabilities {
        for (name, _) in scale_capabilities() {
            let enough = if name == "broker-cluster" { scale.brokers >= 3 } else { scale.instances >= 2 };
            if enough {
                self.available.insert(name);
            }
        }
        self
    }

    pub fn has(&self, capability: &str) -> bool {
        self.available.contains(capability)
    }

    /// Why a scenario tagged `@needs-<capability>` cannot run here: `None` when it can.
    pub fn missing(&self, capability: &str) -> Option<String> {
        if self.has(capability) {
            return None;
        }
        if capability == "dead-letters" {
            return Some(
                "the implementation declares no dead-letter topics ([external] dead_letter_topics = false)".into(),
            );
        }
        if let Some((_, why)) = scale_capabilities().into_iter().find(|(name, _)| name == capability) {
            return Some(format!("{capability}: {why}"));
        }
        Some(match capability_commands().into_iter().find(|(name, _)| name == capability) {
            Some((_, commands)) => {
                format!("needs {capability}: configure [external.commands] {}", commands.join(" and "))
            }
            None => format!("needs {capability}, which no backend provides (a typo in the feature's tags?)"),
        })
    }
}

pub enum Backend {
    Processes(Stack),
    Containers(Containers),
    External { endpoints: Endpoints, commands: std::collections::HashMap<String, String>, dead_letters: bool },
}

impl Backend {
    pub async fn start(config: &Config, push_gateway_url: &str) -> anyhow::Result<Backend> {
        match config.backend {
            BackendKind::Processes => {
                let options = StackOptions {
                    variant: config.service_variant.clone(),
                    scale: config.scale()?,
                    ..StackOptions::new(
                        config.report_dir.join("logs"),
                        push_gateway_url.to_string(),
                        config.topic_map(),
                    )
                };
                Ok(Backend::Processes(Stack::start(options).await?))
            }
            BackendKind::Containers => Ok(Backend::Containers(
                Containers::start(
                    &config.containers,
                    push_gateway_url,
                    &config.topic_map(),
                    &config.report_dir.join("logs"),
                )
                .await?,
            )),
            BackendKind::External => {
                let e = &config.external;
                let endpoints = Endpoints {
                    order_url: e.order_url.clone(),
                    product_url: e.product_url.clone(),
                    payment_url: e.payment_url.clone(),
                    kafka_bootstrap: e.kafka_bootstrap.clone(),
                    registry_url: e.registry_url.clone(),
                };
                let client = reqwest::Client::new();
                for (name, url) in [
                    ("order", &endpoints.order_url),
                    ("product", &endpoints.product_url),
                    ("payment", &endpoints.payment_url),
                    ("registry", &endpoints.registry_url),
                ] {
                    client.get(url).timeout(Duration::from_secs(5)).send().await.with_context(|| format!("the external {name} endpoint {url} does not answer: start the implementation or fix [external] in the config"))?;
                }
                Ok(Backend::External { endpoints, commands: e.commands.clone(), dead_letters: e.dead_letter_topics })
            }
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        match self {
            Backend::Processes(stack) => &stack.endpoints,
            Backend::Containers(containers) => &containers.endpoints,
            Backend::External { endpoints, .. } => endpoints,
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            Backend::Processes(stack) => Capabilities::all().with_scale(stack.scale),
            Backend::Containers(_) => Capabilities::all(),
            Backend::External { commands, dead_letters, .. } => Capabilities::from_commands(commands, *dead_letters),
        }
    }

    pub async fn stop_service(&self, service: Service) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.stop_service(service, false).await,
            Backend::Containers(containers) => containers.stop_service(service).await,
            Backend::External { commands, .. } => run_command(commands, &command_key("stop", service)).await,
        }
    }

    /// Freezes (`paused`) or resumes a service without stopping it.
    pub async fn pause_service(&self, service: Service, paused: bool) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.pause_service(service, paused).await,
            Backend::Containers(containers) => containers.pause_service(service, paused).await,
            Backend::External { commands, .. } => {
                run_command(commands, &command_key(if paused { "pause" } else { "unpause" }, service)).await
            }
        }
    }

    pub async fn stop_broker(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.stop_kafka().await.map(|_| ()),
            Backend::Containers(containers) => containers.stop_kafka().await,
            Backend::External { commands, .. } => run_command(commands, "stop_kafka").await,
        }
    }

    /// Starts the broker again and returns once it serves `probe_topic`.
    pub async fn start_broker(&self, probe_topic: &str) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => {
                stack.start_kafka().await?;
                // "Kafka Server started" comes before every partition has a leader again.
                crate::stack::wait_until_serving(
                    &stack.endpoints.kafka_bootstrap,
                    probe_topic,
                    Duration::from_secs(120),
                )
                .await
            }
            Backend::Containers(containers) => containers.start_kafka(probe_topic).await,
            Backend::External { commands, endpoints, .. } => {
                run_command(commands, "start_kafka").await?;
                crate::stack::wait_until_serving(&endpoints.kafka_bootstrap, probe_topic, Duration::from_secs(120))
                    .await
                    .context("after the start_kafka command")
            }
        }
    }

    /// Kills a service as a crash does: SIGKILL (processes), `docker kill` (containers), the
    /// `kill_<svc>` command (external). [`Backend::start_service`] brings it back.
    pub async fn kill_service(&self, service: Service) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.stop_service(service, true).await,
            Backend::Containers(containers) => containers.kill_service(service).await,
            Backend::External { commands, .. } => run_command(commands, &command_key("kill", service)).await,
        }
    }

    /// Kills the broker (SIGKILL / `docker kill` / `kill_kafka`); [`Backend::start_broker`]
    /// brings it back on its data.
    pub async fn kill_broker(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.kill_kafka().await.map(|_| ()),
            Backend::Containers(containers) => containers.kill_kafka().await,
            Backend::External { commands, .. } => run_command(commands, "kill_kafka").await,
        }
    }

    /// Kills the PostgreSQL server (in our stacks one server holds every service's database).
    pub async fn kill_database(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.kill_postgres().await,
            Backend::Containers(containers) => containers.kill_postgres().await,
            Backend::External { commands, .. } => run_command(commands, "kill_postgres").await,
        }
    }

    /// Starts PostgreSQL again and returns once it accepts connections. External: the
    /// `start_postgres` command must return only then (`pg_ctl start -w` does); the suite cannot
    /// reach the database itself, so it then waits for every service's `/health`.
    pub async fn start_database(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.start_postgres().await,
            Backend::Containers(containers) => containers.start_postgres().await,
            Backend::External { commands, endpoints, .. } => {
                run_command(commands, "start_postgres").await?;
                for url in [&endpoints.order_url, &endpoints.product_url, &endpoints.payment_url] {
                    wait_http_ok_url(&format!("{url}/health"), Duration::from_secs(60))
                        .await
                        .context("after the start_postgres command")?;
                }
                Ok(())
            }
        }
    }

    pub async fn start_service(&self, service: Service) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.start_service(service).await,
            Backend::Containers(containers) => containers.start_service(service).await,
            Backend::External { commands, endpoints, .. } => {
                run_command(commands, &command_key("start", service)).await?;
                let url = match service {
                    Service::Order => &endpoints.order_url,
                    Service::Product => &endpoints.product_url,
                    Service::Payment => &endpoints.payment_url,
                };
                wait_http_ok_url(&format!("{url}/health"), Duration::from_secs(60))
                    .await
                    .context("after the start command")
            }
        }
    }

    /// The processes stack, for what only it can do (one instance of several, a Kafka cluster);
    /// the scenarios needing it carry the scale capabilities, which no other backend has.
    pub fn scaled_stack(&self, what: &str) -> anyhow::Result<&Stack> {
        match self {
            Backend::Processes(stack) => Ok(stack),
            _ => bail!("{what}: only the processes backend runs several instances or a Kafka cluster"),
        }
    }

    pub async fn shutdown(&self) {
        match self {
            Backend::Processes(stack) => stack.shutdown().await,
            Backend::Containers(containers) => containers.shutdown().await,
            Backend::External { .. } => {}
        }
    }
}

fn command_key(verb: &str, service: Service) -> String {
    format!("{verb}_{}", short_name(service))
}

/// `order`, `product`, `payment`: how commands and capability tags name a service.
fn short_name(service: Service) -> &'static str {
    service.binary().trim_end_matches("-service")
}

async fn run_command(commands: &std::collections::HashMap<String, String>, key: &str) -> anyhow::Result<()> {
    let command = commands.get(key).with_context(|| format!("no [external.commands] {key} configured"))?;
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .await
        .with_context(|| format!("running {key}: {command}"))?;
    if !status.success() {
        bail!("{key} ({command}) exited with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_commands_enable_capabilities_per_service() {
        let commands: std::collections::HashMap<String, String> =
            [("stop_product", "x"), ("start_product", "y"), ("kill_kafka", "z")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let caps = Capabilities::from_commands(&commands, false);
        assert!(caps.has("stop-product"));
        assert!(!caps.has("stop-order"), "no stop_order command");
        assert!(!caps.has("kill-product"), "kill_product is missing");
        assert!(!caps.has("broker-kill"), "kill_kafka without start_kafka");
        assert!(!caps.has("dead-letters"));
        assert!(caps.missing("broker-kill").is_some_and(|why| why.contains("kill_kafka and start_kafka")));
        assert!(caps.missing("stop-product").is_none());
    }

    #[test]
    fn the_stacks_we_run_can_do_everything() {
        let caps = Capabilities::all();
        for capability in
            ["stop-order", "pause-payment", "kill-product", "broker-stop", "broker-kill", "db-kill", "dead-letters"]
        {
            assert!(caps.has(capability), "{capability}");
        }
        assert!(caps.missing("teleport").is_some_and(|why| why.contains("typo")));
    }

    #[test]
    fn scale_capabilities_need_instances_and_a_cluster() {
        let single = Capabilities::all().with_scale(crate::stack::Scale::default());
        assert!(!single.has("kill-instance-product"), "one instance cannot lose one of several");
        assert!(single.missing("kill-instance-product").is_some_and(|why| why.contains("instances = 2")));
        assert!(single.missing("broker-cluster").is_some_and(|why| why.contains("kafka_brokers = 3")));
        let instances_only = Capabilities::all().with_scale(crate::stack::Scale { instances: 2, brokers: 1 });
        assert!(instances_only.has("add-instance-product") && !instances_only.has("broker-cluster"));
        let scaled = Capabilities::all().with_scale(crate::stack::Scale { instances: 2, brokers: 3 });
        assert!(scaled.has("pause-instance-order") && scaled.has("broker-cluster"));
        assert!(!Capabilities::from_commands(&Default::default(), true).has("broker-cluster"));
    }
}
