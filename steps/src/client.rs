//! The saga's HTTP API as the kit calls it — orders, products, payments, health and metrics —
//! in one typed client, so the steps, the bench and the integration tests build no request by
//! hand. Every error names the method, the URL and what came back (status and body), so a
//! failed step says what the implementation answered. Amounts and order lines in answers stay
//! JSON: the suite judges their spelling itself (`15000`, `15000.0` and `"15000.00"` are the
//! same amount, `120.07999999999998` is none), so a wrong one is a failed check showing the
//! value rather than an unreadable body. Statuses are the contract's enums: an unknown one is
//! an error naming it and the allowed values.

use crate::Service;
use crate::api::{NewOrder, Order, Payment, Placed, Product, ProductSpec};
use crate::types::Endpoints;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A request that failed, or an answer that is not what the contract says.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{method} {url}: no answer: {cause}")]
    Unanswered { method: &'static str, url: String, cause: String },
    #[error("{method} {url} answered {status}: {body}")]
    Status { method: &'static str, url: String, status: u16, body: String },
    #[error("{method} {url} answered {status} with a body that is not {what} ({error}): {body}")]
    Body { method: &'static str, url: String, status: u16, what: &'static str, error: String, body: String },
}

/// An answer to a request whose body the caller judges itself (bad input, the 201's headers).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
    pub content_type: String,
    /// The `Location` header, if any.
    pub location: Option<String>,
    pub elapsed_ms: f64,
}

/// The saga's three APIs, each at its base URL.
#[derive(Debug, Clone)]
pub struct SagaClient {
    http: reqwest::Client,
    order_url: String,
    product_url: String,
    payment_url: String,
    /// `<order_url>/api/v1/orders`, built once: the bench posts to it at hundreds a second.
    orders_url: String,
    /// Per-request bound, on top of the `reqwest::Client`'s own.
    timeout: Option<Duration>,
}

impl SagaClient {
    pub fn new(http: reqwest::Client, endpoints: &Endpoints) -> SagaClient {
        SagaClient {
            http,
            orders_url: format!("{}/api/v1/orders", endpoints.order_url),
            order_url: endpoints.order_url.clone(),
            product_url: endpoints.product_url.clone(),
            payment_url: endpoints.payment_url.clone(),
            timeout: None,
        }
    }

