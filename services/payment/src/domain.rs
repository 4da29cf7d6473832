//! The Payment Service's decisions, free of SQL: the payment an `order.confirmed` creates (in
//! `PAYMENT_WAIT`, for the confirmed total), which records of a batch create one (one payment
//! per order; the table's constraint backs it up) and the push that tells the customer to pay.
//! The handler writes what these return.

use saga_contract::{Money, OrderConfirmed, PaymentStatus, PushKind, PushNotification};
use std::collections::HashSet;

/// The status every new payment starts in: the saga's final state.
pub const NEW_PAYMENT: PaymentStatus = PaymentStatus::PaymentWait;

/// A payment to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub order_id: String,
    pub user_id: String,
    pub amount: Money,
}

/// The payment for a confirmed order: its total, owed by its user. A negative total is not
/// something to collect; the record is refused (dead-lettered) with that reason.
pub fn payment_for(confirmed: &OrderConfirmed) -> Result<NewPayment, String> {
    if confirmed.total_amount.0 < 0 {
        return Err(format!(
            "order.confirmed {} for order {} carries a negative totalAmount ({})",
            confirmed.event_id, confirmed.order_id, confirmed.total_amount.0
        ));
    }
    Ok(NewPayment {
        order_id: confirmed.order_id.clone(),
        user_id: confirmed.user_id.clone(),
        amount: confirmed.total_amount,
    })
}

/// Which records of a batch create a payment, one flag per record in offset order: a fresh
/// record (its eventId claimed now, see `saga_service_kit::claims::Claims::fresh`) whose order
/// has no payment yet — neither from before the batch (`paid_before`) nor from an earlier record
/// of it. `one_per_order` false is the seeded fault `payment::no-unique-order`: every fresh
/// record pays.
pub fn creates_payment(
    payments: &[NewPayment],
    fresh: &[bool],
    paid_before: impl IntoIterator<Item = String>,
    one_per_order: bool,
) -> Vec<bool> {
    let mut paid: HashSet<String> = paid_before.into_iter().collect();
    payments
        .iter()
        .zip(fresh)
        .map(|(payment, fresh)| *fresh && (!one_per_order || paid.insert(payment.order_id.clone())))
        .collect()
}

/// The push sent once the payment exists. It carries the eventId of the `order.confirmed`
/// that caused it, so a gateway drops a resend; `own_event_id` is the seeded fault
/// `payment::push-own-event-id` (a fresh id instead).
pub fn payment_wait_push(confirmed: &OrderConfirmed, own_event_id: Option<String>) -> PushNotification {
    PushNotification {
        user_id: confirmed.user_id.clone(),
        order_id: confirmed.order_id.clone(),
        kind: PushKind::PaymentWait,
        message: "결제를 진행해주세요".into(),
        event_id: own_event_id.unwrap_or_else(|| confirmed.event_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmed(total: i64) -> OrderConfirmed {
        OrderConfirmed {
            event_id: "e-1".into(),
            event_timestamp: 1,
            order_id: "o-1".into(),
            user_id: "u-1".into(),
            total_amount: Money(total),
            confirmed_at: 1,
        }
    }

    #[test]
    fn the_payment_is_for_the_confirmed_total_of_the_orders_user() {
        assert_eq!(
            payment_for(&confirmed(1999)),
            Ok(NewPayment { order_id: "o-1".into(), user_id: "u-1".into(), amount: Money(1999) })
        );
        assert!(payment_for(&confirmed(0)).is_ok(), "a free order still ends in PAYMENT_WAIT");
    }

    #[test]
    fn a_negative_total_is_refused_naming_the_event() {
        let refused = payment_for(&confirmed(-1)).unwrap_err();
        assert!(refused.contains("e-1") && refused.contains("negative"), "{refused}");
    }

    fn payment(order_id: &str) -> NewPayment {
        NewPayment { order_id: order_id.into(), user_id: "u-1".into(), amount: Money(100) }
    }

    #[test]
    fn one_payment_per_order_from_fresh_records_only() {
        let batch = [payment("o-1"), payment("o-2"), payment("o-1"), payment("o-3"), payment("o-4")];
        // o-2's record is a redelivery; o-1 appears twice (two eventIds); o-3 was paid before.
        let fresh = [true, false, true, true, true];
        assert_eq!(creates_payment(&batch, &fresh, vec!["o-3".to_string()], true), [true, false, false, false, true]);
        // The seeded fault: only the eventId dedupe guards, so every fresh record pays.
        assert_eq!(creates_payment(&batch, &fresh, vec!["o-3".to_string()], false), [true, false, true, true, true]);
    }

    #[test]
    fn the_push_carries_the_causing_event_id() {
        let push = payment_wait_push(&confirmed(100), None);
        assert_eq!((push.kind, push.event_id.as_str()), (PushKind::PaymentWait, "e-1"));
        assert_eq!((push.user_id.as_str(), push.order_id.as_str()), ("u-1", "o-1"));
        assert_eq!(payment_wait_push(&confirmed(100), Some("fresh".into())).event_id, "fresh");
    }
}
