//! Fault steps, carried out by the backend (processes: signals and restarts; containers:
//! docker stop/start/pause/kill; external: the configured commands). Scenarios using them are
//! tagged `@serial` and by capability (`@faults`, `@pause`, `@broker-faults`): they run alone, and
//! the runner undoes whatever a scenario left in place (see [`SagaWorld::undo_faults`]). Each
//! fault's time span is kept for the crash checkers (when was the implementation allowed to be
//! unavailable, which orders were in flight).

use super::SagaWorld;
use super::params::Svc;
use crate::Service;
use crate::checkers_crash::FaultSpan;
use cucumber::{given, when};
use saga_contract::{SagaTopic, now_millis};
use std::time::Duration;

/// A fault in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    Stopped(Service),
    Paused(Service),
    BrokerStopped,
    /// SIGKILL / `docker kill` / `kill_<svc>`; undone by starting the service again.
    Killed(Service),
    BrokerKilled,
    /// The PostgreSQL server killed (every service's database, in our stacks).
    DatabaseKilled,
    /// One instance of several killed (SIGKILL); undone by starting it again.
    InstanceKilled(Service, usize),
    /// One instance of several paused (SIGSTOP); undone by resuming it.
    InstancePaused(Service, usize),
    /// An instance added to the running ones; undone by stopping and forgetting it.
    InstanceAdded(Service, usize),
}

impl SagaWorld {
    /// Restarts, resumes or brings back whatever this scenario left stopped, newest first.
    pub async fn undo_faults(&mut self) {
        self.gateway_recovers();
        while let Some(fault) = self.faults.pop() {
            if let Err(e) = self.undo(fault).await {
                eprintln!("undoing {fault:?} after the scenario: {e:#}");
            }
        }
    }

    async fn undo(&self, fault: Fault) -> anyhow::Result<()> {
        let backend = &self.env.backend;
        match fault {
            Fault::Stopped(service) | Fault::Killed(service) => backend.start_service(service).await,
            Fault::Paused(service) => backend.pause_service(service, false).await,
            Fault::BrokerStopped | Fault::BrokerKilled => {
                backend.start_broker(self.env.topics.name(SagaTopic::OrderCreated)).await
            }
            Fault::DatabaseKilled => backend.start_database().await,
            Fault::InstanceKilled(service, n) => backend.start_instance((service, n)).await,
            Fault::InstancePaused(service, n) => backend.pause_instance((service, n), false).await,
            Fault::InstanceAdded(service, n) => backend.remove_instance((service, n)).await,
        }
    }

    /// Puts `fault` in place through the backend and notes when.
    pub(super) async fn put(&mut self, fault: Fault, what: &str) {
        let began_ms = now_millis();
        let backend = &self.env.backend;
        let outcome = match fault {
            Fault::Stopped(service) => backend.stop_service(service).await,
            Fault::Paused(service) => backend.pause_service(service, true).await,
            Fault::BrokerStopped => backend.stop_broker().await,
            Fault::Killed(service) => backend.kill_service(service).await,
            Fault::BrokerKilled => backend.kill_broker().await,
            Fault::DatabaseKilled => backend.kill_database().await,
            Fault::InstanceKilled(service, n) => backend.kill_instance((service, n)).await,
            Fault::InstancePaused(service, n) => backend.pause_instance((service, n), true).await,
            Fault::InstanceAdded(..) => Err(anyhow::anyhow!("an instance is added by its step, then recorded")),
        };
        outcome.unwrap_or_else(|e| panic!("{what}: {e:#}"));
        self.record_fault(fault, began_ms);
    }

    /// Notes `fault` as in place since `began_ms` (to undo after the scenario, and for the checkers).
    pub(super) fn record_fault(&mut self, fault: Fault, began_ms: i64) {
        self.faults.push(fault);
        self.fault_spans.push((fault, FaultSpan { began_ms, in_place_ms: now_millis(), lifted_ms: None }));
        self.faults_in_place.send_modify(|count| *count += 1);
    }

    /// Marks the last fault's effect as over without undoing it — the implementation absorbed it
    /// (the survivors took a dead instance's partitions over, new leaders were elected): from now
    /// on intake must answer as if nothing happened. The fault itself is undone after the scenario.
    pub(super) fn absorbed(&mut self, what: &str) {
        let (_, span) = self.fault_spans.last_mut().unwrap_or_else(|| panic!("{what}: no fault was put in place"));
        span.lifted_ms.get_or_insert(now_millis());
    }

