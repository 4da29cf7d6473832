//! Fault steps, carried out by the backend (processes: SIGTERM and restart; external: the
//! configured commands). Scenarios using them are tagged `@faults` and `@serial`: they run
//! alone, and the runner restarts anything a scenario left stopped.

use super::SagaWorld;
use crate::Service;
use cucumber::{given, when};

#[given(regex = r"^the (Order|Product|Payment) Service is down$")]
async fn service_down(world: &mut SagaWorld, name: String) {
    let service = Service::parse(&name).expect("a service name");
    world.env.backend.stop_service(service).await.unwrap_or_else(|e| panic!("stopping the {service}: {e:#}"));
    world.stopped.push(service);
}

#[when(regex = r"^the (Order|Product|Payment) Service is started again$")]
async fn service_up(world: &mut SagaWorld, name: String) {
    let service = Service::parse(&name).expect("a service name");
    world.env.backend.start_service(service).await.unwrap_or_else(|e| panic!("starting the {service}: {e:#}"));
    world.stopped.retain(|s| *s != service);
}
