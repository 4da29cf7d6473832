//! Fault steps: each puts a [`Fault`] in place, or lifts one by its [`Fault::undo`], through the
//! backend (processes: signals and restarts; containers: docker stop/start/pause/kill; external:
//! the configured commands). Scenarios using them are tagged `@serial` and by capability
//! (`@needs-kill-product`, …, [`Fault::capability`]): they run alone, and the runner undoes
//! whatever a scenario left in place (see [`SagaWorld::undo_faults`]). Each fault's time span is
//! kept for the crash checkers (when was the implementation allowed to be unavailable, which
//! orders were in flight).
//!
//! A fault command that did not take effect is not a fault: after a service is stopped, killed
//! or paused the suite confirms its `/health` stopped answering, after the broker is stopped or
//! killed that it dropped out of the cluster's metadata, and after a zombie pause that the
//! service's consumer groups evicted the hung member — otherwise the step fails with "the fault
//! did not take effect" and what was seen. (A killed database cannot be observed black-box: the
//! suite has no address for it; one service's database taken away in our stacks is confirmed by
//! the backend, whose connection to it is refused.)

use super::SagaWorld;
use super::params::Svc;
use crate::Service;
use crate::backend::fault::Fault;
use crate::backend::kafka_meta::broker_ids;
use crate::checkers::crash::FaultSpan;
use crate::membership::{self, GroupState};
use anyhow::Context;
use cucumber::{given, when};
use saga_contract::now_millis;
use std::time::Duration;

/// How long a fault may take to show once its command returned (a stopped process's port
/// closes, a killed node drops out of the cluster's metadata once the controller fences it).
const TAKES_EFFECT: Duration = Duration::from_secs(15);
/// How long one look at a part that may be down waits for its answer.
const PROBE_WAIT: Duration = Duration::from_secs(1);

impl SagaWorld {
    /// Restarts, resumes or brings back whatever this scenario left stopped, newest first.
    pub async fn undo_faults(&mut self) {
        self.gateway_recovers();
        while let Some(fault) = self.faults.pop() {
            if let Err(e) = self.undo(fault).await {
                eprintln!("undoing \"{fault}\" after the scenario: {e:#}");
            }
        }
    }

    /// Lifts `fault` through the backend.
    async fn undo(&self, fault: Fault) -> anyhow::Result<()> {
        let lift = fault.undo().with_context(|| format!("\"{fault}\" lifts another fault: it is not put in place"))?;
        self.env.backend.apply(&lift).await
    }

    /// Puts `fault` in place through the backend, confirms it took effect and notes when.
    pub(super) async fn put(&mut self, fault: Fault) {
        assert!(fault.undo().is_some(), "\"{fault}\" lifts a fault: lift it with SagaWorld::lift");
        let bootstrap = self.env.endpoints.kafka_bootstrap.clone();
        let brokers_before = match fault {
            Fault::StopBroker | Fault::KillBroker => broker_ids(&bootstrap, TAKES_EFFECT).await.ok(),
            _ => None,
        };
        let began_ms = now_millis();
        self.env.backend.apply(&fault).await.unwrap_or_else(|e| panic!("{fault}: {e:#}"));
        // Undone after the scenario whether or not it showed.
        self.record_fault(fault, began_ms);
        let shown = match fault {
            Fault::StopService(service) | Fault::KillService(service) | Fault::PauseService(service) => {
                self.health_gone(service).await
            }
            Fault::StopBroker | Fault::KillBroker => broker_gone(&bootstrap, brokers_before).await,
            _ => Ok(()),
        };
        if let Err(seen) = shown {
            panic!("{fault}: the fault did not take effect: {seen}");
        }
    }

    /// Waits until `service`'s `/health` no longer answers (refused, reset or silent for
    /// [`PROBE_WAIT`]); `Err`: what it still answered.
    async fn health_gone(&self, service: Service) -> Result<(), String> {
        let client = self.env.client.with_timeout(PROBE_WAIT);
        let probe = async || match client.health(service).await {
            Ok(()) => Err(format!("the {service}'s /health still answered 2xx {TAKES_EFFECT:?} after the command")),
            Err(_) => Ok(()),
        };
        crate::poll::until(TAKES_EFFECT, Duration::from_millis(100), probe).await
    }

    /// `service`'s consumer groups as they are now (empty: none known, or one could not be read).
    async fn group_states(&self, service: Service) -> Vec<(String, GroupState)> {
        let Ok(client) = membership::admin_client(&self.env.endpoints.kafka_bootstrap) else { return Vec::new() };
        let mut states = Vec::new();
        for group in self.env.groups.groups_of(service) {
            match membership::describe(client.clone(), group).await {
                Ok(state) => states.push((group.clone(), state)),
                Err(e) => eprintln!("[faults] describing {group}: {e:#}"),
            }
        }
        states
    }

