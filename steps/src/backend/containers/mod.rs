//! The `containers` backend: the implementation as Docker containers driven by testcontainers.
//!
//! PostgreSQL and Kafka come from testcontainers-modules (`postgres::Postgres`,
//! `kafka::apache::Kafka`; a Kafka cluster from our image with the official image's
//! environment, see [`kafka`]) with the images named in `[containers]` (ours by default, built
//! locally), on a network of their own with ports published on 127.0.0.1 (the engine is started
//! with `--ip=127.0.0.1`, see `docker/images.sh`). The registry and the services run with host
//! networking and bind 127.0.0.1, so they reach the infrastructure through those published
//! ports and the suite's push sink on 127.0.0.1 — no traffic leaves the loopback or the
//! containers' own network. `instances = N` runs N containers of each service, each on its own
//! port with its own `INSTANCE_ID`, all in the service's consumer group; the suite talks to
//! instance 1. Another team's images run the same features by changing the names; missing
//! images of ours are built with `docker/images.sh build`. Every container is removed at the
//! end (and on Ctrl-C, through testcontainers' watchdog).
//!
//! Files: `infra.rs` (the infrastructure containers, images, Docker operations), `kafka.rs`
//! (one node or a cluster).

mod infra;
mod kafka;

use super::fault::{Fault, FaultTarget};
use super::processes::process::{free_port, wait_http_ok_url};
use super::processes::set_database_access;
use super::{ServiceWiring, instance_env, instance_name};
use crate::Service;
use crate::config::sections::{ContainerImages, RegistryApi};
use crate::types::{Endpoints, InstanceId, Scale};
use anyhow::Context;
use infra::{Container, Infra, docker_kill, docker_ok, host_container, prepare, split_image, start_registry};
use kafka::{KafkaNodes, Placement};
use saga_contract::{SagaTopic, Topics};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testcontainers::ImageExt;
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers_modules::postgres::Postgres;
use tokio::sync::Mutex;

/// A service instance's container and the port its HTTP API listens on.
struct ServiceContainer {
    container: Container,
    port: u16,
}

pub struct Containers {
    pub endpoints: Endpoints,
    pub scale: Scale,
    log_dir: PathBuf,
    network: String,
    run: String,
    images: ContainerImages,
    /// What every instance of a service is told (without its port and instance id).
    service_env: BTreeMap<Service, Vec<(String, String)>>,
    /// PostgreSQL and the registry, removed last.
    infrastructure: Mutex<Vec<Infra>>,
    kafka: KafkaNodes,
    services: Mutex<BTreeMap<InstanceId, ServiceContainer>>,
    /// Instances stopped or killed by a fault, kept for a restart on their port.
    stopped: Mutex<BTreeMap<InstanceId, ServiceContainer>>,
    /// PostgreSQL's published port: fixed, so it stays the same across a restart.
    postgres_port: u16,
}

