//! A push gateway that fails (`features/push_gateway.feature`): the sink answers 5xx, holds
//! requests past the client's patience, or answers slowly for a while ([`Outage`]) — to this
//! scenario's pushes only (those naming its tag, which its users carry), so other scenarios run
//! meanwhile — while the crash scenarios' steady load goes on. Orders placed meanwhile must
//! settle before the gateway works again (the saga does not wait for pushes); the load's checks
//! then require every push once the gateway is back.

use super::SagaWorld;
use super::readback::{read_states, terminal};
use crate::sink::Outage;
use cucumber::{then, when};
use std::time::{Duration, Instant};

/// An outage of the push gateway this scenario put in place.
#[derive(Debug, Clone, Copy)]
pub(super) struct GatewayOutage {
    /// Epoch ms when it began (the load's orders sent from then on were placed during it).
    began_ms: i64,
    until: Instant,
    /// The sink's count of disturbed requests when it began.
    disturbed_before: usize,
}

impl SagaWorld {
    fn gateway_fails(&mut self, outage: Outage, seconds: u64) {
        let (began_ms, disturbed_before) = (saga_contract::now_millis(), self.env.sink.disturbed(&self.tag));
        let until = self.env.sink.fail_for(&self.tag, outage, Duration::from_secs(seconds));
        self.gateway = Some(GatewayOutage { began_ms, until, disturbed_before });
    }

    fn gateway_outage(&self) -> GatewayOutage {
        self.gateway.expect("the push gateway was not made to fail in this scenario")
    }

    /// Ends an outage the scenario left in place (after the scenario).
    pub(super) fn gateway_recovers(&mut self) {
        if self.gateway.take().is_some() {
            self.env.sink.recover(&self.tag);
        }
    }
}

#[when(regex = r"^the push gateway answers (5\d\d) for the next (\d+) s$")]
async fn answers_status(world: &mut SagaWorld, status: u16, seconds: u64) {
    world.gateway_fails(Outage::Status(status), seconds);
}

#[when(regex = r"^the push gateway does not answer for the next (\d+) s$")]
async fn does_not_answer(world: &mut SagaWorld, seconds: u64) {
    world.gateway_fails(Outage::Hang, seconds);
}

#[when(regex = r"^the push gateway takes (\d+) s to answer each push for the next (\d+) s$")]
async fn answers_slowly(world: &mut SagaWorld, delay: u64, seconds: u64) {
    world.gateway_fails(Outage::Slow(Duration::from_secs(delay)), seconds);
}

#[when("the push gateway works again")]
async fn works_again(world: &mut SagaWorld) {
    // The outage's end is the suite's own schedule, not a condition to wait on.
    tokio::time::sleep_until(world.gateway_outage().until.into()).await;
    world.gateway_recovers();
}

#[then(
    "every order placed since the push gateway failed settles, confirmed with a payment or cancelled, before it works again"
)]
async fn settles_during_outage(world: &mut SagaWorld) {
    let outage = world.gateway_outage();
    let env = world.env.clone();
    let load = world.load();
    // The orders placed so far: the load's requests sent until now, once all are answered.
    let (first, journal) = (load.sent(), load.journal.clone());
    let left = outage.until.saturating_duration_since(Instant::now());
    let (mut placed, mut open): (Option<Vec<String>>, Vec<String>) = (None, Vec::new());
    let settled = crate::poll::until(left, Duration::from_millis(100), async || {
        if placed.is_none() {
            let attempts = journal.attempts();
            placed = super::load::accepted_among(&attempts, outage.began_ms, first);
            open = placed.clone().ok_or("the load's requests are not all answered yet")?;
        }
        let states = read_states(&env, open.clone(), false).await;
        open = states.into_iter().filter(|(_, state)| !terminal(state)).map(|(id, _)| id).collect();
        if open.is_empty() { Ok(()) } else { Err("orders still open") }
    })
    .await;
    let Some(placed) = placed else {
        panic!(
            "the load's {first} requests sent so far were not all answered when the push gateway worked again \
             ({left:?} after the check began): {}",
            world.load().summary()
        )
    };
    assert!(!placed.is_empty(), "the load placed no order while the push gateway failed");
    if settled.is_err() {
        let evidence = open.iter().take(2).map(|id| world.evidence(id)).collect::<String>();
        panic!(
            "{} of the {} orders placed while the push gateway failed were still open when it worked again \
             ({left:?} after the check began): the saga waited for the push gateway{evidence}",
            open.len(),
            placed.len()
        );
    }
}

#[then("the push gateway was disturbed by pushes while it failed")]
async fn disturbed(world: &mut SagaWorld) {
    let outage = world.gateway_outage();
    let disturbed = world.env.sink.disturbed(&world.tag) - outage.disturbed_before;
    assert!(
        disturbed > 0,
        "no push reached the push gateway while it failed, so the scenario tested nothing: the orders placed \
         meanwhile settled without one"
    );
}
