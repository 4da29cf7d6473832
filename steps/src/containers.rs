//! The `containers` backend: the implementation as Docker containers driven by testcontainers.
//!
//! PostgreSQL and Kafka come from testcontainers-modules (`postgres::Postgres`,
//! `kafka::apache::Kafka`) with the images named in `[containers]` (ours by default, built
//! locally), on a network of their own with ports published on 127.0.0.1 (the engine is started
//! with `--ip=127.0.0.1`, see `docker/images.sh`). The registry and the three services run with
//! host networking and bind 127.0.0.1, so they reach the infrastructure through those published
//! ports and the suite's push sink on 127.0.0.1 — no traffic leaves the loopback or the
//! containers' own network. Another team's images run the same features by changing the names;
//! missing images of ours are built with `docker/images.sh build`. Every container is removed at
//! the end (and on Ctrl-C, through testcontainers' watchdog).

use crate::Service;
use crate::config::{ContainerImages, RegistryApi};
use crate::stack::process::{free_port, wait_http_ok_url};
use crate::stack::{CCOMPAT_PATH, Endpoints, apicurio_env, repo_file};
use anyhow::{Context, bail};
use saga_contract::Topics;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use testcontainers_modules::kafka::apache::{KAFKA_PORT, Kafka};
use testcontainers_modules::postgres::Postgres;
use tokio::sync::Mutex;

type Container = ContainerAsync<GenericImage>;

/// A container of the stack's infrastructure: each comes from its own module type.
enum Infra {
    Postgres(ContainerAsync<Postgres>),
    Kafka(ContainerAsync<Kafka>),
    Registry(Container),
}

/// Calls the same `ContainerAsync` method whatever the module type.
macro_rules! on_infra {
    ($infra:expr, $c:ident => $call:expr) => {
        match $infra {
            Infra::Postgres($c) => $call,
            Infra::Kafka($c) => $call,
            Infra::Registry($c) => $call,
        }
    };
}

impl Infra {
    fn name(&self) -> &'static str {
        match self {
            Infra::Postgres(_) => "postgresql",
            Infra::Kafka(_) => "kafka",
            Infra::Registry(_) => "schema-registry",
        }
    }

    fn id(&self) -> &str {
        on_infra!(self, c => c.id())
    }

    async fn start(&self) -> anyhow::Result<()> {
        on_infra!(self, c => c.start().await).with_context(|| format!("starting the {} container", self.name()))
    }

    async fn stop(&self) -> anyhow::Result<()> {
        on_infra!(self, c => c.stop().await).with_context(|| format!("stopping the {} container", self.name()))
    }

    async fn output(&self) -> Vec<u8> {
        let mut log = on_infra!(self, c => c.stdout_to_vec().await).unwrap_or_default();
        log.extend(on_infra!(self, c => c.stderr_to_vec().await).unwrap_or_default());
        log
    }

    async fn remove(self) -> Result<(), testcontainers::TestcontainersError> {
        on_infra!(self, c => c.rm().await)
    }
}

pub struct Containers {
    pub endpoints: Endpoints,
    log_dir: PathBuf,
    network: String,
    infrastructure: Mutex<Vec<Infra>>,
    services: Mutex<HashMap<Service, Container>>,
    ports: HashMap<Service, u16>,
    /// PostgreSQL's published port: fixed, so it stays the same across a restart.
    postgres_port: u16,
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
        let (pg_name, pg_tag) = split_image(&images.postgres);
        // Trust auth: the services' URLs carry no password (the official image demands one).
        let postgres = Postgres::default()
            .with_host_auth()
            .with_name(pg_name)
            .with_tag(pg_tag)
            .with_network(&network)
            .with_container_name(format!("saga-{run}-postgres"))
            .with_label("saga.run", &run)
            .with_mapped_port(pg_port, 5432.tcp())
            .with_startup_timeout(Duration::from_secs(180))
            .start();
        let (kafka_name, kafka_tag) = split_image(&images.kafka);
        let mut kafka = Kafka::default()
            .with_jvm_image()
            .with_name(kafka_name)
            .with_tag(kafka_tag)
            .with_network(&network)
            .with_container_name(format!("saga-{run}-kafka"))
            .with_label("saga.run", &run)
            // A fixed host port: the module advertises the port it finds mapped at the first
            // start, and a restarted broker (the broker-restart faults) must keep it.
            .with_mapped_port(kafka_port, KAFKA_PORT)
            .with_startup_timeout(Duration::from_secs(180));
        for (key, value) in broker_tuning()? {
            kafka = kafka.with_env_var(key, value);
        }
        // Apicurio needs only PostgreSQL, so it starts while the broker is still coming up;
        // Confluent's registry stores its schemas in Kafka and waits for the broker.
        let registry_alongside_kafka = images.registry_api == RegistryApi::Apicurio;
        let pg_then_registry = async {
            let postgres =
                postgres.await.context("starting the PostgreSQL container (testcontainers-modules postgres)")?;
            progress(&format!("PostgreSQL on 127.0.0.1:{pg_port}"));
            let registry = if registry_alongside_kafka {
                Some(start_registry(images, &run, pg_port, kafka_port, &progress).await?)
            } else {
                None
            };
            anyhow::Ok((postgres, registry))
        };
        let (pg_and_registry, kafka) = tokio::join!(pg_then_registry, kafka.start());
        let kafka = kafka.context("starting the Kafka container (testcontainers-modules kafka::apache)")?;
        let (postgres, registry) = pg_and_registry?;
        progress(&format!("Kafka on 127.0.0.1:{kafka_port}"));
        let (registry, registry_url) = match registry {
            Some(started) => started,
            None => start_registry(images, &run, pg_port, kafka_port, &progress).await?,
        };

