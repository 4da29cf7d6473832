//! Field meanings of one order: the order read back over HTTP against the request, the 201's
//! `Location`, the payment against the order, `order.cancelled`'s key and lines, and which
//! event a push names. Amounts are compared as decimals (`Money::from_json`: `15000`,
//! `15000.0` and `"15000.00"` are equal; `120.07999999999998` is no amount). Reading state is
//! strict: an HTTP error or a body that is not JSON fails the step, it never reads as "empty".

use super::params::{Amount, Kind, Topic};
use super::{SagaWorld, SuiteEnv};
use crate::api::Order;
use crate::checkers::Violation;
use crate::checkers::fields;
use crate::observed::Push;
use crate::observed::TapRecord;
use cucumber::then;
use saga_contract::{Money, SagaTopic};
use serde_json::{Value, json};
use std::time::Duration;

/// Runs [`crate::checkers::fields::check_run`] at the end of a run, over everything the tap and the sink saw since
/// `start_ms`. A push can arrive a moment before the tap has fetched its record (the two are
/// sent independently), so it first waits, up to the outcome deadline, until every push's cause
/// is in the tap; in a run without such a violation that wait ends at once.
pub async fn check_suite(env: &SuiteEnv, start_ms: i64) -> Vec<Violation> {
    let (pushes, mut violations) = fields::pushes_of(&env.sink.arrivals());
    let causes_seen = |log: &[TapRecord]| {
        let saga: Vec<&TapRecord> =
            log.iter().filter(|r| !r.dead_letter && r.saga_topic.is_some() && r.value.is_some()).collect();
        let missing = fields::push_causes(&saga, &pushes);
        if missing.is_empty() { Ok(()) } else { Err(missing) }
    };
    let _ = env.tap.wait_until(env.config.outcome_deadline(), causes_seen).await;
    let window = fields::RunWindow {
        start_ms,
        end_ms: saga_contract::now_millis(),
        tolerance_ms: env.config.fields.clock_skew_ms,
    };
    violations.extend(fields::check_run(&env.tap.records(), &pushes, window));
    violations
}

/// The order, which must read back (200).
async fn read_order(world: &SagaWorld, order_id: &str) -> Order {
    match world.env.client.order(order_id).await {
        Ok(Some(order)) => order,
        Ok(None) => panic!("GET order {order_id} answered 404"),
        Err(e) => panic!("{e}"),
    }
}

fn amount_of(value: &Value, what: &str) -> Money {
    Money::from_json(value).unwrap_or_else(|| panic!("{what} is {value}, not an amount with at most two decimals"))
}

/// Order lines as comparable tuples, sorted: (productId, quantity, unitPrice if `priced`).
fn lines_of(items: &Value, priced: bool, what: &str) -> Vec<(String, i64, Option<Money>)> {
    let items = items.as_array().unwrap_or_else(|| panic!("{what}: items is {items}, not a list"));
    let mut lines: Vec<_> = items
        .iter()
        .map(|i| {
            let product =
                i["productId"].as_str().unwrap_or_else(|| panic!("{what}: a line without productId: {i}")).to_string();
            let quantity =
                i["quantity"].as_i64().unwrap_or_else(|| panic!("{what}: a line without an integer quantity: {i}"));
            (product, quantity, priced.then(|| amount_of(&i["unitPrice"], &format!("{what}: unitPrice"))))
        })
        .collect();
    lines.sort();
    lines
}

#[then("the order's Location header points at the order")]
async fn location_points_at_order(world: &mut SagaWorld) {
    let id = world.order_id();
    let answer = world.answer.as_ref().expect("no answer");
    let location =
        answer.location.as_deref().unwrap_or_else(|| panic!("the 201 for order {id} has no Location header"));
    // A relative reference resolves against the request's URL (RFC 9110 §10.2.2).
    let request = reqwest::Url::parse(world.env.client.orders_url()).expect("the order URL is a URL");
    let url = request.join(location).unwrap_or_else(|e| panic!("Location {location:?} is not a URI reference: {e}"));
    assert!(
        url.path().ends_with(&format!("/api/v1/orders/{id}")),
        "Location {location:?} ({url}) is not the order's resource /api/v1/orders/{id}"
    );
    let order = match world.env.client.order_at(url.as_str()).await {
        Ok(Some(order)) => order,
        Ok(None) => panic!("GET {url} (the Location) answered 404"),
        Err(e) => panic!("the Location: {e}"),
    };
    assert_eq!(order.order_id, id, "GET {url} (the Location) answered another order: {order:?}");
}

#[then(expr = "the order reads back for user {string} at store {string} with the ordered lines and total {amount}")]
async fn reads_back_as_requested(world: &mut SagaWorld, user: String, store: String, total: Amount) {
    let id = world.order_id();
    let order = read_order(world, &id).await;
    let what = format!("GET order {id}");
    assert_eq!(order.order_id, id, "{what}: {order:?}");
    assert_eq!(order.user_id, Some(world.user(&user)), "{what}: not the X-User-Id of the request: {order:?}");
    assert_eq!(order.store_id, Some(format!("{store}-{}", world.tag)), "{what}: not the request's storeId: {order:?}");
    let requested = lines_of(&world.request_json(), true, "the request");
    assert_eq!(lines_of(&order.items, true, &what), requested, "{what}: items are not the request's lines: {order:?}");
    assert_eq!(amount_of(&order.total_amount, &format!("{what}: totalAmount")), total.0, "{what}: {order:?}");
}

