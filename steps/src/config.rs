//! `conformance.toml`: which implementation to check and how strictly. Every field has a
//! default, so an empty file (or none) checks the reference stack on the `processes` backend.
//! Precedence: CLI flags > environment (`SAGA_*`) > file > defaults. docs/configuration.md lists every key.

use anyhow::Context;
use saga_contract::Topics;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The reference stack as local processes (the default).
    Processes,
    /// Docker containers via testcontainers; images from `[containers]`.
    Containers,
    /// An implementation already running; URLs from `[external]`.
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub backend: BackendKind,
    /// A directory of `*.feature` files to run instead of the ones built into the kit
    /// (`SAGA_FEATURES_DIR`, `--features-dir`); none by default.
    pub features: Option<PathBuf>,
    pub report_dir: PathBuf,
    /// Expected-failures baseline (`known.toml`, see [`crate::verdict::Baseline`]); none by default.
    pub baseline: Option<PathBuf>,
    /// Scenarios run at the same time (each has its own ids, so they do not interfere).
    pub concurrency: usize,
    /// Instances of each service (`SAGA_INSTANCES`): processes or containers the backend starts,
    /// all in the service's consumer group — or, external, how many the implementation runs. The
    /// suite's HTTP requests go to the first; the `@SCALE` scenarios need 2 or more.
    pub instances: usize,
    /// Kafka nodes (`SAGA_KAFKA_BROKERS`): 1, or a KRaft cluster of 3 or more with replication
    /// factor 3 and `min.insync.replicas` 2 that the processes or containers backend starts — or,
    /// external, how many the implementation's cluster has. `@SCALE` needs 3.
    pub kafka_brokers: usize,
    /// Topic name overrides, keyed like the env vars without `TOPIC_` (e.g. `order_created`).
    pub topics: HashMap<String, String>,
    pub timing: Timing,
    pub deadlines: Deadlines,
    pub faults: Faults,
    /// What the implementation declares it takes (`[capacity]`, see [`crate::capacity`]).
    pub capacity: crate::capacity::Capacity,
    pub fields: Fields,
    pub external: External,
    pub containers: ContainerImages,
    /// `saga-conformance monitor` (it reads the system from `[external]`).
    pub monitor: Monitor,
    /// Who the implementation says it is (`[implementation]`), for the conformance record.
    pub implementation: Implementation,
    /// The processes backend's build of the services (set by `saga-conformance selftest`,
    /// never read from a file).
    #[serde(skip)]
    pub service_variant: crate::backend::processes::ServiceVariant,
}

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
fn groups_by_service(
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
pub struct Faults {
    /// The longest the zombie scenario keeps a service paused waiting for its consumer groups to
    /// evict it (the pause ends at the eviction, as the implementation's session timeout makes
    /// it); with no group known, how long the pause lasts.
    pub zombie_pause_seconds: u64,
    /// How long the long outages (the broker's in @CRASH-2, the database server's in @CRASH-3,
    /// one service's database in @CRASH-5) last, with the load going on: long enough to exhaust
    /// any sensible retry budget, as outages in production do.
    pub long_outage_seconds: u64,
}

/// The run-level field checks (`steps/src/fields.rs`).
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

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: BackendKind::Processes,
            features: None,
            report_dir: PathBuf::from("reports/latest"),
            baseline: None,
            concurrency: 8,
            instances: 1,
            kafka_brokers: 1,
            topics: HashMap::new(),
            timing: Timing::default(),
            deadlines: Deadlines::default(),
            faults: Faults::default(),
            capacity: Default::default(),
            fields: Fields::default(),
            external: External::default(),
            containers: ContainerImages::default(),
            monitor: Monitor::default(),
            implementation: Implementation::default(),
            service_variant: Default::default(),
        }
    }
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

