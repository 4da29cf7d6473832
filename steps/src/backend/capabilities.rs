//! What a backend can do beyond HTTP and Kafka. A scenario needing more carries
//! `@needs-<capability>` tags and is skipped, with the reason in the report, when the backend
//! lacks one. The processes and containers backends can do everything their scale allows; an
//! external one only what its `[external.commands]` allow — per service, so commands for the
//! Product Service alone enable the scenarios that touch only it.

use super::fault::{Fault, ScaleNeed};
use crate::types::Scale;
use std::collections::{BTreeSet, HashMap};

/// One capability: its name, the external commands that provide it, and the scale it needs.
struct Capability {
    name: String,
    commands: Vec<String>,
    needs: ScaleNeed,
}

/// Every capability there is: one per fault the suite puts in place ([`Fault::capability`]: the
/// fault's command and its undoing's), and `broker-cluster`, the broker kill on a cluster whose
/// other nodes take over. `dead-letters` is declared, not commanded (see
/// [`Capabilities::from_commands`]).
fn catalogue() -> Vec<Capability> {
    let of = |fault: Fault| {
        let (name, undo) = (fault.capability()?, fault.undo()?);
        Some(Capability { name, commands: vec![fault.command(), undo.command()], needs: fault.scale_need() })
    };
    let mut all: Vec<Capability> = Fault::kinds().into_iter().filter_map(of).collect();
    all.extend(of(Fault::KillBroker).map(|kill| Capability {
        name: "broker-cluster".into(),
        needs: ScaleNeed::Cluster,
        ..kill
    }));
    all
}

#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// Capability names: `stop-<svc>`, `pause-<svc>`, `kill-<svc>`, `db-kill-<svc>`,
    /// `broker-stop`, `broker-kill`, `db-kill`, `dead-letters` (`<svc>` is order, product or payment); with
    /// several instances `kill-instance-<svc>`, `pause-instance-<svc>`, `add-instance-<svc>`,
    /// with a cluster of 3 or more Kafka nodes `broker-cluster`.
    available: BTreeSet<String>,
    scale: Scale,
    /// An external implementation: what is missing is a command or a declaration, not a setting
    /// of ours.
    external: bool,
}

impl Capabilities {
    /// Everything a stack we run ourselves can do at `scale`.
    pub fn all(scale: Scale) -> Capabilities {
        let mut available: BTreeSet<String> =
            catalogue().into_iter().filter(|c| scale.allows(c.needs)).map(|c| c.name).collect();
        available.insert("dead-letters".into());
        Capabilities { available, scale, external: false }
    }

    /// What an external implementation's commands and declarations (its scale, its dead-letter
    /// topics) allow.
    pub fn from_commands(commands: &HashMap<String, String>, dead_letters: bool, scale: Scale) -> Capabilities {
        let mut available: BTreeSet<String> = catalogue()
            .into_iter()
            .filter(|c| scale.allows(c.needs) && c.commands.iter().all(|k| commands.contains_key(k)))
            .map(|c| c.name)
            .collect();
        if dead_letters {
            available.insert("dead-letters".into());
        }
        Capabilities { available, scale, external: true }
    }

    /// Every capability this backend has, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.available.iter().map(String::as_str)
    }

    pub fn has(&self, capability: &str) -> bool {
        self.available.contains(capability)
    }

    /// Why a scenario tagged `@needs-<capability>` cannot run here: `None` when it can.
    pub fn missing(&self, capability: &str) -> Option<String> {
        if self.has(capability) {
            return None;
        }
        if capability == "dead-letters" {
            return Some(
                "the implementation declares no dead-letter topics ([external] dead_letter_topics = false)".into(),
            );
        }
        let Some(known) = catalogue().into_iter().find(|c| c.name == capability) else {
            return Some(format!("needs {capability}, which no backend provides (a typo in the feature's tags?)"));
        };
        let declare = if self.external { "declare" } else { "set" };
        if !self.scale.allows(known.needs) {
            return Some(match known.needs {
                ScaleNeed::Instances => format!(
                    "{capability}: needs 2 or more instances of each service ({} now): {declare} instances = 2 in conformance.toml (or SAGA_INSTANCES=2)",
                    self.scale.instances
                ),
                _ => format!(
                    "{capability}: needs a Kafka cluster of 3 nodes ({} now): {declare} kafka_brokers = 3 in conformance.toml (or SAGA_KAFKA_BROKERS=3)",
                    self.scale.brokers
                ),
            });
        }
        Some(format!("needs {capability}: configure [external.commands] {}", known.commands.join(" and ")))
    }
}

