//! The Order Service's decisions, free of SQL and HTTP: what makes an order acceptable at
//! intake, and which status transitions the saga allows. The API and the event handlers call
//! these and only persist what they decide, so the rules are unit-tested here.

use saga_contract::events::OrderItem;
use saga_contract::{Money, OrderStatus};
use serde::Deserialize;

/// Lines per order and units per line accepted at intake.
pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i64 = 10_000;
pub const MAX_ID_LEN: usize = 128;

/// The intake request body. Unknown fields are refused so a misspelt field is an error, not a
/// silently ignored value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrder {
    pub store_id: String,
    pub items: Vec<CreateOrderItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderItem {
    pub product_id: String,
    pub quantity: i64,
    pub unit_price: serde_json::Number,
}

/// An order that passed validation: ids checked, quantities in range, prices exact, total
/// summed in hundredths.
#[derive(Debug)]
pub struct ValidOrder {
    pub store_id: String,
    pub items: Vec<OrderItem>,
    pub total: Money,
}

/// Why an order was refused, phrased for the client (the API answers 422 with it).
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

/// Checks an intake request (see also [`one_line_per_product`]).
pub fn validate(body: CreateOrder) -> Result<ValidOrder, Invalid> {
    let id_ok = |s: &str| !s.trim().is_empty() && s.len() <= MAX_ID_LEN;
    if !id_ok(&body.store_id) {
        return Err(Invalid(format!("storeId must be 1 to {MAX_ID_LEN} characters")));
    }
    if body.items.is_empty() || body.items.len() > MAX_LINES {
        return Err(Invalid(format!("items must hold 1 to {MAX_LINES} lines")));
    }
    let mut total = Money(0);
    let mut items = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.into_iter().enumerate() {
        if !id_ok(&item.product_id) {
            return Err(Invalid(format!("items[{i}].productId must be 1 to {MAX_ID_LEN} characters")));
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(Invalid(format!("items[{i}].quantity must be between 1 and {MAX_QUANTITY}")));
        }
        let unit_price = Money::parse(&item.unit_price.to_string()).filter(|p| p.0 > 0).ok_or_else(|| {
            Invalid(format!(
                "items[{i}].unitPrice must be a positive amount with at most two decimals, below 100000000"
            ))
        })?;
        total = unit_price
            .times(item.quantity)
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| Invalid("the order total exceeds 99999999.99".into()))?;
        // In range by the check above, so the contract's int holds it.
        items.push(OrderItem { product_id: item.product_id, quantity: item.quantity as i32, unit_price });
    }
    Ok(ValidOrder { store_id: body.store_id, items, total })
}

/// An order names each product on one line: two lines of one product are refused (422), as
/// the contract says. Merged, they would hide a client's bug; checked one by one against the
/// stock, they would oversell (stock 5, two lines of 3).
pub fn one_line_per_product(items: &[OrderItem]) -> Result<(), Invalid> {
    let mut first_line = std::collections::HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(first) = first_line.insert(item.product_id.as_str(), i) {
            return Err(Invalid(format!(
                "items[{i}].productId {:?} is already on items[{first}]: order each product on one line",
                item.product_id
            )));
        }
    }
    Ok(())
}

/// The saga's two moves of an order: confirm on `stock.reserved`, cancel (the compensation)
/// on `stock.reservation.failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Confirm,
    Cancel,
}

impl Transition {
    pub fn target(self) -> OrderStatus {
        match self {
            Transition::Confirm => OrderStatus::Confirmed,
            Transition::Cancel => OrderStatus::Cancelled,
        }
    }

    /// Both moves leave `ORDER_CREATED` only: a finished order never changes again, so a
    /// late or repeated event (even with a new eventId) has no effect.
    pub fn allowed_from(self, from: OrderStatus) -> bool {
        from == OrderStatus::Created
    }
}

/// What a saga event does to an order, given the order's current status (`None`: no such
/// order). `ignore_status` is the seeded fault `order::ignore-status` (the guard forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move the order to this status and publish the transition's event and push.
    Move(OrderStatus),
    /// The order is already past `ORDER_CREATED`: record the event as seen, change nothing.
    Ignore(OrderStatus),
    /// No such order: a producer invented the id, which an operator should see (dead letter).
    UnknownOrder,
}

