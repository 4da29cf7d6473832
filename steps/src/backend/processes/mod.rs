//! The `processes` backend: the whole reference stack as local child processes on free
//! loopback ports — PostgreSQL (Debian package), Apache Kafka (Maven Central jars), Apicurio
//! Registry (Maven Central distribution) and the three services — started in dependency order,
//! each waited for on a real readiness signal, all stopped when the [`Stack`] is shut down or
//! dropped. [`Scale`] makes it several instances of each service on a Kafka cluster.

pub mod control;
pub mod instances;
mod kafka;
mod postgres;
pub mod process;
mod registry;

pub use postgres::{set_access as set_database_access, wait_accepting};
pub use registry::{CCOMPAT_PATH, apicurio_env};

use super::ServiceWiring;
use super::fault::{Fault, FaultTarget};
use super::kafka_meta;
use super::paths::{cache_dir, default_bin_dir};
use crate::Service;
use crate::types::{Endpoints, InstanceId, Scale, ServiceVariant};
use anyhow::{Context, bail};
use instances::Instances;
use process::Proc;
use rustix::process::Signal;
use saga_contract::{SagaTopic, Topics};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

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
    /// Instances per service and Kafka nodes.
    pub scale: Scale,
}

impl StackOptions {
    /// The reference services' normal build, one instance of each on one Kafka node, the
    /// binaries and Kafka jars where `./saga setup` puts them; set `variant` and `scale` for more.
    pub fn reference(log_dir: PathBuf, push_gateway_url: &str, topics: Topics) -> StackOptions {
        StackOptions {
            bin_dir: default_bin_dir(),
            kafka_libs: cache_dir().join("kafka-libs"),
            log_dir,
            push_gateway_url: push_gateway_url.to_string(),
            topics,
            variant: ServiceVariant::default(),
            scale: Scale::default(),
        }
    }
}

pub struct Stack {
    pub endpoints: Endpoints,
    /// `postgres://…/` of the stack's PostgreSQL, without a database name.
    postgres_base_url: String,
    pub log_dir: PathBuf,
    _work: tempfile::TempDir,
    pub scale: Scale,
    /// PostgreSQL and the registry, stopped last (in reverse start order) by [`Stack::shutdown`].
    infrastructure: Mutex<Vec<Proc>>,
    pub instances: Instances,
    kafka: kafka::Cluster,
    /// The Kafka node frozen by [`Stack::freeze_kafka`], to thaw.
    frozen_kafka: Mutex<Option<i32>>,
    /// How PostgreSQL was started, to start it again after the database-crash fault.
    pg_launch: postgres::PgLaunch,
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
        let scale = options.scale;
        progress(
            began,
            &format!("starting PostgreSQL, then Apicurio Registry; Kafka ({} node(s)) alongside", scale.brokers),
        );
        let saga_topics: Vec<String> = SagaTopic::ALL.iter().map(|t| options.topics.name(*t).to_string()).collect();
        // The registry needs only PostgreSQL: it starts while the broker is still coming up.
        let pg_then_registry = async {
            let pg = postgres::Postgres::start(work.path(), &options.log_dir).await.context("PostgreSQL")?;
            progress(began, &format!("PostgreSQL on 127.0.0.1:{}", pg.port));
            let registry = registry::Registry::start(&apicurio, &pg.jdbc_url("registry_db"), &options.log_dir).await?;
            progress(began, &format!("registry at {}", registry.url));
            anyhow::Ok((pg, registry))
        };
        let kafka = async {
            let kafka =
                kafka::Cluster::start(&options.kafka_libs, work.path(), &options.log_dir, scale.brokers, saga_topics)
                    .await
                    .context("Kafka")?;
            progress(began, &format!("Kafka on {}", kafka.bootstrap()));
            anyhow::Ok(kafka)
        };
        let (pg_and_registry, kafka) = tokio::join!(pg_then_registry, kafka);
        let ((pg, registry), kafka) = (pg_and_registry?, kafka?);
        let registry_url = registry.url.clone();