impl Scale {
    fn allows(&self, need: ScaleNeed) -> bool {
        match need {
            ScaleNeed::None => true,
            ScaleNeed::Instances => self.instances >= 2,
            ScaleNeed::Cluster => self.brokers >= 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(keys: &[&str]) -> HashMap<String, String> {
        keys.iter().map(|k| (k.to_string(), "true".to_string())).collect()
    }

    #[test]
    fn external_commands_enable_capabilities_per_service() {
        let caps = Capabilities::from_commands(
            &commands(&["stop_product", "start_product", "kill_kafka"]),
            false,
            Scale::default(),
        );
        assert!(caps.has("stop-product"));
        assert!(!caps.has("stop-order"), "no stop_order command");
        assert!(!caps.has("kill-product"), "kill_product is missing");
        assert!(!caps.has("broker-kill"), "kill_kafka without start_kafka");
        assert!(!caps.has("dead-letters"));
        assert!(caps.missing("broker-kill").is_some_and(|why| why.contains("kill_kafka and start_kafka")));
        assert!(caps.missing("stop-product").is_none());
        let database =
            Capabilities::from_commands(&commands(&["kill_db_product", "start_db_product"]), false, Scale::default());
        assert!(database.has("db-kill-product") && !database.has("db-kill-order") && !database.has("db-kill"));
        assert!(
            database.missing("db-kill-payment").is_some_and(|why| why.contains("kill_db_payment and start_db_payment"))
        );
    }

    #[test]
    fn the_stacks_we_run_can_do_everything_at_their_scale() {
        let caps = Capabilities::all(Scale::default());
        for capability in [
            "stop-order",
            "pause-payment",
            "kill-product",
            "broker-stop",
            "broker-kill",
            "db-kill",
            "db-kill-product",
            "dead-letters",
        ] {
            assert!(caps.has(capability), "{capability}");
        }
        assert!(caps.missing("teleport").is_some_and(|why| why.contains("typo")));
    }

    #[test]
    fn scale_capabilities_need_instances_and_a_cluster() {
        let single = Capabilities::all(Scale::default());
        assert!(!single.has("kill-instance-product"), "one instance cannot lose one of several");
        assert!(single.missing("kill-instance-product").is_some_and(|why| why.contains("instances = 2")));
        assert!(single.missing("broker-cluster").is_some_and(|why| why.contains("kafka_brokers = 3")));
        let instances_only = Capabilities::all(Scale { instances: 2, brokers: 1 });
        assert!(instances_only.has("add-instance-product") && !instances_only.has("broker-cluster"));
        let scaled = Capabilities::all(Scale { instances: 2, brokers: 3 });
        assert!(scaled.has("pause-instance-order") && scaled.has("broker-cluster"));
    }

    #[test]
    fn an_external_cluster_needs_its_declaration_and_its_commands() {
        let scaled = Scale { instances: 2, brokers: 3 };
        let broker = commands(&["kill_kafka", "start_kafka"]);
        assert!(!Capabilities::from_commands(&broker, true, Scale::default()).has("broker-cluster"));
        assert!(Capabilities::from_commands(&broker, true, scaled).has("broker-cluster"));
        let without = Capabilities::from_commands(&commands(&[]), true, scaled);
        assert!(without.missing("broker-cluster").is_some_and(|why| why.contains("kill_kafka and start_kafka")));
        let instance = commands(&["kill_instance_product", "start_instance_product"]);
        assert!(Capabilities::from_commands(&instance, true, scaled).has("kill-instance-product"));
        let one = Capabilities::from_commands(&instance, true, Scale::default());
        assert!(one.missing("kill-instance-product").is_some_and(|why| why.contains("declare instances = 2")));
    }
}
