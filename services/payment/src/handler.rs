//! The Payment Service's event handler: on `order.confirmed`, the order's payment in
//! `PAYMENT_WAIT` and the push asking the customer to pay. A batch runs as one statement and
//! one commit: the eventIds are claimed and the payments created together (a data-modifying
//! CTE; only records whose claim is new create a payment, and one payment per order is the
//! table's constraint), then a push for each payment that was created.

use super::domain::{self, NEW_PAYMENT};
use saga_contract::{OrderConfirmed, SagaTopic};
use saga_service_kit::consumer::{HandleError, Handler, Incoming, Outcome};
use saga_service_kit::failpoint;
use saga_service_kit::outbox::OutboxTx;
use saga_service_kit::service::Context;
use std::collections::HashSet;
use uuid::Uuid;

pub struct Payments {
    pub context: Context,
}

fn parse(incoming: &Incoming) -> Result<OrderConfirmed, HandleError> {
    if incoming.topic != SagaTopic::OrderConfirmed {
        return Err(HandleError::Poison(format!("payment-service does not consume {}", incoming.topic)));
    }
    OrderConfirmed::from_value(&incoming.record.value).map_err(|e| HandleError::Poison(e.to_string()))
}

impl Handler for Payments {
    async fn handle(&self, tx: &mut OutboxTx<'_>, batch: &[Incoming]) -> Result<Vec<Outcome>, HandleError> {
        let confirmed = batch.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        let payments =
            confirmed.iter().map(domain::payment_for).collect::<Result<Vec<_>, _>>().map_err(HandleError::Poison)?;
        // A repeat of an eventId within the batch is a duplicate like one already in the table.
        let mut seen = HashSet::new();
        let first: Vec<bool> = confirmed.iter().map(|c| seen.insert(c.event_id.as_str())).collect();
        let rows: Vec<(&OrderConfirmed, &domain::NewPayment, Uuid)> = confirmed
            .iter()
            .zip(&payments)
            .zip(&first)
            .filter(|(_, first)| **first)
            .map(|((c, p), _)| (c, p, Uuid::now_v7()))
            .collect();
        // Seeded fault `payment::no-unique-order`: the schema lacks the one-payment-per-order
        // constraint (dropped at start-up), so the insert cannot name it.
        let on_conflict =
            if failpoint::active("payment::no-unique-order") { "" } else { "ON CONFLICT (order_id) DO NOTHING" };
        let statement = format!(
            "WITH batch AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bigint[]) \
                 WITH ORDINALITY AS b(event_id, payment_id, order_id, user_id, amount, ord)), \
             claimed AS (INSERT INTO processed_events (event_id, topic) SELECT event_id, $6 FROM batch \
                 ON CONFLICT DO NOTHING RETURNING event_id), \
             created AS (INSERT INTO payments (payment_id, order_id, user_id, amount, status) \
                 SELECT b.payment_id, b.order_id, b.user_id, b.amount, $7 FROM batch b JOIN claimed USING (event_id) \
                 ORDER BY b.ord {on_conflict} RETURNING payment_id) \
             SELECT ARRAY(SELECT event_id FROM claimed), ARRAY(SELECT payment_id FROM created)"
        );
        let (claimed, created): (Vec<String>, Vec<Uuid>) = sqlx::query_as(sqlx::AssertSqlSafe(statement))
            .bind(rows.iter().map(|(c, _, _)| c.event_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, _, id)| *id).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, p, _)| p.order_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, p, _)| p.user_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, p, _)| p.amount.0).collect::<Vec<_>>())
            .bind(self.context.config.topics.name(SagaTopic::OrderConfirmed))
            .bind(NEW_PAYMENT.as_str())
            .fetch_one(tx.conn().await?)
            .await?;
        let created: HashSet<Uuid> = created.into_iter().collect();
        for (confirmed, _, payment_id) in &rows {
            if created.contains(payment_id) {
                // Seeded fault `payment::push-own-event-id`: a fresh id, not the event that caused it.
                let own_id = failpoint::active("payment::push-own-event-id").then(|| Uuid::new_v4().to_string());
                tx.push(&domain::payment_wait_push(confirmed, own_id));
            } else if claimed.contains(&confirmed.event_id) {
                tracing::warn!(order_id = %confirmed.order_id, "order.confirmed for an order that already has a payment; ignored");
            }
        }
        let claimed: HashSet<String> = claimed.into_iter().collect();
        Ok(confirmed
            .iter()
            .zip(first)
            .map(
                |(c, first)| {
                    if first && claimed.contains(&c.event_id) { Outcome::Processed } else { Outcome::Duplicate }
                },
            )
            .collect())
    }
}
