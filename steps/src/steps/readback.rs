//! Reading the load's orders back over HTTP, as the crash and gateway scenarios judge them: an
//! order's status and payments, a product's stock, a few requests at a time, each bounded.

use super::SuiteEnv;
use crate::api::Payment;
use crate::client::{ClientError, SagaClient};
use futures::StreamExt;
use saga_contract::OrderStatus;
use std::time::Duration;

/// How long one request may take before it counts as unanswered.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads at once when reading the orders back.
const READS_AT_ONCE: usize = 16;

pub(super) async fn read_stock(env: &SuiteEnv, product_id: &str) -> Result<i64, String> {
    match env.client.with_timeout(REQUEST_TIMEOUT).product(product_id).await {
        Ok(Some(product)) => Ok(product.stock),
        Ok(None) => Err(format!("product {product_id} answered 404")),
        Err(e) => Err(e.to_string()),
    }
}

/// What an order reads as: its status (`None`: 404) and its payments.
pub(super) type State = (Option<OrderStatus>, Vec<Payment>);

/// An order's status and, when asked or when it is confirmed, its payments.
async fn read_state(client: &SagaClient, order_id: &str, all_payments: bool) -> Result<State, ClientError> {
    let status = client.order(order_id).await?.map(|order| order.status);
    if !all_payments && status != Some(OrderStatus::Confirmed) {
        return Ok((status, Vec::new()));
    }
    Ok((status, client.payments(order_id).await?))
}

/// Reads every order in `ids` (a few at a time); the first failed read fails the step.
pub(super) async fn read_states(env: &SuiteEnv, ids: Vec<String>, all_payments: bool) -> Vec<(String, State)> {
    let client = env.client.with_timeout(REQUEST_TIMEOUT);
    let reads = futures::stream::iter(ids).map(|id| {
        let client = &client;
        async move {
            let state = read_state(client, &id, all_payments).await;
            (id, state)
        }
    });
    let reads: Vec<_> = reads.buffer_unordered(READS_AT_ONCE).collect().await;
    reads
        .into_iter()
        .map(|(id, state)| (id.clone(), state.unwrap_or_else(|e| panic!("reading order {id} back failed: {e}"))))
        .collect()
}

/// The order has ended: cancelled, or confirmed with a payment.
pub(super) fn terminal((status, payments): &State) -> bool {
    match status {
        Some(OrderStatus::Cancelled) => true,
        Some(OrderStatus::Confirmed) => !payments.is_empty(),
        _ => false,
    }
}
