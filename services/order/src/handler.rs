//! The Order Service's event handlers: confirm on `stock.reserved`, cancel (the compensation)
//! on `stock.reservation.failed`. A batch of records runs in one transaction: one statement
//! claims all eventIds and locks the orders, the transitions [`domain::decide`]s run in offset
//! order (so two events for one order in a batch behave as they would one after the other),
//! and one statement writes the new statuses with the events and pushes in the outbox, then
//! one commit — four round trips to PostgreSQL, whatever the batch holds.

use super::domain::{self, Decision, Transition};
use saga_contract::events::{CancellationReason, CancelledOrderItem};
use saga_contract::{
    Money, OrderCancelled, OrderConfirmed, OrderStatus, PushKind, SagaTopic, StockReservationFailed, StockReserved,
    now_millis,
};
use saga_service_kit::claimed_cte;
use saga_service_kit::claims::Claims;
use saga_service_kit::consumer::{HandleError, Handler, Incoming, Outcome};
use saga_service_kit::failpoint;
use saga_service_kit::outbox::{Binds, OutboxTx, PushNotification};
use saga_service_kit::service::Context;
use sqlx::types::Json;
use std::collections::HashMap;
use uuid::Uuid;

pub struct OrderSaga {
    pub context: Context,
}

/// A record of the batch, parsed.
struct Event {
    transition: Transition,
    event_id: String,
    order_id: Uuid,
    /// `stock.reservation.failed`'s failureReason (the order's failure detail).
    failure_reason: Option<String>,
}

fn poison(e: impl std::fmt::Display) -> HandleError {
    HandleError::Poison(e.to_string())
}

fn parse(incoming: &Incoming) -> Result<Event, HandleError> {
    let (transition, event_id, order_id, failure_reason) = match incoming.topic {
        SagaTopic::StockReserved => {
            let e = StockReserved::from_value(&incoming.record.value).map_err(poison)?;
            (Transition::Confirm, e.event_id, e.order_id, None)
        }
        SagaTopic::StockReservationFailed => {
            let e = StockReservationFailed::from_value(&incoming.record.value).map_err(poison)?;
            (Transition::Cancel, e.event_id, e.order_id, Some(e.failure_reason))
        }
        other => return Err(HandleError::Poison(format!("order-service does not consume {other}"))),
    };
    let order_id = Uuid::parse_str(&order_id)
        .map_err(|_| HandleError::Poison(format!("orderId {order_id} is not one of ours")))?;
    Ok(Event { transition, event_id, order_id, failure_reason })
}

/// An order's row as the locking read returns it (a JSON object, the statement's columns).
#[derive(serde::Deserialize)]
struct LockedOrder {
    order_id: Uuid,
    status: String,
    user_id: String,
    total_amount: i64,
    cancellation_reason: Option<String>,
    failure_detail: Option<String>,
}

/// An order's row as the batch sees it: read under lock, then changed in memory.
struct OrderRow {
    status: OrderStatus,
    user_id: String,
    total: i64,
    cancellation_reason: Option<String>,
    failure_detail: Option<String>,
    changed: bool,
}

