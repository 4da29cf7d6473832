//! Placing orders through the Order Service's API and reading them back.

use super::{Answer, SagaWorld, money};
use cucumber::{then, when};
use regex::Regex;
use serde_json::{Value, json};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

static LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^(\d+) of (unknown product )?"([^"]+)"(?: at ([\d.]+))?$"#).unwrap());

/// "2 of "P1" and 1 of "P2" at 9.99 and 1 of unknown product "X" at 1.00" → order lines.
fn lines(world: &SagaWorld, text: &str) -> Vec<Value> {
    text.split(" and ")
        .map(|part| {
            let c = LINE.captures(part.trim()).unwrap_or_else(|| panic!("cannot read the order line {part:?}"));
            let quantity: i64 = c[1].parse().unwrap();
            let (id, catalogue_price) = if c.get(2).is_some() {
                (format!("{}-{}", &c[3], world.tag), None)
            } else {
                let p = world.product(&c[3]);
                (p.id, Some(p.price))
            };
            let price = c
                .get(4)
                .map(|m| money(m.as_str()))
                .or(catalogue_price)
                .unwrap_or_else(|| panic!("no price for {part:?}"));
            json!({"productId": id, "quantity": quantity, "unitPrice": price.to_json()})
        })
        .collect()
}

/// POSTs an order body; returns the answer with its round-trip time.
pub(super) async fn post_order(world: &SagaWorld, user: Option<&str>, body: reqwest::Body) -> Answer {
    let url = format!("{}/api/v1/orders", world.env.endpoints.order_url);
    let mut request = world.env.http.post(&url).header("content-type", "application/json").body(body);
    if let Some(user) = user {
        request = request.header("X-User-Id", user);
    }
    let started = Instant::now();
    let response = request.send().await.unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = response.text().await.unwrap_or_default();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body, content_type, location, elapsed_ms }
}

/// Places an order and returns its id (panics with the answer if it was not 201).
pub(super) async fn place(world: &SagaWorld, user: &str, store: &str, items: Vec<Value>) -> (String, Answer) {
    let body = json!({"storeId": store, "items": items}).to_string();
    let answer = post_order(world, Some(user), body.into()).await;
    assert_eq!(answer.status, 201, "order intake answered {} {}", answer.status, answer.body);
    let id = answer
        .body
        .get("orderId")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("201 without orderId: {}", answer.body))
        .to_string();
    (id, answer)
}

#[when(regex = r#"^user "([^"]+)" orders (.+) from store "([^"]+)"$"#)]
async fn user_orders(world: &mut SagaWorld, user: String, items: String, store: String) {
    let items = lines(world, &items);
    world.request_items = items.clone();
    let (id, answer) = place(world, &world.user(&user), &format!("{store}-{}", world.tag), items).await;
    world.order = Some(id);
    world.answer = Some(answer);
}

#[when(regex = r#"^(\d+) users each order (\d+) of "([^"]+)" at the same time$"#)]
async fn concurrent_orders(world: &mut SagaWorld, users: usize, quantity: i64, alias: String) {
    let product = world.product(&alias);
    let store = format!("S-{}", world.tag);
    let placing = (0..users).map(|i| {
        let items = vec![json!({"productId": product.id, "quantity": quantity, "unitPrice": product.price.to_json()})];
        let user = world.user(&format!("U{i}"));
        let store = store.clone();
        let world = &*world;
        async move { place(world, &user, &store, items).await.0 }
    });
    world.batch = futures::future::join_all(placing).await;
}

#[then(regex = r#"^the order is accepted with status "([^"]+)" and message "([^"]+)"$"#)]
async fn accepted(world: &mut SagaWorld, status: String, message: String) {
    let answer = world.answer.as_ref().expect("no answer");
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body["status"], json!(status), "body: {}", answer.body);
    assert_eq!(answer.body["message"], json!(message), "body: {}", answer.body);
    assert!(answer.body["orderId"].as_str().is_some_and(|id| !id.is_empty()), "body: {}", answer.body);
}

