//! The Payment Service's HTTP API: an order's payments.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use saga_contract::Money;
use saga_service_kit::http::Problem;
use saga_service_kit::service::Context;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub fn routes(context: Context) -> Router {
    Router::new().route("/api/v1/payments", get(list_payments)).with_state(context)
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
