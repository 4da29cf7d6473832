//! # payment-service
//!
//! The reference Payment Service of the order-creation saga: on `order.confirmed` it creates
//! the order's payment in `PAYMENT_WAIT` (the saga's final state) and sends the push
//! "결제를 진행해주세요"; `GET /api/v1/payments?orderId=…` lists an order's payments.
//!
//! Layout: `main.rs` wires the kit to [`api`] (HTTP), [`handler`] (events) and [`domain`]
//! (the decisions, unit-tested there).
//!
//! Run: `KAFKA_BOOTSTRAP_SERVERS=… SCHEMA_REGISTRY_URL=… DATABASE_URL=… payment-service`.

mod api;
mod domain;
mod handler;

use saga_contract::SagaTopic;
use saga_service_kit::db::Migration;
use saga_service_kit::failpoint;

const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, description: "payments", sql: include_str!("../migrations/0001_payments.sql") }];

#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let started = saga_service_kit::service::start("payment", 8083, MIGRATIONS).await?;
    let context = started.context.clone();
    if failpoint::active("payment::no-unique-order") {
        // Seeded fault: the schema without its one-payment-per-order constraint, so the eventId
        // dedupe is the only guard.
        sqlx::query("ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_order_id_key")
            .execute(&context.pool)
            .await?;
    }
    let routes = api::routes(context.clone());
    saga_service_kit::service::run(started, vec![SagaTopic::OrderConfirmed], handler::Payments { context }, routes)
        .await
}
