//! The catalogue: seeding products through the Product Service's API and reading stock back.

use super::params::Amount;
use super::{Product, SagaWorld};
use crate::client::ProductSpec;
use cucumber::{given, then};
use std::time::Duration;

#[given(expr = "the catalogue has product {string} priced {amount} with {int} in stock")]
async fn seed_product(world: &mut SagaWorld, alias: String, price: Amount, stock: i64) {
    let id = format!("{alias}-{}", world.tag);
    let spec = ProductSpec { name: format!("{alias} (conformance)"), price: price.0, stock };
    if let Err(e) = world.env.client.put_product(&id, &spec).await {
        panic!("{e}");
    }
    world.products.insert(alias, Product { id, price: price.0 });
}

/// Reads a product's stock; `None` if it cannot be read (the message says why).
pub(super) async fn stock_of(world: &SagaWorld, product_id: &str) -> Result<i64, String> {
    match world.env.client.product(product_id).await {
        Ok(Some(product)) => Ok(product.stock),
        Ok(None) => Err(format!("product {product_id} answered 404")),
        Err(e) => Err(e.to_string()),
    }
}

/// Stock reaches `expected` within the deadline and stays there for the quiet period (a late
/// redelivery must not move it).
#[then(expr = "product {string} has {int} in stock")]
async fn product_has_stock(world: &mut SagaWorld, alias: String, expected: i64) {
    let product = world.product(&alias);
    let reached = crate::poll::until(world.deadline(), Duration::from_millis(50), async || {
        match stock_of(world, &product.id).await {
            Ok(stock) if stock == expected => Ok(()),
            Ok(stock) => Err(format!("stock {stock}")),
            Err(e) => Err(e),
        }
    })
    .await;
    if let Err(last) = reached {
        panic!("product {alias} ({}) has {last}, expected stock {expected}", product.id);
    }
    // A read that fails meanwhile proves nothing either way; the stock it does read must hold.
    let held = crate::poll::holds_for(world.env.config.quiet_period(), Duration::from_millis(100), async || {
        match stock_of(world, &product.id).await {
            Ok(stock) if stock != expected => Err(format!("moved from {expected} to {stock}")),
            _ => Ok(()),
        }
    })
    .await;
    if let Err(moved) = held {
        panic!("product {alias} stock {moved}");
    }
}