pub fn decide(transition: Transition, current: Option<OrderStatus>, ignore_status: bool) -> Decision {
    match current {
        None => Decision::UnknownOrder,
        Some(from) if ignore_status || transition.allowed_from(from) => Decision::Move(transition.target()),
        Some(from) => Decision::Ignore(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CreateOrder {
        serde_json::from_value(json).expect("a well-formed body")
    }

    fn line(product: &str, quantity: i64, price: f64) -> serde_json::Value {
        serde_json::json!({"productId": product, "quantity": quantity, "unitPrice": price})
    }

    fn order(lines: Vec<serde_json::Value>) -> Result<ValidOrder, Invalid> {
        validate(body(serde_json::json!({"storeId": "store-1", "items": lines})))
    }

    #[test]
    fn a_valid_order_is_summed_in_hundredths() {
        let valid = order(vec![line("p-1", 3, 0.1), line("p-2", 1, 19.99)]).expect("valid");
        assert_eq!(valid.total, Money(30 + 1999), "0.1 × 3 + 19.99 exactly, no float drift");
        assert_eq!(valid.items.len(), 2);
        assert_eq!((valid.items[0].product_id.as_str(), valid.items[0].quantity), ("p-1", 3));
        assert_eq!(valid.items[1].unit_price, Money(1999));
    }

    #[test]
    fn empty_and_oversized_orders_are_refused() {
        assert_eq!(order(vec![]).unwrap_err(), Invalid(format!("items must hold 1 to {MAX_LINES} lines")));
        let too_many = (0..=MAX_LINES).map(|i| line(&format!("p-{i}"), 1, 1.0)).collect();
        assert!(order(too_many).is_err());
    }

    #[test]
    fn quantities_outside_1_to_max_are_refused_naming_the_line() {
        for quantity in [0, -1, MAX_QUANTITY + 1] {
            let refused = order(vec![line("p-1", 1, 1.0), line("p-2", quantity, 1.0)]).unwrap_err();
            assert!(refused.0.starts_with("items[1].quantity"), "quantity {quantity}: {}", refused.0);
        }
        assert!(order(vec![line("p-1", MAX_QUANTITY, 1.0)]).is_ok());
    }

    #[test]
    fn prices_must_be_positive_with_two_decimals() {
        for price in [serde_json::json!(0), serde_json::json!(-5), serde_json::json!(1.234)] {
            let lines = vec![serde_json::json!({"productId": "p", "quantity": 1, "unitPrice": price})];
            assert!(order(lines).unwrap_err().0.contains("unitPrice"), "price {price} accepted");
        }
    }

    #[test]
    fn blank_ids_and_overflowing_totals_are_refused() {
        assert!(validate(body(serde_json::json!({"storeId": " ", "items": [line("p", 1, 1.0)]}))).is_err());
        assert!(order(vec![line("", 1, 1.0)]).unwrap_err().0.contains("items[0].productId"));
        let refused = order(vec![line("p", MAX_QUANTITY, 99_999_999.0)]).unwrap_err();
        assert_eq!(refused, Invalid("the order total exceeds 99999999.99".into()));
    }

    #[test]
    fn two_lines_of_one_product_are_refused_naming_both() {
        let valid = order(vec![line("p-1", 3, 5.0), line("p-2", 1, 5.0), line("p-1", 3, 5.0)]).expect("well-formed");
        let refused = one_line_per_product(&valid.items).unwrap_err();
        assert!(refused.0.starts_with("items[2].productId \"p-1\" is already on items[0]"), "{}", refused.0);
        let distinct = order(vec![line("p-1", 3, 5.0), line("p-2", 3, 5.0)]).expect("well-formed");
        assert_eq!(one_line_per_product(&distinct.items), Ok(()));
    }

    #[test]
    fn unknown_fields_are_refused_at_parsing() {
        let parsed: Result<CreateOrder, _> =
            serde_json::from_value(serde_json::json!({"storeId": "s", "items": [], "coupon": "X"}));
        assert!(parsed.is_err());
    }

    #[test]
    fn confirm_and_cancel_leave_only_order_created() {
        for transition in [Transition::Confirm, Transition::Cancel] {
            assert_eq!(decide(transition, Some(OrderStatus::Created), false), Decision::Move(transition.target()));
            for finished in [OrderStatus::Confirmed, OrderStatus::Cancelled] {
                assert_eq!(decide(transition, Some(finished), false), Decision::Ignore(finished));
            }
            assert_eq!(decide(transition, None, false), Decision::UnknownOrder);
        }
        assert_eq!(Transition::Confirm.target(), OrderStatus::Confirmed);
        assert_eq!(Transition::Cancel.target(), OrderStatus::Cancelled);
    }

    #[test]
    fn the_seeded_fault_moves_finished_orders_again() {
        assert_eq!(
            decide(Transition::Confirm, Some(OrderStatus::Cancelled), true),
            Decision::Move(OrderStatus::Confirmed)
        );
        assert_eq!(decide(Transition::Cancel, None, true), Decision::UnknownOrder);
    }
}
