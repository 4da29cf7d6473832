//! The Product Service's HTTP API, the catalogue: create or replace a product with its stock,
//! and read it back.

use super::domain::{Product, catalogue_entry};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use saga_contract::Money;
use saga_service_kit::http::{Problem, ProblemJson};
use saga_service_kit::service::Context;
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes(context: Context) -> Router {
    Router::new().route("/api/v1/products/{product_id}", get(get_product).put(put_product)).with_state(context)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutProduct {
    name: String,
    price: serde_json::Number,
    stock: i64,
}

async fn put_product(
    State(context): State<Context>,
    Path(product_id): Path<String>,
    ProblemJson(body): ProblemJson<PutProduct>,
) -> Result<axum::Json<Value>, Problem> {
    let Product { price, stock } =
        catalogue_entry(&product_id, &body.price.to_string(), body.stock).map_err(Problem::unprocessable)?;
    sqlx::query(
        "INSERT INTO products (product_id, name, price, stock) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, price = EXCLUDED.price, stock = EXCLUDED.stock, updated_at = now()",
    )
    .bind(&product_id)
    .bind(&body.name)
    .bind(price.0)
    .bind(stock)
    .execute(&context.pool)
    .await?;
    Ok(axum::Json(json!({"productId": product_id, "name": body.name, "price": price.to_json(), "stock": stock})))
}

async fn get_product(
    State(context): State<Context>,
    Path(product_id): Path<String>,
) -> Result<axum::Json<Value>, Problem> {
    let row: Option<(String, i64, i32)> =
        sqlx::query_as("SELECT name, price, stock FROM products WHERE product_id = $1")
            .bind(&product_id)
            .fetch_optional(&context.pool)
            .await?;
    let (name, price, stock) = row.ok_or_else(|| Problem::not_found(format!("no product {product_id}")))?;
    Ok(axum::Json(json!({"productId": product_id, "name": name, "price": Money(price).to_json(), "stock": stock})))
}
