//! The Order Service's HTTP API: intake and reading an order back. Intake validates, then writes the order and its `order.created`
//! event in one transaction; the outbox relay publishes after commit, so the answer does not
//! depend on Kafka or the Product Service being up.

use super::domain::{self, CreateOrder, ValidOrder};
use super::intake::{Intake, NewOrder, store_alone};
use super::jam::Jam;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use saga_contract::{Money, OrderCreated, OrderStatus, SagaTopic, now_millis};
use saga_service_kit::failpoint;
use saga_service_kit::http::{Problem, ProblemJson, user_id};
use saga_service_kit::service::Context;
use serde_json::json;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use uuid::Uuid;

/// What the handlers share: the kit's context and the intake's writers.
#[derive(Clone)]
struct OrderApi {
    context: Context,
    intake: Intake,
    /// `JAM_AFTER_ORDERS` (a trial; never by default).
    jam: Jam,
}

pub fn routes(context: Context, jam: Jam) -> Router {
    let intake = Intake::start(context.clone());
    Router::new()
        .route("/api/v1/orders", post(create_order))
        .route("/api/v1/orders/{order_id}", get(get_order))
        .with_state(OrderApi { context, intake, jam })
}

/// Seeded fault `order::float-total`: money added up in binary floating point, cents
/// truncated. Hundredths over 100 give the same doubles as the JSON numbers the client sent.
fn float_total(order: &ValidOrder) -> Money {
    let total: f64 = order.items.iter().map(|i| i.unit_price.0 as f64 / 100.0 * f64::from(i.quantity)).sum();
    Money((total * 100.0) as i64)
}

/// Seeded fault `order::no-total-cap`: each line is validated on its own (so one line's
/// amount stays capped) and the lines' amounts are summed unchecked: the order's total cap is
/// missing.
fn without_total_cap(body: CreateOrder) -> Result<ValidOrder, domain::Invalid> {
    if body.items.is_empty() || body.items.len() > domain::MAX_LINES {
        return domain::validate(body);
    }
    let mut order = ValidOrder { store_id: body.store_id.clone(), items: Vec::new(), total: Money(0) };
    for item in body.items {
        let line = domain::validate(CreateOrder { store_id: body.store_id.clone(), items: vec![item] })?;
        order.total = Money(order.total.0 + line.total.0);
        order.items.extend(line.items);
    }
    Ok(order)
}

async fn create_order(
    State(api): State<OrderApi>,
    headers: HeaderMap,
    ProblemJson(body): ProblemJson<CreateOrder>,
) -> Result<Response, Problem> {
    api.jam.hold().await;
    let user_id = user_id(&headers)?;
    // Seeded fault `order::slow-intake`: work done in line before answering.
    failpoint::stall("order::slow-intake").await;
    let validated =
        if failpoint::active("order::no-total-cap") { without_total_cap(body) } else { domain::validate(body) };
    let mut order = validated.map_err(|invalid| Problem::unprocessable(invalid.0))?;
    // Seeded fault `order::accept-duplicate-lines`: two lines of one product are let through.
    if !failpoint::active("order::accept-duplicate-lines") {
        domain::one_line_per_product(&order.items).map_err(|invalid| Problem::unprocessable(invalid.0))?;
    }
    if failpoint::active("order::float-total") {
        order.total = float_total(&order);
    }
    let order_id = Uuid::now_v7();
    let now = now_millis();

    let event = OrderCreated {
        event_id: Uuid::new_v4().to_string(),
        event_timestamp: now,
        order_id: order_id.to_string(),
        user_id,
        store_id: order.store_id,
        items: order.items,
        total_amount: order.total,
        created_at: now,
    };
    // Framed before it is queued (a registry round trip at most, then cached); stored with the
    // orders that arrive alongside it in one transaction (see intake.rs).
    let topic = api.context.config.topics.name(SagaTopic::OrderCreated);
    let framed = api
        .context
        .codec
        .encode(topic, event.clone())
        .await
        .map_err(|e| Problem::unavailable("schema registry unreachable", e))?;
    let new_order = NewOrder { order_id, event, framed };
    // Seeded fault `order::publish-before-commit`: the record goes out first, then the order is
    // stored in a transaction of its own, without its outbox row (see intake.rs) — the dual write
    // of a service without an outbox. When that store fails, or the client gives up first (the
    // request is dropped), the record announces an order that does not exist.
    let stored = if failpoint::active("order::publish-before-commit") {
        api.context
            .publish_now(topic, &new_order.event.order_id, &new_order.framed)
            .await
            .map_err(|e| Problem::unavailable("kafka", e))?;
        store_alone(&api.context, &new_order).await.map_err(|e| e.to_string())
    } else {
        api.intake.store(new_order).await
    };
    stored.map_err(|e| Problem::unavailable("order database", e))?;
    if let Some(patience) = failpoint::delay("order::intake-waits-for-stock") {
        wait_for_stock(&api.context, order_id, patience).await;
    }

    let body =
        json!({"orderId": order_id.to_string(), "status": OrderStatus::Created, "message": "주문이 접수되었습니다"});
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/api/v1/orders/{order_id}"))], axum::Json(body))
        .into_response())
}

