//! Fault steps, carried out by the backend (processes: signals and restarts; containers:
//! docker stop/start/pause; external: the configured commands). Scenarios using them are tagged
//! `@serial` and by capability (`@faults`, `@pause`, `@broker-faults`): they run alone, and the
//! runner undoes whatever a scenario left in place (see [`SagaWorld::undo_faults`]).

use super::SagaWorld;
use crate::Service;
use cucumber::{given, when};
use saga_contract::SagaTopic;

/// A fault in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    Stopped(Service),
    Paused(Service),
    BrokerStopped,
}

impl SagaWorld {
    /// Restarts, resumes or brings back whatever this scenario left stopped, newest first.
    pub async fn undo_faults(&mut self) {
        while let Some(fault) = self.faults.pop() {
            if let Err(e) = self.undo(fault).await {
                eprintln!("undoing {fault:?} after the scenario: {e:#}");
            }
        }
    }

    async fn undo(&self, fault: Fault) -> anyhow::Result<()> {
        let backend = &self.env.backend;
        match fault {
            Fault::Stopped(service) => backend.start_service(service).await,
            Fault::Paused(service) => backend.pause_service(service, false).await,
            Fault::BrokerStopped => backend.start_broker(self.env.topics.name(SagaTopic::OrderCreated)).await,
        }
    }

    fn put(&mut self, fault: Fault, outcome: anyhow::Result<()>, what: &str) {
        outcome.unwrap_or_else(|e| panic!("{what}: {e:#}"));
        self.faults.push(fault);
    }

    async fn lift(&mut self, fault: Fault, what: &str) {
        let outcome = self.undo(fault).await;
        self.faults.retain(|f| *f != fault);
        outcome.unwrap_or_else(|e| panic!("{what}: {e:#}"));
    }
}

fn service(name: &str) -> Service {
    Service::parse(name).expect("a service name")
}

#[given(regex = r"^the (Order|Product|Payment) Service is down$")]
async fn service_down(world: &mut SagaWorld, name: String) {
    let service = service(&name);
    let outcome = world.env.backend.stop_service(service).await;
    world.put(Fault::Stopped(service), outcome, &format!("stopping the {service}"));
}

#[when(regex = r"^the (Order|Product|Payment) Service is started again$")]
async fn service_up(world: &mut SagaWorld, name: String) {
    let service = service(&name);
    world.lift(Fault::Stopped(service), &format!("starting the {service}")).await;
}

/// A graceful restart (stop, start, wait for health): what a deploy does. Whatever the
/// service remembers must survive it — a deduplication kept in memory does not.
#[when(regex = r"^the (Order|Product|Payment) Service is restarted$")]
async fn service_restarted(world: &mut SagaWorld, name: String) {
    let service = service(&name);
    let outcome = world.env.backend.stop_service(service).await;
    world.put(Fault::Stopped(service), outcome, &format!("stopping the {service}"));
    world.lift(Fault::Stopped(service), &format!("starting the {service} again")).await;
}

#[given(regex = r"^the (Order|Product|Payment) Service is paused$")]
async fn service_paused(world: &mut SagaWorld, name: String) {
    let service = service(&name);
    let outcome = world.env.backend.pause_service(service, true).await;
    world.put(Fault::Paused(service), outcome, &format!("pausing the {service}"));
}

#[when(regex = r"^the (Order|Product|Payment) Service is resumed$")]
async fn service_resumed(world: &mut SagaWorld, name: String) {
    let service = service(&name);
    world.lift(Fault::Paused(service), &format!("resuming the {service}")).await;
}

#[given("the Kafka broker is stopped")]
async fn broker_down(world: &mut SagaWorld) {
    let outcome = world.env.backend.stop_broker().await;
    world.put(Fault::BrokerStopped, outcome, "stopping the Kafka broker");
}

#[when("the Kafka broker is started again")]
async fn broker_up(world: &mut SagaWorld) {
    world.lift(Fault::BrokerStopped, "starting the Kafka broker").await;
}
