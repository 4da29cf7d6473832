//! # order-service
//!
//! The reference Order Service of the order-creation saga:
//! - `POST /api/v1/orders` stores the order (`ORDER_CREATED`) and its `order.created` event in
//!   one transaction and answers 201 at once — it never waits for stock;
//! - `GET /api/v1/orders/{orderId}`;
//! - on `stock.reserved`: `ORDER_CONFIRMED`, `order.confirmed`, push "주문이 확정되었습니다";
//! - on `stock.reservation.failed`: `ORDER_CANCELLED`, `order.cancelled` (STOCK_UNAVAILABLE),
//!   push "재고 부족으로 주문이 취소되었습니다".
//!
//! Layout: `main.rs` wires the kit to [`api`] (HTTP, storing orders through [`intake`]'s
//! group commit), [`handler`] (events) and [`domain`]
//! (the decisions, unit-tested there); [`jam`] is a trial's way to make intake stop answering.
//!
//! Run: `KAFKA_BOOTSTRAP_SERVERS=… SCHEMA_REGISTRY_URL=… DATABASE_URL=… order-service`
//! (or let `saga-conformance stack` start everything).

mod api;
mod domain;
mod handler;
mod intake;
mod jam;

use saga_contract::SagaTopic;
use saga_service_kit::db::Migration;

const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, description: "orders", sql: include_str!("../migrations/0001_orders.sql") }];

#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let started = saga_service_kit::service::start("order", 8081, MIGRATIONS).await?;
    let context = started.context.clone();
    saga_service_kit::service::run(
        started,
        vec![SagaTopic::StockReserved, SagaTopic::StockReservationFailed],
        handler::OrderSaga { context: context.clone() },
        api::routes(context, jam::Jam::from_env()?),
    )
    .await
}
