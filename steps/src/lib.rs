//! # saga-conformance
//!
//! The conformance kit for the order-creation saga. It drives an implementation of the three
//! services black-box — over HTTP, Kafka and push notifications — and checks it against the
//! documented requirements in `features/`:
//!
//! - [`backend`]: where the implementation runs and how faults are put on it — `processes` (the
//!   reference stack as local processes), `containers` (testcontainers), `external` (URLs and
//!   commands), one folder each;
//! - [`client`]: the saga's HTTP API (orders, products, payments, health), typed;
//! - [`poll`]: waiting with a deadline — until something holds, or that it holds throughout;
//! - [`tap`]: a Kafka consumer that records every saga record, decoded and validated;
//! - [`checkers`]: Jepsen-style checks over the tap's log (keys, order, duplicates);
//! - [`groups`]: the implementation's consumer groups' committed offsets (when was a record consumed);
//! - [`membership`]: which member of a consumer group owns which partition (the scale scenarios);
//! - [`checkers_crash`]: checks of what a steady load's orders ended as after a crash;
//! - [`capacity`]: the declared `[capacity]`, and the capacity and recovery requirements' checks;
//! - [`fields`]: field meanings over the whole run (eventIds, timestamps, push causes, lines);
//! - [`sink`]: the push gateway stand-in (wiremock) the implementation is pointed at;
//! - [`steps`]: the cucumber World and step definitions; [`report`]: the HTML report;
//!   [`svg`]: escaping and the SVG pieces the report and the bench share;
//!   [`junit`]: `junit.xml`; [`verdict`]: levels, the baseline, the verdict and exit codes;
//! - [`record`]: the conformance record `conformance.json` (what ran, against what, with which
//!   declarations), `saga-conformance verify` and `badge`, and `ctrf.json`;
//! - [`selftest`]: the suite run against seeded faults in the reference (the kill matrix);
//! - [`bench`]: `saga-conformance bench`, open-loop load and its measurements against the
//!   reference or an external implementation;
//! - [`monitor`]: `saga-conformance monitor`, the checkers applied to a live system's topics,
//!   served as Prometheus metrics and a page of recent violations.
//!
//! Run it: `saga-conformance run` (see the README), or `cargo test -p saga-conformance`.

pub mod backend;
pub mod bench;
pub mod capacity;
pub mod checkers;
pub mod checkers_crash;
pub mod client;
pub mod config;
pub mod fields;
pub mod groups;
pub mod junit;
pub mod membership;
pub mod monitor;
pub mod poll;
pub mod record;
pub mod report;
pub mod runner;
pub mod selftest;
pub mod sink;
pub mod steps;
pub mod svg;
pub mod tap;
pub mod timing;
pub mod verdict;

use std::fmt;

/// The three services of the saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Order,
    Product,
    Payment,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Order, Service::Product, Service::Payment];

    pub fn binary(self) -> &'static str {
        match self {
            Service::Order => "order-service",
            Service::Product => "product-service",
            Service::Payment => "payment-service",
        }
    }

    pub fn database(self) -> &'static str {
        match self {
            Service::Order => "order_db",
            Service::Product => "product_db",
            Service::Payment => "payment_db",
        }
    }

    /// Parses "Order", "order service", "Product Service", … as written in features.
    pub fn parse(text: &str) -> Option<Service> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.trim_end_matches(" service");
        match t {
            "order" => Some(Service::Order),
            "product" => Some(Service::Product),
            "payment" => Some(Service::Payment),
            _ => None,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Order => "Order Service",
            Service::Product => "Product Service",
            Service::Payment => "Payment Service",
        })
    }
}
