//! The `external` backend: an implementation already running somewhere the kit reaches by URLs
//! (`[external]` in the config), with optional shell commands (`[external.commands]`) for the
//! fault scenarios. Each command runs with `sh -c` and must return once its effect is in place
//! (a start: once the service answers `/health` again). Commands that act on one instance or one
//! Kafka node are told which in environment variables:
//!
//! | variable | set for | value |
//! |---|---|---|
//! | `SAGA_SERVICE` | every command on a service, its database or an instance | `order`, `product` or `payment` |
//! | `SAGA_INSTANCE` | `*_instance_<svc>` | the instance's number: 1 is the one at `<svc>_url`, 2.. the others (`add_instance_<svc>` gets the new one's) |
//! | `SAGA_KAFKA_NODE` | `stop_kafka`, `kill_kafka`, `start_kafka` | the node id (`node.id`) to take down or bring back: the one leading the most saga partitions |

use super::fault::{Fault, FaultTarget, short_name};
use super::kafka_meta::{broker_ids, leading_node, wait_leaders, wait_until_serving};
use super::processes::process::wait_http_ok_url;
use crate::Service;
use crate::config::sections::External as ExternalConfig;
use crate::types::{Endpoints, InstanceId, Scale};
use anyhow::{Context, bail};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::Mutex;

pub struct External {
    pub endpoints: Endpoints,
    commands: HashMap<String, String>,
    pub dead_letters: bool,
    /// What the implementation declares it runs (`instances`, `kafka_brokers`).
    pub scale: Scale,
    /// The instances the suite's commands know, and whether each runs: 1..=instances of each
    /// at first.
    instances: Mutex<BTreeMap<InstanceId, bool>>,
    /// Every Kafka node id, as the metadata listed them at the start.
    nodes: Vec<i32>,
    /// Nodes a command took down, most recent last.
    down: Mutex<Vec<i32>>,
    /// The saga topics, whose partition leaders decide which node a broker fault targets.
    saga_topics: Vec<String>,
}

impl External {
    /// Checks that every endpoint answers, and notes the cluster's nodes.
    pub async fn connect(config: &ExternalConfig, scale: Scale, saga_topics: Vec<String>) -> anyhow::Result<External> {
        let endpoints = Endpoints {
            order_url: config.order_url.clone(),
            product_url: config.product_url.clone(),
            payment_url: config.payment_url.clone(),
            kafka_bootstrap: config.kafka_bootstrap.clone(),
            registry_url: config.registry_url.clone(),
        };
        let client = reqwest::Client::new();
        for (name, url) in [
            ("order", &endpoints.order_url),
            ("product", &endpoints.product_url),
            ("payment", &endpoints.payment_url),
            ("registry", &endpoints.registry_url),
        ] {
            client.get(url).timeout(Duration::from_secs(5)).send().await.with_context(|| {
                format!("the external {name} endpoint {url} does not answer: start the implementation or fix [external] in the config")
            })?;
        }
        let nodes = broker_ids(&endpoints.kafka_bootstrap, Duration::from_secs(5)).await.with_context(|| {
            format!(
                "the external Kafka at {} does not answer: fix [external] kafka_bootstrap",
                endpoints.kafka_bootstrap
            )
        })?;
        if scale.brokers > 1 && nodes.len() < scale.brokers {
            bail!(
                "kafka_brokers = {} is declared, but the cluster at {} lists {} node(s) {nodes:?}",
                scale.brokers,
                endpoints.kafka_bootstrap,
                nodes.len()
            );
        }
        let instances =
            Service::ALL.into_iter().flat_map(|s| (1..=scale.instances).map(move |n| ((s, n), true))).collect();
        Ok(External {
            endpoints,
            commands: config.commands.clone(),
            dead_letters: config.dead_letter_topics,
            scale,
            instances: Mutex::new(instances),
            nodes,
            down: Mutex::default(),
            saga_topics,
        })
    }

    pub fn commands(&self) -> &HashMap<String, String> {
        &self.commands
    }