impl Containers {
    pub async fn start(
        images: &ContainerImages,
        push_gateway_url: &str,
        topics: &Topics,
        log_dir: &Path,
        scale: Scale,
        extra_env: &HashMap<Service, Vec<(String, String)>>,
    ) -> anyhow::Result<Containers> {
        let began = Instant::now();
        let progress = |what: &str| eprintln!("[containers {:>5.1}s] {what}", began.elapsed().as_secs_f64());
        std::fs::create_dir_all(log_dir)?;
        prepare(images).await?;
        let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let network = format!("saga-{run}");
        let pg_port = free_port()?;
        progress(&format!(
            "starting {} and {} ({} node(s)) on network {network}",
            images.postgres, images.kafka, scale.brokers
        ));
        let (pg_name, pg_tag) = split_image(&images.postgres);
        // Trust auth: the services' URLs carry no password (the official image demands one).
        // Durable, as everywhere (docs/containers.md): the module turns fsync off unless asked.
        let postgres = Postgres::default()
            .with_host_auth()
            .with_fsync_enabled()
            .with_name(pg_name)
            .with_tag(pg_tag)
            .with_network(&network)
            .with_container_name(format!("saga-{run}-postgres"))
            .with_label("saga.run", &run)
            .with_mapped_port(pg_port, 5432.tcp())
            .with_startup_timeout(Duration::from_secs(180))
            .start();
        let kafka_ports: Vec<u16> = (0..scale.brokers).map(|_| free_port()).collect::<anyhow::Result<_>>()?;
        let kafka_bootstrap = kafka_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let saga_topics: Vec<String> = SagaTopic::ALL.iter().map(|t| topics.name(*t).to_string()).collect();
        let place = Placement { image: &images.kafka, network: &network, run: &run };
        // Apicurio needs only PostgreSQL, so it starts while the broker is still coming up;
        // Confluent's registry stores its schemas in Kafka and waits for the broker.
        let registry_alongside_kafka = images.registry_api == RegistryApi::Apicurio;
        let pg_then_registry = async {
            let postgres =
                postgres.await.context("starting the PostgreSQL container (testcontainers-modules postgres)")?;
            progress(&format!("PostgreSQL on 127.0.0.1:{pg_port}"));
            let registry = if registry_alongside_kafka {
                Some(start_registry(images, &run, pg_port, &kafka_bootstrap, &progress).await?)
            } else {
                None
            };
            anyhow::Ok((postgres, registry))
        };
        let (pg_and_registry, kafka) =
            tokio::join!(pg_then_registry, KafkaNodes::start(&place, &kafka_ports, saga_topics));
        let (kafka, (postgres, registry)) = (kafka?, pg_and_registry?);
        progress(&format!("Kafka on {kafka_bootstrap}"));
        let (registry, registry_url) = match registry {
            Some(started) => started,
            None => start_registry(images, &run, pg_port, &kafka_bootstrap, &progress).await?,
        };

        let wiring = ServiceWiring {
            kafka_bootstrap: kafka_bootstrap.clone(),
            registry_url: registry_url.clone(),
            postgres_base_url: format!("postgres://postgres@127.0.0.1:{pg_port}/"),
            push_gateway_url: push_gateway_url.to_string(),
            topics: topics.clone(),
        };
        // The contract's knobs, then what the run adds (the self-test's FAILPOINTS).
        let service_env = Service::ALL
            .into_iter()
            .map(|s| (s, wiring.env(s).into_iter().chain(extra_env.get(&s).into_iter().flatten().cloned()).collect()))
            .collect();
        let mut containers = Containers {
            endpoints: Endpoints {
                order_url: String::new(),
                product_url: String::new(),
                payment_url: String::new(),
                kafka_bootstrap,
                registry_url,
            },
            scale,
            log_dir: log_dir.to_path_buf(),
            network,
            run,
            images: images.clone(),
            service_env,
            infrastructure: Mutex::new(vec![Infra::Postgres(postgres), Infra::Registry(registry)]),
            kafka,
            services: Mutex::default(),
            stopped: Mutex::default(),
            postgres_port: pg_port,
        };
        let instances: Vec<InstanceId> =
            Service::ALL.into_iter().flat_map(|s| (1..=scale.instances).map(move |n| (s, n))).collect();
        for instance in instances {
            if let Err(e) = containers.launch(instance).await {
                containers.shutdown().await;
                return Err(e);
            }
        }
        // The suite's HTTP requests go to instance 1 of each service (docs/scaling.md).
        for service in Service::ALL {
            let url = format!("http://127.0.0.1:{}", containers.port((service, 1)).await?);
            match service {
                Service::Order => containers.endpoints.order_url = url,
                Service::Product => containers.endpoints.product_url = url,
                Service::Payment => containers.endpoints.payment_url = url,
            }
        }
        progress(&format!("services up ({} instance(s) of each)", scale.instances));
        Ok(containers)
    }

    /// Creates and starts a new container for `instance` on a free port, and waits for `/health`.
    async fn launch(&self, instance: InstanceId) -> anyhow::Result<()> {
        let service = instance.0;
        let port = free_port()?;
        let mut env = instance_env(instance, port);
        env.extend(self.service_env[&service].iter().cloned());
        let name = instance_name(instance, self.scale.instances);
        let container = host_container(self.images.service(service), &self.run, &name, &env).await?;
        self.services.lock().await.insert(instance, ServiceContainer { container, port });
        self.wait_healthy(instance).await
    }

    async fn port(&self, instance: InstanceId) -> anyhow::Result<u16> {
        let (services, stopped) = (self.services.lock().await, self.stopped.lock().await);
        services
            .get(&instance)
            .or_else(|| stopped.get(&instance))
            .map(|s| s.port)
            .with_context(|| format!("the stack has no instance {} of the {}", instance.1, instance.0))
    }

    async fn wait_healthy(&self, instance: InstanceId) -> anyhow::Result<()> {
        let port = self.port(instance).await?;
        wait_http_ok_url(&format!("http://127.0.0.1:{port}/health"), Duration::from_secs(90))
            .await
            .with_context(|| format!("instance {} of the {} (container)", instance.1, instance.0))
    }

    /// The running instances of `service`.
    pub async fn running_instances(&self, service: Service) -> Vec<usize> {
        self.services.lock().await.keys().filter(|(s, _)| *s == service).map(|(_, n)| *n).collect()
    }

