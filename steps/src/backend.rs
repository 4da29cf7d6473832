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

/// What a backend can do beyond HTTP and Kafka; scenarios needing more are skipped with the
/// reason in the report.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Stop and start services (`@faults` scenarios).
    pub faults: bool,
    /// Pause and resume services (`@pause`).
    pub pause: bool,
    /// Stop and start the Kafka broker (`@broker-faults`).
    pub broker_faults: bool,
    /// The implementation dead-letters poison records to `<topic>.dlt` (`@dead-letters`).
    pub dead_letters: bool,
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
                    bin_dir: crate::stack::default_bin_dir(),
                    kafka_libs: crate::stack::cache_dir().join("kafka-libs"),
                    log_dir: config.report_dir.join("logs"),
                    push_gateway_url: push_gateway_url.to_string(),
                    topics: config.topic_map(),
                    variant: config.service_variant.clone(),
                };
                Ok(Backend::Processes(Stack::start(options).await?))
            }
            BackendKind::Containers => Ok(Backend::Containers(Containers::start(&config.containers, push_gateway_url, &config.topic_map(), &config.report_dir.join("logs")).await?)),
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
                for (name, url) in [("order", &endpoints.order_url), ("product", &endpoints.product_url), ("payment", &endpoints.payment_url), ("registry", &endpoints.registry_url)] {
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
            Backend::Processes(_) | Backend::Containers(_) => Capabilities { faults: true, pause: true, broker_faults: true, dead_letters: true },
            Backend::External { commands, dead_letters, .. } => {
                let all = |verbs: [&str; 2]| Service::ALL.iter().all(|s| verbs.iter().all(|v| commands.contains_key(&command_key(v, *s))));
                Capabilities {
                    faults: all(["stop", "start"]),
                    pause: all(["pause", "unpause"]),
                    broker_faults: commands.contains_key("stop_kafka") && commands.contains_key("start_kafka"),
                    dead_letters: *dead_letters,
                }
            }
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
            Backend::External { commands, .. } => run_command(commands, &command_key(if paused { "pause" } else { "unpause" }, service)).await,
        }
    }

    pub async fn stop_broker(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.stop_kafka().await,
            Backend::Containers(containers) => containers.stop_kafka().await,
            Backend::External { commands, .. } => run_command(commands, "stop_kafka").await,
        }
    }

    /// Starts the broker again and returns once it serves `probe_topic`.
    pub async fn start_broker(&self, probe_topic: &str) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.start_kafka().await,
            Backend::Containers(containers) => containers.start_kafka(probe_topic).await,
            Backend::External { commands, endpoints, .. } => {
                run_command(commands, "start_kafka").await?;
                crate::stack::wait_until_serving(&endpoints.kafka_bootstrap, probe_topic, Duration::from_secs(120)).await.context("after the start_kafka command")
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
                wait_http_ok_url(&format!("{url}/health"), Duration::from_secs(60)).await.context("after the start command")
            }
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
    format!("{verb}_{}", service.binary().trim_end_matches("-service"))
}

async fn run_command(commands: &std::collections::HashMap<String, String>, key: &str) -> anyhow::Result<()> {
    let command = commands.get(key).with_context(|| format!("no [external.commands] {key} configured"))?;
    let status = tokio::process::Command::new("sh").arg("-c").arg(command).status().await.with_context(|| format!("running {key}: {command}"))?;
    if !status.success() {
        bail!("{key} ({command}) exited with {status}");
    }
    Ok(())
}

