//! The Product Service's event handler: stock reservation for `order.created`. A batch of
//! orders runs in one transaction: one statement claims all eventIds, reads which orders were
//! reserved before and locks every product the batch names (`FOR UPDATE` in product-id order,
//! the one global order that keeps concurrent batches from deadlocking); then order by order,
//! in offset order, [`domain::reserve`] decides all lines or none against the stock left by
//! the orders before it; one statement writes the new stock, the reservations and the events
//! in the outbox; one commit — four round trips to PostgreSQL, whatever the batch holds.

use super::domain::{self, Catalogue, Decision, Stock};
use saga_contract::events::ReservedItem;
use saga_contract::{Money, OrderCreated, SagaTopic, StockReservationFailed, StockReserved, now_millis};
use saga_service_kit::claimed_cte;
use saga_service_kit::claims::Claims;
use saga_service_kit::consumer::{HandleError, Handler, Incoming, Outcome};
use saga_service_kit::failpoint;
use saga_service_kit::outbox::{Binds, OutboxTx};
use saga_service_kit::service::Context;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;

/// The first statement: claims the batch's eventIds, and returns them with the batch's orders
/// (`$3`) reserved before and the products it names (`$4`) as three arrays in product-id
/// order, locked (`$lock` = `" FOR UPDATE"`; the seeded fault reads without the lock).
macro_rules! claim_read_lock {
    ($lock:literal) => {
        concat!(
            "WITH ",
            claimed_cte!(),
            ", locked AS MATERIALIZED (SELECT product_id, price, stock FROM products \
               WHERE product_id = ANY($4) ORDER BY product_id",
            $lock,
            ") SELECT ARRAY(SELECT event_id FROM claimed), \
               ARRAY(SELECT order_id FROM reservations WHERE order_id = ANY($3)), \
               ARRAY(SELECT product_id FROM locked ORDER BY product_id), \
               ARRAY(SELECT price FROM locked ORDER BY product_id), \
               ARRAY(SELECT stock FROM locked ORDER BY product_id)"
        )
    };
}

/// The columns of [`claim_read_lock!`]'s statement.
type ClaimedReservedProducts = (Vec<String>, Vec<String>, Vec<String>, Vec<i64>, Vec<i32>);

/// Seeded fault `product::unordered-locks`: the batch's products locked one row at a time in
/// the order the orders name them, with `pause` between, so a batch naming A then B and
/// another naming B then A deadlock; PostgreSQL aborts one of them (SQLSTATE 40P01), which
/// this takes for bad data: poison, dead-lettered instead of retried.
async fn lock_in_request_order(
    tx: &mut OutboxTx<'_>,
    orders: &[OrderCreated],
    pause: std::time::Duration,
) -> Result<(), HandleError> {
    let mut in_request_order: Vec<&str> = Vec::new();
    for item in orders.iter().flat_map(|o| &o.items) {
        if !in_request_order.contains(&item.product_id.as_str()) {
            in_request_order.push(&item.product_id);
        }
    }
    for product_id in in_request_order {
        let lock = sqlx::query("SELECT 1 FROM products WHERE product_id = $1 FOR UPDATE")
            .bind(product_id)
            .execute(tx.conn().await?)
            .await;
        match lock {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40P01") => {
                return Err(HandleError::Poison(format!("deadlock locking {product_id}: {e}")));
            }
            other => other.map(drop)?,
        }
        tokio::time::sleep(pause).await;
    }
    Ok(())
}

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
        let claims = Claims::new(orders.iter().map(|o| (o.event_id.as_str(), consumed)).collect());
        // A second order.created for the same order (another eventId) must not reserve twice:
        // the orders reserved before. BTreeSet: every product of the batch, locked in
        // product-id order. Claimed, read and locked in one statement.
        let order_ids: Vec<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
        let product_ids: BTreeSet<&str> =
            orders.iter().flat_map(|o| o.items.iter().map(|i| i.product_id.as_str())).collect();
        let product_ids: Vec<&str> = product_ids.into_iter().collect();
        // Seeded fault `product::unordered-locks`: see `lock_in_request_order`.
        if let Some(pause) = failpoint::delay("product::unordered-locks") {
            lock_in_request_order(tx, &orders, pause).await?;
        }
        // Seeded fault `product::lost-update`: read without the row lock, write back what was read.
        let lost_update = failpoint::active("product::lost-update");
        let statement = if lost_update { claim_read_lock!("") } else { claim_read_lock!(" FOR UPDATE") };
        let (claimed, reserved_before, ids, prices, stocks): ClaimedReservedProducts = sqlx::query_as(statement)
            .bind(claims.event_ids())
            .bind(claims.topics())
            .bind(&order_ids)
            .bind(&product_ids)
            .fetch_one(tx.conn().await?)
            .await?;
        let fresh = claims.fresh(claimed);
        let fresh_orders: Vec<&OrderCreated> = orders.iter().zip(&fresh).filter(|(_, f)| **f).map(|(o, _)| o).collect();
        let mut reserved_orders: HashSet<String> = reserved_before.into_iter().collect();
        let mut catalogue: Catalogue = ids
            .into_iter()
            .zip(prices.into_iter().zip(stocks))
            .map(|(id, (price, stock))| (id, Stock { price: Money(price), stock }))
            .collect();
        let read = catalogue.clone();

        // Seeded faults `product::skip-price-check` (the client's unitPrice is trusted),
        // `product::keep-good-lines`, `product::per-line-stock-check` (see `domain::Rules`).
        let rules = domain::Rules {
            check_price: !failpoint::active("product::skip-price-check"),
            all_or_none: !failpoint::active("product::keep-good-lines"),
            add_up_lines: !failpoint::active("product::per-line-stock-check"),
        };
        let mut reservations: Vec<(String, serde_json::Value)> = Vec::new();
        for order in fresh_orders {
            if !reserved_orders.insert(order.order_id.clone()) {
                tracing::warn!(order_id = %order.order_id, "order.created for an order already reserved; ignored");
                continue;
            }
            let now = now_millis();
            match domain::reserve(&order.items, &mut catalogue, rules) {
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
        if lost_update && !changed.is_empty() {
            // Widens the window between the unlocked read and the write-back.
            failpoint::stall("product::lost-update").await;
        }
        if !changed.is_empty() || !reservations.is_empty() {
            // Absolute values: under the lock they are exactly what the batch left; without
            // it (the seeded fault) they overwrite whatever others reserved meanwhile. Written
            // at commit, in one statement with the outbox rows.
            tx.write_at_commit(
                "new_stock AS (UPDATE products p SET stock = c.stock, updated_at = now() \
                   FROM unnest($1::text[], $2::int[]) AS c(product_id, stock) WHERE p.product_id = c.product_id), \
                 new_reservations AS (INSERT INTO reservations (order_id, items) SELECT * FROM unnest($3::text[], $4::jsonb[]))",
                Binds::default()
                    .bind(changed.keys().map(|id| id.as_str()).collect::<Vec<_>>())
                    .bind(changed.values().copied().collect::<Vec<_>>())
                    .bind(reservations.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
                    .bind(reservations.into_iter().map(|(_, items)| items).collect::<Vec<_>>()),
            );
        }
        Ok(fresh.into_iter().map(|f| if f { Outcome::Processed } else { Outcome::Duplicate }).collect())
    }
}
