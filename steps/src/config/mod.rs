//! `conformance.toml`: which implementation to check and how strictly. Every field has a
//! default, so an empty file (or none) checks the reference stack on the `processes` backend.
//! Precedence: CLI flags > environment (`SAGA_*`) > file > defaults. docs/configuration.md lists every key.

pub mod sections;

use anyhow::Context;
use saga_contract::Topics;
use sections::groups_by_service;
use sections::{
    Capacity, ContainerImages, Deadlines, External, FaultTimings, Fields, Implementation, Monitor, REFERENCE_NAME,
    Timing, UNNAMED,
};
use serde::Deserialize;
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
    pub faults: FaultTimings,
    /// What the implementation declares it takes (`[capacity]`, judged by
    /// [`crate::checkers::capacity`]).
    pub capacity: Capacity,
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
    pub service_variant: crate::types::ServiceVariant,
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
            faults: FaultTimings::default(),
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
            BackendKind::Processes => Ok(crate::types::reference_consumer_groups()),
            BackendKind::External => groups_by_service("external", &self.external.consumer_groups),
            BackendKind::Containers => {
                let mut named = groups_by_service("containers", &self.containers.consumer_groups)?;
                let reference = ContainerImages::default();
                for (service, groups) in crate::types::reference_consumer_groups() {
                    if self.containers.service(service) == reference.service(service) {
                        named.entry(service).or_insert(groups);
                    }
                }
                Ok(named)
            }
        }
    }

    /// The stack's scale (`instances`, `kafka_brokers`), checked.
    pub fn scale(&self) -> anyhow::Result<crate::types::Scale> {
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
        Ok(crate::types::Scale { instances: self.instances, brokers: self.kafka_brokers })
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
        assert_eq!(reference, crate::types::reference_consumer_groups());
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