#[then(expr = "the payment is for the order, user {string} and amount {amount}")]
async fn payment_matches_order(world: &mut SagaWorld, user: String, total: Amount) {
    let id = world.order_id();
    let found = crate::poll::until(world.deadline(), Duration::from_millis(25), async || {
        let payments = world.payments(&id).await;
        if payments.is_empty() { Err(()) } else { Ok(payments) }
    })
    .await
    .unwrap_or_else(|()| panic!("no payment for order {id} within {:?}{}", world.deadline(), world.evidence(&id)));
    assert_eq!(found.len(), 1, "order {id} has {} payments: {found:?}", found.len());
    let payment = &found[0];
    assert_eq!(payment.order_id, id, "the payment is for another order: {payment:?}");
    assert_eq!(payment.user_id, Some(world.user(&user)), "the payment is not the buyer's: {payment:?}");
    assert!(payment.payment_id.as_deref().is_some_and(|p| !p.is_empty()), "the payment has no paymentId: {payment:?}");
    let created = world.record(SagaTopic::OrderCreated).await.timestamp_ms;
    check_created_at(&payment.created_at, created, world.env.config.fields.clock_skew_ms)
        .unwrap_or_else(|e| panic!("the payment's createdAt {e}: {payment:?}"));
    let amount = amount_of(&payment.amount, "the payment's amount");
    assert_eq!(amount, total.0, "payment {payment:?}");
    let order = read_order(world, &id).await;
    assert_eq!(
        amount,
        amount_of(&order.total_amount, "the order's totalAmount"),
        "the payment's amount is not the order's total: payment {payment:?}, order {order:?}"
    );
}

/// `createdAt` is an RFC 3339 date-time no earlier than the order (`order_ms`, epoch ms) and
/// no later than now, give or take the clock skew allowed (`[fields] clock_skew_ms`).
fn check_created_at(value: &Value, order_ms: i64, skew_ms: i64) -> Result<(), String> {
    let text = value.as_str().ok_or_else(|| format!("is {value}, not an RFC 3339 date-time string"))?;
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("{text:?} is not an RFC 3339 date-time: {e}"))?
        .timestamp_millis();
    let now = saga_contract::now_millis();
    if at < order_ms - skew_ms || at > now + skew_ms {
        return Err(format!("{text} is not between the order ({order_ms} ms) and now ({now} ms), ± {skew_ms} ms"));
    }
    Ok(())
}

#[then(expr = "the order reads back with cancellation reason {string}")]
async fn reads_back_cancellation_reason(world: &mut SagaWorld, reason: String) {
    let id = world.order_id();
    let order = read_order(world, &id).await;
    assert_eq!(order.cancellation_reason.as_deref(), Some(reason.as_str()), "GET order {id}: {order:?}");
}

#[then(
    regex = r#"^the "order.cancelled" event is keyed by the order and carries user "([^"]+)" and the ordered lines$"#
)]
async fn cancelled_carries_lines(world: &mut SagaWorld, user: String) {
    let id = world.order_id();
    let r = world.record(SagaTopic::OrderCancelled).await;
    assert_eq!(r.key.as_deref(), Some(id.as_str()), "order.cancelled is not keyed by the orderId: {}", r.summary());
    let value = r.value.clone().unwrap_or_default();
    assert_eq!(value["userId"], json!(world.user(&user)), "{}", r.summary());
    let requested: Vec<_> = lines_of(&world.request_json(), false, "the request");
    assert_eq!(
        lines_of(&value["items"], false, "order.cancelled"),
        requested,
        "order.cancelled does not carry the order's lines: {}",
        r.summary()
    );
}

#[then(expr = "the {push_kind} push carries the eventId of the order's {topic} event")]
async fn push_names_its_cause(world: &mut SagaWorld, kind: Kind, topic: Topic) {
    let (kind, topic) = (kind.0, topic.0);
    let id = world.order_id();
    let cause = world.record(topic).await;
    let event_id = cause.event_id.clone().unwrap_or_else(|| panic!("{topic} has no eventId: {}", cause.summary()));
    let of_kind = |pushes: &[Push]| pushes.iter().filter(|p| p.kind == kind).cloned().collect::<Vec<_>>();
    let pushes = match world.env.sink.wait_for(&id, world.deadline(), |p| !of_kind(p).is_empty()).await {
        Ok(p) => of_kind(&p),
        Err(_) => panic!("no {kind} push for order {id}{}", world.evidence(&id)),
    };
    for p in pushes {
        assert_eq!(
            p.event_id,
            event_id,
            "the {kind} push must carry the eventId of the {topic} that caused it ({}), it carries {:?}{}",
            cause.summary(),
            p.event_id,
            world.evidence(&id)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{Value, check_created_at};
    use serde_json::json;

    #[test]
    fn created_at_must_be_a_date_time_between_the_order_and_now() {
        let order_ms = 1_790_000_000_000; // 2026-09-21T14:13:20Z
        let at = |value: Value| check_created_at(&value, order_ms, 5000);
        at(json!("2026-09-21T14:13:20.250Z")).expect("just after the order");
        at(json!("2026-09-21T16:13:19+02:00")).expect("an offset, within the skew");
        assert!(at(json!(order_ms)).is_err(), "epoch milliseconds are not a date-time");
        assert!(at(json!("yesterday")).is_err());
        assert!(at(json!("2026-09-21T14:13:14Z")).is_err(), "before the order, beyond the skew");
        assert!(at(json!("2999-01-01T00:00:00Z")).is_err(), "in the future");
    }
}