        let db = |name: &str| format!("postgres://postgres@127.0.0.1:{pg_port}/{name}");

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
            infrastructure: Mutex::new(vec![Infra::Postgres(postgres), Infra::Kafka(kafka), Infra::Registry(registry)]),
            services: Mutex::new(services),
            ports,
            postgres_port: pg_port,
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
        self.with_infra("kafka", async |kafka| kafka.stop().await).await
    }

    /// `docker start` of the broker, then waits until it serves the saga's topics again.
    pub async fn start_kafka(&self, probe_topic: &str) -> anyhow::Result<()> {
        self.with_infra("kafka", async |kafka| kafka.start().await).await?;
        crate::stack::wait_until_serving(&self.endpoints.kafka_bootstrap, probe_topic, Duration::from_secs(120)).await
    }

    /// `docker kill` (SIGKILL, no stop signal first): a crash. The container and its port stay
    /// for [`Containers::start_service`].
    pub async fn kill_service(&self, service: Service) -> anyhow::Result<()> {
        let services = self.services.lock().await;
        let container = services.get(&service).with_context(|| format!("no {service} container"))?;
        docker_kill(container.id(), &service.to_string()).await
    }

    /// `docker kill` of the broker; [`Containers::start_kafka`] brings it back on its data.
    pub async fn kill_kafka(&self) -> anyhow::Result<()> {
        self.with_infra("kafka", async |kafka| docker_kill(kafka.id(), "kafka").await).await
    }

    /// `docker kill` of the PostgreSQL container (every database of the stack goes with it).
    pub async fn kill_postgres(&self) -> anyhow::Result<()> {
        self.with_infra("postgresql", async |pg| docker_kill(pg.id(), "postgresql").await).await
    }

    /// `docker start` of the PostgreSQL container, then waits until it has recovered and
    /// accepts connections on its published port (fixed, so it is the same as before).
    pub async fn start_postgres(&self) -> anyhow::Result<()> {
        self.with_infra("postgresql", async |pg| pg.start().await).await?;
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", self.postgres_port);
        crate::stack::wait_accepting(&url, Duration::from_secs(60)).await
    }

    /// Runs `action` on the infrastructure container called `name`.
    async fn with_infra(
        &self,
        name: &str,
        action: impl AsyncFnOnce(&Infra) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let infrastructure = self.infrastructure.lock().await;
        let infra = infrastructure.iter().find(|i| i.name() == name).with_context(|| format!("no {name} container"))?;
        action(infra).await
    }

    /// Saves each container's output into the log directory, then removes every container and
    /// the network.
    pub async fn shutdown(&self) {
        for (service, container) in self.services.lock().await.drain() {
            let mut log = container.stdout_to_vec().await.unwrap_or_default();
            log.extend(container.stderr_to_vec().await.unwrap_or_default());
            self.save_log_and_remove(service.binary(), log, container.rm()).await;
        }
        let infrastructure: Vec<Infra> = self.infrastructure.lock().await.drain(..).rev().collect();
        for infra in infrastructure {
            let (name, log) = (infra.name(), infra.output().await);
            self.save_log_and_remove(name, log, infra.remove()).await;
        }
        let _ = docker_ok(&["network", "rm", &self.network]).await;
        eprintln!("[containers] removed");
    }

    async fn save_log_and_remove(
        &self,
        name: &str,
        log: Vec<u8>,
        remove: impl Future<Output = Result<(), testcontainers::TestcontainersError>>,
    ) {
        let _ = std::fs::write(self.log_dir.join(format!("{name}.log")), log);
        if let Err(e) = remove.await {
            eprintln!("[containers] removing {name}: {e}");
        }
    }
}