    /// Takes one instance down — `docker kill` (`crash`: SIGKILL, no stop signal first) or
    /// `docker stop` (SIGTERM, then SIGKILL after 10 s); the container and its port stay for
    /// [`Containers::start_instance`].
    async fn take_down(&self, instance: InstanceId, crash: bool) -> anyhow::Result<()> {
        let taken = self.services.lock().await.remove(&instance);
        let taken = taken.with_context(|| format!("instance {} of the {} is not running", instance.1, instance.0))?;
        let what = format!("{} {}", instance.0, instance.1);
        let outcome = if crash {
            docker_kill(taken.container.id(), &what).await
        } else {
            taken.container.stop().await.with_context(|| format!("stopping the {what} container"))
        };
        self.stopped.lock().await.insert(instance, taken);
        outcome
    }

    /// `docker start` of a stopped or killed instance, on its port; waits for `/health`.
    async fn start_instance(&self, instance: InstanceId) -> anyhow::Result<()> {
        let stopped = self.stopped.lock().await.remove(&instance);
        let stopped = stopped.with_context(|| format!("instance {} of the {} is not down", instance.1, instance.0))?;
        let started = stopped.container.start().await;
        self.services.lock().await.insert(instance, stopped);
        started.with_context(|| format!("starting the container of instance {} of the {}", instance.1, instance.0))?;
        self.wait_healthy(instance).await
    }

    /// `docker pause` / `docker unpause`: the instance's processes freeze, connections stay.
    async fn pause_instance(&self, instance: InstanceId, paused: bool) -> anyhow::Result<()> {
        let services = self.services.lock().await;
        let what = format!("instance {} of the {}", instance.1, instance.0);
        let container = &services.get(&instance).with_context(|| format!("{what} is not running"))?.container;
        if paused { container.pause().await } else { container.unpause().await }
            .with_context(|| format!("{} the container of {what}", if paused { "pausing" } else { "unpausing" }))
    }

    /// Starts a container for one more instance of `service`, numbered after every instance it
    /// knows (a rebalance).
    async fn add_instance(&self, service: Service) -> anyhow::Result<()> {
        let known = {
            let (services, stopped) = (self.services.lock().await, self.stopped.lock().await);
            services.keys().chain(stopped.keys()).filter(|(s, _)| *s == service).map(|(_, n)| *n).max()
        };
        self.launch((service, known.unwrap_or(0) + 1)).await
    }

    /// Stops the instance of `service` added last and removes its container, keeping its log.
    async fn remove_added(&self, service: Service) -> anyhow::Result<()> {
        let (mut services, mut stopped) = (self.services.lock().await, self.stopped.lock().await);
        let added = services.keys().chain(stopped.keys()).filter(|(s, n)| *s == service && *n > self.scale.instances);
        let instance =
            *added.max().with_context(|| format!("no instance was added to the {service}: none to remove"))?;
        let taken = services.remove(&instance).or_else(|| stopped.remove(&instance));
        drop((services, stopped));
        let taken = taken.with_context(|| format!("the stack has no instance {} of the {}", instance.1, instance.0))?;
        self.save_log_and_remove(&instance_name(instance, self.scale.instances), taken.container).await;
        Ok(())
    }

    /// The running instances of `service`, by number.
    async fn instances_of(&self, service: Service) -> Vec<InstanceId> {
        self.running_instances(service).await.into_iter().map(|n| (service, n)).collect()
    }

    /// `docker stop` of every instance of the service.
    async fn stop_service(&self, service: Service) -> anyhow::Result<()> {
        let instances = self.instances_of(service).await;
        anyhow::ensure!(!instances.is_empty(), "the {service} is not running");
        futures::future::try_join_all(instances.into_iter().map(|i| self.take_down(i, false))).await.map(|_| ())
    }

    /// `docker kill` of every instance of the service: a crash.
    async fn kill_service(&self, service: Service) -> anyhow::Result<()> {
        let instances = self.instances_of(service).await;
        anyhow::ensure!(!instances.is_empty(), "the {service} is not running");
        futures::future::try_join_all(instances.into_iter().map(|i| self.take_down(i, true))).await.map(|_| ())
    }

    /// `docker start` of every instance of the service that is down.
    async fn start_service(&self, service: Service) -> anyhow::Result<()> {
        let down: Vec<InstanceId> = self.stopped.lock().await.keys().copied().filter(|(s, _)| *s == service).collect();
        anyhow::ensure!(!down.is_empty(), "every instance of the {service} is already running");
        futures::future::try_join_all(down.into_iter().map(|i| self.start_instance(i))).await.map(|_| ())
    }