    /// Runs `fault`'s command, telling it the service the fault is on (if any).
    async fn on_service(&self, fault: &Fault) -> anyhow::Result<()> {
        let env: Vec<(&str, String)> =
            fault.service().map(|s| ("SAGA_SERVICE", short_name(s).to_string())).into_iter().collect();
        self.run(&fault.command(), &env).await
    }

    /// Runs `fault`'s `<verb>_instance_<svc>` command for `instance` and notes whether it runs
    /// afterwards (`None`: it is gone for good).
    async fn on_instance(&self, fault: &Fault, instance: InstanceId, runs_after: Option<bool>) -> anyhow::Result<()> {
        let (service, number) = instance;
        let env = [("SAGA_SERVICE", short_name(service).to_string()), ("SAGA_INSTANCE", number.to_string())];
        self.run(&fault.command(), &env).await?;
        let mut instances = self.instances.lock().await;
        match runs_after {
            Some(running) => instances.insert(instance, running),
            None => instances.remove(&instance),
        };
        Ok(())
    }

    /// The numbers of `service`'s instances the suite's commands know, running or not.
    async fn known(&self, service: Service) -> Vec<usize> {
        self.instances.lock().await.keys().filter(|(s, _)| *s == service).map(|(_, n)| *n).collect()
    }

    pub async fn running_instances(&self, service: Service) -> Vec<usize> {
        let instances = self.instances.lock().await;
        instances.iter().filter(|((s, _), running)| *s == service && **running).map(|((_, n), _)| *n).collect()
    }

    /// The nodes not taken down by a command.
    async fn live_nodes(&self) -> Vec<i32> {
        let down = self.down.lock().await;
        self.nodes.iter().copied().filter(|n| !down.contains(n)).collect()
    }

    /// Runs `stop_kafka` or `kill_kafka` (`fault`'s) for the node leading the most saga partitions.
    async fn take_down_broker(&self, fault: &Fault) -> anyhow::Result<()> {
        let node = leading_node(&self.endpoints.kafka_bootstrap, &self.saga_topics, &self.live_nodes().await).await?;
        self.run(&fault.command(), &[("SAGA_KAFKA_NODE", node.to_string())]).await?;
        self.down.lock().await.push(node);
        Ok(())
    }

    /// Runs `start_kafka` for the node taken down last, then waits until the broker serves the
    /// saga's topics.
    async fn start_broker(&self) -> anyhow::Result<()> {
        let node = self.down.lock().await.last().copied().context("no Kafka node was taken down")?;
        self.run("start_kafka", &[("SAGA_KAFKA_NODE", node.to_string())]).await?;
        self.down.lock().await.retain(|n| *n != node);
        wait_until_serving(&self.endpoints.kafka_bootstrap, &self.saga_topics, Duration::from_secs(120))
            .await
            .context("after the start_kafka command")
    }

    /// Waits until every saga partition has a leader among the nodes still up.
    pub async fn wait_kafka_leaders(&self, deadline: Duration) -> anyhow::Result<Duration> {
        wait_leaders(&self.endpoints.kafka_bootstrap, &self.saga_topics, &self.live_nodes().await, deadline).await
    }

    /// Runs `start_postgres`, then waits for every service's `/health` (the suite cannot reach
    /// the implementation's database itself).
    async fn start_database(&self) -> anyhow::Result<()> {
        self.run("start_postgres", &[]).await?;
        for service in Service::ALL {
            let url = self.endpoints.service_url(service);
            wait_http_ok_url(&format!("{url}/health"), Duration::from_secs(60))
                .await
                .context("after the start_postgres command")?;
        }
        Ok(())
    }

    /// Runs the command configured under `key` with `env` added.
    async fn run(&self, key: &str, env: &[(&str, String)]) -> anyhow::Result<()> {
        let command = self.commands.get(key).with_context(|| format!("no [external.commands] {key} configured"))?;
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .status()
            .await
            .with_context(|| format!("running {key}: {command}"))?;
        if !status.success() {
            bail!("{key} ({command}) exited with {status}");
        }
        Ok(())
    }
}

