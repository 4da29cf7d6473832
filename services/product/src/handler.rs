//! The Product Service's event handler: stock reservation for `order.created`. A batch of
//! orders runs in one transaction: one claim of all eventIds, one read of the orders already
//! reserved, one lock of every product the batch names (`FOR UPDATE` in product-id order, the
//! one global order that keeps concurrent batches from deadlocking), then order by order, in
//! offset order, [`domain::reserve`] decides all lines or none against the stock left by the
//! orders before it; one write of the new stock, one of the reservations, the events in the
//! outbox, one commit.

use super::domain::{self, Catalogue, Decision, Stock};
use saga_contract::events::ReservedItem;
use saga_contract::{Money, OrderCreated, SagaTopic, StockReservationFailed, StockReserved, now_millis};
use saga_service_kit::consumer::{HandleError, Handler, Incoming, Outcome, claim_events};
use saga_service_kit::failpoint;
use saga_service_kit::outbox::OutboxTx;
use saga_service_kit::service::Context;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;

pub struct Reservations {
    pub context: Context,
}

fn parse(incoming: &Incoming) -> Result<OrderCreated, HandleError> {
    match incoming.topic {
        SagaTopic::OrderCreated => {
            OrderCreated::from_value(&incoming.record.value).map_err(|e| HandleError::Poison(e.to_string()))
        }
        other => Err(HandleError::Poison(format!("product-service does not consume {other}"))),
    }
}

impl Handler for Reservations {
    async fn handle(&self, tx: &mut OutboxTx<'_>, batch: &[Incoming]) -> Result<Vec<Outcome>, HandleError> {
        let orders = batch.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        let consumed = self.context.config.topics.name(SagaTopic::OrderCreated);
        let claims: Vec<(&str, &str)> = orders.iter().map(|o| (o.event_id.as_str(), consumed)).collect();
        let fresh = claim_events(tx.conn(), &claims).await?;
        let fresh_orders: Vec<&OrderCreated> = orders.iter().zip(&fresh).filter(|(_, f)| **f).map(|(o, _)| o).collect();

        // A second order.created for the same order (another eventId) must not reserve twice.
        let order_ids: Vec<&str> = fresh_orders.iter().map(|o| o.order_id.as_str()).collect();
        let reserved_before: Vec<(String,)> =
            sqlx::query_as("SELECT order_id FROM reservations WHERE order_id = ANY($1)")
                .bind(&order_ids)
                .fetch_all(tx.conn())
                .await?;
        let mut reserved_orders: HashSet<String> = reserved_before.into_iter().map(|(id,)| id).collect();

        // BTreeSet: every product of the batch, locked in product-id order.
        let product_ids: BTreeSet<&str> =
            fresh_orders.iter().flat_map(|o| o.items.iter().map(|i| i.product_id.as_str())).collect();
        let product_ids: Vec<&str> = product_ids.into_iter().collect();
        // Seeded fault `product::lost-update`: read without the row lock, write back what was read.
        let lost_update = failpoint::active("product::lost-update");
        let select = if lost_update {
            "SELECT product_id, price, stock FROM products WHERE product_id = ANY($1) ORDER BY product_id"
        } else {
            "SELECT product_id, price, stock FROM products WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE"
        };
        let rows: Vec<(String, i64, i32)> = sqlx::query_as(select).bind(&product_ids).fetch_all(tx.conn()).await?;
        let mut catalogue: Catalogue =
            rows.into_iter().map(|(id, price, stock)| (id, Stock { price: Money(price), stock })).collect();
        let read = catalogue.clone();

        // Seeded fault `product::skip-price-check`: the client's unitPrice is trusted.
        let check_price = !failpoint::active("product::skip-price-check");
        let mut reservations: Vec<(String, serde_json::Value)> = Vec::new();
        for order in fresh_orders {
            if !reserved_orders.insert(order.order_id.clone()) {
                tracing::warn!(order_id = %order.order_id, "order.created for an order already reserved; ignored");
                continue;
            }
            let now = now_millis();
            match domain::reserve(&order.items, &mut catalogue, check_price) {
                Decision::Reserve(reserved) => {
                    let lines: Vec<_> = reserved
                        .iter()
                        .map(|r| serde_json::json!({"productId": r.product_id, "quantity": r.quantity}))
                        .collect();
                    reservations.push((order.order_id.clone(), serde_json::Value::Array(lines)));
                    // Seeded fault `product::stock-before-reserve`: reports the stock it read, not what is left.
                    let stock_before_reserve = failpoint::active("product::stock-before-reserve");
                    let event = StockReserved {
                        event_id: Uuid::new_v4().to_string(),
                        event_timestamp: now,
                        order_id: order.order_id.clone(),
                        reserved_items: reserved
                            .into_iter()
                            .map(|r| ReservedItem {
                                reserved_stock: if stock_before_reserve { r.stock_before } else { r.stock_left },
                                product_id: r.product_id,
                                quantity: r.quantity,
                            })
                            .collect(),
                        reserved_at: now,
                    };
                    self.context.enqueue(tx, SagaTopic::StockReserved, event).await?;
                }
                Decision::Refuse { failed, reason } => {
                    tracing::info!(order_id = %order.order_id, %reason, "reservation failed");
                    reserved_orders.remove(&order.order_id);
                    let event = StockReservationFailed {
                        event_id: Uuid::new_v4().to_string(),
                        event_timestamp: now,
                        order_id: order.order_id.clone(),
                        failed_items: failed,
                        failure_reason: reason,
                        failed_at: now,
                    };
                    self.context.enqueue(tx, SagaTopic::StockReservationFailed, event).await?;
                }
            }
        }

        let changed: BTreeMap<&String, i32> = catalogue
            .iter()
            .filter(|(id, entry)| read[*id].stock != entry.stock)
            .map(|(id, e)| (id, e.stock))
            .collect();
        if !changed.is_empty() {
            if lost_update {
                // Widens the window between the unlocked read and the write-back.
                failpoint::stall("product::lost-update").await;
            }
            // Absolute values: under the lock they are exactly what the batch left; without
            // it (the seeded fault) they overwrite whatever others reserved meanwhile.
            sqlx::query(
                "UPDATE products p SET stock = c.stock, updated_at = now() \
                 FROM unnest($1::text[], $2::int[]) AS c(product_id, stock) WHERE p.product_id = c.product_id",
            )
            .bind(changed.keys().map(|id| id.as_str()).collect::<Vec<_>>())
            .bind(changed.values().copied().collect::<Vec<_>>())
            .execute(tx.conn())
            .await?;
        }
        if !reservations.is_empty() {
            sqlx::query("INSERT INTO reservations (order_id, items) SELECT * FROM unnest($1::text[], $2::jsonb[])")
                .bind(reservations.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
                .bind(reservations.into_iter().map(|(_, items)| items).collect::<Vec<_>>())
                .execute(tx.conn())
                .await?;
        }
        Ok(fresh.into_iter().map(|f| if f { Outcome::Processed } else { Outcome::Duplicate }).collect())
    }
}