#[then("the order is accepted within the intake budget")]
async fn accepted_in_budget(world: &mut SagaWorld) {
    let answer = world.answer.as_ref().expect("no answer");
    assert_eq!(answer.status, 201, "{}", answer.body);
    let budget = crate::timing::budget(&world.env.config.timing, "intake");
    // One request is one sample; allow the budget ×5 for a single cold request — the timing
    // feature checks the percentile over many.
    assert!(
        answer.elapsed_ms <= budget * 5.0,
        "intake took {:.1} ms, budget {budget} ms (×5 for a single sample)",
        answer.elapsed_ms
    );
}

/// GET the order; `None` unless 200.
pub(super) async fn read_order(world: &SagaWorld, order_id: &str) -> Option<Value> {
    let url = format!("{}/api/v1/orders/{order_id}", world.env.endpoints.order_url);
    let response = world.env.http.get(&url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

#[then(regex = r#"^the order reads back with status "ORDER_CREATED" or later$"#)]
async fn reads_back(world: &mut SagaWorld) {
    let id = world.order_id();
    let order = read_order(world, &id).await.unwrap_or_else(|| panic!("GET order {id} did not answer 200"));
    let status = order["status"].as_str().unwrap_or_default();
    assert!(
        ["ORDER_CREATED", "ORDER_CONFIRMED", "ORDER_CANCELLED"].contains(&status),
        "order {id} reads back as {order}"
    );
    assert_eq!(order["orderId"], json!(id));
}

/// Waits until the order's status is `expected`; the last status seen is in the message.
pub(super) async fn wait_status(
    world: &SagaWorld,
    order_id: &str,
    expected: &str,
    deadline: Duration,
) -> Result<(), String> {
    crate::poll::until(deadline, Duration::from_millis(25), async || {
        let status =
            read_order(world, order_id).await.map(|order| order["status"].as_str().unwrap_or_default().to_string());
        match status {
            Some(status) if status == expected => Ok(()),
            Some(status) => Err(status),
            None => Err("<no answer>".to_string()),
        }
    })
    .await
}

#[then(regex = r#"^the order becomes "([^"]+)"$"#)]
async fn becomes(world: &mut SagaWorld, status: String) {
    let id = world.order_id();
    if let Err(last) = wait_status(world, &id, &status, world.deadline()).await {
        panic!("order {id} is {last}, not {status}, after {:?}{}", world.deadline(), world.evidence(&id));
    }
}

#[then(regex = r#"^every order ends "([^"]+)"$"#)]
async fn every_order_ends(world: &mut SagaWorld, status: String) {
    for id in &world.batch {
        if let Err(last) = wait_status(world, id, &status, world.deadline()).await {
            panic!("order {id} is {last}, not {status}{}", world.evidence(id));
        }
    }
}

#[then(regex = r#"^(\d+) orders end "([^"]+)" and (\d+) end "([^"]+)"$"#)]
async fn split_outcome(world: &mut SagaWorld, n1: usize, s1: String, n2: usize, s2: String) {
    let settled = crate::poll::until(world.deadline(), Duration::from_millis(100), async || {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for id in &world.batch {
            let status = read_order(world, id)
                .await
                .and_then(|o| o["status"].as_str().map(str::to_string))
                .unwrap_or_else(|| "<unreadable>".into());
            *counts.entry(status).or_default() += 1;
        }
        let done = counts.get(&s1).copied().unwrap_or(0) + counts.get(&s2).copied().unwrap_or(0) == world.batch.len();
        if done { Ok(counts) } else { Err(counts) }
    })
    .await;
    let counts = settled.unwrap_or_else(|counts| counts);
    assert_eq!(counts.get(&s1).copied().unwrap_or(0), n1, "statuses: {counts:?}");
    assert_eq!(counts.get(&s2).copied().unwrap_or(0), n2, "statuses: {counts:?}");
}
