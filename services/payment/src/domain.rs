//! The Payment Service's decisions, free of SQL: the payment an `order.confirmed` creates (in
//! `PAYMENT_WAIT`, for the confirmed total) and the push that tells the customer to pay. The
//! handler writes what these return; one payment per order is the table's constraint.

use saga_contract::{Money, OrderConfirmed, PaymentStatus, PushKind, PushNotification};

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

    #[test]
    fn the_push_carries_the_causing_event_id() {
        let push = payment_wait_push(&confirmed(100), None);
        assert_eq!((push.kind, push.event_id.as_str()), (PushKind::PaymentWait, "e-1"));
        assert_eq!((push.user_id.as_str(), push.order_id.as_str()), ("u-1", "o-1"));
        assert_eq!(payment_wait_push(&confirmed(100), Some("fresh".into())).event_id, "fresh");
    }
}
