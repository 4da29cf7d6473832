//! The tables of `conformance.toml` beside its top level: `[containers]` (images, registry,
//! consumer groups), `[timing]`, `[deadlines]`, `[faults]`, `[fields]`, `[external]`,
//! `[implementation]` and `[monitor]`, each with its defaults.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Images for the `containers` backend. Another implementation runs by changing these names;
/// its images must read the runtime knobs of the contract (see docs/contract.md, "Runtime knobs").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerImages {
    /// Run through testcontainers-modules' `kafka::apache::Kafka`: must behave like the
    /// official `apache/kafka` image (ours does, see `docker/kafka/entrypoint.sh`).
    pub kafka: String,
    /// Run through testcontainers-modules' `postgres::Postgres`: must behave like the official
    /// `postgres` image and create databases order_db, product_db, payment_db, registry_db.
    pub postgres: String,
    /// The schema registry image, e.g. `apicurio/apicurio-registry:3.3.3` or
    /// `confluentinc/cp-schema-registry:7.9.0` (then set `registry_api = "confluent"`).
    pub registry: String,
    /// How to configure and address `registry`.
    pub registry_api: RegistryApi,
    pub order: String,
    pub product: String,
    pub payment: String,
    /// The services' consumer groups, keyed `order`, `product`, `payment`, as in
    /// `[external.consumer_groups]`. A service whose image is the reference's (the default) has
    /// the reference's group; another team's image has the groups named here, or none known.
    pub consumer_groups: HashMap<String, GroupNames>,
}

/// A service's consumer groups as the config names them: one (`order = "order-service"`) or
/// several (`order = ["orders-reserved", "orders-failed"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GroupNames {
    One(String),
    Several(Vec<String>),
}

impl GroupNames {
    pub fn names(&self) -> Vec<String> {
        match self {
            GroupNames::One(name) => vec![name.clone()],
            GroupNames::Several(names) => names.clone(),
        }
    }
}

/// `[<section>.consumer_groups]` by service; an unknown key or an empty name is an error.
pub(super) fn groups_by_service(
    section: &str,
    groups: &HashMap<String, GroupNames>,
) -> anyhow::Result<HashMap<crate::Service, Vec<String>>> {
    groups
        .iter()
        .map(|(key, names)| {
            let Some(service) = crate::Service::parse(key) else {
                anyhow::bail!("[{section}.consumer_groups] {key}: use order, product or payment")
            };
            let names = names.names();
            anyhow::ensure!(
                !names.is_empty() && names.iter().all(|n| !n.trim().is_empty()),
                "[{section}.consumer_groups] {key}: name the group (a string, or a list of strings), not {names:?}"
            );
            Ok((service, names))
        })
        .collect()
}

impl Default for ContainerImages {
    fn default() -> Self {
        ContainerImages {
            kafka: "saga-kafka:4.1.2".into(),
            postgres: "saga-postgres:15".into(),
            registry: "saga-apicurio-registry:3.3.3".into(),
            registry_api: RegistryApi::Apicurio,
            order: "saga-order-service:latest".into(),
            product: "saga-product-service:latest".into(),
            payment: "saga-payment-service:latest".into(),
            consumer_groups: HashMap::new(),
        }
    }
}

/// The kind of schema registry an image holds: how the containers backend configures it and
/// which base URL the services get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryApi {
    /// Apicurio Registry 3 (ours or `apicurio/apicurio-registry`): stored in the stack's
    /// PostgreSQL, addressed through its Confluent-compatible API `/apis/ccompat/v7`.
    #[default]
    Apicurio,
    /// Confluent's `cp-schema-registry`: stored in the stack's Kafka, addressed at its root.
    Confluent,
}

impl ContainerImages {
    pub fn all(&self) -> [&str; 6] {
        [&self.kafka, &self.postgres, &self.registry, &self.order, &self.product, &self.payment]
    }

    pub fn service(&self, service: crate::Service) -> &str {
        match service {
            crate::Service::Order => &self.order,
            crate::Service::Product => &self.product,
            crate::Service::Payment => &self.payment,
        }
    }
}

/// The seed's processing-time table as budgets, checked on a percentile over many orders.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// Multiplies every budget (e.g. 3.0 on a slow CI machine).
    pub scale: f64,
    pub samples: usize,
    pub warmup: usize,
    /// Which percentile must be within budget.
    pub percentile: f64,
    pub intake_ms: f64,
    pub reservation_ms: f64,
    pub confirmation_ms: f64,
    pub payment_ms: f64,
    pub saga_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deadlines {
    /// How long a step waits for an asynchronous outcome before failing.
    pub outcome_seconds: u64,
    /// How long a step watches that something does *not* happen.
    pub quiet_ms: u64,
}

/// How the fault scenarios hold their faults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultTimings {
    /// The longest the zombie scenario keeps a service paused waiting for its consumer groups to
    /// evict it (the pause ends at the eviction, as the implementation's session timeout makes
    /// it); with no group known, how long the pause lasts.
    pub zombie_pause_seconds: u64,
    /// How long the long outages (the broker's in @CRASH-2, the database server's in @CRASH-3,
    /// one service's database in @CRASH-5) last, with the load going on: long enough to exhaust
    /// any sensible retry budget, as outages in production do.
    pub long_outage_seconds: u64,
}

/// The run-level field checks (`steps/src/checkers/fields/`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fields {
    /// How far an event's `eventTimestamp`/`*At` may lie outside the run's wall-clock span:
    /// the clock skew allowed between the implementation's machines and the kit's.
    pub clock_skew_ms: i64,
}

