//! The topic map. Defaults are the seed's names; every name can be overridden (the published
//! documents disagree with each other, e.g. `c4ang.order.created` in the contract hub).

use std::fmt;

/// The five saga topics, as a closed set so code can iterate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SagaTopic {
    OrderCreated,
    StockReserved,
    StockReservationFailed,
    OrderConfirmed,
    OrderCancelled,
}

impl SagaTopic {
    pub const ALL: [SagaTopic; 5] = [
        SagaTopic::OrderCreated,
        SagaTopic::StockReserved,
        SagaTopic::StockReservationFailed,
        SagaTopic::OrderConfirmed,
        SagaTopic::OrderCancelled,
    ];

    /// The seed's topic name.
    pub fn default_name(self) -> &'static str {
        match self {
            SagaTopic::OrderCreated => "order.created",
            SagaTopic::StockReserved => "stock.reserved",
            SagaTopic::StockReservationFailed => "stock.reservation.failed",
            SagaTopic::OrderConfirmed => "order.confirmed",
            SagaTopic::OrderCancelled => "order.cancelled",
        }
    }

    /// The environment variable that overrides the name, e.g. `TOPIC_ORDER_CREATED`.
    pub fn env_var(self) -> &'static str {
        match self {
            SagaTopic::OrderCreated => "TOPIC_ORDER_CREATED",
            SagaTopic::StockReserved => "TOPIC_STOCK_RESERVED",
            SagaTopic::StockReservationFailed => "TOPIC_STOCK_RESERVATION_FAILED",
            SagaTopic::OrderConfirmed => "TOPIC_ORDER_CONFIRMED",
            SagaTopic::OrderCancelled => "TOPIC_ORDER_CANCELLED",
        }
    }

    /// Avro full name of the record carried on this topic.
    pub fn record_full_name(self) -> &'static str {
        use crate::Event;
        match self {
            SagaTopic::OrderCreated => crate::OrderCreated::FULL_NAME,
            SagaTopic::StockReserved => crate::StockReserved::FULL_NAME,
            SagaTopic::StockReservationFailed => crate::StockReservationFailed::FULL_NAME,
            SagaTopic::OrderConfirmed => crate::OrderConfirmed::FULL_NAME,
            SagaTopic::OrderCancelled => crate::OrderCancelled::FULL_NAME,
        }
    }

    /// The contract schema (JSON) for this topic's values.
    pub fn schema_json(self) -> &'static str {
        use crate::Event;
        match self {
            SagaTopic::OrderCreated => crate::OrderCreated::SCHEMA_JSON,
            SagaTopic::StockReserved => crate::StockReserved::SCHEMA_JSON,
            SagaTopic::StockReservationFailed => crate::StockReservationFailed::SCHEMA_JSON,
            SagaTopic::OrderConfirmed => crate::OrderConfirmed::SCHEMA_JSON,
            SagaTopic::OrderCancelled => crate::OrderCancelled::SCHEMA_JSON,
        }
    }
}

impl fmt::Display for SagaTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_name())
    }
}

/// Resolved topic names for one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    names: [String; 5],
}

impl Default for Topics {
    fn default() -> Self {
        Topics { names: SagaTopic::ALL.map(|t| t.default_name().to_string()) }
    }
}

impl Topics {
    /// Defaults overridden by `TOPIC_*` environment variables.
    pub fn from_env() -> Topics {
        Topics::from_lookup(|var| std::env::var(var).ok())
    }

    /// Defaults overridden by whatever `lookup(env_var)` returns (used for config files too).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Topics {
        Topics {
            names: SagaTopic::ALL
                .map(|t| lookup(t.env_var()).filter(|n| !n.is_empty()).unwrap_or_else(|| t.default_name().to_string())),
        }
    }

    pub fn name(&self, topic: SagaTopic) -> &str {
        &self.names[topic as usize]
    }

    /// The dead-letter topic of a topic: `<topic>.dlt`.
    pub fn dead_letter(&self, topic: SagaTopic) -> String {
        format!("{}.dlt", self.name(topic))
    }

    /// Which saga topic a name belongs to, if any.
    pub fn topic_of(&self, name: &str) -> Option<SagaTopic> {
        SagaTopic::ALL.into_iter().find(|t| self.name(*t) == name)
    }

    /// `(TOPIC_* variable, name)` pairs, to pass the map on to a child process.
    pub fn env_pairs(&self) -> Vec<(&'static str, String)> {
        SagaTopic::ALL.iter().map(|t| (t.env_var(), self.name(*t).to_string())).collect()
    }
}
