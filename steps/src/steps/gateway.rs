//! A push gateway that fails (`features/push_gateway.feature`): the sink answers 5xx, holds
//! requests past the client's patience, or answers slowly ([`Outage`]) — to this scenario's
//! pushes only (those naming its tag, which its users carry), so other scenarios run meanwhile —
//! while the crash scenarios' steady load goes on. The outage lasts until the orders placed
//! during it have settled (the saga does not wait for pushes), for at most the correctness bound
//! (`[capacity] settle_seconds`): a fixed few seconds would judge speed — a correct implementation
//! at its declared 15 orders/s, sharing the machine with the scenarios beside this one, had a few
//! orders still open when a 5 s outage ended. The load's checks then require every push once the
//! gateway is back.

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
    /// Puts the outage in place until the scenario says the gateway works again, or the
    /// correctness bound passes (then it ends by itself, and the check of the orders placed
    /// during it has failed).
    fn gateway_fails(&mut self, outage: Outage) {
        let (began_ms, disturbed_before) = (saga_contract::now_millis(), self.env.sink.disturbed(&self.tag));
        let until = self.env.sink.fail_for(&self.tag, outage, self.env.config.capacity.settle_bound());
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

#[when(regex = r"^the push gateway starts answering (5\d\d)$")]
async fn answers_status(world: &mut SagaWorld, status: u16) {
    world.gateway_fails(Outage::Status(status));
}

#[when(regex = r"^the push gateway stops answering$")]
async fn does_not_answer(world: &mut SagaWorld) {
    world.gateway_fails(Outage::Hang);
}

#[when(regex = r"^the push gateway starts taking (\d+) s to answer each push$")]
async fn answers_slowly(world: &mut SagaWorld, delay: u64) {
    world.gateway_fails(Outage::Slow(Duration::from_secs(delay)));
}

#[when("the push gateway works again")]
async fn works_again(world: &mut SagaWorld) {
    let _made_to_fail = world.gateway_outage(); // panics when the scenario never made it fail
    world.gateway_recovers();
}

#[then(
    "every order placed since the push gateway failed settles, confirmed with a payment or cancelled, while it still fails"
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
            "the load's {first} requests sent so far were not all answered in the {left:?} the check waited \
             (the outage lasts at most [capacity] settle_seconds): {}",
            world.load().summary()
        )
    };
    assert!(!placed.is_empty(), "the load placed no order while the push gateway failed");
    if settled.is_err() {
        let evidence = open.iter().take(2).map(|id| world.evidence(id)).collect::<String>();
        panic!(
            "{} of the {} orders placed while the push gateway failed were still open after the check waited {left:?}, \
             the gateway failing all along (at most [capacity] settle_seconds): the saga waited for the push gateway{evidence}",
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
