//! The catalogue: seeding products through the Product Service's API and reading stock back.

use super::{Product, SagaWorld, money};
use cucumber::{given, then};
use serde_json::json;
use std::time::Duration;

#[given(regex = r#"^the catalogue has product "([^"]+)" priced ([\d.]+) with (\d+) in stock$"#)]
async fn seed_product(world: &mut SagaWorld, alias: String, price: String, stock: i64) {
    let id = format!("{alias}-{}", world.tag);
    let price = money(&price);
    let url = format!("{}/api/v1/products/{id}", world.env.endpoints.product_url);
    let response = world
        .env
        .http
        .put(&url)
        .json(&json!({"name": format!("{alias} (conformance)"), "price": price.to_json(), "stock": stock}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {url} failed: {e}"));
    let status = response.status();
    assert!(status.is_success(), "PUT {url} answered {status}: {}", response.text().await.unwrap_or_default());
    world.products.insert(alias, Product { id, price });
}

/// Reads a product's stock; `None` if the product does not answer 200.
pub(super) async fn stock_of(world: &SagaWorld, product_id: &str) -> Option<i64> {
    let url = format!("{}/api/v1/products/{product_id}", world.env.endpoints.product_url);
    let response = world.env.http.get(&url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<serde_json::Value>().await.ok()?.get("stock")?.as_i64()
}

/// Stock reaches `expected` within the deadline and stays there for the quiet period (a late
/// redelivery must not move it).
#[then(regex = r#"^product "([^"]+)" has (\d+) in stock$"#)]
async fn product_has_stock(world: &mut SagaWorld, alias: String, expected: i64) {
    let product = world.product(&alias);
    let mut last = None;
    let reached = crate::poll::until(world.deadline(), Duration::from_millis(50), async || {
        last = stock_of(world, &product.id).await.or(last);
        if last == Some(expected) { Ok(()) } else { Err(last) }
    })
    .await;
    if let Err(last) = reached {
        panic!("product {alias} ({}) has stock {last:?}, expected {expected}", product.id);
    }
    let quiet_until = tokio::time::Instant::now() + world.env.config.quiet_period();
    while tokio::time::Instant::now() < quiet_until {
        let now = stock_of(world, &product.id).await;
        assert!(now.is_none_or(|s| s == expected), "product {alias} stock moved from {expected} to {now:?}");
        assert!(now.is_none_or(|s| s >= 0), "product {alias} stock is negative: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
