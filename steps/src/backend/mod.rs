//! Backends: where the implementation under test runs and how the kit reaches it and puts
//! faults on it. One folder per way of running it:
//!
//! | module | what it is |
//! |---|---|
//! | [`processes`] | the reference stack as local processes (PostgreSQL, Kafka, Apicurio from the cache; our service binaries) |
//! | [`containers`] | the same, or another team's images, as Docker containers through testcontainers |
//! | [`external`] | an implementation already running elsewhere, reached by URLs, faults through shell commands |
//! | [`fault`] | the faults the suite puts on an implementation, as values, and the one method a backend carries them out by |
//! | [`capabilities`] | what each can do beyond HTTP and Kafka (the `@needs-*` tags), from the faults' |
//! | [`kafka_meta`] | what any cluster's metadata says: partition leaders, replicas in sync, serving again |
//! | [`broker_config`] | the broker's settings from their one template, for a process or an image |
//! | [`paths`] | what the kit needs at run time: the built-in features and broker settings, a checkout's scripts, the cache, the service binaries |
//!
//! Every backend gives the suite the same [`Endpoints`] (a plain type, [`crate::types`]) and
//! carries out the same [`Fault`]s through its one [`FaultTarget::apply`], which [`Backend`]
//! dispatches; a scaled-out stack ([`crate::types::Scale`]) adds the faults on one instance of several and on
//! one Kafka node of a cluster.

pub mod broker_config;
pub mod capabilities;
#[cfg(feature = "containers")]
pub mod containers;
pub mod external;
pub mod fault;
pub mod kafka_meta;
pub mod paths;
pub mod processes;

use crate::types::{Endpoints, InstanceId};
pub use capabilities::Capabilities;

use crate::Service;
use crate::config::{BackendKind, Config};
#[cfg(feature = "containers")]
use containers::Containers;
use external::External;
use fault::{Fault, FaultTarget};
use processes::{Stack, StackOptions};
use saga_contract::SagaTopic;
use std::time::Duration;

/// What every service of a stack is told: the runtime knobs of the contract (docs/contract.md,
/// "Runtime knobs") — the same for processes and containers, and for every instance.
pub struct ServiceWiring {
    pub kafka_bootstrap: String,
    pub registry_url: String,
    /// `postgres://…/` of the stack's PostgreSQL, without a database name.
    pub postgres_base_url: String,
    pub push_gateway_url: String,
    pub topics: saga_contract::Topics,
}

impl ServiceWiring {
    /// `service`'s environment (without its instance's port and id, see [`instance_env`]).
    pub fn env(&self, service: Service) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("KAFKA_BOOTSTRAP_SERVERS".into(), self.kafka_bootstrap.clone()),
            ("SCHEMA_REGISTRY_URL".into(), self.registry_url.clone()),
            ("DATABASE_URL".into(), format!("{}{}", self.postgres_base_url, service.database())),
            ("PUSH_GATEWAY_URL".into(), self.push_gateway_url.clone()),
        ];
        env.extend(self.topics.env_pairs().into_iter().map(|(k, v)| (k.to_string(), v)));
        env
    }
}

/// What tells one instance from its siblings: its HTTP port and its `INSTANCE_ID` — stable
/// across restarts of the instance (its static consumer-group membership), distinct from the
/// others'.
pub fn instance_env(instance: InstanceId, port: u16) -> Vec<(String, String)> {
    vec![
        ("HTTP_PORT".into(), port.to_string()),
        ("INSTANCE_ID".into(), format!("{}-{}", instance.0.binary(), instance.1)),
    ]
}

/// An instance's process, container and log name: `product-service` when the stack runs one
/// instance of each service, else `product-service-2`.
pub fn instance_name(instance: InstanceId, instances_per_service: usize) -> String {
    if instances_per_service == 1 && instance.1 == 1 {
        instance.0.binary().to_string()
    } else {
        format!("{}-{}", instance.0.binary(), instance.1)
    }
}

/// One of the three; each variant boxed, as the backend is made once and lives for the run.
pub enum Backend {
    Processes(Box<Stack>),
    #[cfg(feature = "containers")]
    Containers(Box<Containers>),
    External(Box<External>),
}

impl Backend {
    pub async fn start(config: &Config, push_gateway_url: &str) -> anyhow::Result<Backend> {
        let scale = config.scale()?;
        let topics = config.topic_map();
        Ok(match config.backend {
            BackendKind::Processes => {
                let mut options = StackOptions::reference(config.report_dir.join("logs"), push_gateway_url, topics);
                options.variant = config.service_variant.clone();
                options.scale = scale;
                Backend::Processes(Box::new(Stack::start(options).await?))
            }
            #[cfg(feature = "containers")]
            BackendKind::Containers => {
                let logs = config.report_dir.join("logs");
                let extra_env = &config.service_variant.env;
                let containers =
                    Containers::start(&config.containers, push_gateway_url, &topics, &logs, scale, extra_env).await?;
                #[cfg(feature = "containers")]
                Backend::Containers(Box::new(containers))
            }
            #[cfg(not(feature = "containers"))]
            BackendKind::Containers => anyhow::bail!(
                "this saga-conformance was built without the containers backend (cargo feature `containers`): \
                 run ./saga conformance --backend containers, or build with --features containers"
            ),
            BackendKind::External => {
                let saga_topics = SagaTopic::ALL.iter().map(|t| topics.name(*t).to_string()).collect();
                Backend::External(Box::new(External::connect(&config.external, scale, saga_topics).await?))
            }
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        match self {
            Backend::Processes(stack) => &stack.endpoints,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => &containers.endpoints,
            Backend::External(external) => &external.endpoints,
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            Backend::Processes(stack) => Capabilities::all(stack.scale),
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => Capabilities::all(containers.scale),
            Backend::External(e) => Capabilities::from_commands(e.commands(), e.dead_letters, e.scale),
        }
    }

    /// Puts `fault` in place, or lifts it, on whichever backend this is (see [`FaultTarget`]).
    pub async fn apply(&self, fault: &Fault) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.apply(fault).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.apply(fault).await,
            Backend::External(external) => external.apply(fault).await,
        }
    }

    /// Waits until every saga partition has a leader among the running Kafka nodes, with enough
    /// replicas in sync to accept `acks=all` writes; returns how long that took.
    pub async fn wait_kafka_leaders(&self, deadline: Duration) -> anyhow::Result<Duration> {
        match self {
            Backend::Processes(stack) => stack.wait_kafka_leaders(deadline).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.wait_kafka_leaders(deadline).await,
            Backend::External(external) => external.wait_kafka_leaders(deadline).await,
        }
    }

    /// The instances of `service` running now (paused ones included), by number.
    pub async fn running_instances(&self, service: Service) -> Vec<usize> {
        match self {
            Backend::Processes(stack) => stack.instances.running(service).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.running_instances(service).await,
            Backend::External(external) => external.running_instances(service).await,
        }
    }

    /// The instance a fault on "a <svc> instance" hits: the highest-numbered running one other
    /// than instance 1, which the suite's HTTP requests go to.
    pub async fn victim_instance(&self, service: Service) -> anyhow::Result<usize> {
        let running = self.running_instances(service).await;
        running.into_iter().filter(|n| *n != 1).max().ok_or_else(|| {
            anyhow::anyhow!(
                "the {service} runs no instance besides instance 1: start the stack with instances = 2 or more"
            )
        })
    }

    pub async fn shutdown(&self) {
        match self {
            Backend::Processes(stack) => stack.shutdown().await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.shutdown().await,
            Backend::External(_) => {}
        }
    }
}
