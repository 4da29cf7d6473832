//! Typed captures for the step texts (cucumber expressions' custom parameters): a topic, a
//! service, a push type, an order or payment status, an amount. Each parameter's regex admits
//! exactly the values of its type, so a step written with an unknown one matches no step
//! definition (the run names it) instead of failing a look-up inside the step; `FromStr` then
//! turns the matched text into the contract's type.

use crate::Service;
use saga_contract::{Money, OrderStatus, PaymentStatus, PushKind, SagaTopic, UnknownValue};
use std::str::FromStr;

/// A parameter: its type, name, regex and how the matched text becomes the type.
macro_rules! parameter {
    ($(#[$meta:meta])* $name:ident($inner:ty), $param:tt, $regex:tt, $err:ty, $parse:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, cucumber::Parameter)]
        #[param(name = $param, regex = $regex)]
        pub struct $name(pub $inner);

        impl FromStr for $name {
            type Err = $err;

            fn from_str(text: &str) -> Result<$name, $err> {
                let parse: fn(&str) -> Result<$inner, $err> = $parse;
                parse(text.trim_matches('"')).map($name)
            }
        }
    };
}

parameter!(
    /// A saga topic by its seed name, quoted: `"order.created"`.
    Topic(SagaTopic),
    "topic",
    r#""(order\.created|stock\.reserved|stock\.reservation\.failed|order\.confirmed|order\.cancelled)""#,
    String,
    |name| {
        SagaTopic::ALL.into_iter().find(|t| t.default_name() == name).ok_or_else(|| format!("{name:?} is not a saga topic"))
    }
);
parameter!(
    /// Saga topics listed in a step: `"order.created", "stock.reserved"`.
    TopicList(Vec<SagaTopic>),
    "topics",
    r#""[a-z.]+"(?:, "[a-z.]+")*"#,
    String,
    |list| list.split(", ").map(|t| t.parse::<Topic>().map(|t| t.0)).collect()
);
parameter!(
    /// A service as features name it: `Product Service`.
    Svc(Service),
    "service",
    r"(Order|Product|Payment) Service",
    String,
    |name| Service::parse(name).ok_or_else(|| format!("{name:?} is not a service of the saga"))
);
parameter!(
    /// A push type, quoted: `"PAYMENT_WAIT"`.
    Kind(PushKind),
    "push_kind",
    r#""(ORDER_CONFIRMED|PAYMENT_WAIT|ORDER_CANCELLED)""#,
    UnknownValue,
    str::parse
);
parameter!(
    /// An order status, quoted: `"ORDER_CONFIRMED"`.
    Status(OrderStatus),
    "order_status",
    r#""(ORDER_CREATED|ORDER_CONFIRMED|ORDER_CANCELLED)""#,
    UnknownValue,
    str::parse
);
parameter!(
    /// A payment status, quoted: `"PAYMENT_WAIT"`.
    PaymentState(PaymentStatus),
    "payment_status",
    r#""(PAYMENT_WAIT)""#,
    UnknownValue,
    str::parse
);
parameter!(
    /// An amount as features write it: `15000.00`, `9.99`, `10`.
    Amount(Money),
    "amount",
    r"\d+(?:\.\d{1,2})?",
    String,
    |text| Money::parse(text).ok_or_else(|| format!("{text} is not an amount"))
);
parameter!(
    /// Aliases listed in a step: `"A", "M" and "Z"`.
    Aliases(Vec<String>),
    "aliases",
    r#""[^"]+"(?:(?:, | and )"[^"]+")*"#,
    std::convert::Infallible,
    |list| Ok(list.split(['"', ',']).map(str::trim).filter(|a| !a.is_empty() && *a != "and").map(str::to_string).collect())
);

#[cfg(test)]
mod tests {
    use super::*;
    use cucumber::Parameter;

    /// The alternatives a parameter's regex admits, e.g. `"(a|b)"` → `[a, b]`.
    fn alternatives(regex: &str) -> Vec<&str> {
        let inner = &regex[regex.find('(').unwrap() + 1..regex.rfind(')').unwrap()];
        inner.split('|').collect()
    }

    #[test]
    fn each_regex_admits_exactly_the_values_of_its_type() {
        let topics: Vec<String> = alternatives(Topic::REGEX).iter().map(|t| t.replace('\\', "")).collect();
        assert_eq!(topics, SagaTopic::ALL.map(|t| t.default_name().to_string()));
        assert_eq!(alternatives(Kind::REGEX), PushKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        assert_eq!(alternatives(Status::REGEX), OrderStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert_eq!(
            alternatives(PaymentState::REGEX),
            PaymentStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()
        );
        assert_eq!(alternatives(Svc::REGEX), ["Order", "Product", "Payment"]);
    }

    #[test]
    fn captures_parse_into_the_contract_types() {
        assert_eq!("\"stock.reserved\"".parse::<Topic>(), Ok(Topic(SagaTopic::StockReserved)));
        assert_eq!(
            "\"order.created\", \"order.confirmed\"".parse::<TopicList>(),
            Ok(TopicList(vec![SagaTopic::OrderCreated, SagaTopic::OrderConfirmed]))
        );
        assert!("\"order.created\", \"order.shipped\"".parse::<TopicList>().is_err());
        assert_eq!("Product Service".parse::<Svc>(), Ok(Svc(Service::Product)));
        assert_eq!("\"PAYMENT_WAIT\"".parse::<Kind>(), Ok(Kind(PushKind::PaymentWait)));
        assert_eq!("9.99".parse::<Amount>(), Ok(Amount(Money(999))));
        assert!("\"SHIPPED\"".parse::<Status>().is_err());
        assert_eq!("\"A\", \"M\" and \"Z\"".parse::<Aliases>().unwrap().0, ["A", "M", "Z"]);
    }
}
