//! The service processes of a local stack: `instances` processes of each service, each on its
//! own HTTP port with its own stable `INSTANCE_ID` (its static consumer-group membership), all in
//! the service's consumer group. Instance 1 is the one the suite talks to over HTTP; a fault on
//! "a <svc> instance" hits another one (see [`crate::backend::Backend::victim_instance`]), a
//! fault on "the <svc> Service" hits them all. Instances can be added while the stack runs (a
//! rebalance), and removed again.

use super::process::{Proc, free_port, wait_http_ok};
use crate::Service;
use crate::backend::{instance_env, instance_name};
use crate::types::InstanceId;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::Mutex;

/// How an instance is (re)started: its binary, its environment and its HTTP port.
#[derive(Debug, Clone)]
struct Launch {
    bin: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    /// Process and log name ([`instance_name`]).
    name: String,
}

/// What every instance of a service shares: its binary and environment (without the port and
/// the instance id).
#[derive(Debug, Clone)]
pub struct Template {
    pub bin: PathBuf,
    pub env: Vec<(String, String)>,
}

pub struct Instances {
    log_dir: PathBuf,
    /// Instances per service the stack started with (names carry a number when above 1).
    configured: usize,
    templates: BTreeMap<Service, Template>,
    launches: std::sync::Mutex<BTreeMap<InstanceId, Launch>>,
    running: Mutex<BTreeMap<InstanceId, Proc>>,
}

impl Instances {
    /// Plans `configured` instances of each service (ports picked now; nothing started).
    pub fn plan(
        templates: BTreeMap<Service, Template>,
        configured: usize,
        log_dir: PathBuf,
    ) -> anyhow::Result<Instances> {
        let instances = Instances {
            log_dir,
            configured,
            templates,
            launches: std::sync::Mutex::default(),
            running: Mutex::default(),
        };
        for service in Service::ALL {
            for number in 1..=configured {
                instances.plan_one(service, number)?;
            }
        }
        Ok(instances)
    }

    fn plan_one(&self, service: Service, number: usize) -> anyhow::Result<()> {
        let template = self.templates.get(&service).with_context(|| format!("no launch template for the {service}"))?;
        let port = free_port()?;
        let name = instance_name((service, number), self.configured);
        let mut env = instance_env((service, number), port);
        // The template's own (e.g. a variant's) settings come last and win.
        env.extend(template.env.iter().cloned());
        let launch = Launch { bin: template.bin.clone(), env, port, name };
        self.launches.lock().expect("instance launches lock poisoned").insert((service, number), launch);
        Ok(())
    }

    fn launch(&self, instance: InstanceId) -> anyhow::Result<Launch> {
        self.launches
            .lock()
            .expect("instance launches lock poisoned")
            .get(&instance)
            .cloned()
            .with_context(|| format!("the stack has no instance {} of the {}", instance.1, instance.0))
    }

    /// The instances of `service` the stack knows (running or not), in order.
    fn known(&self, service: Service) -> Vec<usize> {
        let launches = self.launches.lock().expect("instance launches lock poisoned");
        launches.keys().filter(|(s, _)| *s == service).map(|(_, n)| *n).collect()
    }

    /// The URL of an instance's HTTP API.
    pub fn url(&self, instance: InstanceId) -> anyhow::Result<String> {
        Ok(format!("http://127.0.0.1:{}", self.launch(instance)?.port))
    }

    /// Starts (or restarts) one instance on its port and waits for `/health`.
    pub async fn start(&self, instance: InstanceId) -> anyhow::Result<()> {
        let launch = self.launch(instance)?;
        let mut command = Command::new(&launch.bin);
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        let mut proc = Proc::spawn(&launch.name, command, &self.log_dir.join(format!("{}.log", launch.name)), None)?;
        wait_http_ok(&mut proc, &format!("http://127.0.0.1:{}/health", launch.port), Duration::from_secs(60)).await?;
        self.running.lock().await.insert(instance, proc);
        Ok(())
    }