/// Each fault is its command (the module's table says what it is told); a start returns once
/// what it started serves.
impl FaultTarget for External {
    async fn apply(&self, fault: &Fault) -> anyhow::Result<()> {
        match *fault {
            Fault::StopService(_)
            | Fault::KillService(_)
            | Fault::PauseService(_)
            | Fault::UnpauseService(_)
            | Fault::KillDatabase
            | Fault::TakeDatabase(_)
            | Fault::GiveDatabase(_) => self.on_service(fault).await,
            Fault::StartService(service) => {
                self.on_service(fault).await?;
                let health = format!("{}/health", self.endpoints.service_url(service));
                wait_http_ok_url(&health, Duration::from_secs(60)).await.context("after the start command")
            }
            Fault::StopBroker | Fault::KillBroker => self.take_down_broker(fault).await,
            Fault::StartBroker => self.start_broker().await,
            Fault::StartDatabase => self.start_database().await,
            Fault::KillInstance(instance) => self.on_instance(fault, instance, Some(false)).await,
            // A paused instance still counts as running (the scenario knows it is paused).
            Fault::StartInstance(instance) | Fault::PauseInstance(instance) | Fault::UnpauseInstance(instance) => {
                self.on_instance(fault, instance, Some(true)).await
            }
            // The next number after every instance known: a killed one may be started again.
            Fault::AddInstance(service) => {
                let number = self.known(service).await.into_iter().max().unwrap_or(0) + 1;
                self.on_instance(fault, (service, number), Some(true)).await
            }
            Fault::RemoveInstance(service) => {
                let added = self.known(service).await.into_iter().filter(|n| *n > self.scale.instances).max();
                let number =
                    added.with_context(|| format!("no instance was added to the {service}: none to remove"))?;
                self.on_instance(fault, (service, number), None).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(commands: &[(&str, &str)]) -> External {
        let scale = Scale { instances: 2, brokers: 1 };
        External {
            endpoints: Endpoints {
                order_url: String::new(),
                product_url: String::new(),
                payment_url: String::new(),
                kafka_bootstrap: String::new(),
                registry_url: String::new(),
            },
            commands: commands.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            dead_letters: true,
            scale,
            instances: Mutex::new(Service::ALL.into_iter().flat_map(|s| [((s, 1), true), ((s, 2), true)]).collect()),
            nodes: vec![1],
            down: Mutex::default(),
            saga_topics: Vec::new(),
        }
    }

    #[tokio::test]
    async fn instance_commands_are_told_which_instance_and_tracked() {
        let e = external(&[
            ("kill_instance_product", r#"test "$SAGA_SERVICE/$SAGA_INSTANCE" = product/2"#),
            ("add_instance_product", r#"test "$SAGA_INSTANCE" = 3"#),
            ("remove_instance_product", "true"),
        ]);
        e.apply(&Fault::KillInstance((Service::Product, 2))).await.expect("the command saw product/2");
        assert_eq!(e.running_instances(Service::Product).await, vec![1]);
        assert_eq!(e.running_instances(Service::Order).await, vec![1, 2], "other services untouched");
        // A new number, not the killed instance's: it may be started again.
        e.apply(&Fault::AddInstance(Service::Product)).await.expect("number 3");
        assert_eq!(e.running_instances(Service::Product).await, vec![1, 3]);
        e.apply(&Fault::RemoveInstance(Service::Product)).await.expect("removed");
        assert_eq!(e.running_instances(Service::Product).await, vec![1]);
    }

    #[tokio::test]
    async fn a_missing_or_failing_command_names_itself() {
        let e = external(&[("kill_instance_order", "exit 3")]);
        let failed = e.apply(&Fault::KillInstance((Service::Order, 2))).await.expect_err("exit 3");
        assert!(format!("{failed:#}").contains("kill_instance_order (exit 3) exited with"), "{failed:#}");
        assert_eq!(e.running_instances(Service::Order).await, vec![1, 2], "a failed kill changes nothing");
        let missing = e.apply(&Fault::PauseInstance((Service::Payment, 2))).await.expect_err("not configured");
        assert!(format!("{missing:#}").contains("no [external.commands] pause_instance_payment"), "{missing:#}");
    }
}