    /// Notes `fault` as in place since `began_ms` (to undo after the scenario, and for the checkers).
    fn record_fault(&mut self, fault: Fault, began_ms: i64) {
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

    /// Lifts the newest fault in place that `lift` undoes (e.g. starting a service lifts its
    /// stop or its kill).
    async fn lift(&mut self, lift: Fault) {
        self.lift_where(|f| f.undo() == Some(lift), &lift.to_string()).await
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
    world.put(Fault::StopService(service.0)).await;
}

#[when(expr = "the {service} is started again")]
async fn service_up(world: &mut SagaWorld, service: Svc) {
    world.lift(Fault::StartService(service.0)).await;
}

/// A graceful restart (stop, start, wait for health): what a deploy does. Whatever the
/// service remembers must survive it — a deduplication kept in memory does not.
#[when(expr = "the {service} is restarted")]
async fn service_restarted(world: &mut SagaWorld, service: Svc) {
    world.put(Fault::StopService(service.0)).await;
    world.lift(Fault::StartService(service.0)).await;
}

#[given(expr = "the {service} is paused")]
async fn service_paused(world: &mut SagaWorld, service: Svc) {
    world.put(Fault::PauseService(service.0)).await;
}

#[when(expr = "the {service} is resumed")]
async fn service_resumed(world: &mut SagaWorld, service: Svc) {
    world.lift(Fault::UnpauseService(service.0)).await;
}

#[given("the Kafka broker is stopped")]
async fn broker_down(world: &mut SagaWorld) {
    world.put(Fault::StopBroker).await;
}

#[when("the Kafka broker is started again")]
async fn broker_up(world: &mut SagaWorld) {
    world.lift(Fault::StartBroker).await;
}

#[when(expr = "the {service} is killed")]
async fn service_killed(world: &mut SagaWorld, service: Svc) {
    world.put(Fault::KillService(service.0)).await;
}

/// A zombie: the service hangs longer than its consumer-group session timeout, so the broker
/// gives its partitions away while it still holds records it fetched, then it wakes up. The
/// pause lasts until every group of the service has evicted its members — as long as the
/// implementation's own session timeout makes it — up to `[faults] zombie_pause_seconds`; a
/// member still there by then means no zombie was made, and the step fails so. Without known
/// groups the pause lasts `zombie_pause_seconds` and the report says so.
#[when(expr = "the {service} is paused past its consumer-group session timeout")]
async fn service_zombie(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    let at_most = world.env.config.zombie_pause();
    let before = world.group_states(service).await;
    world.put(Fault::PauseService(service)).await;
    if before.is_empty() {
        world.env.notes.lock().expect("notes lock poisoned").insert(format!(
            "The {service}'s consumer groups are not known: its zombie pause lasted [faults] zombie_pause_seconds ({at_most:?}) without confirming its group evicted it."
        ));
        // The fault's duration, not a wait for a condition: nothing to observe it by.
        tokio::time::sleep(at_most).await;
        return;
    }
    let began = std::time::Instant::now();
    let evicted = crate::poll::until(at_most, Duration::from_millis(250), async || {
        for (group, state) in world.group_states(service).await.into_iter().filter_map(|(g, now)| {
            let was = before.iter().find(|(b, _)| *b == g)?;
            Some((g, membership::evicted(&was.1, &now)))
        }) {
            state.map_err(|why| format!("group {group}: {why}"))?;
        }
        Ok::<(), String>(())
    })
    .await;
    match evicted {
        Ok(()) => eprintln!("[faults] the {service}'s group(s) evicted it {:?} into the pause", began.elapsed()),
        Err(seen) => panic!(
            "pausing the {service}: the fault did not take effect: paused for {at_most:?} ([faults] zombie_pause_seconds) and not evicted — {seen}; raise zombie_pause_seconds above the implementation's consumer-group session timeout"
        ),
    }
}

/// On a cluster the backend picks the node leading the most saga partitions (either wording).
#[when(regex = r"^the Kafka broker(?: leading the saga topics' partitions)? is killed$")]
async fn broker_killed(world: &mut SagaWorld) {
    world.put(Fault::KillBroker).await;
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
    world.put(Fault::KillDatabase).await;
}

#[when("the PostgreSQL server is started again")]
async fn database_up(world: &mut SagaWorld) {
    world.lift(Fault::StartDatabase).await;
}

/// One service's database gone while everything else serves (as when it has a server of its
/// own and that server crashes): whatever the service does with it fails until it is back. Our
/// stacks refuse connections to it and end its sessions, and confirm a connection is refused.
#[when(expr = "the {service}'s database is taken away")]
async fn service_database_away(world: &mut SagaWorld, service: Svc) {
    world.put(Fault::TakeDatabase(service.0)).await;
}

#[when(expr = "the {service}'s database is given back")]
async fn service_database_back(world: &mut SagaWorld, service: Svc) {
    world.lift(Fault::GiveDatabase(service.0)).await;
}

/// Waits until the broker is no longer serving: no node answers, or a node listed `before` the
/// fault dropped out of the metadata. `Err`: what the cluster still listed.
async fn broker_gone(bootstrap: &str, before: Option<Vec<i32>>) -> Result<(), String> {
    let Some(before) = before else { return Ok(()) };
    crate::poll::until(TAKES_EFFECT, Duration::from_millis(200), async || {
        match broker_ids(bootstrap, PROBE_WAIT).await {
            Err(_) => Ok(()),
            Ok(now) if before.iter().any(|id| !now.contains(id)) => Ok(()),
            Ok(now) => Err(format!(
                "the cluster still listed node(s) {now:?} (as before the command) {TAKES_EFFECT:?} after it"
            )),
        }
    })
    .await
}
