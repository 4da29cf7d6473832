//! The containers every stack has, whatever runs in it: the infrastructure ([`Infra`]: PostgreSQL,
//! Kafka, the registry), the images they come from, and the Docker operations the faults use.

use crate::backend::paths::source_file;
use crate::backend::processes::process::{free_port, wait_http_ok_url};
use crate::backend::processes::{CCOMPAT_PATH, apicurio_env};
use crate::config::sections::{ContainerImages, RegistryApi};
use anyhow::{Context, bail};
use std::time::Duration;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use testcontainers_modules::kafka::apache::Kafka;
use testcontainers_modules::postgres::Postgres;

pub type Container = ContainerAsync<GenericImage>;

/// A container of the stack's infrastructure: each comes from its own module type.
pub enum Infra {
    Postgres(ContainerAsync<Postgres>),
    /// A single Kafka node, through testcontainers-modules' Kafka module.
    Kafka(ContainerAsync<Kafka>),
    /// Node `id` of a Kafka cluster (the module runs a single node only): our image with the
    /// official image's environment.
    KafkaNode(i32, Container),
    Registry(Container),
}

/// Calls the same `ContainerAsync` method whatever the module type.
macro_rules! on_infra {
    ($infra:expr, $c:ident => $call:expr) => {
        match $infra {
            Infra::Postgres($c) => $call,
            Infra::Kafka($c) => $call,
            Infra::KafkaNode(_, $c) => $call,
            Infra::Registry($c) => $call,
        }
    };
}

impl Infra {
    pub fn name(&self) -> String {
        match self {
            Infra::Postgres(_) => "postgresql".into(),
            Infra::Kafka(_) => "kafka".into(),
            Infra::KafkaNode(id, _) => format!("kafka-{id}"),
            Infra::Registry(_) => "schema-registry".into(),
        }
    }

    pub fn id(&self) -> &str {
        on_infra!(self, c => c.id())
    }

    pub async fn start(&self) -> anyhow::Result<()> {
        on_infra!(self, c => c.start().await).with_context(|| format!("starting the {} container", self.name()))
    }

    pub async fn stop(&self) -> anyhow::Result<()> {
        on_infra!(self, c => c.stop().await).with_context(|| format!("stopping the {} container", self.name()))
    }

    pub async fn output(&self) -> Vec<u8> {
        let mut log = on_infra!(self, c => c.stdout_to_vec().await).unwrap_or_default();
        log.extend(on_infra!(self, c => c.stderr_to_vec().await).unwrap_or_default());
        log
    }

    pub async fn remove(self) -> Result<(), testcontainers::TestcontainersError> {
        on_infra!(self, c => c.rm().await)
    }
}

/// `name:tag` → (`name`, `tag`), tag `latest` when absent.
pub fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

pub fn generic(image: &str) -> GenericImage {
    let (name, tag) = split_image(image);
    GenericImage::new(name, tag)
}

pub async fn docker_ok(args: &[&str]) -> bool {
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
/// other images must already be there. Without a checkout of the kit (an installed binary) our
/// images are used as they are, and must be there too.
pub async fn prepare(images: &ContainerImages) -> anyhow::Result<()> {
    if !docker_ok(&["info"]).await {
        bail!(
            "Docker engine not reachable (docker info failed): start one with `docker/images.sh ensure-engine` (installs docker.io and starts dockerd), or run with --backend processes"
        );
    }
    let ours: Vec<&str> =
        images.all().into_iter().filter(|i| i.starts_with("saga-")).map(|i| i.trim_end_matches(":latest")).collect();
    if !ours.is_empty() {
        match source_file("docker/images.sh") {
            Ok(script) => build_ours(&script, &ours).await?,
            Err(e) => eprintln!("[containers] {e:#}: using the images {ours:?} as they are"),
        }
    }
    for image in images.all() {
        if !docker_ok(&["image", "inspect", image]).await {
            bail!("image {image} not found locally: pull or build it (see docs/containers.md)");
        }
    }
    Ok(())
}

/// `docker/images.sh build` for our images (it rebuilds only what changed).
async fn build_ours(script: &std::path::Path, ours: &[&str]) -> anyhow::Result<()> {
    eprintln!("[containers] bringing images {ours:?} up to date (docker/images.sh build)");
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .arg("build")
        .args(ours)
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
    Ok(())
}

/// `docker kill` (SIGKILL to every process of the container at once).
pub async fn docker_kill(id: &str, what: &str) -> anyhow::Result<()> {
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

/// Starts the registry image on the host network against the stack's PostgreSQL (Apicurio) or
/// Kafka (Confluent's, which stores schemas in a topic), and waits until it serves. Returns the
/// container and the base URL clients are given.
pub async fn start_registry(
    images: &ContainerImages,
    run: &str,
    pg_port: u16,
    kafka_bootstrap: &str,
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
                (
                    "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS".into(),
                    kafka_bootstrap.split(',').map(|b| format!("PLAINTEXT://{b}")).collect::<Vec<_>>().join(","),
                ),
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
pub async fn host_container(image: &str, run: &str, name: &str, env: &[(String, String)]) -> anyhow::Result<Container> {
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
