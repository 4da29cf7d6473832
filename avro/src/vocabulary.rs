//! The saga's closed vocabularies on the wire: push types and order and payment statuses, each
//! spelled exactly as `docs/contract.md` writes it. `as_str`, `Display`, `FromStr` and serde all
//! use that one spelling, so a value outside the contract is a parse error that names it and
//! the values allowed (the suite reports it as a failed check), never a panic.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A wire value that is none of its vocabulary's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {text:?} is none of {}", allowed.join(", "))]
pub struct UnknownValue {
    pub what: &'static str,
    pub text: String,
    pub allowed: &'static [&'static str],
}

/// One enum per vocabulary, with its wire spellings written once.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The contract's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<$name, UnknownValue> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text).ok_or_else(|| UnknownValue {
                    what: $what,
                    text: text.to_string(),
                    allowed: &[$($wire,)+],
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary! {
    /// The `type` of a push notification.
    PushKind, "push type" {
        /// Order Service: the order is confirmed.
        OrderConfirmed = "ORDER_CONFIRMED",
        /// Payment Service: the payment exists and waits to be paid.
        PaymentWait = "PAYMENT_WAIT",
        /// Order Service: the order is cancelled (stock short).
        OrderCancelled = "ORDER_CANCELLED",
    }
}

vocabulary! {
    /// An order's `status` (`ORDER_CREATED → ORDER_CONFIRMED`, or `→ ORDER_CANCELLED`).
    OrderStatus, "order status" {
        Created = "ORDER_CREATED",
        Confirmed = "ORDER_CONFIRMED",
        Cancelled = "ORDER_CANCELLED",
    }
}

vocabulary! {
    /// A payment's `status`: every payment the saga creates waits to be paid.
    PaymentStatus, "payment status" {
        PaymentWait = "PAYMENT_WAIT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_spelling_and_json() {
        for kind in PushKind::ALL {
            assert_eq!(kind.as_str().parse::<PushKind>(), Ok(*kind));
            assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{kind}\""));
        }
        for status in OrderStatus::ALL {
            assert_eq!(serde_json::from_value::<OrderStatus>(serde_json::json!(status.as_str())).unwrap(), *status);
        }
        assert_eq!("PAYMENT_WAIT".parse::<PaymentStatus>(), Ok(PaymentStatus::PaymentWait));
    }

    #[test]
    fn an_unknown_value_is_an_error_naming_it_and_the_allowed_ones() {
        let error = "CONFIRMED".parse::<PushKind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"push type "CONFIRMED" is none of ORDER_CONFIRMED, PAYMENT_WAIT, ORDER_CANCELLED"#
        );
        let error = serde_json::from_str::<OrderStatus>(r#""PAYMENT_WAIT""#).unwrap_err().to_string();
        assert!(error.contains(r#"order status "PAYMENT_WAIT" is none of ORDER_CREATED"#), "{error}");
    }
}
