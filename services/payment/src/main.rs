//! # payment-service
//!
//! The reference Payment Service of the order-creation saga: on `order.confirmed` it creates
//! the order's payment in `PAYMENT_WAIT` (the saga's final state) and sends the push
//! "결제를 진행해주세요"; `GET /api/v1/payments?orderId=…` lists an order's payments.
//!
//! Run: `KAFKA_BOOTSTRAP_SERVERS=… SCHEMA_REGISTRY_URL=… DATABASE_URL=… payment-service`.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use saga_contract::{Decoded, Money, OrderConfirmed, SagaTopic};
use saga_service_kit::consumer::{HandleError, Handler, Outcome, claim_event};
use saga_service_kit::failpoint;
use saga_service_kit::http::Problem;
use saga_service_kit::outbox::PushNotification;
use saga_service_kit::service::Context;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let started = saga_service_kit::service::start("payment", 8083, &MIGRATIONS).await?;
    let context = started.context.clone();
    if failpoint::active("payment::no-unique-order") {
        // Seeded fault: the schema without its one-payment-per-order constraint, so the eventId
        // dedupe is the only guard.
        sqlx::query("ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_order_id_key")
            .execute(&context.pool)
            .await?;
    }
    let routes = Router::new().route("/api/v1/payments", get(list_payments)).with_state(context.clone());
    saga_service_kit::service::run(started, vec![SagaTopic::OrderConfirmed], Payments { context }, routes).await
}

struct Payments {
    context: Context,
}

impl Handler for Payments {
    async fn handle(&self, topic: SagaTopic, record: Decoded) -> Result<Outcome, HandleError> {
        if topic != SagaTopic::OrderConfirmed {
            return Err(HandleError::Poison(format!("payment-service does not consume {topic}")));
        }
        let confirmed = OrderConfirmed::from_value(&record.value).map_err(|e| HandleError::Poison(e.to_string()))?;
        let mut tx = self.context.begin().await?;
        if !claim_event(tx.conn(), &confirmed.event_id, self.context.config.topics.name(SagaTopic::OrderConfirmed))
            .await?
        {
            return Ok(Outcome::Duplicate);
        }
        let insert = if failpoint::active("payment::no-unique-order") {
            "INSERT INTO payments (payment_id, order_id, user_id, amount, status) VALUES ($1, $2, $3, $4, 'PAYMENT_WAIT')"
        } else {
            "INSERT INTO payments (payment_id, order_id, user_id, amount, status) VALUES ($1, $2, $3, $4, 'PAYMENT_WAIT') ON CONFLICT (order_id) DO NOTHING"
        };
        let created = sqlx::query(insert)
            .bind(Uuid::now_v7())
            .bind(&confirmed.order_id)
            .bind(&confirmed.user_id)
            .bind(confirmed.total_amount.0)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if created == 1 {
            let push = PushNotification {
                user_id: confirmed.user_id.clone(),
                order_id: confirmed.order_id.clone(),
                kind: "PAYMENT_WAIT".into(),
                message: "결제를 진행해주세요".into(),
                // Seeded fault `payment::push-own-event-id`: a fresh id, not the event that caused it.
                event_id: if failpoint::active("payment::push-own-event-id") {
                    Uuid::new_v4().to_string()
                } else {
                    confirmed.event_id.clone()
                },
            };
            tx.push(&push).await?;
        } else {
            tracing::warn!(order_id = %confirmed.order_id, "order.confirmed for an order that already has a payment; ignored");
        }
        tx.commit().await?;
        Ok(Outcome::Processed)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentQuery {
    order_id: Option<String>,
}

async fn list_payments(
    State(context): State<Context>,
    Query(query): Query<PaymentQuery>,
) -> Result<axum::Json<Value>, Problem> {
    let order_id = query
        .order_id
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Problem::bad_request("query parameter orderId is required"))?;
    let rows: Vec<(Uuid, String, String, i64, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT payment_id, order_id, user_id, amount, status, created_at FROM payments WHERE order_id = $1",
    )
    .bind(&order_id)
    .fetch_all(&context.pool)
    .await?;
    let payments: Vec<Value> = rows
        .into_iter()
        .map(|(payment_id, order_id, user_id, amount, status, created_at)| {
            json!({"paymentId": payment_id.to_string(), "orderId": order_id, "userId": user_id, "amount": Money(amount).to_json(), "status": status, "createdAt": created_at.to_rfc3339()})
        })
        .collect();
    Ok(axum::Json(Value::Array(payments)))
}
