//! # product-service
//!
//! The reference Product Service of the order-creation saga:
//! - `PUT /api/v1/products/{productId}` `{name, price, stock}` and `GET` — the catalogue, also
//!   the port the conformance kit seeds fixtures through;
//! - on `order.created`: in one transaction, lock the order's products (`SELECT … FOR UPDATE`,
//!   in product-id order so concurrent orders cannot deadlock), check every line, and either
//!   reserve all of them (`stock.reserved`) or none (`stock.reservation.failed` with the failed
//!   lines: unknown product, short stock, or a unit price different from the catalogue).
//!
//! Layout: `main.rs` wires the kit to [`api`] (HTTP), [`handler`] (events) and [`domain`]
//! (the decisions, unit-tested there).
//!
//! Run: `KAFKA_BOOTSTRAP_SERVERS=… SCHEMA_REGISTRY_URL=… DATABASE_URL=… product-service`.

mod api;
mod domain;
mod handler;

use saga_contract::SagaTopic;
use saga_service_kit::db::Migration;

const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, description: "products", sql: include_str!("../migrations/0001_products.sql") }];

#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let started = saga_service_kit::service::start("product", 8082, MIGRATIONS).await?;
    let context = started.context.clone();
    saga_service_kit::service::run(
        started,
        vec![SagaTopic::OrderCreated],
        handler::Reservations { context: context.clone() },
        api::routes(context),
    )
    .await
}
