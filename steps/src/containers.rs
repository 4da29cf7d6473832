//! The `containers` backend: the implementation as Docker containers driven by testcontainers.
//!
//! PostgreSQL and Kafka run on a network of their own with ports published on 127.0.0.1 (the
//! engine is started with `--ip=127.0.0.1`, see `docker/images.sh`). The registry and the three
//! services run with host networking and bind 127.0.0.1, so they reach the infrastructure
//! through those published ports and the suite's push sink on 127.0.0.1 — no traffic leaves the
//! loopback or the containers' own network. Image names come from `[containers]` in the config,
//! so another team's images run the same features; missing images of ours are built with
//! `docker/images.sh build`. Every container is removed at the end (and on Ctrl-C, through
//! testcontainers' watchdog).

use crate::Service;
use crate::config::ContainerImages;
use crate::stack::process::{free_port, wait_http_ok_url};
use crate::stack::{Endpoints, repo_file};
use anyhow::{Context, bail};
use saga_contract::Topics;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::Mutex;

type Container = ContainerAsync<GenericImage>;

pub struct Containers {
    pub endpoints: Endpoints,
    log_dir: PathBuf,
    network: String,
    infrastructure: Mutex<Vec<(String, Container)>>,
    services: Mutex<HashMap<Service, Container>>,
    ports: HashMap<Service, u16>,
}

/// `name:tag` → (`name`, `tag`), tag `latest` when absent.
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

fn generic(image: &str) -> GenericImage {
    let (name, tag) = split_image(image);
    GenericImage::new(name, tag)
}

