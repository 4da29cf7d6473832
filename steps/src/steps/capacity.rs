//! The steps of the declared capacity (`[capacity]`, [`crate::checkers::capacity`]): the crash and scale
//! scenarios' load at the declared rate and burst, and the capacity and recovery requirements
//! (`features/capacity.feature`) judged on a load's answers and what its orders ended as. Every
//! crash scenario's record also carries its `recovery` figures (measured, not judged there), and
//! a burst tops itself up only while fewer orders than its size are open ([`OpenOrders`]). A
//! measurement starts on an idle implementation ([`implementation_idle`]): what an earlier
//! scenario left draining is not counted against the rate, and when it does not drain the
//! scenario is not judged.

use super::SagaWorld;
use crate::checkers::capacity;
use crate::{Service, groups};
use cucumber::{given, then, when};
use saga_contract::SagaTopic;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A measurement's precondition: the implementation is idle — every consumer group of the saga
/// has consumed what its service reads to the end (transaction markers and aborted records,
/// which no consumer gets, aside: [`groups::with_records`]) — so work an earlier scenario left draining is
/// not measured with it. Waits up to `[capacity] settle_seconds` (the bound the load's orders
/// have to settle); not idle by then, the scenario is not judged, with the lag seen. With no
/// consumer group known (`[external.consumer_groups]`) it cannot be seen: the run's notes say so.
#[given("the implementation is idle: every consumer group of the saga has consumed its topics to their end")]
async fn implementation_idle(world: &mut SagaWorld) {
    let env = world.env.clone();
    if Service::ALL.into_iter().all(|s| env.groups.groups_of(s).is_empty()) {
        env.notes.lock().expect("notes lock poisoned").insert(
            "@CAPACITY: no consumer group is known ([external.consumer_groups]), so the capacity scenarios started without seeing the implementation idle".into(),
        );
        return;
    }
    let bootstrap = &env.endpoints.kafka_bootstrap;
    let names: Vec<String> = SagaTopic::ALL.into_iter().map(|t| env.topics.name(t).to_string()).collect();
    let partitions: Vec<(String, i32)> = crate::backend::kafka_meta::partitions(bootstrap, &names)
        .await
        .unwrap_or_else(|e| panic!("reading the saga topics' partitions: {e:#}"))
        .into_keys()
        .collect();
    let probe = Arc::new(crate::kafka::metadata_client(bootstrap).unwrap_or_else(|e| panic!("{e:#}")));
    let reader = Arc::new(crate::kafka::peek_reader(bootstrap).unwrap_or_else(|e| panic!("{e:#}")));
    let bound = env.config.capacity.settle_bound();
    let began = Instant::now();
    // The first thing that kept the step waiting (a lag, or a read that failed): a slow wait's evidence.
    let mut first_seen: Option<String> = None;
    let idle = crate::poll::until(bound, Duration::from_millis(200), async || {
        let seen = async {
            let positions =
                env.groups.positions(&env.topics, &partitions, &probe).await.map_err(|e| format!("{e:#}"))?;
            let lagging: Vec<(String, i32, i64)> =
                positions.iter().filter(|p| p.lag() > 0).map(|p| (p.topic.clone(), p.partition, p.committed)).collect();
            let with_records = if lagging.is_empty() {
                Default::default()
            } else {
                groups::with_records(&reader, &lagging, Duration::from_secs(5)).await.map_err(|e| format!("{e:#}"))?
            };
            groups::idle(&positions, &with_records)
        }
        .await;
        if let Err(what) = &seen {
            first_seen.get_or_insert_with(|| what.clone());
        }
        seen
    })
    .await;
    match idle {
        Ok(()) => match first_seen {
            None => eprintln!("[capacity] the implementation was idle after {:?}", began.elapsed()),
            Some(seen) => {
                eprintln!("[capacity] the implementation was idle after {:?}; at first {seen}", began.elapsed())
            }
        },
        Err(seen) => crate::results::not_judged(format!(
            "the measurement's precondition did not hold: the implementation was not idle within {bound:?} ([capacity] settle_seconds): {seen}"
        )),
    }
}

#[given(regex = r#"^orders flow at the declared rate for products? (.+)$"#)]
async fn load_at_declared_rate(world: &mut SagaWorld, aliases: String) {
    let rate = world.env.config.capacity.load_rate;
    super::load::start(world, rate, aliases).await
}

#[when("the declared burst of orders arrives at once")]
async fn declared_burst(world: &mut SagaWorld) {
    let burst = world.env.config.capacity.burst;
    super::load::load_burst(world, burst).await
}

#[when(regex = r"^the load has run for (\d+) seconds$")]
async fn load_ran_for(world: &mut SagaWorld, seconds: usize) {
    let rate = usize::try_from(world.env.config.capacity.load_rate).unwrap_or(usize::MAX);
    world.load().wait_sent(rate.saturating_mul(seconds)).await;
}

#[then(
    "the load kept up with the declared rate: every order answered 201, settled at that rate, and what was left when it stopped settled within the saga budget"
)]
async fn load_sustained(world: &mut SagaWorld) {
    let config = &world.env.config;
    let (rate, budget_ms) = (config.capacity.load_rate, config.timing.saga_ms * config.timing.scale);
    let outcome = capacity::sustained(&world.load().journal.attempts(), world.settled(), rate, budget_ms);
    match outcome {
        Ok(figures) => {
            eprintln!("[capacity] sustained {rate} orders/s: {figures}");
            world.figures.insert("capacity".into(), figures);
        }
        Err(failed) => panic!("the declared {rate} orders/s ([capacity] load_rate) was not sustained: {failed}"),
    }
}

#[then(
    "the implementation recovered within the declared recovery budget: intake answered 201 again and every order open at the restart settled"
)]
async fn recovered_in_budget(world: &mut SagaWorld) {
    let figures = world
        .figures
        .get("recovery")
        .cloned()
        .expect("no recovery was measured: a fault is put in place, lifted, and the load's orders read back first");
    let budget = Duration::from_secs(world.env.config.capacity.recovery_seconds);
    if let Err(failed) = capacity::recovery(&figures, budget) {
        panic!("the implementation did not recover within the declared {budget:?}: {failed}");
    }
}
