//! Checkers for the crash scenarios (`features/crash.feature`): pure functions over what a
//! steady load sent, what each answer was, what each order ended as (read back over HTTP, its
//! pushes and its Kafka records) and when the fault was in place. Each returns the violations
//! it found (empty = holds), worded with the order and what was seen; the tests below build
//! healthy outcomes and break exactly one thing each.

mod intake;

use crate::api::{OrderLine, Payment};
use crate::checkers::Violation;
use crate::checkers::once::{self, End};
use crate::observed::Push;
pub use intake::{in_flight, in_flight_now, intake};
use saga_contract::{Money, OrderStatus, PushKind};

/// What one request of the load got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 201 with this orderId.
    Accepted(String),
    /// 503, or no answer at all (refused, reset, timed out): allowed while a fault is in place.
    Unavailable(String),
    /// Anything else (a 4xx for a valid order, another 5xx, a 201 without an orderId).
    Failed(String),
}

/// One request of the load, times on the kit's clock (epoch ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub seq: usize,
    pub sent_ms: i64,
    pub answered_ms: i64,
    pub lines: Vec<OrderLine>,
    pub answer: Answer,
}

/// When a fault was in place (kit clock, epoch ms): the step began putting it in place, it was
/// in place (the kill returned), it was lifted (the part serves again; `None`: still in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpan {
    pub began_ms: i64,
    pub in_place_ms: i64,
    pub lifted_ms: Option<i64>,
}

/// An order of the load as it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub order_id: String,
    /// Whose order it is.
    pub user_id: String,
    /// Its lines, as sent.
    pub lines: Vec<OrderLine>,
    /// When its 201 arrived; `None` for an order known only from its `order.created` (the
    /// answer was lost in the crash, but the order exists).
    pub accepted_ms: Option<i64>,
    /// `status` of `GET /api/v1/orders/{id}`; `None` when it answered 404.
    pub status: Option<OrderStatus>,
    pub payments: Vec<Payment>,
    pub pushes: Vec<Push>,
    /// When its last stage was seen (the `PAYMENT_WAIT` or `ORDER_CANCELLED` push arrived).
    pub terminal_ms: Option<i64>,
}

impl Settled {
    /// The status as violations name it.
    fn status_text(&self) -> &'static str {
        self.status.map_or("HTTP 404", OrderStatus::as_str)
    }

    /// What its payment must be for: Σ quantity × unitPrice (`None` past the contract's cap).
    fn total(&self) -> Option<Money> {
        self.lines.iter().try_fold(Money(0), |total, l| l.unit_price.times(l.quantity)?.checked_add(total))
    }

    /// Units of `product_id` it ordered.
    fn units_of(&self, product_id: &str) -> i64 {
        self.lines.iter().filter(|l| l.product_id == product_id).map(|l| l.quantity).sum()
    }
}

fn violation(checker: &'static str, order_id: &str, detail: String) -> Violation {
    Violation { checker, order_id: order_id.to_string(), detail }
}

/// No order lost ([`once::lost`]): every order ended, read back as `ORDER_CONFIRMED` with a
/// payment, or `ORDER_CANCELLED`. Every order here was accepted or announced on `order.created`.
pub fn unsettled(orders: &[Settled]) -> Vec<Violation> {
    orders
        .iter()
        .filter(|o| once::lost(true, End::read_back(o.status, o.payments.len())))
        .map(|o| {
            let detail = match (o.accepted_ms, o.status) {
                // Fair to an order whose answer was lost: committed, it reads back. This one was
                // announced to the saga and never stored (published before its transaction
                // committed, the commit then failing, and its client answered 503 or nothing).
                (None, None) => "published on order.created, yet GET answers 404: the record announces an order \
                                 that does not exist (sent before the order's transaction committed?)"
                    .to_string(),
                (accepted, _) => {
                    let origin = if accepted.is_some() {
                        "accepted"
                    } else {
                        "seen only on order.created (its answer was lost)"
                    };
                    format!("{origin}, ended {} with {} payment(s)", o.status_text(), o.payments.len())
                }
            };
            violation("settled", &o.order_id, detail)
        })
        .collect()
}

/// Exactly one payment (for this order and its user, of Σ quantity × unitPrice, in
/// `PAYMENT_WAIT`) per confirmed order, none for a cancelled one.
pub fn payments(orders: &[Settled]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for o in orders {
        let expected = match o.status {
            Some(OrderStatus::Confirmed) => 1,
            Some(OrderStatus::Cancelled) => 0,
            _ => continue, // reported by `unsettled`
        };
        if o.payments.len() != expected {
            violations.push(violation(
                "payments",
                &o.order_id,
                format!(
                    "{} with {} payment(s), expected {expected}: {:?}",
                    o.status_text(),
                    o.payments.len(),
                    o.payments
                ),
            ));
        }
        // Every payment is in PAYMENT_WAIT by its type (another status fails the read).
        for p in &o.payments {
            let total = o.total();
            let wrong = if p.order_id != o.order_id {
                Some("for another order".to_string())
            } else if p.user_id.as_deref() != Some(o.user_id.as_str()) {
                Some(format!("for user {:?}, not {}", p.user_id, o.user_id))
            } else if total.is_none_or(|total| Money::from_json(&p.amount) != Some(total)) {
                Some(format!("of {}, not Σ quantity × unitPrice = {total:?}", p.amount))
            } else {
                None
            };
            if let Some(wrong) = wrong {
                violations.push(violation("payments", &o.order_id, format!("a payment {wrong}: {p:?}")));
            }
        }
    }
    violations
}

