//! One defect shows as one failure: after a scenario fails, the next scenario first checks that
//! the implementation is healthy and idle again — every service answers `/health` and one canary
//! order goes through the whole saga (confirmed, with its payment) within a bound. If it does
//! not, that scenario is *not judged*: "the implementation had not recovered since <scenario>",
//! with what was seen, instead of a failure of its own; the next scenario checks again. After a
//! passing scenario nothing is checked, so a passing run pays nothing for this.

use super::SuiteEnv;
use crate::Service;
use crate::api::{NewOrder, OrderLine, ProductSpec};
use saga_contract::{Money, OrderStatus};
use std::time::{Duration, Instant};

/// How long the implementation has to answer `/health` and take the canary through the saga.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);
/// The same once a check found it had not recovered: later scenarios look again briefly, so a
/// jammed implementation costs each of them seconds, not the whole bound.
const STILL_BROKEN_BOUND: Duration = Duration::from_secs(3);
/// How long one request of the check may take.
const REQUEST_WAIT: Duration = Duration::from_secs(5);

/// What the check after a failed scenario remembers, shared by the scenarios of a run.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The failed scenario the implementation has not been seen to recover from yet.
    suspect: Option<String>,
    /// Whether a check since found it had not recovered.
    still_broken: bool,
}

/// Notes that `scenario` failed: the next scenario checks the implementation first.
pub async fn scenario_failed(env: &SuiteEnv, scenario: &str) {
    let mut recovery = env.recovery.lock().await;
    recovery.suspect.get_or_insert_with(|| scenario.to_string());
}

/// Before a scenario: if an earlier one failed and the implementation has not been seen to
/// recover since, checks it now; ends this scenario as not judged when it has not recovered.
/// Scenarios starting together wait for one check.
pub async fn check_before(env: &SuiteEnv, scenario: &str) {
    let mut recovery = env.recovery.lock().await;
    let Some(since) = recovery.suspect.clone() else { return };
    let began = Instant::now();
    let bound = if recovery.still_broken { STILL_BROKEN_BOUND } else { RECOVERY_BOUND };
    let health = health(env, bound).await;
    let canary = if health.iter().all(|(_, h)| h.is_ok()) { canary(env, scenario, bound).await } else { Ok(()) };
    match recovered(&health, canary) {
        Ok(()) => {
            eprintln!("[recovery] healthy and idle again before \"{scenario}\" ({:?} to check)", began.elapsed());
            *recovery = Recovery::default();
        }
        Err(seen) => {
            recovery.still_broken = true;
            crate::results::not_judged(format!("the implementation had not recovered since \"{since}\": {seen}"))
        }
    }
}

/// Every service's `/health`, each waited for up to `bound`.
async fn health(env: &SuiteEnv, bound: Duration) -> Vec<(Service, Result<(), String>)> {
    let client = env.client.with_timeout(REQUEST_WAIT.min(bound));
    let mut seen = Vec::new();
    for service in Service::ALL {
        let answered = crate::poll::until(bound, Duration::from_millis(200), async || {
            client.health(service).await.map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the {service}'s /health did not answer within {bound:?} ({e})"));
        seen.push((service, answered));
    }
    seen
}

/// One order through the whole saga: a product of its own, an order for it, confirmed with a
/// payment within `bound`. `Err`: how far it got.
async fn canary(env: &SuiteEnv, scenario: &str, bound: Duration) -> Result<(), String> {
    let client = env.client.with_timeout(REQUEST_WAIT.min(bound));
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let price = Money::parse("1.00").expect("an amount");
    let spec = ProductSpec { name: "recovery canary".into(), price, stock: 10 };
    let product = format!("canary-{tag}");
    client.put_product(&product, &spec).await.map_err(|e| format!("the canary's product could not be put: {e}"))?;
    let order = NewOrder {
        store_id: format!("S-canary-{tag}"),
        items: vec![OrderLine { product_id: product, quantity: 1, unit_price: price }],
    };
    let (placed, _) = client
        .place_order(&format!("canary-{tag}"), &order)
        .await
        .map_err(|e| format!("the canary order was not accepted: {e}"))?;
    let id = placed.order_id;
    let took = Instant::now();
    crate::poll::until(bound, Duration::from_millis(100), async || {
        let status = client.order(&id).await.map_err(|e| e.to_string())?.map(|o| o.status);
        if status != Some(OrderStatus::Confirmed) {
            return Err(format!("status {}", status.map_or("HTTP 404", OrderStatus::as_str)));
        }
        match client.payments(&id).await.map_err(|e| e.to_string())?.len() {
            0 => Err("confirmed, no payment yet".to_string()),
            _ => Ok(()),
        }
    })
    .await
    .map(|()| {
        eprintln!("[recovery] canary order {id} (before \"{scenario}\") through the saga in {:?}", took.elapsed())
    })
    .map_err(|last| format!("the canary order {id} was not confirmed with a payment within {bound:?} ({last})"))
}

/// The judgement: every service answered `/health` (each `Err` says how not) and the canary
/// went through.
fn recovered(health: &[(Service, Result<(), String>)], canary: Result<(), String>) -> Result<(), String> {
    let down: Vec<&str> = health.iter().filter_map(|(_, h)| h.as_ref().err().map(String::as_str)).collect();
    if !down.is_empty() {
        return Err(down.join("; "));
    }
    canary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_healthy() -> Vec<(Service, Result<(), String>)> {
        Service::ALL.into_iter().map(|s| (s, Ok(()))).collect()
    }

    #[test]
    fn healthy_with_the_canary_through_is_recovered() {
        assert_eq!(recovered(&all_healthy(), Ok(())), Ok(()));
    }

    #[test]
    fn a_service_down_or_a_stuck_canary_is_not_recovered() {
        let mut health = all_healthy();
        health[0].1 = Err("the Order Service's /health did not answer within 30s (connection refused)".into());
        let seen = recovered(&health, Ok(())).unwrap_err();
        assert!(seen.contains("Order Service's /health did not answer") && seen.contains("refused"), "{seen}");
        let stuck = recovered(&all_healthy(), Err("the canary order o1 was not confirmed (status CREATED)".into()));
        assert!(stuck.unwrap_err().contains("status CREATED"));
    }
}
