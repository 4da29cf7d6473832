//! The catalogue: seeding products through the Product Service's API and reading stock back.

use super::params::{Aliases, Amount};
use super::{Product, SagaWorld};
use crate::api::ProductSpec;
use cucumber::{given, then};
use std::time::Duration;

#[given(expr = "the catalogue has product {string} priced {amount} with {int} in stock")]
async fn seed_product(world: &mut SagaWorld, alias: String, price: Amount, stock: i64) {
    let id = format!("{alias}-{}", world.tag);
    let spec = ProductSpec { name: format!("{alias} (conformance)"), price: price.0, stock };
    if let Err(e) = world.env.client.put_product(&id, &spec).await {
        panic!("{e}");
    }
    world.products.insert(alias, Product { id, price: price.0, stock });
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
    stocks_hold(world, vec![(alias, expected)]).await;
}

/// Each product's stock is the one it was seeded with, and stays so for the quiet period.
#[then(expr = "products {aliases} keep their stock")]
async fn products_keep_stock(world: &mut SagaWorld, aliases: Aliases) {
    let seeded = aliases.0.into_iter().map(|alias| {
        let stock = world.product(&alias).stock;
        (alias, stock)
    });
    let seeded = seeded.collect();
    stocks_hold(world, seeded).await;
}

/// Every product's stock reaches what `expected` says within the deadline, then holds for the
/// quiet period.
async fn stocks_hold(world: &SagaWorld, expected: Vec<(String, i64)>) {
    let products: Vec<(String, String, i64)> =
        expected.into_iter().map(|(alias, stock)| (world.product(&alias).id, alias, stock)).collect();
    // `Ok` when every stock read is the expected one; a read that fails counts as "not yet".
    let look = async |strict: bool| {
        for (id, alias, expected) in &products {
            match stock_of(world, id).await {
                Ok(stock) if stock == *expected => {}
                Ok(stock) => return Err(format!("product {alias} ({id}) has stock {stock}, expected {expected}")),
                // A read that fails while holding proves nothing either way.
                Err(_) if !strict => {}
                Err(e) => return Err(format!("product {alias} ({id}): {e}")),
            }
        }
        Ok(())
    };
    if let Err(last) = crate::poll::until(world.deadline(), Duration::from_millis(50), async || look(true).await).await
    {
        panic!("{last}");
    }
    let quiet = world.env.config.quiet_period();
    if let Err(moved) = crate::poll::holds_for(quiet, Duration::from_millis(100), async || look(false).await).await {
        panic!("stock moved: {moved}");
    }
}
