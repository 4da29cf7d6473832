//! The steps of the declared capacity (`[capacity]`, [`crate::capacity`]): the crash and scale
//! scenarios' load at the declared rate and burst, and the capacity and recovery requirements
//! (`features/capacity.feature`) judged on a load's answers and what its orders ended as. Every
//! crash scenario's record also carries its `recovery` figures (measured, not judged there), and
//! a burst tops itself up only while fewer orders than its size are open ([`OpenOrders`]).

use super::load::Journal;
use super::{SagaWorld, SuiteEnv};
use crate::capacity;
use crate::checkers_crash::Answer;
use cucumber::{given, then, when};
use saga_contract::PushKind;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a count of the load's open orders is reused.
const OPEN_REFRESH: Duration = Duration::from_millis(100);

/// The load's orders accepted and not yet at their last stage (no `PAYMENT_WAIT` or
/// `ORDER_CANCELLED` push yet), counted again at most every [`OPEN_REFRESH`]: a burst tops
/// itself up only while fewer than its size are open, so a slow implementation is not sent
/// more than the burst it declared.
pub(super) struct OpenOrders {
    env: Arc<SuiteEnv>,
    journal: Arc<Journal>,
    counted: Option<(Instant, usize)>,
}

impl OpenOrders {
    pub(super) fn new(env: Arc<SuiteEnv>, journal: Arc<Journal>) -> OpenOrders {
        OpenOrders { env, journal, counted: None }
    }

    pub(super) fn now(&mut self) -> usize {
        if let Some((at, open)) = self.counted
            && at.elapsed() < OPEN_REFRESH
        {
            return open;
        }
        let arrivals = self.env.sink.arrivals();
        let finished: BTreeSet<&str> = arrivals
            .iter()
            .filter_map(|a| a.push.as_ref().ok())
            .filter(|p| matches!(p.kind, PushKind::PaymentWait | PushKind::OrderCancelled))
            .map(|p| p.order_id.as_str())
            .collect();
        let open = self
            .journal
            .attempts()
            .iter()
            .filter(|a| matches!(&a.answer, Answer::Accepted(id) if !finished.contains(id.as_str())))
            .count();
        self.counted = Some((Instant::now(), open));
        open
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

/// Notes, once the load's orders were read back after a fault, how long the implementation took
/// to recover from it (the scenario's `recovery` figure; judged only by `@RECOVERY-1`).
pub(super) fn note_recovery(world: &mut SagaWorld) {
    let Some((_, fault)) = world.fault_spans.last().copied() else { return };
    let figures = capacity::recovery_figures(&world.load().journal.attempts(), world.settled(), &fault);
    eprintln!("[capacity] recovery after {:?}: {figures}", world.fault_spans.last().map(|(f, _)| f));
    world.figures.insert("recovery".into(), figures);
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