impl Default for Fields {
    fn default() -> Self {
        Fields { clock_skew_ms: 5000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct External {
    pub order_url: String,
    pub product_url: String,
    pub payment_url: String,
    pub kafka_bootstrap: String,
    pub registry_url: String,
    /// The implementation must send pushes to `http://127.0.0.1:<push_sink_port>/push`.
    pub push_sink_port: u16,
    /// Whether the implementation dead-letters poison records to `<topic>.dlt`.
    pub dead_letter_topics: bool,
    /// Shell commands that stop/start a service, keyed `stop_order`, `start_product`, …;
    /// without them the fault scenarios are skipped (and listed as such in the report).
    pub commands: HashMap<String, String>,
    /// The services' consumer groups, keyed `order`, `product`, `payment` (one name or a list):
    /// the suite reads their committed offsets to know when an injected record was consumed.
    /// Without them it waits longer and says so in the report.
    pub consumer_groups: HashMap<String, GroupNames>,
}

impl Default for Timing {
    fn default() -> Self {
        // The seed: intake ~100 ms, reservation 1–2 s, confirmation 0.5–1 s, payment 0.5–1 s,
        // whole saga 2–5 s; the upper ends are the budgets.
        Timing {
            scale: 1.0,
            samples: 50,
            warmup: 5,
            percentile: 95.0,
            intake_ms: 100.0,
            reservation_ms: 2000.0,
            confirmation_ms: 1000.0,
            payment_ms: 1000.0,
            saga_ms: 5000.0,
        }
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines { outcome_seconds: 30, quiet_ms: 1000 }
    }
}

impl Default for FaultTimings {
    fn default() -> Self {
        // Past the Kafka client's default session timeout (45 s) with room for the coordinator
        // to notice; the reference (10 s) is evicted after ~10 s and the pause ends then.
        FaultTimings { zombie_pause_seconds: 60, long_outage_seconds: 15 }
    }
}

/// `[implementation] name = "…", version = "…"`: the identity the implementation under test
/// declares, written into `conformance.json` and the report's header. Unset, the processes and
/// containers backends (which run the reference) name the reference at the kit's version; an
/// external implementation that names nothing is recorded as such.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Implementation {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// The reference's name in records and reports.
pub const REFERENCE_NAME: &str = "saga-conformance reference";

/// The external implementation that declares no `[implementation]`.
pub const UNNAMED: &str = "unnamed implementation";

/// The live monitor (`steps/src/monitor/`): where it serves, how long a saga may take, where
/// it starts reading.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Monitor {
    /// Address of `/metrics` and the violations page; loopback unless you mean to expose it.
    pub listen: String,
    /// How long a saga may take from its `order.created` reaching the monitor to its last step;
    /// past it the saga counts as past its deadline and its missing records as lost.
    pub saga_deadline_ms: u64,
    /// `end` (only what is produced from now on) or a time to start from: RFC 3339
    /// (`2026-12-02T07:00:00Z`) or epoch milliseconds.
    pub start: String,
    /// How many recent violations the page lists.
    pub recent_violations: usize,
    /// How often the services' groups' committed offsets are read (lag, payment consumption).
    pub lag_poll_ms: u64,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            listen: "127.0.0.1:9464".into(),
            saga_deadline_ms: 30_000,
            start: "end".into(),
            recent_violations: 100,
            lag_poll_ms: 500,
        }
    }
}

impl Default for External {
    fn default() -> Self {
        External {
            order_url: "http://127.0.0.1:8081".into(),
            product_url: "http://127.0.0.1:8082".into(),
            payment_url: "http://127.0.0.1:8083".into(),
            kafka_bootstrap: "127.0.0.1:9092".into(),
            registry_url: "http://127.0.0.1:8085".into(),
            push_sink_port: 18090,
            dead_letter_topics: true,
            commands: HashMap::new(),
            consumer_groups: HashMap::new(),
        }
    }
}

/// `[capacity]`: what the implementation declares it takes, as the crash load and the capacity
/// and recovery requirements use it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capacity {
    /// Orders per second of the crash and scale scenarios' steady load, and the rate
    /// `@CAPACITY-1` holds the implementation to.
    pub load_rate: u32,
    /// Orders sent at once on top of the load just before the fault.
    pub burst: usize,
    /// How long the load's orders have to settle once it stopped: a correctness bound, generous
    /// so that a slow but correct implementation is not failed for its speed.
    pub settle_seconds: u64,
    /// `@RECOVERY-1`: how long after a crashed service is started again intake answers 201 and
    /// the orders open at the restart have settled.
    pub recovery_seconds: u64,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity { load_rate: 25, burst: 100, settle_seconds: 120, recovery_seconds: 30 }
    }
}

impl Capacity {
    /// Refuses declarations the suite cannot run with.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.load_rate > 0,
            "[capacity] load_rate = 0: declare the orders per second you sustain (1 or more)"
        );
        anyhow::ensure!(self.burst > 0, "[capacity] burst = 0: the crash scenarios need a burst of 1 order or more");
        anyhow::ensure!(self.settle_seconds > 0, "[capacity] settle_seconds = 0: give the orders time to settle");
        Ok(())
    }

    pub fn settle_bound(&self) -> Duration {
        Duration::from_secs(self.settle_seconds)
    }

    /// The declaration as the console and the report say it.
    pub fn describe(&self) -> String {
        format!(
            "{} orders/s (burst {}), settled within {} s, recovery {} s",
            self.load_rate, self.burst, self.settle_seconds, self.recovery_seconds
        )
    }
}