impl Handler for OrderSaga {
    async fn handle(&self, tx: &mut OutboxTx<'_>, batch: &[Incoming]) -> Result<Vec<Outcome>, HandleError> {
        let events = batch.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        let topics = &self.context.config.topics;
        let claims =
            Claims::new(batch.iter().zip(&events).map(|(i, e)| (e.event_id.as_str(), topics.name(i.topic))).collect());
        // Every order of the batch, locked in id order so two batches touching the same orders
        // cannot deadlock; claimed and locked in one statement.
        let mut ids: Vec<Uuid> = events.iter().map(|e| e.order_id).collect();
        ids.sort();
        ids.dedup();
        let (claimed, Json(rows)): (Vec<String>, Json<Vec<LockedOrder>>) = sqlx::query_as(concat!(
            "WITH ",
            claimed_cte!(),
            ", locked AS MATERIALIZED (SELECT order_id, status, user_id, total_amount, cancellation_reason, failure_detail \
               FROM orders WHERE order_id = ANY($3) ORDER BY order_id FOR UPDATE) \
             SELECT ARRAY(SELECT event_id FROM claimed), \
               (SELECT coalesce(json_agg(locked ORDER BY order_id), '[]') FROM locked)"
        ))
        .bind(claims.event_ids())
        .bind(claims.topics())
        .bind(&ids)
        .fetch_one(tx.conn().await?)
        .await?;
        let fresh = claims.fresh(claimed);
        let mut orders = HashMap::with_capacity(rows.len());
        for LockedOrder { order_id: id, status, user_id, total_amount: total, cancellation_reason, failure_detail } in
            rows
        {
            let status = status.parse::<OrderStatus>().map_err(|unknown| {
                HandleError::Transient(anyhow::anyhow!("order {id}: {unknown}, which this service does not know"))
            })?;
            orders.insert(id, OrderRow { status, user_id, total, cancellation_reason, failure_detail, changed: false });
        }

        // Seeded faults `order::ignore-status`: a transition without its ORDER_CREATED guard;
        // `order::cancel-ignores-status`: the cancel path alone without it.
        let ignore_status = failpoint::active("order::ignore-status");
        let cancel_ignores_status = failpoint::active("order::cancel-ignores-status");
        let mut moved = Vec::new();
        let mut outcomes = Vec::with_capacity(events.len());
        for ((event, fresh), incoming) in events.iter().zip(fresh).zip(batch) {
            if !fresh {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            outcomes.push(Outcome::Processed);
            let order = orders.get_mut(&event.order_id);
            let unguarded = ignore_status || (cancel_ignores_status && event.transition == Transition::Cancel);
            match domain::decide(event.transition, order.as_ref().map(|o| o.status), unguarded) {
                Decision::UnknownOrder => {
                    let what = topics.name(incoming.topic);
                    return Err(HandleError::Poison(format!("{what} for unknown order {}", event.order_id)));
                }
                Decision::Ignore(status) => tracing::warn!(
                    order_id = %event.order_id,
                    status = status.as_str(),
                    "{:?} ignored: order is no longer ORDER_CREATED", event.transition
                ),
                Decision::Move(target) => {
                    let order = order.expect("decide found the order");
                    order.status = target;
                    order.changed = true;
                    if event.transition == Transition::Cancel {
                        order.cancellation_reason = Some("STOCK_UNAVAILABLE".into());
                        order.failure_detail.clone_from(&event.failure_reason);
                    }
                    moved.push(event);
                }
            }
        }

        let changed: Vec<(&Uuid, &OrderRow)> = orders.iter().filter(|(_, o)| o.changed).collect();
        if !changed.is_empty() {
            // Written at commit, in one statement with the outbox rows.
            tx.write_at_commit(
                "new_statuses AS (UPDATE orders o SET status = c.status, cancellation_reason = c.reason, failure_detail = c.detail, updated_at = now() \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS c(order_id, status, reason, detail) \
                 WHERE o.order_id = c.order_id)",
                Binds::default()
                    .bind(changed.iter().map(|(id, _)| **id).collect::<Vec<_>>())
                    .bind(changed.iter().map(|(_, o)| o.status.as_str()).collect::<Vec<_>>())
                    .bind(changed.iter().map(|(_, o)| o.cancellation_reason.clone()).collect::<Vec<_>>())
                    .bind(changed.iter().map(|(_, o)| o.failure_detail.clone()).collect::<Vec<_>>()),
            );
        }
        let mut cancelled_ids: Vec<Uuid> =
            moved.iter().filter(|e| e.transition == Transition::Cancel).map(|e| e.order_id).collect();
        cancelled_ids.sort();
        cancelled_ids.dedup();
        let mut lines: HashMap<Uuid, Vec<CancelledOrderItem>> = HashMap::new();
        if !cancelled_ids.is_empty() {
            let rows: Vec<(Uuid, String, i32)> = sqlx::query_as(
                "SELECT order_id, product_id, quantity FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, line_no",
            )
            .bind(&cancelled_ids)
            .fetch_all(tx.conn().await?)
            .await?;
            for (order_id, product_id, quantity) in rows {
                lines.entry(order_id).or_default().push(CancelledOrderItem { product_id, quantity });
            }
        }

        for event in moved {
            let order = &orders[&event.order_id];
            let now = now_millis();
            let order_id = event.order_id.to_string();
            let user_id = order.user_id.clone();
            let push = match event.transition {
                Transition::Confirm => {
                    let confirmation = OrderConfirmed {
                        event_id: Uuid::new_v4().to_string(),
                        // Seeded fault `order::timestamp-seconds`: epoch seconds where milliseconds are due.
                        event_timestamp: if failpoint::active("order::timestamp-seconds") { now / 1000 } else { now },
                        order_id: order_id.clone(),
                        user_id: user_id.clone(),
                        total_amount: Money(order.total),
                        confirmed_at: now,
                    };
                    let push = notification(
                        user_id,
                        order_id,
                        &confirmation.event_id,
                        PushKind::OrderConfirmed,
                        "주문이 확정되었습니다",
                    );
                    self.context.enqueue(tx, SagaTopic::OrderConfirmed, confirmation).await?;
                    Some(push)
                }
                Transition::Cancel => {
                    let cancellation = OrderCancelled {
                        event_id: Uuid::new_v4().to_string(),
                        event_timestamp: now,
                        order_id: order_id.clone(),
                        user_id: user_id.clone(),
                        items: lines.get(&event.order_id).cloned().unwrap_or_default(),
                        cancellation_reason: CancellationReason::STOCK_UNAVAILABLE,
                        cancelled_at: now,
                    };
                    let push = notification(
                        user_id,
                        order_id,
                        &cancellation.event_id,
                        PushKind::OrderCancelled,
                        "재고 부족으로 주문이 취소되었습니다",
                    );
                    self.context.enqueue(tx, SagaTopic::OrderCancelled, cancellation).await?;
                    // Seeded fault `order::no-cancel-push`: the cancellation push is never sent.
                    (!failpoint::active("order::no-cancel-push")).then_some(push)
                }
            };
            if let Some(push) = push {
                tx.push(&push);
            }
        }
        Ok(outcomes)
    }
}

/// The customer's notification of a transition, tied to the event that announced it.
fn notification(user_id: String, order_id: String, event_id: &str, kind: PushKind, message: &str) -> PushNotification {
    PushNotification { user_id, order_id, kind, message: message.into(), event_id: event_id.into() }
}