impl Default for Faults {
    fn default() -> Self {
        // Past the Kafka client's default session timeout (45 s) with room for the coordinator
        // to notice; the reference (10 s) is evicted after ~10 s and the pause ends then.
        Faults { zombie_pause_seconds: 60, long_outage_seconds: 15 }
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

/// What a run takes from its command line or environment over the config file: the `SAGA_*`
/// variables, declared here so `saga-conformance run --help` lists them, and read the same way
/// when the suite runs as `cargo test` ([`Overrides::from_env`]).
#[derive(Debug, Default, Clone, clap::Parser)]
pub struct Overrides {
    /// Where the implementation runs.
    #[arg(long, value_enum, env = "SAGA_BACKEND")]
    pub backend: Option<BackendKind>,
    /// Where the reports go (default reports/latest).
    #[arg(long, env = "SAGA_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,
    /// Instances of each service (docs/scaling.md; default 1).
    #[arg(long, env = "SAGA_INSTANCES")]
    pub instances: Option<usize>,
    /// Kafka nodes: 1, or 3 to 5 for a replicated cluster (default 1).
    #[arg(long, env = "SAGA_KAFKA_BROKERS")]
    pub kafka_brokers: Option<usize>,
    /// Multiplies every timing budget of `[timing]` (a slower machine).
    #[arg(long, env = "SAGA_TIMING_SCALE")]
    pub timing_scale: Option<f64>,
    /// Run the `*.feature` files of this directory instead of the built-in ones.
    #[arg(long, env = "SAGA_FEATURES_DIR")]
    pub features_dir: Option<PathBuf>,
}

impl Overrides {
    /// The `SAGA_*` variables alone (no command line), e.g. under `cargo test`.
    pub fn from_env() -> anyhow::Result<Overrides> {
        use clap::Parser;
        Overrides::try_parse_from(["saga-conformance"]).map_err(|e| anyhow::anyhow!("a SAGA_* variable: {e}"))
    }
}

impl Config {
    /// Reads `path` (or `conformance.toml` in the working directory if it exists), then applies
    /// the `SAGA_*` environment variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        Self::load_with(path, &Overrides::from_env()?)
    }

    /// Reads `path` as [`Config::load`] does, then applies `overrides`.
    pub fn load_with(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut config = match path {
            Some(p) => Self::from_file(p)?,
            None if Path::new("conformance.toml").exists() => Self::from_file(Path::new("conformance.toml"))?,
            None => Config::default(),
        };
        let o = overrides.clone();
        config.backend = o.backend.unwrap_or(config.backend);
        config.report_dir = o.report_dir.unwrap_or(config.report_dir);
        config.instances = o.instances.unwrap_or(config.instances);
        config.kafka_brokers = o.kafka_brokers.unwrap_or(config.kafka_brokers);
        config.timing.scale = o.timing_scale.unwrap_or(config.timing.scale);
        config.features = o.features_dir.or(config.features);
        config.scale()?;
        config.capacity.check()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!("{} is not a valid conformance config (see docs/configuration.md)", path.display())
        })
    }

    pub fn topic_map(&self) -> Topics {
        Topics::from_lookup(|var| {
            let key = var.trim_start_matches("TOPIC_").to_ascii_lowercase();
            self.topics.get(&key).cloned().or_else(|| std::env::var(var).ok())
        })
    }

    /// The implementation's consumer groups by service: the reference's names on the processes
    /// backend; on the containers backend the reference's for a service run from the reference's
    /// image, `[containers.consumer_groups]` for another team's; `[external.consumer_groups]`
    /// for an external implementation. A service with none known is left out.
    pub fn consumer_groups(&self) -> anyhow::Result<HashMap<crate::Service, Vec<String>>> {
        match self.backend {
            BackendKind::Processes => Ok(crate::groups::ConsumerGroups::reference_names()),
            BackendKind::External => groups_by_service("external", &self.external.consumer_groups),
            BackendKind::Containers => {
                let mut named = groups_by_service("containers", &self.containers.consumer_groups)?;
                let reference = ContainerImages::default();
                for (service, groups) in crate::groups::ConsumerGroups::reference_names() {
                    if self.containers.service(service) == reference.service(service) {
                        named.entry(service).or_insert(groups);
                    }
                }
                Ok(named)
            }
        }
    }

    /// The stack's scale (`instances`, `kafka_brokers`), checked.
    pub fn scale(&self) -> anyhow::Result<crate::backend::Scale> {
        anyhow::ensure!(
            (1..=8).contains(&self.instances),
            "instances = {}: run 1 to 8 processes of each service",
            self.instances
        );
        anyhow::ensure!(
            self.kafka_brokers == 1 || (3..=5).contains(&self.kafka_brokers),
            "kafka_brokers = {}: use 1 (a single node) or 3 to 5 (a cluster with replication factor 3 and min.insync.replicas 2)",
            self.kafka_brokers
        );
        Ok(crate::backend::Scale { instances: self.instances, brokers: self.kafka_brokers })
    }

    /// The implementation's declared name and version, defaults applied (see [`Implementation`]).
    pub fn implementation_identity(&self) -> (String, String) {
        let (name, version) = match self.backend {
            BackendKind::External => (UNNAMED, "unknown"),
            _ => (REFERENCE_NAME, env!("CARGO_PKG_VERSION")),
        };
        (
            self.implementation.name.clone().unwrap_or_else(|| name.to_string()),
            self.implementation.version.clone().unwrap_or_else(|| version.to_string()),
        )
    }

    pub fn outcome_deadline(&self) -> Duration {
        Duration::from_secs(self.deadlines.outcome_seconds)
    }

    pub fn quiet_period(&self) -> Duration {
        Duration::from_millis(self.deadlines.quiet_ms)
    }

    pub fn zombie_pause(&self) -> Duration {
        Duration::from_secs(self.faults.zombie_pause_seconds)
    }

    pub fn long_outage(&self) -> Duration {
        Duration::from_secs(self.faults.long_outage_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;

    fn parse(text: &str) -> Config {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_service_names_one_consumer_group_or_several() {
        let config = parse(
            "backend = \"external\"\n[external.consumer_groups]\norder = [\"orders-reserved\", \"orders-failed\"]\nproduct = \"product-service\"\n",
        );
        let groups = config.consumer_groups().unwrap();
        assert_eq!(groups[&Service::Order], ["orders-reserved", "orders-failed"]);
        assert_eq!(groups[&Service::Product], ["product-service"]);
        assert!(!groups.contains_key(&Service::Payment));
    }

    #[test]
    fn an_unknown_service_or_an_empty_group_list_is_refused() {
        let typo = parse("backend = \"external\"\n[external.consumer_groups]\norders = \"x\"\n");
        assert!(typo.consumer_groups().unwrap_err().to_string().contains("use order, product or payment"));
        let empty = parse("backend = \"external\"\n[external.consumer_groups]\norder = []\n");
        assert!(empty.consumer_groups().unwrap_err().to_string().contains("name the group"));
        assert!(toml::from_str::<Config>("[external.consumer_groups]\norder = 3\n").is_err());
    }

    #[test]
    fn containers_take_another_teams_groups_from_the_config_not_the_references() {
        let reference = parse("backend = \"containers\"\n").consumer_groups().unwrap();
        assert_eq!(reference, crate::groups::ConsumerGroups::reference_names());
        let theirs = parse(
            "backend = \"containers\"\n[containers]\norder = \"their-order:1\"\nproduct = \"their-product:1\"\n[containers.consumer_groups]\norder = [\"a\", \"b\"]\n",
        );
        let groups = theirs.consumer_groups().unwrap();
        assert_eq!(groups[&Service::Order], ["a", "b"]);
        assert!(!groups.contains_key(&Service::Product), "their product image has no group named: {groups:?}");
        assert_eq!(groups[&Service::Payment], ["payment-service"]);
    }

    #[test]
    fn dead_letter_topics_default_to_declared_and_can_be_declined() {
        assert!(parse("backend = \"external\"\n").external.dead_letter_topics);
        assert!(!parse("[external]\ndead_letter_topics = false\n").external.dead_letter_topics);
    }
}
