//! Field meanings of one order: the order read back over HTTP against the request, the 201's
//! `Location`, the payment against the order, `order.cancelled`'s key and lines, and which
//! event a push names. Amounts are compared as decimals (`Money::from_json`: `15000`,
//! `15000.0` and `"15000.00"` are equal; `120.07999999999998` is no amount). Reading state is
//! strict: an HTTP error or a body that is not JSON fails the step, it never reads as "empty".

use super::{SagaWorld, money};
use crate::sink::Push;
use crate::tap::TapRecord;
use cucumber::then;
use saga_contract::Money;
use serde_json::{Value, json};
use std::time::Duration;

/// GETs `url`, which must answer 200 with JSON.
async fn get_json(world: &SagaWorld, url: &str) -> Value {
    let response = world.env.http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_else(|e| panic!("reading the answer of GET {url}: {e}"));
    assert!(status.is_success(), "GET {url} answered {status}: {text}");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("GET {url} answered {status} with a body that is not JSON ({e}): {text}"))
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

impl SagaWorld {
    fn order_url(&self, order_id: &str) -> String {
        format!("{}/api/v1/orders/{order_id}", self.env.endpoints.order_url)
    }

    /// The first record of `topic` for the current order (waits for it).
    async fn order_record(&self, topic: &str) -> TapRecord {
        let id = self.order_id();
        match self.env.tap.wait_for(self.topic(topic), &id, self.deadline()).await {
            Ok(r) => r,
            Err(_) => panic!("no {topic} for order {id} within {:?}{}", self.deadline(), self.evidence(&id)),
        }
    }
}

#[then("the order's Location header points at the order")]
async fn location_points_at_order(world: &mut SagaWorld) {
    let id = world.order_id();
    let answer = world.answer.as_ref().expect("no answer");
    let location =
        answer.location.as_deref().unwrap_or_else(|| panic!("the 201 for order {id} has no Location header"));
    // A relative reference resolves against the request's URL (RFC 9110 §10.2.2).
    let request = reqwest::Url::parse(&format!("{}/api/v1/orders", world.env.endpoints.order_url))
        .expect("the order URL is a URL");
    let url = request.join(location).unwrap_or_else(|e| panic!("Location {location:?} is not a URI reference: {e}"));
    assert!(
        url.path().ends_with(&format!("/api/v1/orders/{id}")),
        "Location {location:?} ({url}) is not the order's resource /api/v1/orders/{id}"
    );
    let order = get_json(world, url.as_str()).await;
    assert_eq!(order["orderId"], json!(id), "GET {url} (the Location) answered another resource: {order}");
}

#[then(
    regex = r#"^the order reads back for user "([^"]+)" at store "([^"]+)" with the ordered lines and total ([\d.]+)$"#
)]
async fn reads_back_as_requested(world: &mut SagaWorld, user: String, store: String, total: String) {
    let id = world.order_id();
    let url = world.order_url(&id);
    let order = get_json(world, &url).await;
    let what = format!("GET {url}");
    assert_eq!(order["orderId"], json!(id), "{what}: {order}");
    assert_eq!(order["userId"], json!(world.user(&user)), "{what}: not the X-User-Id of the request: {order}");
    assert_eq!(order["storeId"], json!(format!("{store}-{}", world.tag)), "{what}: not the request's storeId: {order}");
    let requested = lines_of(&Value::Array(world.request_items.clone()), true, "the request");
    assert_eq!(lines_of(&order["items"], true, &what), requested, "{what}: items are not the request's lines: {order}");
    assert_eq!(amount_of(&order["totalAmount"], &format!("{what}: totalAmount")), money(&total), "{what}: {order}");
}

#[then(regex = r#"^the payment is for the order, user "([^"]+)" and amount ([\d.]+)$"#)]
async fn payment_matches_order(world: &mut SagaWorld, user: String, total: String) {
    let id = world.order_id();
    let url = format!("{}/api/v1/payments?orderId={id}", world.env.endpoints.payment_url);
    let found = crate::poll::until(world.deadline(), Duration::from_millis(25), async || {
        let payments = get_json(world, &url).await;
        let list = payments.as_array().unwrap_or_else(|| panic!("GET {url} answered {payments}, not a list")).clone();
        if list.is_empty() { Err(()) } else { Ok(list) }
    })
    .await
    .unwrap_or_else(|()| panic!("no payment for order {id} within {:?}{}", world.deadline(), world.evidence(&id)));
    assert_eq!(found.len(), 1, "order {id} has {} payments: {found:?}", found.len());
    let payment = &found[0];
    assert_eq!(payment["orderId"], json!(id), "the payment is for another order: {payment}");
    assert_eq!(payment["userId"], json!(world.user(&user)), "the payment is not the buyer's: {payment}");
    let amount = amount_of(&payment["amount"], "the payment's amount");
    assert_eq!(amount, money(&total), "payment {payment}");
    let order_url = world.order_url(&id);
    let order = get_json(world, &order_url).await;
    assert_eq!(
        amount,
        amount_of(&order["totalAmount"], "the order's totalAmount"),
        "the payment's amount is not the order's total: payment {payment}, order {order}"
    );
}

#[then(
    regex = r#"^the "order.cancelled" event is keyed by the order and carries user "([^"]+)" and the ordered lines$"#
)]
async fn cancelled_carries_lines(world: &mut SagaWorld, user: String) {
    let id = world.order_id();
    let r = world.order_record("order.cancelled").await;
    assert_eq!(r.key.as_deref(), Some(id.as_str()), "order.cancelled is not keyed by the orderId: {}", r.summary());
    let value = r.value.clone().unwrap_or_default();
    assert_eq!(value["userId"], json!(world.user(&user)), "{}", r.summary());
    let requested: Vec<_> = lines_of(&Value::Array(world.request_items.clone()), false, "the request");
    assert_eq!(
        lines_of(&value["items"], false, "order.cancelled"),
        requested,
        "order.cancelled does not carry the order's lines: {}",
        r.summary()
    );
}

#[then(regex = r#"^the "([A-Z_]+)" push carries the eventId of the order's "([a-z.]+)" event$"#)]
async fn push_names_its_cause(world: &mut SagaWorld, kind: String, topic: String) {
    let id = world.order_id();
    let cause = world.order_record(&topic).await;
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
