//! The Order Service's reactions: confirm on `stock.reserved`, cancel (the compensation) on
//! `stock.reservation.failed`. Each runs in one transaction with the `eventId` claim, the
//! status change, the next event and the push; a record for an order that is no longer
//! `ORDER_CREATED` changes nothing.

use saga_contract::events::CancellationReason;
use saga_contract::events::CancelledOrderItem;
use saga_contract::{
    Decoded, OrderCancelled, OrderConfirmed, SagaTopic, StockReservationFailed, StockReserved, now_millis,
};
use saga_service_kit::consumer::{HandleError, Handler, Outcome, claim_event};
use saga_service_kit::failpoint;
use saga_service_kit::outbox::{OutboxTx, PushNotification};
use saga_service_kit::service::Context;
use uuid::Uuid;

pub struct OrderSaga {
    pub context: Context,
}

impl Handler for OrderSaga {
    async fn handle(&self, topic: SagaTopic, record: Decoded) -> Result<Outcome, HandleError> {
        match topic {
            SagaTopic::StockReserved => self.confirm(StockReserved::from_value(&record.value).map_err(poison)?).await,
            SagaTopic::StockReservationFailed => {
                self.cancel(StockReservationFailed::from_value(&record.value).map_err(poison)?).await
            }
            other => Err(HandleError::Poison(format!("order-service does not consume {other}"))),
        }
    }
}

fn poison(e: impl std::fmt::Display) -> HandleError {
    HandleError::Poison(e.to_string())
}

/// Seeded fault `order::ignore-status`: a transition without its `ORDER_CREATED` guard (the
/// handler trusts its eventId dedupe alone), so a late event moves a finished order again.
fn ignore_status() -> bool {
    failpoint::active("order::ignore-status")
}

fn order_uuid(order_id: &str) -> Result<Uuid, HandleError> {
    Uuid::parse_str(order_id).map_err(|_| HandleError::Poison(format!("orderId {order_id} is not one of ours")))
}

impl OrderSaga {
    async fn confirm(&self, event: StockReserved) -> Result<Outcome, HandleError> {
        let order_id = order_uuid(&event.order_id)?;
        let mut tx = self.context.begin().await?;
        if !claim_event(tx.conn(), &event.event_id, self.context.config.topics.name(SagaTopic::StockReserved)).await? {
            return Ok(Outcome::Duplicate);
        }
        let confirm = if ignore_status() {
            "UPDATE orders SET status = 'ORDER_CONFIRMED', updated_at = now() WHERE order_id = $1 RETURNING user_id, total_amount"
        } else {
            "UPDATE orders SET status = 'ORDER_CONFIRMED', updated_at = now() WHERE order_id = $1 AND status = 'ORDER_CREATED' RETURNING user_id, total_amount"
        };
        let confirmed: Option<(String, i64)> = sqlx::query_as(confirm).bind(order_id).fetch_optional(tx.conn()).await?;
        let Some((user_id, total)) = confirmed else {
            return self.no_transition(tx, order_id, "stock.reserved").await;
        };
        let now = now_millis();
        let confirmation = OrderConfirmed {
            event_id: Uuid::new_v4().to_string(),
            // Seeded fault `order::timestamp-seconds`: epoch seconds where milliseconds are due.
            event_timestamp: if failpoint::active("order::timestamp-seconds") { now / 1000 } else { now },
            order_id: event.order_id.clone(),
            user_id: user_id.clone(),
            total_amount: saga_contract::Money(total),
            confirmed_at: now,
        };
        let push = PushNotification {
            user_id,
            order_id: event.order_id,
            kind: "ORDER_CONFIRMED".into(),
            message: "주문이 확정되었습니다".into(),
            event_id: confirmation.event_id.clone(),
        };
        self.context.enqueue(&mut tx, SagaTopic::OrderConfirmed, confirmation).await?;
        tx.push(&push).await?;
        tx.commit().await?;
        Ok(Outcome::Processed)
    }

    async fn cancel(&self, event: StockReservationFailed) -> Result<Outcome, HandleError> {
        let order_id = order_uuid(&event.order_id)?;
        let mut tx = self.context.begin().await?;
        if !claim_event(tx.conn(), &event.event_id, self.context.config.topics.name(SagaTopic::StockReservationFailed))
            .await?
        {
            return Ok(Outcome::Duplicate);
        }
        let cancel = if ignore_status() {
            "UPDATE orders SET status = 'ORDER_CANCELLED', cancellation_reason = 'STOCK_UNAVAILABLE', failure_detail = $2, updated_at = now() WHERE order_id = $1 RETURNING user_id"
        } else {
            "UPDATE orders SET status = 'ORDER_CANCELLED', cancellation_reason = 'STOCK_UNAVAILABLE', failure_detail = $2, updated_at = now() \
             WHERE order_id = $1 AND status = 'ORDER_CREATED' RETURNING user_id"
        };
        let cancelled: Option<(String,)> =
            sqlx::query_as(cancel).bind(order_id).bind(&event.failure_reason).fetch_optional(tx.conn()).await?;
        let Some((user_id,)) = cancelled else {
            return self.no_transition(tx, order_id, "stock.reservation.failed").await;
        };
        let items: Vec<(String, i32)> =
            sqlx::query_as("SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY line_no")
                .bind(order_id)
                .fetch_all(tx.conn())
                .await?;
        let now = now_millis();
        let cancellation = OrderCancelled {
            event_id: Uuid::new_v4().to_string(),
            event_timestamp: now,
            order_id: event.order_id.clone(),
            user_id: user_id.clone(),
            items: items
                .into_iter()
                .map(|(product_id, quantity)| CancelledOrderItem { product_id, quantity })
                .collect(),
            cancellation_reason: CancellationReason::STOCK_UNAVAILABLE,
            cancelled_at: now,
        };
        let push = PushNotification {
            user_id,
            order_id: event.order_id,
            kind: "ORDER_CANCELLED".into(),
            message: "재고 부족으로 주문이 취소되었습니다".into(),
            event_id: cancellation.event_id.clone(),
        };
        self.context.enqueue(&mut tx, SagaTopic::OrderCancelled, cancellation).await?;
        if !failpoint::active("order::no-cancel-push") {
            tx.push(&push).await?;
        }
        tx.commit().await?;
        Ok(Outcome::Processed)
    }

    /// The order is unknown or already past `ORDER_CREATED`: record the event as seen and
    /// change nothing. An unknown order is dead-lettered instead — it means a producer
    /// invented an id, which an operator should see.
    async fn no_transition(&self, tx: OutboxTx, order_id: Uuid, what: &str) -> Result<Outcome, HandleError> {
        let status: Option<(String,)> = sqlx::query_as("SELECT status FROM orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.context.pool)
            .await?;
        match status {
            None => Err(HandleError::Poison(format!("{what} for unknown order {order_id}"))),
            Some((status,)) => {
                tracing::warn!(%order_id, %status, "{what} ignored: order is no longer ORDER_CREATED");
                tx.commit().await?;
                Ok(Outcome::Processed)
            }
        }
    }
}