/// Seeded fault `order::intake-waits-for-stock`: the intake holds the answer until the Product
/// Service has decided (request-reply in disguise), so intake depends on it being up.
async fn wait_for_stock(context: &Context, order_id: Uuid, patience: std::time::Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < patience {
        let status: Option<(String,)> = sqlx::query_as("SELECT status FROM orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&context.pool)
            .await
            .ok()
            .flatten();
        if status.is_some_and(|(s,)| s != OrderStatus::Created.as_str()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

struct OrderRow {
    user_id: String,
    store_id: String,
    status: String,
    total_amount: i64,
    cancellation_reason: Option<String>,
    failure_detail: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

struct ItemRow {
    product_id: String,
    quantity: i32,
    unit_price: i64,
}

// By hand: `#[derive(sqlx::FromRow)]` needs sqlx's macros, which the workspace does without
// (see `saga_service_kit::db::Migration`).
impl<'r> sqlx::FromRow<'r, PgRow> for OrderRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(OrderRow {
            user_id: row.try_get("user_id")?,
            store_id: row.try_get("store_id")?,
            status: row.try_get("status")?,
            total_amount: row.try_get("total_amount")?,
            cancellation_reason: row.try_get("cancellation_reason")?,
            failure_detail: row.try_get("failure_detail")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl<'r> sqlx::FromRow<'r, PgRow> for ItemRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(ItemRow {
            product_id: row.try_get("product_id")?,
            quantity: row.try_get("quantity")?,
            unit_price: row.try_get("unit_price")?,
        })
    }
}

async fn get_order(
    State(OrderApi { context, .. }): State<OrderApi>,
    Path(order_id): Path<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found(format!("no order {order_id}"));
    let id = Uuid::parse_str(&order_id).map_err(|_| not_found())?;
    let order: OrderRow = sqlx::query_as("SELECT user_id, store_id, status, total_amount, cancellation_reason, failure_detail, created_at, updated_at FROM orders WHERE order_id = $1")
        .bind(id)
        .fetch_optional(&context.pool)
        .await?
        .ok_or_else(not_found)?;
    let items: Vec<ItemRow> =
        sqlx::query_as("SELECT product_id, quantity, unit_price FROM order_items WHERE order_id = $1 ORDER BY line_no")
            .bind(id)
            .fetch_all(&context.pool)
            .await?;
    let items: Vec<_> = items
        .into_iter()
        .map(|i| json!({"productId": i.product_id, "quantity": i.quantity, "unitPrice": Money(i.unit_price).to_json()}))
        .collect();
    Ok(axum::Json(json!({
        "orderId": order_id,
        "userId": order.user_id,
        "storeId": order.store_id,
        "status": order.status,
        "totalAmount": Money(order.total_amount).to_json(),
        "items": items,
        "cancellationReason": order.cancellation_reason,
        "failureDetail": order.failure_detail,
        "createdAt": order.created_at.to_rfc3339(),
        "updatedAt": order.updated_at.to_rfc3339(),
    }))
    .into_response())
}