    /// Starts every known instance of `service` that is not running.
    pub async fn start_service(&self, service: Service) -> anyhow::Result<()> {
        let running: Vec<InstanceId> = self.running.lock().await.keys().copied().collect();
        let stopped: Vec<InstanceId> =
            self.known(service).into_iter().map(|n| (service, n)).filter(|i| !running.contains(i)).collect();
        anyhow::ensure!(!stopped.is_empty(), "every instance of the {service} is already running");
        futures::future::try_join_all(stopped.into_iter().map(|i| self.start(i))).await?;
        Ok(())
    }

    /// Stops one instance: gracefully (SIGTERM) or as a crash (SIGKILL).
    pub async fn stop(&self, instance: InstanceId, crash: bool) -> anyhow::Result<()> {
        let proc = self
            .running
            .lock()
            .await
            .remove(&instance)
            .with_context(|| format!("instance {} of the {} is not running", instance.1, instance.0))?;
        if crash {
            proc.kill().await
        } else {
            proc.stop(Duration::from_secs(10)).await
        }
        Ok(())
    }

    /// Stops every running instance of `service` at once.
    pub async fn stop_service(&self, service: Service, crash: bool) -> anyhow::Result<()> {
        let instances: Vec<InstanceId> =
            self.running.lock().await.keys().copied().filter(|(s, _)| *s == service).collect();
        anyhow::ensure!(!instances.is_empty(), "the {service} is not running");
        futures::future::try_join_all(instances.into_iter().map(|i| self.stop(i, crash))).await?;
        Ok(())
    }

    /// The pids of `service`'s running instances (all of them, or just `number`).
    pub async fn pids(&self, service: Service, number: Option<usize>) -> anyhow::Result<Vec<u32>> {
        let running = self.running.lock().await;
        let pids: Vec<u32> = running
            .iter()
            .filter(|((s, n), _)| *s == service && number.is_none_or(|wanted| wanted == *n))
            .filter_map(|(_, p)| p.id())
            .collect();
        anyhow::ensure!(
            !pids.is_empty(),
            "the {service} has no running instance{}",
            match number {
                Some(n) => format!(" {n}"),
                None => String::new(),
            }
        );
        Ok(pids)
    }

    /// The running instances of `service`.
    pub async fn running(&self, service: Service) -> Vec<usize> {
        self.running.lock().await.keys().filter(|(s, _)| *s == service).map(|(_, n)| *n).collect()
    }

    /// Plans and starts one more instance of `service`, numbered after every instance it knows
    /// (it joins the consumer group: a rebalance). [`Instances::remove_added`] takes it out again.
    pub async fn add(&self, service: Service) -> anyhow::Result<()> {
        let number = self.known(service).into_iter().max().unwrap_or(0) + 1;
        self.plan_one(service, number)?;
        self.start((service, number)).await
    }

    /// Stops the instance of `service` added last gracefully and forgets it (a service-level
    /// start no longer brings it back).
    pub async fn remove_added(&self, service: Service) -> anyhow::Result<()> {
        let added = self.known(service).into_iter().filter(|n| *n > self.configured).max();
        let instance =
            (service, added.with_context(|| format!("no instance was added to the {service}: none to remove"))?);
        if self.running.lock().await.contains_key(&instance) {
            self.stop(instance, false).await?;
        }
        self.launches.lock().expect("instance launches lock poisoned").remove(&instance);
        Ok(())
    }

    /// `(process name, pid)` of every running instance.
    pub async fn all_pids(&self) -> Vec<(String, u32)> {
        self.running.lock().await.values().filter_map(|p| p.id().map(|id| (p.name.clone(), id))).collect()
    }

    /// Stops every instance, waiting for each to exit.
    pub async fn shutdown(&self) {
        let procs: Vec<Proc> = std::mem::take(&mut *self.running.lock().await).into_values().collect();
        futures::future::join_all(procs.into_iter().map(|p| p.stop(Duration::from_secs(10)))).await;
    }
}
