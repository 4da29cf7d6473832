//! The `processes` backend: the whole reference stack as local child processes on free
//! loopback ports — PostgreSQL (Debian package), Apache Kafka (Maven Central jars), Apicurio
//! Registry (Maven Central distribution) and the three services — started in dependency order,
//! each waited for on a real readiness signal, all stopped when the [`Stack`] is shut down or
//! dropped.

mod kafka;
mod postgres;
pub mod process;
mod registry;

pub use kafka::{repo_file, wait_until_serving};
pub use postgres::wait_accepting;
pub use registry::{CCOMPAT_PATH, apicurio_env};

use crate::Service;
use anyhow::{Context, bail};
use process::{Proc, free_port, wait_http_ok};
use saga_contract::Topics;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::Mutex;

/// How a service is (re)started: its binary, its environment and its HTTP port.
type ServiceLaunch = (PathBuf, Vec<(String, String)>, u16);

/// Where to find things and what to tell the services.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Directory holding the service binaries (`order-service`, …).
    pub bin_dir: PathBuf,
    /// Cache for the Kafka jars (outside the clone, reused across runs).
    pub kafka_libs: PathBuf,
    /// Where each process's log is written.
    pub log_dir: PathBuf,
    pub push_gateway_url: String,
    pub topics: Topics,
    /// Which build of the services to run, and extra environment for them.
    pub variant: ServiceVariant,
}

/// Another build of the reference services, e.g. the self-test's: binaries named
/// `<service><bin_suffix>` (`order-service-failpoints`) with extra environment per service
/// (its `FAILPOINTS`). The default is the normal build with nothing added.
#[derive(Debug, Clone, Default)]
pub struct ServiceVariant {
    pub bin_suffix: String,
    pub env: HashMap<Service, Vec<(String, String)>>,
}

impl ServiceVariant {
    fn binary(&self, service: Service) -> String {
        format!("{}{}", service.binary(), self.bin_suffix)
    }
}

/// URLs of a running implementation — the same shape for every backend.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub order_url: String,
    pub product_url: String,
    pub payment_url: String,
    pub kafka_bootstrap: String,
    pub registry_url: String,
}

impl Endpoints {
    /// The base URL of `service`'s HTTP API.
    pub fn service_url(&self, service: Service) -> &str {
        match service {
            Service::Order => &self.order_url,
            Service::Product => &self.product_url,
            Service::Payment => &self.payment_url,
        }
    }
}

pub struct Stack {
    pub endpoints: Endpoints,
    /// `postgres://…/` of the stack's PostgreSQL, without a database name.
    postgres_base_url: String,
    pub log_dir: PathBuf,
    _work: tempfile::TempDir,
    /// Infrastructure, stopped last (in reverse start order) by [`Stack::shutdown`].
    infrastructure: Mutex<Vec<Proc>>,
    services: Mutex<HashMap<Service, Proc>>,
    launch: HashMap<Service, ServiceLaunch>,
    kafka_launch: kafka::BrokerLaunch,
    /// Boxed: kept only for the database-crash fault, it need not widen every `Backend`.
    pg_launch: Box<postgres::PgLaunch>,
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let began = Instant::now();
        std::fs::create_dir_all(&options.log_dir).with_context(|| format!("creating {}", options.log_dir.display()))?;
        for service in Service::ALL {
            let bin = options.bin_dir.join(options.variant.binary(service));
            if !bin.exists() && !options.variant.bin_suffix.is_empty() {
                bail!(
                    "{} not found: build it with `cargo build --release --workspace --features order-service/failpoints,product-service/failpoints,payment-service/failpoints --bin order-service-failpoints --bin product-service-failpoints --bin payment-service-failpoints` (./saga setup does this)",
                    bin.display()
                );
            }
            if !bin.exists() {
                bail!(
                    "{} not found: build the services first with `cargo build --release --workspace --bins` (./saga does this), or set SAGA_BIN_DIR",
                    bin.display()
                );
            }
        }
        kafka::fetch_from_maven("kafka", &options.kafka_libs).await?;
        let apicurio = cache_dir().join("apicurio");
        kafka::fetch_from_maven("apicurio", &apicurio).await?;
        let work = tempfile::Builder::new().prefix("saga-stack-").tempdir()?;
        progress(began, "starting PostgreSQL, then Apicurio Registry; Kafka alongside");
        // The registry needs only PostgreSQL: it starts while the broker is still coming up.
        let pg_then_registry = async {
            let pg = postgres::Postgres::start(work.path(), &options.log_dir).await.context("PostgreSQL")?;
            progress(began, &format!("PostgreSQL on 127.0.0.1:{}", pg.port));
            let registry = registry::Registry::start(&apicurio, &pg.jdbc_url("registry_db"), &options.log_dir).await?;
            progress(began, &format!("registry at {}", registry.url));
            anyhow::Ok((pg, registry))
        };
        let kafka = async {
            let kafka = kafka::Kafka::start(&options.kafka_libs, work.path(), &options.log_dir).await.context("Kafka")?;
            progress(began, &format!("Kafka on {}", kafka.bootstrap()));
            anyhow::Ok(kafka)
        };
        let (pg_and_registry, kafka) = tokio::join!(pg_then_registry, kafka);
        let ((pg, registry), kafka) = (pg_and_registry?, kafka?);
        let registry_url = registry.url.clone();

