//! Backends: where the implementation under test runs and how the kit reaches it and puts
//! faults on it. One folder per way of running it:
//!
//! | module | what it is |
//! |---|---|
//! | [`processes`] | the reference stack as local processes (PostgreSQL, Kafka, Apicurio from the cache; our service binaries) |
//! | [`containers`] | the same, or another team's images, as Docker containers through testcontainers |
//! | [`external`] | an implementation already running elsewhere, reached by URLs, faults through shell commands |
//! | [`capabilities`] | what each can do beyond HTTP and Kafka (the `@needs-*` tags) |
//! | [`kafka_meta`] | what any cluster's metadata says: partition leaders, replicas in sync, serving again |
//! | [`broker_config`] | the broker's settings from their one template, for a process or an image |
//! | [`paths`] | what the kit needs at run time: the built-in features and broker settings, a checkout's scripts, the cache, the service binaries |
//!
//! Every backend gives the suite the same [`Endpoints`] (a plain type, [`crate::types`]) and the same fault operations, which
//! [`Backend`] dispatches; a scaled-out stack ([`Scale`]) adds the operations on one instance of
//! several and on one Kafka node of a cluster.

pub mod broker_config;
pub mod capabilities;
#[cfg(feature = "containers")]
pub mod containers;
pub mod external;
pub mod kafka_meta;
pub mod paths;
pub mod processes;

pub use crate::types::{Endpoints, InstanceId, Scale};
pub use capabilities::Capabilities;

use crate::Service;
use crate::config::{BackendKind, Config};
#[cfg(feature = "containers")]
use containers::Containers;
use external::External;
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

    pub async fn stop_service(&self, service: Service) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.stop_service(service, false).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.stop_service(service).await,
            Backend::External(external) => external.on_service("stop", service).await,
        }
    }

    /// Freezes (`paused`) or resumes a service without stopping it.
    pub async fn pause_service(&self, service: Service, paused: bool) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.pause_service(service, paused).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.pause_service(service, paused).await,
            Backend::External(external) => external.on_service(if paused { "pause" } else { "unpause" }, service).await,
        }
    }

    /// Kills a service as a crash does: SIGKILL (processes), `docker kill` (containers), the
    /// `kill_<svc>` command (external). [`Backend::start_service`] brings it back.
    pub async fn kill_service(&self, service: Service) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.stop_service(service, true).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.kill_service(service).await,
            Backend::External(external) => external.on_service("kill", service).await,
        }
    }

    /// Starts every stopped instance of a service and returns once it answers `/health`.
    pub async fn start_service(&self, service: Service) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.start_service(service).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.start_service(service).await,
            Backend::External(external) => external.start_service(service).await,
        }
    }

    /// Stops a Kafka node gracefully: the only one, or in a cluster the one leading the most saga
    /// partitions. [`Backend::start_broker`] brings it back.
    pub async fn stop_broker(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.stop_kafka().await.map(|_| ()),
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.take_down_kafka(false).await,
            Backend::External(external) => external.take_down_broker("stop").await,
        }
    }

    /// Kills a Kafka node (SIGKILL / `docker kill` / `kill_kafka`), chosen as
    /// [`Backend::stop_broker`] chooses; [`Backend::start_broker`] brings it back on its data.
    pub async fn kill_broker(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.kill_kafka().await.map(|_| ()),
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.take_down_kafka(true).await,
            Backend::External(external) => external.take_down_broker("kill").await,
        }
    }

    /// Starts the Kafka node taken down last and returns once the cluster serves `probe_topic`.
    pub async fn start_broker(&self, probe_topic: &str) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => {
                stack.start_kafka().await?;
                // "Kafka Server started" comes before every partition has a leader again.
                kafka_meta::wait_until_serving(&stack.endpoints.kafka_bootstrap, probe_topic, Duration::from_secs(120))
                    .await
            }
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.start_kafka(probe_topic).await,
            Backend::External(external) => external.start_broker(probe_topic).await,
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

    /// Kills the PostgreSQL server (in our stacks one server holds every service's database).
    pub async fn kill_database(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.kill_postgres().await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.kill_postgres().await,
            Backend::External(external) => external.run("kill_postgres", &[]).await,
        }
    }

    /// Starts PostgreSQL again and returns once it accepts connections (external: once every
    /// service answers `/health` after the `start_postgres` command).
    pub async fn start_database(&self) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.start_postgres().await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.start_postgres().await,
            Backend::External(external) => external.start_database().await,
        }
    }

    /// Takes `service`'s database away (`allowed` false) while the server and the other
    /// services' databases keep serving, or gives it back. Our stacks do it on their shared
    /// server (see [`processes::set_database_access`]); an external implementation with its
    /// `kill_db_<svc>` and `start_db_<svc>` commands.
    pub async fn set_database_access(&self, service: Service, allowed: bool) -> anyhow::Result<()> {
        let base_url = match self {
            Backend::Processes(stack) => stack.database_url(""),
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.postgres_base_url(),
            Backend::External(external) => {
                let verb = if allowed { "start" } else { "kill" };
                return external.run(&format!("{verb}_db_{}", short_name(service)), &[]).await;
            }
        };
        processes::set_database_access(&base_url, service.database(), allowed).await
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

    /// Kills one instance as a crash does; [`Backend::start_instance`] brings it back.
    pub async fn kill_instance(&self, instance: InstanceId) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.instances.stop(instance, true).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.kill_instance(instance).await,
            Backend::External(external) => external.kill_instance(instance).await,
        }
    }

    pub async fn start_instance(&self, instance: InstanceId) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.instances.start(instance).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.start_instance(instance).await,
            Backend::External(external) => external.start_instance(instance).await,
        }
    }

    /// Freezes (`paused`) or resumes one instance.
    pub async fn pause_instance(&self, instance: InstanceId, paused: bool) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.pause_instance(instance, paused).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.pause_instance(instance, paused).await,
            Backend::External(external) => external.pause_instance(instance, paused).await,
        }
    }

    /// Starts one more instance of `service` (it joins the consumer group: a rebalance) and
    /// returns its number once it serves; [`Backend::remove_instance`] takes it out again.
    pub async fn add_instance(&self, service: Service) -> anyhow::Result<usize> {
        match self {
            Backend::Processes(stack) => stack.instances.add(service).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.add_instance(service).await,
            Backend::External(external) => external.add_instance(service).await,
        }
    }

    pub async fn remove_instance(&self, instance: InstanceId) -> anyhow::Result<()> {
        match self {
            Backend::Processes(stack) => stack.instances.remove(instance).await,
            #[cfg(feature = "containers")]
            Backend::Containers(containers) => containers.remove_instance(instance).await,
            Backend::External(external) => external.remove_instance(instance).await,
        }
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

/// `order`, `product`, `payment`: how commands and capability tags name a service.
fn short_name(service: Service) -> &'static str {
    service.binary().trim_end_matches("-service")
}