    /// `docker pause` / `docker unpause` of every instance of the service.
    async fn pause_service(&self, service: Service, paused: bool) -> anyhow::Result<()> {
        for instance in self.instances_of(service).await {
            self.pause_instance(instance, paused).await?;
        }
        Ok(())
    }

    pub async fn wait_kafka_leaders(&self, deadline: Duration) -> anyhow::Result<Duration> {
        self.kafka.wait_leaders(deadline).await
    }

    /// `docker kill` of the PostgreSQL container (every database of the stack goes with it).
    async fn kill_postgres(&self) -> anyhow::Result<()> {
        let infrastructure = self.infrastructure.lock().await;
        let pg = postgres_of(&infrastructure)?;
        docker_kill(pg.id(), "postgresql").await
    }

    /// `postgres://…/` of the PostgreSQL container's published port, without a database name.
    fn postgres_base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/", self.postgres_port)
    }

    /// `docker start` of the PostgreSQL container, then waits until it has recovered and
    /// accepts connections on its published port (fixed, so it is the same as before).
    async fn start_postgres(&self) -> anyhow::Result<()> {
        postgres_of(&self.infrastructure.lock().await)?.start().await?;
        super::processes::wait_accepting(&format!("{}postgres", self.postgres_base_url()), Duration::from_secs(60))
            .await
    }

    /// Saves each container's output into the log directory, then removes every container and
    /// the network.
    pub async fn shutdown(&self) {
        let services: Vec<(InstanceId, ServiceContainer)> = {
            let mut all = std::mem::take(&mut *self.services.lock().await);
            all.extend(std::mem::take(&mut *self.stopped.lock().await));
            all.into_iter().collect()
        };
        for (instance, s) in services {
            self.save_log_and_remove(&instance_name(instance, self.scale.instances), s.container).await;
        }
        let mut infrastructure: Vec<Infra> = self.kafka.drain().await;
        infrastructure.extend(self.infrastructure.lock().await.drain(..).rev());
        for infra in infrastructure {
            let (name, log) = (infra.name(), infra.output().await);
            let _ = std::fs::write(self.log_dir.join(format!("{name}.log")), log);
            if let Err(e) = infra.remove().await {
                eprintln!("[containers] removing {name}: {e}");
            }
        }
        let _ = docker_ok(&["network", "rm", &self.network]).await;
        eprintln!("[containers] removed");
    }

    async fn save_log_and_remove(&self, name: &str, container: Container) {
        let mut log = container.stdout_to_vec().await.unwrap_or_default();
        log.extend(container.stderr_to_vec().await.unwrap_or_default());
        let _ = std::fs::write(self.log_dir.join(format!("{name}.log")), log);
        if let Err(e) = container.rm().await {
            eprintln!("[containers] removing {name}: {e}");
        }
    }
}

/// Docker's operations on the containers: stop, kill, start, pause; database access withdrawn
/// on the PostgreSQL container as the processes backend does.
impl FaultTarget for Containers {
    async fn apply(&self, fault: &Fault) -> anyhow::Result<()> {
        match *fault {
            Fault::StopService(service) => self.stop_service(service).await,
            Fault::KillService(service) => self.kill_service(service).await,
            Fault::StartService(service) => self.start_service(service).await,
            Fault::PauseService(service) => self.pause_service(service, true).await,
            Fault::UnpauseService(service) => self.pause_service(service, false).await,
            Fault::StopBroker => self.kafka.take_down(false).await,
            Fault::KillBroker => self.kafka.take_down(true).await,
            Fault::StartBroker => self.kafka.restart().await,
            Fault::KillDatabase => self.kill_postgres().await,
            Fault::StartDatabase => self.start_postgres().await,
            Fault::TakeDatabase(service) => {
                set_database_access(&self.postgres_base_url(), service.database(), false).await
            }
            Fault::GiveDatabase(service) => {
                set_database_access(&self.postgres_base_url(), service.database(), true).await
            }
            Fault::KillInstance(instance) => self.take_down(instance, true).await,
            Fault::StartInstance(instance) => self.start_instance(instance).await,
            Fault::PauseInstance(instance) => self.pause_instance(instance, true).await,
            Fault::UnpauseInstance(instance) => self.pause_instance(instance, false).await,
            Fault::AddInstance(service) => self.add_instance(service).await,
            Fault::RemoveInstance(service) => self.remove_added(service).await,
        }
    }
}

fn postgres_of(infrastructure: &[Infra]) -> anyhow::Result<&Infra> {
    infrastructure.iter().find(|i| matches!(i, Infra::Postgres(_))).context("no PostgreSQL container")
}