        let mut launch = HashMap::new();
        let mut ports = HashMap::new();
        for service in Service::ALL {
            let port = free_port()?;
            let mut env: Vec<(String, String)> = vec![
                ("KAFKA_BOOTSTRAP_SERVERS".into(), kafka.bootstrap()),
                ("SCHEMA_REGISTRY_URL".into(), registry_url.clone()),
                ("DATABASE_URL".into(), pg.url(service.database())),
                ("PUSH_GATEWAY_URL".into(), options.push_gateway_url.clone()),
                ("HTTP_PORT".into(), port.to_string()),
            ];
            env.extend(options.topics.env_pairs().into_iter().map(|(k, v)| (k.to_string(), v)));
            env.extend(options.variant.env.get(&service).cloned().unwrap_or_default());
            launch.insert(service, (options.bin_dir.join(options.variant.binary(service)), env, port));
            ports.insert(service, port);
        }
        let url = |s: Service| format!("http://127.0.0.1:{}", ports[&s]);
        let endpoints = Endpoints {
            order_url: url(Service::Order),
            product_url: url(Service::Product),
            payment_url: url(Service::Payment),
            kafka_bootstrap: kafka.bootstrap(),
            registry_url,
        };
        let stack = Stack {
            endpoints,
            postgres_base_url: pg.url(""),
            log_dir: options.log_dir.clone(),
            _work: work,
            infrastructure: Mutex::new(vec![pg.proc, kafka.proc, registry.proc]),
            services: Mutex::new(HashMap::new()),
            launch,
            kafka_launch: kafka.launch,
            pg_launch: Box::new(pg.launch),
        };
        let starts = Service::ALL.map(|s| stack.start_service(s));
        for result in futures::future::join_all(starts).await {
            result?;
        }
        progress(began, "services up");
        Ok(stack)
    }

    /// URL of one of the stack's databases (`order_db`, …), e.g. for benchmarks.
    pub fn database_url(&self, database: &str) -> String {
        format!("{}{database}", self.postgres_base_url)
    }

    /// `(process name, pid)` of every running process of the stack — `postgresql` (the
    /// postmaster), `kafka`, `schema-registry` and the services by binary name — e.g. to
    /// sample CPU and memory.
    pub async fn pids(&self) -> Vec<(String, u32)> {
        let infrastructure = self.infrastructure.lock().await;
        let services = self.services.lock().await;
        infrastructure.iter().chain(services.values()).filter_map(|p| p.id().map(|id| (p.name.clone(), id))).collect()
    }

    /// Starts (or restarts) one service on its port and waits for `/health`.
    pub async fn start_service(&self, service: Service) -> anyhow::Result<()> {
        let (bin, env, port) = &self.launch[&service];
        let mut command = Command::new(bin);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut proc =
            Proc::spawn(service.binary(), command, &self.log_dir.join(format!("{}.log", service.binary())), None)?;
        wait_http_ok(&mut proc, &format!("http://127.0.0.1:{port}/health"), Duration::from_secs(60)).await?;
        self.services.lock().await.insert(service, proc);
        Ok(())
    }

    /// Stops one service: gracefully (SIGTERM) or as a crash (SIGKILL).
    pub async fn stop_service(&self, service: Service, crash: bool) -> anyhow::Result<()> {
        let proc = self.services.lock().await.remove(&service).with_context(|| format!("{service} is not running"))?;
        if crash {
            proc.kill().await
        } else {
            proc.stop(Duration::from_secs(10)).await
        }
        Ok(())
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the Kafka broker: it stops answering without
    /// closing connections, the way a hung broker or a network partition looks to clients.
    pub async fn freeze_kafka(&self, frozen: bool) -> anyhow::Result<()> {
        let infrastructure = self.infrastructure.lock().await;
        let kafka = infrastructure
            .iter()
            .find(|p| p.name == "kafka")
            .and_then(Proc::id)
            .context("the Kafka broker is not running")?;
        freeze(kafka, frozen).await
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) one service, like `docker pause`.
    pub async fn pause_service(&self, service: Service, paused: bool) -> anyhow::Result<()> {
        let services = self.services.lock().await;
        let pid = services.get(&service).and_then(Proc::id).with_context(|| format!("{service} is not running"))?;
        freeze(pid, paused).await
    }

    /// Stops the broker gracefully; its port and data stay for [`Stack::start_kafka`].
    pub async fn stop_kafka(&self) -> anyhow::Result<()> {
        let mut infrastructure = self.infrastructure.lock().await;
        let at = infrastructure.iter().position(|p| p.name == "kafka").context("the Kafka broker is not running")?;
        infrastructure.remove(at).stop(Duration::from_secs(30)).await;
        Ok(())
    }

    /// Starts the broker again on its port and data, after [`Stack::stop_kafka`].
    pub async fn start_kafka(&self) -> anyhow::Result<()> {
        let proc = self.kafka_launch.spawn().await?;
        let mut infrastructure = self.infrastructure.lock().await;
        // Back in its start-order slot, after PostgreSQL, so shutdown still stops it before.
        let at = infrastructure.len().min(1);
        infrastructure.insert(at, proc);
        Ok(())
    }

    /// Kills the broker (SIGKILL: no controlled shutdown); its port and data stay for
    /// [`Stack::start_kafka`], which recovers its logs on start.
    pub async fn kill_kafka(&self) -> anyhow::Result<()> {
        let mut infrastructure = self.infrastructure.lock().await;
        let at = infrastructure.iter().position(|p| p.name == "kafka").context("the Kafka broker is not running")?;
        infrastructure.remove(at).kill().await;
        Ok(())
    }

    /// Kills the PostgreSQL server as a crash of its machine or container would: the
    /// postmaster and every backend at once, with SIGKILL (the postmaster is frozen first so it
    /// forks nothing while its children are listed). Returns once all of them are gone; the data
    /// directory and port stay for [`Stack::start_postgres`].
    pub async fn kill_postgres(&self) -> anyhow::Result<()> {
        let mut infrastructure = self.infrastructure.lock().await;
        let at = infrastructure.iter().position(|p| p.name == "postgresql").context("PostgreSQL is not running")?;
        let postmaster = infrastructure[at].id().context("PostgreSQL has exited")?;
        freeze(postmaster, true).await?;
        let children = children_of(postmaster);
        if !children.is_empty() {
            // A backend may exit on its own meanwhile: kill's status is not a verdict, the wait below is.
            let _ = Command::new("kill").arg("-KILL").args(children.iter().map(u32::to_string)).status().await;
        }
        infrastructure.remove(at).kill().await;
        // Orphaned backends still attached to the shared memory would stop a new postmaster.
        crate::poll::until(Duration::from_secs(10), Duration::from_millis(20), async || {
            let alive: Vec<u32> = children.iter().copied().filter(|pid| running(*pid)).collect();
            if alive.is_empty() { Ok(()) } else { Err(alive) }
        })
        .await
        .map_err(|alive| anyhow::anyhow!("PostgreSQL backends {alive:?} still run 10 s after SIGKILL"))
    }

    /// Starts PostgreSQL again on its data directory and port, after [`Stack::kill_postgres`]:
    /// returns once it has recovered and accepts connections.
    pub async fn start_postgres(&self) -> anyhow::Result<()> {
        let proc = self.pg_launch.spawn().await?;
        // First in start order, so shutdown still stops it last.
        self.infrastructure.lock().await.insert(0, proc);
        postgres::wait_accepting(&self.database_url("postgres"), Duration::from_secs(30)).await
    }

    /// Stops everything, services first, waiting for each to exit.
    pub async fn shutdown(&self) {
        let services: Vec<Proc> = self.services.lock().await.drain().map(|(_, p)| p).collect();
        futures::future::join_all(services.into_iter().map(|p| p.stop(Duration::from_secs(10)))).await;
        let mut infrastructure = self.infrastructure.lock().await;
        while let Some(proc) = infrastructure.pop() {
            proc.stop(Duration::from_secs(20)).await;
        }
    }
}

