//! Stock reservation for `order.created`: all lines or none, never negative stock.

use saga_contract::events::{FailedItem, ReservedItem};
use saga_contract::{Decoded, Money, OrderCreated, SagaTopic, StockReservationFailed, StockReserved, now_millis};
use saga_service_kit::consumer::{HandleError, Handler, Outcome, claim_event};
use saga_service_kit::failpoint;
use saga_service_kit::service::Context;
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct Reservations {
    pub context: Context,
}

impl Handler for Reservations {
    async fn handle(&self, topic: SagaTopic, record: Decoded) -> Result<Outcome, HandleError> {
        match topic {
            SagaTopic::OrderCreated => {
                self.reserve(OrderCreated::from_value(&record.value).map_err(|e| HandleError::Poison(e.to_string()))?)
                    .await
            }
            other => Err(HandleError::Poison(format!("product-service does not consume {other}"))),
        }
    }
}

/// One product's demand in an order (lines naming the same product are added up).
struct Demand {
    quantity: i64,
    unit_price: Money,
}

/// Why a line failed, in the order a reader should see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    ProductNotFound,
    PriceMismatch,
    InsufficientStock,
    InvalidQuantity,
}

impl Failure {
    fn code(self) -> &'static str {
        match self {
            Failure::ProductNotFound => "PRODUCT_NOT_FOUND",
            Failure::PriceMismatch => "PRICE_MISMATCH",
            Failure::InsufficientStock => "INSUFFICIENT_STOCK",
            Failure::InvalidQuantity => "INVALID_QUANTITY",
        }
    }
}

impl Reservations {
    async fn reserve(&self, order: OrderCreated) -> Result<Outcome, HandleError> {
        let topics = &self.context.config.topics;
        let mut tx = self.context.begin().await?;
        if !claim_event(tx.conn(), &order.event_id, topics.name(SagaTopic::OrderCreated)).await? {
            return Ok(Outcome::Duplicate);
        }
        // A second order.created for the same order (another eventId) must not reserve twice.
        let already: Option<(String,)> = sqlx::query_as("SELECT order_id FROM reservations WHERE order_id = $1")
            .bind(&order.order_id)
            .fetch_optional(tx.conn())
            .await?;
        if already.is_some() {
            tracing::warn!(order_id = %order.order_id, "order.created for an order already reserved; ignored");
            tx.commit().await?;
            return Ok(Outcome::Processed);
        }

        let mut demand: BTreeMap<String, Demand> = BTreeMap::new();
        let mut failures: BTreeMap<String, Failure> = BTreeMap::new();
        for item in &order.items {
            let entry =
                demand.entry(item.product_id.clone()).or_insert(Demand { quantity: 0, unit_price: item.unit_price });
            entry.quantity += i64::from(item.quantity);
            if item.quantity <= 0 {
                failures.insert(item.product_id.clone(), Failure::InvalidQuantity);
            }
            if entry.unit_price != item.unit_price {
                failures.insert(item.product_id.clone(), Failure::PriceMismatch);
            }
        }
        // BTreeMap keys are sorted: locks are always taken in product-id order.
        let ids: Vec<&String> = demand.keys().collect();
        // Seeded fault `product::lost-update`: read without the row lock, write back what was read.
        let lost_update = failpoint::active("product::lost-update");
        let select = if lost_update {
            "SELECT product_id, price, stock FROM products WHERE product_id = ANY($1) ORDER BY product_id"
        } else {
            "SELECT product_id, price, stock FROM products WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE"
        };
        let rows: Vec<(String, i64, i32)> = sqlx::query_as(select).bind(&ids).fetch_all(tx.conn()).await?;
        let catalogue: BTreeMap<String, (Money, i32)> =
            rows.into_iter().map(|(id, price, stock)| (id, (Money(price), stock))).collect();

        let mut stock_seen: BTreeMap<String, i32> = BTreeMap::new();
        for (product_id, wanted) in &demand {
            let Some((price, stock)) = catalogue.get(product_id) else {
                failures.insert(product_id.clone(), Failure::ProductNotFound);
                stock_seen.insert(product_id.clone(), 0);
                continue;
            };
            stock_seen.insert(product_id.clone(), *stock);
            if *price != wanted.unit_price && !failpoint::active("product::skip-price-check") {
                failures.entry(product_id.clone()).or_insert(Failure::PriceMismatch);
            } else if i64::from(*stock) < wanted.quantity {
                failures.entry(product_id.clone()).or_insert(Failure::InsufficientStock);
            }
        }

        let now = now_millis();
        if failures.is_empty() {
            let mut reserved = Vec::new();
            for (product_id, wanted) in &demand {
                let quantity = wanted.quantity as i32; // ≤ stock, so it fits
                let (left,): (i32,) = if lost_update {
                    // The stock it read (stale by now, maybe) is written back, less the quantity.
                    failpoint::stall("product::lost-update").await;
                    sqlx::query_as("UPDATE products SET stock = $3 - $2, updated_at = now() WHERE product_id = $1 RETURNING stock").bind(product_id).bind(quantity).bind(stock_seen[product_id])
                } else {
                    sqlx::query_as("UPDATE products SET stock = stock - $2, updated_at = now() WHERE product_id = $1 RETURNING stock").bind(product_id).bind(quantity)
                }
                .fetch_one(tx.conn())
                .await?;
                // Seeded fault `product::stock-before-reserve`: reports the stock it read, not what is left.
                let reported =
                    if failpoint::active("product::stock-before-reserve") { stock_seen[product_id] } else { left };
                reserved.push(ReservedItem { product_id: product_id.clone(), quantity, reserved_stock: reported });
            }
            let items = serde_json::to_value(
                reserved
                    .iter()
                    .map(|r| serde_json::json!({"productId": r.product_id, "quantity": r.quantity}))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default();
            sqlx::query("INSERT INTO reservations (order_id, items) VALUES ($1, $2)")
                .bind(&order.order_id)
                .bind(items)
                .execute(tx.conn())
                .await?;
            let event = StockReserved {
                event_id: Uuid::new_v4().to_string(),
                event_timestamp: now,
                order_id: order.order_id.clone(),
                reserved_items: reserved,
                reserved_at: now,
            };
            self.context.enqueue(&mut tx, SagaTopic::StockReserved, event).await?;
        } else {
            let failed_items = failures
                .keys()
                .map(|id| FailedItem {
                    product_id: id.clone(),
                    requested_quantity: demand[id].quantity.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
                    available_stock: stock_seen.get(id).copied().unwrap_or(0),
                })
                .collect();
            let mut codes: Vec<Failure> = failures.values().copied().collect();
            codes.sort();
            codes.dedup();
            let reason = codes.iter().map(|c| c.code()).collect::<Vec<_>>().join(",");
            tracing::info!(order_id = %order.order_id, %reason, "reservation failed");
            let event = StockReservationFailed {
                event_id: Uuid::new_v4().to_string(),
                event_timestamp: now,
                order_id: order.order_id.clone(),
                failed_items,
                failure_reason: reason,
                failed_at: now,
            };
            self.context.enqueue(&mut tx, SagaTopic::StockReservationFailed, event).await?;
        }
        tx.commit().await?;
        Ok(Outcome::Processed)
    }
}
