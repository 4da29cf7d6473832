//! The Payment Service's event handler: on `order.confirmed`, the order's payment in
//! `PAYMENT_WAIT` and the push asking the customer to pay. A batch runs in one transaction:
//! one statement claims the eventIds (the kit's shared claim, [`claimed_cte!`]) and reads which
//! of the batch's orders have a payment already; [`domain::creates_payment`] decides, record by
//! record in offset order, which fresh records create one (one payment per order); one
//! statement writes the payments with their pushes in the outbox; one commit — four round
//! trips to PostgreSQL, whatever the batch holds.

use super::domain::{self, NEW_PAYMENT};
use saga_contract::{OrderConfirmed, SagaTopic};
use saga_service_kit::claimed_cte;
use saga_service_kit::claims::Claims;
use saga_service_kit::consumer::{HandleError, Handler, Incoming, Outcome};
use saga_service_kit::failpoint;
use saga_service_kit::outbox::{Binds, OutboxTx};
use saga_service_kit::service::Context;
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
        let consumed = self.context.config.topics.name(SagaTopic::OrderConfirmed);
        let claims = Claims::new(confirmed.iter().map(|c| (c.event_id.as_str(), consumed)).collect());
        // A second order.confirmed for the same order (another eventId) must not pay twice: the
        // orders paid before. Claimed and read in one statement.
        let order_ids: Vec<&str> = payments.iter().map(|p| p.order_id.as_str()).collect();
        let (claimed, paid_before): (Vec<String>, Vec<String>) = sqlx::query_as(concat!(
            "WITH ",
            claimed_cte!(),
            " SELECT ARRAY(SELECT event_id FROM claimed), \
               ARRAY(SELECT order_id FROM payments WHERE order_id = ANY($3))"
        ))
        .bind(claims.event_ids())
        .bind(claims.topics())
        .bind(&order_ids)
        .fetch_one(tx.conn().await?)
        .await?;
        let fresh = claims.fresh(claimed);
        // Seeded fault `payment::no-unique-order`: no one-payment-per-order check, and the schema
        // without its constraint (dropped at start-up), so the eventId dedupe is the only guard.
        let one_per_order = !failpoint::active("payment::no-unique-order");
        let creates = domain::creates_payment(&payments, &fresh, paid_before, one_per_order);

        let mut created = Vec::new();
        for (((confirmed, payment), fresh), creates) in confirmed.iter().zip(&payments).zip(&fresh).zip(creates) {
            if creates {
                created.push((payment, Uuid::now_v7()));
                // Seeded fault `payment::push-own-event-id`: a fresh id, not the event that caused it.
                let own_id = failpoint::active("payment::push-own-event-id").then(|| Uuid::new_v4().to_string());
                tx.push(&domain::payment_wait_push(confirmed, own_id));
            } else if *fresh {
                tracing::warn!(order_id = %confirmed.order_id, "order.confirmed for an order that already has a payment; ignored");
            }
        }
        if !created.is_empty() {
            // Written at commit, in one statement with the pushes; the table's one-payment-per-
            // order constraint backs the decision up.
            tx.write_at_commit(
                "new_payments AS (INSERT INTO payments (payment_id, order_id, user_id, amount, status) \
                   SELECT p.payment_id, p.order_id, p.user_id, p.amount, $5 \
                   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) \
                   WITH ORDINALITY AS p(payment_id, order_id, user_id, amount, ord) ORDER BY p.ord)",
                Binds::default()
                    .bind(created.iter().map(|(_, id)| *id).collect::<Vec<_>>())
                    .bind(created.iter().map(|(p, _)| p.order_id.as_str()).collect::<Vec<_>>())
                    .bind(created.iter().map(|(p, _)| p.user_id.as_str()).collect::<Vec<_>>())
                    .bind(created.iter().map(|(p, _)| p.amount.0).collect::<Vec<_>>())
                    .bind(NEW_PAYMENT.as_str()),
            );
        }
        Ok(fresh.into_iter().map(|f| if f { Outcome::Processed } else { Outcome::Duplicate }).collect())
    }
}