async fn docker_ok(args: &[&str]) -> bool {
    tokio::process::Command::new("docker")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Fails with what to do when no engine answers; brings our own (`saga-*`) images up to date
/// with `docker/images.sh build` (it rebuilds only what changed, e.g. a newer service binary);
/// other images must already be there.
async fn prepare(images: &ContainerImages) -> anyhow::Result<()> {
    if !docker_ok(&["info"]).await {
        bail!(
            "Docker engine not reachable (docker info failed): start one with `docker/images.sh ensure-engine` (installs docker.io and starts dockerd), or run with --backend processes"
        );
    }
    let ours: Vec<&str> =
        images.all().into_iter().filter(|i| i.starts_with("saga-")).map(|i| i.trim_end_matches(":latest")).collect();
    if !ours.is_empty() {
        eprintln!("[containers] bringing images {ours:?} up to date (docker/images.sh build)");
        let script = repo_file("docker/images.sh");
        let output = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("build")
            .args(&ours)
            .output()
            .await
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "{} build failed:\n{}{}",
                script.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    for image in images.all() {
        if !docker_ok(&["image", "inspect", image]).await {
            bail!("image {image} not found locally: pull or build it (see [containers] in the README)");
        }
    }
    Ok(())
}

impl Containers {
    pub async fn start(
        images: &ContainerImages,
        push_gateway_url: &str,
        topics: &Topics,
        log_dir: &Path,
    ) -> anyhow::Result<Containers> {
        let began = Instant::now();
        let progress = |what: &str| eprintln!("[containers {:>5.1}s] {what}", began.elapsed().as_secs_f64());
        std::fs::create_dir_all(log_dir)?;
        prepare(images).await?;
        let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let network = format!("saga-{run}");
        let (pg_port, kafka_port) = (free_port()?, free_port()?);
        progress(&format!("starting {} and {} on network {network}", images.postgres, images.kafka));
        let postgres = generic(&images.postgres)
            .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
            .with_network(&network)
            .with_container_name(format!("saga-{run}-postgres"))
            .with_label("saga.run", &run)
            .with_mapped_port(pg_port, 5432.tcp())
            .with_startup_timeout(Duration::from_secs(180))
            .start();
        let kafka_name = format!("saga-{run}-kafka");
        let kafka = generic(&images.kafka)
            .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
            .with_network(&network)
            .with_container_name(&kafka_name)
            .with_label("saga.run", &run)
            .with_env_var("BROKER_HOSTNAME", &kafka_name)
            .with_env_var("BROKER_EXTERNAL_PORT", kafka_port.to_string())
            .with_mapped_port(kafka_port, 19092.tcp())
            .with_startup_timeout(Duration::from_secs(180))
            .start();
        let (postgres, kafka) = tokio::join!(postgres, kafka);
        let postgres = postgres.context("starting the PostgreSQL container")?;
        let kafka = kafka.context("starting the Kafka container")?;
        progress(&format!("PostgreSQL on 127.0.0.1:{pg_port}, Kafka on 127.0.0.1:{kafka_port}"));

        let db = |name: &str| format!("postgres://postgres@127.0.0.1:{pg_port}/{name}");
        let registry_port = free_port()?;
        let registry_url = format!("http://127.0.0.1:{registry_port}");
        let registry = host_container(
            &images.registry,
            &run,
            "schema-registry",
            &[("DATABASE_URL".into(), db("registry_db")), ("HTTP_PORT".into(), registry_port.to_string())],
        )
        .await?;
        wait_http_ok_url(&format!("{registry_url}/health"), Duration::from_secs(60))
            .await
            .context("the registry container")?;

        let mut ports = HashMap::new();
        for service in Service::ALL {
            ports.insert(service, free_port()?);
        }
        let url = |s: Service| format!("http://127.0.0.1:{}", ports[&s]);
        let endpoints = Endpoints {
            order_url: url(Service::Order),
            product_url: url(Service::Product),
            payment_url: url(Service::Payment),
            kafka_bootstrap: format!("127.0.0.1:{kafka_port}"),
            registry_url: registry_url.clone(),
        };
        let mut services = HashMap::new();
        for service in Service::ALL {
            let mut env: Vec<(String, String)> = vec![
                ("KAFKA_BOOTSTRAP_SERVERS".into(), endpoints.kafka_bootstrap.clone()),
                ("SCHEMA_REGISTRY_URL".into(), registry_url.clone()),
                ("DATABASE_URL".into(), db(service.database())),
                ("PUSH_GATEWAY_URL".into(), push_gateway_url.to_string()),
                ("HTTP_PORT".into(), ports[&service].to_string()),
            ];
            env.extend(topics.env_pairs().into_iter().map(|(k, v)| (k.to_string(), v)));
            services.insert(service, host_container(images.service(service), &run, service.binary(), &env).await?);
        }
        let containers = Containers {
            endpoints,
            log_dir: log_dir.to_path_buf(),
            network,
            infrastructure: Mutex::new(vec![
                ("postgresql".into(), postgres),
                ("kafka".into(), kafka),
                ("schema-registry".into(), registry),
            ]),
            services: Mutex::new(services),
            ports,
        };
        for service in Service::ALL {
            containers.wait_healthy(service).await?;
        }
        progress("services up");
        Ok(containers)
    }

    async fn wait_healthy(&self, service: Service) -> anyhow::Result<()> {
        wait_http_ok_url(&format!("http://127.0.0.1:{}/health", self.ports[&service]), Duration::from_secs(90))
            .await
            .with_context(|| format!("the {service} container"))
    }

    /// `docker stop` (SIGTERM, then SIGKILL after 10 s) — the container and its port stay.
    pub async fn stop_service(&self, service: Service) -> anyhow::Result<()> {
        let services = self.services.lock().await;
        services
            .get(&service)
            .with_context(|| format!("no {service} container"))?
            .stop()
            .await
            .with_context(|| format!("stopping the {service} container"))
    }

    pub async fn start_service(&self, service: Service) -> anyhow::Result<()> {
        {
            let services = self.services.lock().await;
            services
                .get(&service)
                .with_context(|| format!("no {service} container"))?
                .start()
                .await
                .with_context(|| format!("starting the {service} container"))?;
        }
        self.wait_healthy(service).await
    }

    /// `docker pause` / `docker unpause`: the service's processes freeze, connections stay.
    pub async fn pause_service(&self, service: Service, paused: bool) -> anyhow::Result<()> {
        let services = self.services.lock().await;
        let container = services.get(&service).with_context(|| format!("no {service} container"))?;
        if paused { container.pause().await } else { container.unpause().await }
            .with_context(|| format!("{} the {service} container", if paused { "pausing" } else { "unpausing" }))
    }

    /// `docker stop` of the broker; its data and published port stay for [`Containers::start_kafka`].
    pub async fn stop_kafka(&self) -> anyhow::Result<()> {
        let infrastructure = self.infrastructure.lock().await;
        let (_, kafka) = infrastructure.iter().find(|(name, _)| name == "kafka").context("no Kafka container")?;
        kafka.stop().await.context("stopping the Kafka container")
    }

    /// `docker start` of the broker, then waits until it serves the saga's topics again.
    pub async fn start_kafka(&self, probe_topic: &str) -> anyhow::Result<()> {
        {
            let infrastructure = self.infrastructure.lock().await;
            let (_, kafka) = infrastructure.iter().find(|(name, _)| name == "kafka").context("no Kafka container")?;
            kafka.start().await.context("starting the Kafka container")?;
        }
        crate::stack::wait_until_serving(&self.endpoints.kafka_bootstrap, probe_topic, Duration::from_secs(120)).await
    }

    /// `docker kill` (SIGKILL, no stop signal first): a crash. The container and its port stay
    /// for [`Containers::start_service`].
    pub async fn kill_service(&self, service: Service) -> anyhow::Result<()> {
        let services = self.services.lock().await;
        docker_kill(services.get(&service).with_context(|| format!("no {service} container"))?, &service.to_string())
            .await
    }

    /// `docker kill` of the broker; [`Containers::start_kafka`] brings it back on its data.
    pub async fn kill_kafka(&self) -> anyhow::Result<()> {
        self.kill_infrastructure("kafka").await
    }

    /// `docker kill` of the PostgreSQL container (every database of the stack goes with it).
    pub async fn kill_postgres(&self) -> anyhow::Result<()> {
        self.kill_infrastructure("postgresql").await
    }

    async fn kill_infrastructure(&self, name: &str) -> anyhow::Result<()> {
        let infrastructure = self.infrastructure.lock().await;
        let (_, container) =
            infrastructure.iter().find(|(n, _)| n == name).with_context(|| format!("no {name} container"))?;
        docker_kill(container, name).await
    }

    /// `docker start` of the PostgreSQL container, then waits until it has recovered and
    /// accepts connections on its published port.
    pub async fn start_postgres(&self) -> anyhow::Result<()> {
        let port = {
            let infrastructure = self.infrastructure.lock().await;
            let (_, postgres) =
                infrastructure.iter().find(|(name, _)| name == "postgresql").context("no PostgreSQL container")?;
            postgres.start().await.context("starting the PostgreSQL container")?;
            postgres.get_host_port_ipv4(5432.tcp()).await.context("the PostgreSQL container's published port")?
        };
        crate::stack::wait_accepting(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), Duration::from_secs(60))
            .await
    }

    /// Saves each container's output into the log directory, then removes every container and
    /// the network.
    pub async fn shutdown(&self) {
        let services: Vec<(String, Container)> =
            self.services.lock().await.drain().map(|(s, c)| (s.binary().to_string(), c)).collect();
        let infrastructure: Vec<(String, Container)> = self.infrastructure.lock().await.drain(..).rev().collect();
        for (name, container) in services.into_iter().chain(infrastructure) {
            let mut log = container.stdout_to_vec().await.unwrap_or_default();
            log.extend(container.stderr_to_vec().await.unwrap_or_default());
            let _ = std::fs::write(self.log_dir.join(format!("{name}.log")), log);
            if let Err(e) = container.rm().await {
                eprintln!("[containers] removing {name}: {e}");
            }
        }
        let _ = docker_ok(&["network", "rm", &self.network]).await;
        eprintln!("[containers] removed");
    }
}

/// `docker kill` (SIGKILL to every process of the container at once).
async fn docker_kill(container: &Container, what: &str) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("docker")
        .args(["kill", "--signal", "KILL", container.id()])
        .output()
        .await
        .context("running docker kill")?;
    if !output.status.success() {
        bail!("docker kill of the {what} container failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// A container on the host network (binding 127.0.0.1 only: `HTTP_BIND_ALL=0`).
async fn host_container(image: &str, run: &str, name: &str, env: &[(String, String)]) -> anyhow::Result<Container> {
    let mut request = generic(image)
        .with_network("host")
        .with_container_name(format!("saga-{run}-{name}"))
        .with_label("saga.run", run)
        .with_env_var("HTTP_BIND_ALL", "0");
    for (k, v) in env {
        request = request.with_env_var(k, v);
    }
    request.start().await.with_context(|| format!("starting {name} from image {image}"))
}