/// One push of each kind the order is due and none of the others, counted by distinct
/// eventId ([`once::Effects`]): a resend with the same eventId is at-least-once delivery, not a
/// second push.
pub fn pushes(orders: &[Settled]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for o in orders {
        let due: &[PushKind] = match o.status {
            Some(OrderStatus::Confirmed) => &[PushKind::OrderConfirmed, PushKind::PaymentWait],
            Some(OrderStatus::Cancelled) => &[PushKind::OrderCancelled],
            _ => continue,
        };
        let mut effects = once::Effects::default();
        o.pushes.iter().for_each(|p| effects.add_push(p));
        for &kind in PushKind::ALL {
            let expected = usize::from(due.contains(&kind));
            let seen = effects.pushes_of(kind);
            if seen != expected {
                violations.push(violation(
                    "pushes",
                    &o.order_id,
                    format!(
                        "{} order got {seen} {kind} push(es) by distinct eventId, expected {expected}: {:?}",
                        o.status_text(),
                        effects.pushes.get(&kind)
                    ),
                ));
            }
        }
    }
    violations
}

/// The product's stock fell by exactly the units of it the confirmed orders hold (a cancelled
/// order took nothing, of any of its lines), and is not negative.
pub fn stock(product_id: &str, initial: i64, now: i64, orders: &[Settled]) -> Result<(), String> {
    let is_confirmed = |o: &&Settled| o.status == Some(OrderStatus::Confirmed) && o.units_of(product_id) > 0;
    let confirmed: i64 = orders.iter().filter(is_confirmed).map(|o| o.units_of(product_id)).sum();
    let count = orders.iter().filter(is_confirmed).count();
    if now < 0 {
        return Err(format!("stock is negative: {now}"));
    }
    if initial - now != confirmed {
        return Err(format!(
            "stock went from {initial} to {now} (−{}), but the {count} confirmed orders hold {confirmed} units",
            initial - now
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(order: &str, kind: PushKind, event: &str) -> Push {
        Push { user_id: "u".into(), order_id: order.into(), kind, message: String::new(), event_id: event.into() }
    }

    /// Each order's lines: `quantity` of "a" at 2.50 and one "b" at 10.00.
    fn lines(quantity: i64) -> Vec<OrderLine> {
        let line = |product_id: &str, quantity, cents| OrderLine {
            product_id: product_id.into(),
            quantity,
            unit_price: Money(cents),
        };
        vec![line("a", quantity, 250), line("b", 1, 1000)]
    }

    /// The payment of an order of `lines(quantity)`.
    fn payment(order: &str, quantity: i64) -> Payment {
        Payment {
            payment_id: None,
            order_id: order.into(),
            user_id: Some("u".into()),
            amount: json!(2.5 * quantity as f64 + 10.0),
            status: saga_contract::PaymentStatus::PaymentWait,
            created_at: json!("2026-12-07T04:35:00Z"),
        }
    }

    fn confirmed(id: &str, quantity: i64, accepted: i64, terminal: i64) -> Settled {
        Settled {
            order_id: id.into(),
            user_id: "u".into(),
            lines: lines(quantity),
            accepted_ms: Some(accepted),
            status: Some(OrderStatus::Confirmed),
            payments: vec![payment(id, quantity)],
            pushes: vec![
                push(id, PushKind::OrderConfirmed, &format!("{id}-e1")),
                push(id, PushKind::PaymentWait, &format!("{id}-e2")),
            ],
            terminal_ms: Some(terminal),
        }
    }

    fn cancelled(id: &str, quantity: i64) -> Settled {
        Settled {
            status: Some(OrderStatus::Cancelled),
            payments: vec![],
            pushes: vec![push(id, PushKind::OrderCancelled, &format!("{id}-e1"))],
            ..confirmed(id, quantity, 0, 1)
        }
    }

    fn healthy() -> Vec<Settled> {
        vec![confirmed("o1", 2, 100, 150), confirmed("o2", 3, 200, 260), cancelled("o3", 1)]
    }

    #[test]
    fn healthy_outcomes_pass_every_checker() {
        let orders = healthy();
        assert!(unsettled(&orders).is_empty());
        assert!(payments(&orders).is_empty());
        assert!(pushes(&orders).is_empty());
        assert_eq!(stock("a", 10, 5, &orders), Ok(()));
        assert_eq!(stock("b", 10, 8, &orders), Ok(()));
    }

    #[test]
    fn an_order_left_created_is_caught() {
        let mut orders = healthy();
        orders[1].status = Some(OrderStatus::Created);
        orders[1].payments.clear();
        let v = unsettled(&orders);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].order_id, "o2");
        let mut no_payment = healthy();
        no_payment[0].payments.clear();
        assert_eq!(unsettled(&no_payment).len(), 1, "confirmed without a payment is not settled");
    }

    #[test]
    fn an_order_published_but_never_stored_is_caught() {
        // Known only from its order.created (its client got a 503 or no answer): reading back as
        // an order is fair (committed, answer lost), a 404 is a record for an order that does
        // not exist.
        let mut orders = healthy();
        orders[0].accepted_ms = None;
        assert!(unsettled(&orders).is_empty(), "an order whose answer was lost and that exists settles");
        orders.push(Settled { accepted_ms: None, status: None, payments: Vec::new(), ..cancelled("phantom", 1) });
        let v = unsettled(&orders);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].order_id, "phantom");
        assert!(v[0].detail.contains("does not exist"), "{v:?}");
    }

    #[test]
    fn a_second_payment_or_a_payment_for_a_cancelled_order_is_caught() {
        let mut orders = healthy();
        orders[0].payments.push(payment("o1", 2));
        orders[2].payments.push(payment("o3", 1));
        let v = payments(&orders);
        assert_eq!(v.iter().map(|v| v.order_id.as_str()).collect::<Vec<_>>(), ["o1", "o3"]);
        let mut wrong = healthy();
        wrong[1].payments[0].order_id = "o1".into();
        assert_eq!(payments(&wrong).len(), 1);
    }

    #[test]
    fn a_payment_of_another_amount_or_for_another_user_is_caught() {
        let mut orders = healthy();
        orders[0].payments[0].amount = json!(5.0); // one line's worth: 2 × 2.50 + 10.00 is due
        orders[1].payments[0].user_id = Some("someone-else".into());
        let v = payments(&orders);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("of 5.0, not"), "{v:?}");
        assert!(v[1].detail.contains("for user Some(\"someone-else\")"), "{v:?}");
        let mut decimal = healthy();
        decimal[0].payments[0].amount = json!("15.00"); // 2 × 2.50 + 10.00, written as a string
        assert!(payments(&decimal).is_empty(), "{:?}", payments(&decimal));
    }

    #[test]
    fn a_second_push_is_caught_but_a_resend_is_not() {
        let mut orders = healthy();
        orders[0].pushes.push(push("o1", PushKind::PaymentWait, "o1-e2")); // resend, same eventId
        assert!(pushes(&orders).is_empty());
        orders[0].pushes.push(push("o1", PushKind::PaymentWait, "o1-e9")); // a second push
        orders[2].pushes.push(push("o3", PushKind::OrderConfirmed, "o3-e5")); // a cancelled order confirmed
        let v = pushes(&orders);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("2 PAYMENT_WAIT"));
        let mut missing = healthy();
        missing[1].pushes.retain(|p| p.kind != PushKind::OrderConfirmed);
        assert_eq!(pushes(&missing).len(), 1);
    }

    #[test]
    fn stock_that_does_not_match_the_confirmed_orders_is_caught() {
        let orders = healthy();
        assert!(stock("a", 10, 4, &orders).unwrap_err().contains("hold 5 units"));
        assert!(stock("a", 10, 6, &orders).is_err());
        assert!(stock("a", 4, -1, &orders).unwrap_err().contains("negative"));
        // A cancelled order's other line taken anyway (all or none broken): "b" fell by 3, not 2.
        assert!(stock("b", 10, 7, &orders).unwrap_err().contains("the 2 confirmed orders hold 2 units"));
    }

    #[test]
    fn in_flight_counts_orders_open_while_the_fault_was_in_place() {
        let fault = || FaultSpan { began_ms: 1000, in_place_ms: 1010, lifted_ms: Some(2000) };
        let mut orders = healthy();
        // o1 ended before the fault, o2 during it, o4 after it, o5 never, o6 was accepted after the lift.
        orders[0].terminal_ms = Some(900);
        orders[1].terminal_ms = Some(1500);
        orders.push(confirmed("o4", 1, 1200, 2500));
        orders.push(Settled { terminal_ms: None, ..confirmed("o5", 1, 1300, 0) });
        orders.push(confirmed("o6", 1, 2100, 2200));
        // o3 (cancelled) was accepted at 0 and ended at 1: not in flight.
        assert_eq!(in_flight(orders.iter().map(|o| (o.accepted_ms, o.terminal_ms)), &fault()), 3);
    }
}