        let wiring = ServiceWiring {
            kafka_bootstrap: kafka.bootstrap(),
            registry_url: registry_url.clone(),
            postgres_base_url: pg.url(""),
            push_gateway_url: options.push_gateway_url.clone(),
            topics: options.topics.clone(),
        };
        let mut templates = BTreeMap::new();
        for service in Service::ALL {
            let mut env = wiring.env(service);
            env.extend(options.variant.env.get(&service).cloned().unwrap_or_default());
            let bin = options.bin_dir.join(options.variant.binary(service));
            templates.insert(service, instances::Template { bin, env });
        }
        let instances = Instances::plan(templates, scale.instances, options.log_dir.clone())?;
        // The suite's HTTP requests go to instance 1 of each service (docs/scaling.md).
        let endpoints = Endpoints {
            order_url: instances.url((Service::Order, 1))?,
            product_url: instances.url((Service::Product, 1))?,
            payment_url: instances.url((Service::Payment, 1))?,
            kafka_bootstrap: kafka.bootstrap(),
            registry_url,
        };
        let stack = Stack {
            endpoints,
            postgres_base_url: pg.url(""),
            log_dir: options.log_dir.clone(),
            _work: work,
            scale,
            infrastructure: Mutex::new(vec![pg.proc, registry.proc]),
            instances,
            kafka,
            frozen_kafka: Mutex::default(),
            pg_launch: pg.launch,
        };
        let starts = Service::ALL.map(|s| stack.start_service(s));
        for result in futures::future::join_all(starts).await {
            if let Err(e) = result {
                stack.shutdown().await;
                return Err(e);
            }
        }
        if scale.brokers > 1
            && let Err(e) = stack.check_replication().await
        {
            stack.shutdown().await;
            return Err(e);
        }
        progress(began, &format!("services up ({} instance(s) of each)", scale.instances));
        Ok(stack)
    }

    /// Every partition of the saga topics has as many replicas as the cluster promises (the
    /// services create them with the broker's default replication factor).
    async fn check_replication(&self) -> anyhow::Result<()> {
        let want = self.scale.brokers.min(3);
        let topics = self.kafka.saga_topics();
        let partitions = super::kafka_meta::partitions(&self.endpoints.kafka_bootstrap, topics).await?;
        let short: Vec<String> = partitions
            .iter()
            .filter(|(_, p)| p.replicas != want)
            .map(|((t, n), p)| format!("{t}[{n}]: {}", p.replicas))
            .collect();
        anyhow::ensure!(
            short.is_empty() && partitions.len() >= topics.len(),
            "saga topic partitions with a replica count other than {want}: {short:?} ({} partitions seen): a service created its topics with an explicit replication factor; leave TOPIC_REPLICATION_FACTOR unset so the cluster's default applies",
            partitions.len()
        );
        Ok(())
    }

    /// URL of one of the stack's databases (`order_db`, …), e.g. for benchmarks.
    pub fn database_url(&self, database: &str) -> String {
        format!("{}{database}", self.postgres_base_url)
    }

    /// `(process name, pid)` of every running process of the stack — `postgresql` (the
    /// postmaster), `schema-registry`, every Kafka node and every service instance — e.g. to
    /// sample CPU and memory.
    pub async fn pids(&self) -> Vec<(String, u32)> {
        let infrastructure = self.infrastructure.lock().await;
        let mut pids: Vec<(String, u32)> =
            infrastructure.iter().filter_map(|p| p.id().map(|id| (p.name.clone(), id))).collect();
        pids.extend(self.kafka.pids().await);
        pids.extend(self.instances.all_pids().await);
        pids
    }

    /// Starts (or restarts) every stopped instance of one service and waits for their `/health`.
    pub async fn start_service(&self, service: Service) -> anyhow::Result<()> {
        self.instances.start_service(service).await
    }

    /// Stops every instance of one service: gracefully (SIGTERM) or as a crash (SIGKILL).
    pub async fn stop_service(&self, service: Service, crash: bool) -> anyhow::Result<()> {
        self.instances.stop_service(service, crash).await
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) a Kafka node ([`kafka::Cluster::target`] picks which):
    /// it stops answering without closing connections, the way a hung broker or a network
    /// partition looks to clients.
    pub async fn freeze_kafka(&self, frozen: bool) -> anyhow::Result<()> {
        let mut slot = self.frozen_kafka.lock().await;
        let node = match (frozen, *slot) {
            (true, _) => self.kafka.target().await?,
            (false, Some(node)) => node,
            (false, None) => anyhow::bail!("no Kafka node is frozen"),
        };
        freeze(self.kafka.pid(node).await?, frozen)?;
        *slot = frozen.then_some(node);
        Ok(())
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) every instance of one service, like `docker pause`.
    pub async fn pause_service(&self, service: Service, paused: bool) -> anyhow::Result<()> {
        for pid in self.instances.pids(service, None).await? {
            freeze(pid, paused)?;
        }
        Ok(())
    }

    /// Waits until every saga partition has a leader among the running Kafka nodes (see
    /// [`kafka::Cluster::wait_leaders`]).
    pub async fn wait_kafka_leaders(&self, deadline: Duration) -> anyhow::Result<Duration> {
        self.kafka.wait_leaders(deadline).await
    }

    /// Pauses or resumes one instance of a service.
    async fn pause_instance(&self, instance: InstanceId, paused: bool) -> anyhow::Result<()> {
        for pid in self.instances.pids(instance.0, Some(instance.1)).await? {
            freeze(pid, paused)?;
        }
        Ok(())
    }

    /// Kills the PostgreSQL server as a crash of its machine or container would: the
    /// postmaster and every backend at once, with SIGKILL (the postmaster is frozen first so it
    /// forks nothing while its children are listed). Returns once all of them are gone; the data
    /// directory and port stay for [`Stack::start_postgres`].
    async fn kill_postgres(&self) -> anyhow::Result<()> {
        let mut infrastructure = self.infrastructure.lock().await;
        let at = infrastructure.iter().position(|p| p.name == "postgresql").context("PostgreSQL is not running")?;
        let postmaster = infrastructure[at].id().context("PostgreSQL has exited")?;
        freeze(postmaster, true)?;
        let children = children_of(postmaster);
        if !children.is_empty() {
            for child in &children {
                // A backend may exit on its own meanwhile: the signal's outcome is not a verdict, the wait below is.
                let _ = process::signal(*child, Signal::KILL);
            }
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
    async fn start_postgres(&self) -> anyhow::Result<()> {
        let proc = self.pg_launch.spawn().await?;
        // First in start order, so shutdown still stops it last.
        self.infrastructure.lock().await.insert(0, proc);
        postgres::wait_accepting(&self.database_url("postgres"), Duration::from_secs(30)).await
    }

    /// Stops everything, services first, then the registry, Kafka and PostgreSQL, waiting for
    /// each to exit.
    pub async fn shutdown(&self) {
        self.instances.shutdown().await;
        let mut infrastructure = self.infrastructure.lock().await;
        while let Some(proc) = infrastructure.pop_if(|p| p.name != "postgresql") {
            proc.stop(Duration::from_secs(20)).await;
        }
        self.kafka.shutdown().await;
        while let Some(proc) = infrastructure.pop() {
            proc.stop(Duration::from_secs(20)).await;
        }
    }
}

/// The reference stack's faults: signals to its processes (SIGTERM, SIGKILL, SIGSTOP/SIGCONT),
/// restarts on the same ports and data, and database access withdrawn on its PostgreSQL.
impl FaultTarget for Stack {
    async fn apply(&self, fault: &Fault) -> anyhow::Result<()> {
        match *fault {
            Fault::StopService(service) => self.stop_service(service, false).await,
            Fault::KillService(service) => self.stop_service(service, true).await,
            Fault::StartService(service) => self.start_service(service).await,
            Fault::PauseService(service) => self.pause_service(service, true).await,
            Fault::UnpauseService(service) => self.pause_service(service, false).await,
            // The only node, or in a cluster the one leading the most saga partitions; its port
            // and data stay for the restart.
            Fault::StopBroker => self.kafka.take_down(self.kafka.target().await?, false).await,
            Fault::KillBroker => self.kafka.take_down(self.kafka.target().await?, true).await,
            Fault::StartBroker => {
                self.kafka.restart().await?;
                // "Kafka Server started" comes before every partition has a leader again.
                let topics = self.kafka.saga_topics();
                kafka_meta::wait_until_serving(&self.endpoints.kafka_bootstrap, topics, Duration::from_secs(120)).await
            }
            Fault::KillDatabase => self.kill_postgres().await,
            Fault::StartDatabase => self.start_postgres().await,
            Fault::TakeDatabase(service) => {
                postgres::set_access(&self.postgres_base_url, service.database(), false).await
            }
            Fault::GiveDatabase(service) => {
                postgres::set_access(&self.postgres_base_url, service.database(), true).await
            }
            Fault::KillInstance(instance) => self.instances.stop(instance, true).await,
            Fault::StartInstance(instance) => self.instances.start(instance).await,
            Fault::PauseInstance(instance) => self.pause_instance(instance, true).await,
            Fault::UnpauseInstance(instance) => self.pause_instance(instance, false).await,
            Fault::AddInstance(service) => self.instances.add(service).await,
            Fault::RemoveInstance(service) => self.instances.remove_added(service).await,
        }
    }
}

/// SIGSTOP (`frozen`) or SIGCONT to `pid`.
fn freeze(pid: u32, frozen: bool) -> anyhow::Result<()> {
    process::signal(pid, if frozen { Signal::STOP } else { Signal::CONT })
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|stat| u32::try_from(stat.ppid).is_ok_and(|parent| parent == pid))
        .filter_map(|stat| u32::try_from(stat.pid).ok())
        .collect()
}

/// Whether `pid` exists and is not a zombie (a zombie holds no memory and no ports).
fn running(pid: u32) -> bool {
    let stat = i32::try_from(pid).ok().and_then(|pid| procfs::process::Process::new(pid).ok()?.stat().ok());
    stat.is_some_and(|stat| stat.state != 'Z' && stat.state != 'X')
}

fn progress(began: Instant, what: &str) {
    eprintln!("[stack {:>5.1}s] {what}", began.elapsed().as_secs_f64());
}