    /// The same client with every request bounded by `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> SagaClient {
        SagaClient { timeout: Some(timeout), ..self.clone() }
    }

    /// `<order_url>/api/v1/orders`: what an order's `Location` resolves against.
    pub fn orders_url(&self) -> &str {
        &self.orders_url
    }

    fn base(&self, service: Service) -> &str {
        match service {
            Service::Order => &self.order_url,
            Service::Product => &self.product_url,
            Service::Payment => &self.payment_url,
        }
    }

    /// Places `order` for `user`; anything but a 201 with an orderId is an error.
    pub async fn place_order(&self, user: &str, order: &NewOrder) -> Result<(Placed, Answer), ClientError> {
        let body = serde_json::to_string(order).expect("an order serialises");
        let started = Instant::now();
        let raw = self.post_order(Some(user), body, true).await?;
        let placed = self.placed(raw.status, &raw.text)?;
        Ok((placed, answer(raw, started)))
    }

    /// POSTs `body` as it is (malformed on purpose) and returns whatever came back; only "no
    /// answer" is an error.
    pub async fn post_order_raw(
        &self,
        user: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Result<Answer, ClientError> {
        let started = Instant::now();
        Ok(answer(self.post_order(user, body, true).await?, started))
    }

    /// POSTs `body` for `user` declared as `content_type` (a wrong one on purpose) and returns
    /// whatever came back; only "no answer" is an error.
    pub async fn post_order_as(&self, user: &str, content_type: &str, body: String) -> Result<Answer, ClientError> {
        let started = Instant::now();
        let request =
            self.http.post(&self.orders_url).header("content-type", content_type).header("X-User-Id", user).body(body);
        Ok(answer(self.send("POST", &self.orders_url, request, true).await?, started))
    }

    /// POSTs a pre-serialised order body: its status and body text, nothing parsed or copied
    /// (the open-loop load's path, so it costs no more than the request: `user` is moved into
    /// the header; [`Self::placed`] reads the 201).
    pub async fn post_order_text(
        &self,
        user: String,
        body: impl Into<reqwest::Body>,
    ) -> Result<(u16, String), ClientError> {
        let request = self.order_request(body).header("X-User-Id", user);
        let raw = self.send("POST", &self.orders_url, request, false).await?;
        Ok((raw.status, raw.text))
    }

    async fn post_order(
        &self,
        user: Option<&str>,
        body: impl Into<reqwest::Body>,
        headers: bool,
    ) -> Result<Raw, ClientError> {
        let mut request = self.order_request(body);
        if let Some(user) = user {
            request = request.header("X-User-Id", user);
        }
        self.send("POST", &self.orders_url, request, headers).await
    }

    fn order_request(&self, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.http.post(&self.orders_url).header("content-type", "application/json").body(body)
    }

    /// The 201 body of `post_order_text`'s answer, typed.
    pub fn placed(&self, status: u16, text: &str) -> Result<Placed, ClientError> {
        if status != 201 {
            return Err(ClientError::Status {
                method: "POST",
                url: self.orders_url.clone(),
                status,
                body: text.into(),
            });
        }
        parse("POST", &self.orders_url, status, text, "an order's 201")
    }

    /// The order; `None` for 404.
    pub async fn order(&self, order_id: &str) -> Result<Option<Order>, ClientError> {
        self.order_at(&format!("{}/{order_id}", self.orders_url)).await
    }

    /// The order at `url` (e.g. its `Location`); `None` for 404.
    pub async fn order_at(&self, url: &str) -> Result<Option<Order>, ClientError> {
        self.get_json(url, "an order").await
    }

    /// Creates or replaces a product.
    pub async fn put_product(&self, product_id: &str, spec: &ProductSpec) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/products/{product_id}", self.product_url);
        let Raw { status, text, .. } = self.send("PUT", &url, self.http.put(&url).json(spec), false).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ClientError::Status { method: "PUT", url, status, body: text })
        }
    }

    /// The product; `None` for 404.
    pub async fn product(&self, product_id: &str) -> Result<Option<Product>, ClientError> {
        self.get_json(&format!("{}/api/v1/products/{product_id}", self.product_url), "a product").await
    }

    /// The order's payments (an empty list when there are none; a 404 is an error).
    pub async fn payments(&self, order_id: &str) -> Result<Vec<Payment>, ClientError> {
        let url = format!("{}/api/v1/payments?orderId={order_id}", self.payment_url);
        match self.get_json(&url, "a list of payments").await? {
            Some(payments) => Ok(payments),
            None => Err(ClientError::Status { method: "GET", url, status: 404, body: String::new() }),
        }
    }

    /// `GET <service's base URL><path>` and whatever came back (the bad-input scenarios); only
    /// "no answer" is an error.
    pub async fn get_raw(&self, service: Service, path: &str) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.base(service));
        let started = Instant::now();
        Ok(answer(self.send("GET", &url, self.http.get(&url), true).await?, started))
    }

    /// `GET /health` of `service` answers 2xx.
    pub async fn health(&self, service: Service) -> Result<(), ClientError> {
        self.get_text(&format!("{}/health", self.base(service))).await.map(drop)
    }

    /// `GET /metrics` of `service` (Prometheus text).
    pub async fn metrics(&self, service: Service) -> Result<String, ClientError> {
        self.get_text(&format!("{}/metrics", self.base(service))).await
    }

    async fn get_text(&self, url: &str) -> Result<String, ClientError> {
        let Raw { status, text, .. } = self.send("GET", url, self.http.get(url), false).await?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(ClientError::Status { method: "GET", url: url.to_string(), status, body: text })
        }
    }

    /// GETs JSON: `None` for 404, an error for any other non-2xx — a read that fails is never
    /// taken for an empty answer.
    async fn get_json<T: DeserializeOwned>(&self, url: &str, what: &'static str) -> Result<Option<T>, ClientError> {
        let Raw { status, text, .. } = self.send("GET", url, self.http.get(url), false).await?;
        match status {
            404 => Ok(None),
            200..300 => parse("GET", url, status, &text, what).map(Some),
            _ => Err(ClientError::Status { method: "GET", url: url.to_string(), status, body: text }),
        }
    }

    async fn send(
        &self,
        method: &'static str,
        url: &str,
        mut request: reqwest::RequestBuilder,
        headers: bool,
    ) -> Result<Raw, ClientError> {
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        let unanswered = |e: reqwest::Error| ClientError::Unanswered { method, url: url.to_string(), cause: chain(&e) };
        let response = request.send().await.map_err(unanswered)?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (content_type, location) = if headers {
            (header("content-type").unwrap_or_default(), header("location"))
        } else {
            (String::new(), None)
        };
        let text = response.text().await.map_err(|e| ClientError::Unanswered {
            method,
            url: url.to_string(),
            cause: format!("{status}, then the body was cut off: {}", chain(&e)),
        })?;
        Ok(Raw { status, text, content_type, location })
    }
}

fn parse<T: DeserializeOwned>(
    method: &'static str,
    url: &str,
    status: u16,
    body: &str,
    what: &'static str,
) -> Result<T, ClientError> {
    serde_json::from_str(body).map_err(|e| ClientError::Body {
        method,
        url: url.to_string(),
        status,
        what,
        error: e.to_string(),
        body: body.to_string(),
    })
}

/// What came back, before anyone read it; headers only when asked for.
struct Raw {
    status: u16,
    text: String,
    content_type: String,
    location: Option<String>,
}

fn answer(raw: Raw, started: Instant) -> Answer {
    Answer {
        status: raw.status,
        body: serde_json::from_str(&raw.text).unwrap_or(Value::String(raw.text)),
        content_type: raw.content_type,
        location: raw.location,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// An error with its causes (reqwest's own text only says which URL failed).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OrderLine;
    use saga_contract::Money;

    #[test]
    fn an_order_request_is_spelled_as_the_contract_says() {
        let order = NewOrder {
            store_id: "S1".into(),
            items: vec![OrderLine { product_id: "P1".into(), quantity: 2, unit_price: Money(1050) }],
        };
        assert_eq!(
            serde_json::to_value(&order).unwrap(),
            serde_json::json!({"storeId": "S1", "items": [{"productId": "P1", "quantity": 2, "unitPrice": 10.5}]})
        );
    }

    #[test]
    fn an_unknown_status_is_an_error_naming_the_url_and_the_value() {
        let error = parse::<Order>(
            "GET",
            "http://o/api/v1/orders/1",
            200,
            r#"{"orderId": "1", "status": "SHIPPED"}"#,
            "an order",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("GET http://o/api/v1/orders/1 answered 200 with a body that is not an order"),
            "{error}"
        );
        assert!(
            error.contains(r#"order status "SHIPPED" is none of ORDER_CREATED, ORDER_CONFIRMED, ORDER_CANCELLED"#),
            "{error}"
        );
    }
}