/// `docker kill` (SIGKILL to every process of the container at once).
async fn docker_kill(id: &str, what: &str) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("docker")
        .args(["kill", "--signal", "KILL", id])
        .output()
        .await
        .context("running docker kill")?;
    if !output.status.success() {
        bail!("docker kill of the {what} container failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// The broker settings of `docker/kafka/server.properties.example` (the one place they live) as
/// the `KAFKA_*` variables of the official image's convention: the module sets only the
/// listeners and the quorum, and once any `KAFKA_*` variable is set the image's default
/// properties are not read at all — so without these the broker would run with Kafka's defaults
/// (a 3 s initial rebalance delay, 50 offsets partitions, topics auto-created, …).
fn broker_tuning() -> anyhow::Result<Vec<(String, String)>> {
    let template = repo_file("docker/kafka/server.properties.example");
    let text = std::fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
    let mut env = properties_as_env(&text);
    env.push(("KAFKA_NODE_ID".into(), "1".into()));
    env.push(("KAFKA_LOG_DIRS".into(), "/var/lib/kafka/data".into()));
    Ok(env)
}

/// `key=value` lines → `KAFKA_KEY` variables (`.`→`_`, `_`→`__`, `-`→`___`, upper case), leaving
/// out comments and what depends on the network or is set by the module (listeners, quorum,
/// roles, node id, data directory).
fn properties_as_env(properties: &str) -> Vec<(String, String)> {
    const SET_ELSEWHERE: [&str; 9] = [
        "process.roles",
        "node.id",
        "controller.quorum.voters",
        "listeners",
        "advertised.listeners",
        "controller.listener.names",
        "inter.broker.listener.name",
        "listener.security.protocol.map",
        "log.dirs",
    ];
    properties
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| !SET_ELSEWHERE.contains(&key.trim()))
        .map(|(key, value)| {
            let name: String = key
                .trim()
                .chars()
                .map(|c| match c {
                    '.' => "_".to_string(),
                    '_' => "__".to_string(),
                    '-' => "___".to_string(),
                    c => c.to_ascii_uppercase().to_string(),
                })
                .collect();
            (format!("KAFKA_{name}"), value.trim().to_string())
        })
        .collect()
}

/// Starts the registry image on the host network against the stack's PostgreSQL (Apicurio) or
/// Kafka (Confluent's, which stores schemas in a topic), and waits until it serves. Returns the
/// container and the base URL clients are given.
async fn start_registry(
    images: &ContainerImages,
    run: &str,
    pg_port: u16,
    kafka_port: u16,
    progress: &impl Fn(&str),
) -> anyhow::Result<(Container, String)> {
    progress(&format!("starting {} ({:?} API)", images.registry, images.registry_api));
    let port = free_port()?;
    let (env, url, ready) = match images.registry_api {
        RegistryApi::Apicurio => {
            let management_port = free_port()?;
            let jdbc = format!("jdbc:postgresql://127.0.0.1:{pg_port}/registry_db");
            let mut env = apicurio_env(&jdbc, "postgres", "postgres");
            env.extend([
                ("QUARKUS_HTTP_HOST".into(), "127.0.0.1".into()),
                ("QUARKUS_HTTP_PORT".into(), port.to_string()),
                ("QUARKUS_MANAGEMENT_HOST".into(), "127.0.0.1".into()),
                ("QUARKUS_MANAGEMENT_PORT".into(), management_port.to_string()),
            ]);
            let url = format!("http://127.0.0.1:{port}{CCOMPAT_PATH}");
            (env, url, format!("http://127.0.0.1:{management_port}/health/ready"))
        }
        RegistryApi::Confluent => {
            let env = vec![
                ("SCHEMA_REGISTRY_HOST_NAME".into(), "127.0.0.1".into()),
                ("SCHEMA_REGISTRY_LISTENERS".into(), format!("http://127.0.0.1:{port}")),
                ("SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS".into(), format!("PLAINTEXT://127.0.0.1:{kafka_port}")),
            ];
            let url = format!("http://127.0.0.1:{port}");
            (env, url.clone(), format!("{url}/subjects"))
        }
    };
    let registry = host_container(&images.registry, run, "schema-registry", &env).await?;
    wait_http_ok_url(&ready, Duration::from_secs(120))
        .await
        .with_context(|| format!("the registry container ({})", images.registry))?;
    progress(&format!("registry at {url}"));
    Ok((registry, url))
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

#[cfg(test)]
mod tests {
    use super::properties_as_env;

    #[test]
    fn broker_properties_become_the_official_images_variables() {
        let env = properties_as_env(
            "# a comment\nnode.id=1\nlisteners=PLAINTEXT://x:1\ngroup.initial.rebalance.delay.ms=0\n\nauto.create.topics.enable=false\nsome_key-name.x = 5\n",
        );
        assert_eq!(
            env,
            vec![
                ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS".to_string(), "0".to_string()),
                ("KAFKA_AUTO_CREATE_TOPICS_ENABLE".to_string(), "false".to_string()),
                ("KAFKA_SOME__KEY___NAME_X".to_string(), "5".to_string()),
            ]
        );
    }
}
