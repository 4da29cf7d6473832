//! # saga-conformance
//!
//! The conformance kit for the order-creation saga. It drives an implementation of the three
//! services black-box — over HTTP, Kafka and push notifications — and checks it against the
//! documented requirements in `features/`. Run it: `saga-conformance run` (see the README), or
//! `cargo test -p saga-conformance`.
//!
//! ## Layers, bottom up
//!
//! The kit is built in layers, as the services are: a module imports from its own layer or the
//! ones below, never from above, and no two modules import each other, even round a circle. The
//! numbered list below is the table the layer check (`layers.rs`, a unit test) reads: it fails on
//! an import circle, an upward import, a module missing from the list, more than 9 floors from
//! `main.rs` down, or a source file over 500 lines.
//!
//! 1. **types** (`crate`, `types`, `api`, `observed`, `results`, `config`, `timing`, `poll`,
//!    `open_loop`, `svg`, `layers`): plain data and pure helpers everything may use —
//!    [`Service`] (here); a stack's [`types`] (its scale, endpoints, build); the HTTP API's bodies
//!    [`api`]; what the kit [`observed`] (Kafka records, pushes); a run's [`results`] (statuses,
//!    requirement ids, what cucumber's JSON says); the configuration [`config`]
//!    (`conformance.toml`); stage timings [`timing`]; waiting with a deadline [`poll`] (until
//!    something holds, or that it holds throughout); the schedule both load generators pace their
//!    orders by [`open_loop`]; the SVG pieces [`svg`] the reports share; and the layer check
//!    itself (test only).
//! 2. **checkers** (`checkers`): the judgements, Jepsen-style, over what was observed —
//!    [`checkers`] (what lost and duplicated mean, once; keys, order, duplicates, lost events over
//!    the tap's log; what a steady load's orders ended as after a crash; field meanings over the
//!    whole run; stage latencies).
//! 3. **watching and calling** (`kafka`, `tap`, `sink`, `client`, `groups`, `membership`): the
//!    implementation seen from outside — [`kafka`] (every Kafka client the kit makes, one
//!    function per kind), [`tap`] (a Kafka consumer that records every saga record, decoded and
//!    validated), [`sink`] (the push gateway stand-in, wiremock), [`client`] (the saga's HTTP
//!    API, typed), [`groups`] (the consumer groups' committed offsets), [`membership`] (which
//!    member of a consumer group owns which partition).
//! 4. **faults and backends** (`backend`): where the implementation runs and how faults are put
//!    on it — `processes` (the reference stack as local processes), `containers`
//!    (testcontainers), `external` (URLs and commands), one folder each.
//! 5. **run** (`verdict`, `junit`, `report`, `record`): a run's results and what is written of
//!    them — [`verdict`] (levels, the baseline, the verdict and exit codes), [`junit`]
//!    (`junit.xml`), [`report`] (the HTML report), [`record`] (the conformance record
//!    `conformance.json`, its `verify` and `badge`, and `ctrf.json`).
//! 6. **steps** (`steps`): the cucumber World and the step definitions, glue between the
//!    features and the layers below.
//! 7. **commands** (`runner`, `bench`, `monitor`, `selftest`): what `main.rs` runs —
//!    [`runner`] (`saga-conformance run`), [`bench`] (open-loop load and its measurements),
//!    [`monitor`] (the checkers on a live system's topics, as Prometheus metrics and a page),
//!    [`selftest`] (the suite against seeded faults in the reference: the kill matrix).
//!
//! `main.rs` stands above them all: it parses the command line and calls a command.

pub mod api;
pub mod backend;
pub mod bench;
pub mod checkers;
pub mod client;
pub mod config;
pub mod groups;
pub mod junit;
pub mod kafka;
#[cfg(test)]
mod layers;
pub mod membership;
pub mod monitor;
pub mod observed;
pub mod open_loop;
pub mod poll;
pub mod record;
pub mod report;
pub mod results;
pub mod runner;
pub mod selftest;
pub mod sink;
pub mod steps;
pub mod svg;
pub mod tap;
pub mod timing;
pub mod types;
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