    /// Lifts whichever of `candidates` is in place (e.g. a service stopped or killed).
    async fn lift(&mut self, candidates: &[Fault], what: &str) {
        self.lift_where(|f| candidates.contains(f), what).await
    }

    /// Lifts the newest fault in place that `matches`.
    pub(super) async fn lift_where(&mut self, matches: impl Fn(&Fault) -> bool, what: &str) {
        let fault = *self
            .faults
            .iter()
            .rev()
            .find(|f| matches(f))
            .unwrap_or_else(|| panic!("{what}: no such fault is in place ({:?})", self.faults));
        let outcome = self.undo(fault).await;
        self.faults.retain(|f| *f != fault);
        outcome.unwrap_or_else(|e| panic!("{what}: {e:#}"));
        if let Some((_, span)) =
            self.fault_spans.iter_mut().rev().find(|(f, span)| *f == fault && span.lifted_ms.is_none())
        {
            span.lifted_ms = Some(now_millis());
        }
    }
}

#[given(expr = "the {service} is down")]
async fn service_down(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    world.put(Fault::Stopped(service), &format!("stopping the {service}")).await;
}

#[when(expr = "the {service} is started again")]
async fn service_up(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    world.lift(&[Fault::Stopped(service), Fault::Killed(service)], &format!("starting the {service}")).await;
}

/// A graceful restart (stop, start, wait for health): what a deploy does. Whatever the
/// service remembers must survive it — a deduplication kept in memory does not.
#[when(expr = "the {service} is restarted")]
async fn service_restarted(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    world.put(Fault::Stopped(service), &format!("stopping the {service}")).await;
    world.lift(&[Fault::Stopped(service)], &format!("starting the {service} again")).await;
}

#[given(expr = "the {service} is paused")]
async fn service_paused(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    world.put(Fault::Paused(service), &format!("pausing the {service}")).await;
}

#[when(expr = "the {service} is resumed")]
async fn service_resumed(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    world.lift(&[Fault::Paused(service)], &format!("resuming the {service}")).await;
}

#[given("the Kafka broker is stopped")]
async fn broker_down(world: &mut SagaWorld) {
    world.put(Fault::BrokerStopped, "stopping the Kafka broker").await;
}

#[when("the Kafka broker is started again")]
async fn broker_up(world: &mut SagaWorld) {
    world.lift(&[Fault::BrokerStopped, Fault::BrokerKilled], "starting the Kafka broker").await;
}

#[when(expr = "the {service} is killed")]
async fn service_killed(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    world.put(Fault::Killed(service), &format!("killing the {service}")).await;
}

/// A zombie: the service hangs longer than its consumer-group session timeout, so the broker
/// gives its partitions away while it still holds records it fetched, then it wakes up.
#[when(expr = "the {service} is paused past its consumer-group session timeout")]
async fn service_zombie(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    world.put(Fault::Paused(service), &format!("pausing the {service}")).await;
    // The fault's duration, not a wait for a condition: the hang itself is what is injected.
    tokio::time::sleep(world.env.config.zombie_pause()).await;
}

/// On a cluster the backend picks the node leading the most saga partitions (either wording).
#[when(regex = r"^the Kafka broker(?: leading the saga topics' partitions)? is killed$")]
async fn broker_killed(world: &mut SagaWorld) {
    world.put(Fault::BrokerKilled, "killing the Kafka broker").await;
}

/// A long outage: the fault just put in place stays for `[faults] long_outage_seconds` from
/// the moment it was in place, longer than any retry budget (the load goes on meanwhile).
#[when("the fault lasts a long outage")]
async fn long_outage(world: &mut SagaWorld) {
    let (fault, span) = *world.fault_spans.last().expect("no fault was put in place in this scenario");
    assert!(span.lifted_ms.is_none(), "{fault:?} was already lifted");
    let elapsed = Duration::from_millis(u64::try_from(now_millis() - span.in_place_ms).unwrap_or_default());
    // The fault's duration, not a wait for a condition: the outage itself is what is injected.
    tokio::time::sleep(world.env.config.long_outage().saturating_sub(elapsed)).await;
}

#[when("the PostgreSQL server is killed")]
async fn database_killed(world: &mut SagaWorld) {
    world.put(Fault::DatabaseKilled, "killing the PostgreSQL server").await;
}

#[when("the PostgreSQL server is started again")]
async fn database_up(world: &mut SagaWorld) {
    world.lift(&[Fault::DatabaseKilled], "starting the PostgreSQL server").await;
}