/// SIGSTOP (`frozen`) or SIGCONT to `pid`.
async fn freeze(pid: u32, frozen: bool) -> anyhow::Result<()> {
    let signal = if frozen { "-STOP" } else { "-CONT" };
    let status = Command::new("kill").arg(signal).arg(pid.to_string()).status().await?;
    anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
    Ok(())
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| stat_fields(*child).is_some_and(|(_, parent)| parent == pid))
        .collect()
}

/// Whether `pid` exists and is not a zombie (a zombie holds no memory and no ports).
fn running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// `(state, parent pid)` of a process; the fields after the parenthesised command name.
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

fn progress(began: Instant, what: &str) {
    eprintln!("[stack {:>5.1}s] {what}", began.elapsed().as_secs_f64());
}

/// Where the service binaries are: `SAGA_BIN_DIR`, else next to the running executable
/// (`target/<profile>/`, also when running from `target/<profile>/deps/`).
pub fn default_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SAGA_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") { dir.parent().map(Path::to_path_buf).unwrap_or(dir) } else { dir }
}

/// The cache directory shared by runs and CI: `SAGA_CACHE_DIR`, else `~/.cache/saga-conformance`.
pub fn cache_dir() -> PathBuf {
    std::env::var("SAGA_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache/saga-conformance")
    })
}
