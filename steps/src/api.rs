//! The bodies of the saga's HTTP API (`docs/contract.md`), typed: what the kit sends (a new
//! order, a product) and reads back (an order, a product, a payment). Plain data: the
//! [`crate::client`] sends and reads them, the checkers judge them.

use saga_contract::{Money, OrderStatus, PaymentStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/v1/orders` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    pub store_id: String,
    pub items: Vec<OrderLine>,
}

/// One line of an order request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: i64,
    pub unit_price: Money,
}

/// The 201 of `POST /api/v1/orders`: the orderId is what every placed order needs. Its
/// `status` and `message` are one scenario's to judge (from the [`Answer`]'s body), so a wrong
/// one fails that check rather than every order placed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub order_id: String,
}

/// `GET /api/v1/orders/{orderId}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    pub status: OrderStatus,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub store_id: Option<String>,
    #[serde(default)]
    pub total_amount: Value,
    #[serde(default)]
    pub items: Value,
    /// Why it was cancelled (`STOCK_UNAVAILABLE`); null or absent otherwise.
    #[serde(default)]
    pub cancellation_reason: Option<String>,
}

/// `PUT /api/v1/products/{productId}` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductSpec {
    pub name: String,
    pub price: Money,
    pub stock: i64,
}

/// `GET /api/v1/products/{productId}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product_id: String,
    pub stock: i64,
    #[serde(default)]
    pub price: Value,
}

/// One element of `GET /api/v1/payments?orderId=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    #[serde(default)]
    pub payment_id: Option<String>,
    pub order_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub amount: Value,
    pub status: PaymentStatus,
    /// RFC 3339 date-time.
    #[serde(default)]
    pub created_at: Value,
}
