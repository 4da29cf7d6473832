//! The broker's settings, kept in one place — `docker/kafka/server.properties.example`, built
//! into the kit ([`KAFKA_SERVER_PROPERTIES`]) — and made into what each way of running a broker needs: a properties file with its ports filled in
//! (processes), node `id` of a cluster (both), or the official image's `KAFKA_*` variables
//! (containers).

use super::paths::KAFKA_SERVER_PROPERTIES;
use std::path::Path;

/// `docker/kafka/server.properties.example` (the one place the broker settings live) with its
/// placeholders filled in.
pub fn server_properties(port: u16, controller_port: u16, data: &Path) -> String {
    KAFKA_SERVER_PROPERTIES
        .replace("@BROKER_PORT@", &port.to_string())
        .replace("@CONTROLLER_PORT@", &controller_port.to_string())
        .replace("@DATA_DIR@", &data.display().to_string())
}

/// The single-node template made into node `id` of a `count`-node cluster: its id, the quorum
/// of every node, and — from 3 nodes on — replication factor 3 with `min.insync.replicas` 2 for
/// the topics the services create (broker default) and for the internal topics (consumer
/// offsets, transaction and share state), so one node can fail with nothing lost or refused.
pub fn cluster_properties(template: &str, id: i32, voters: &str, count: usize) -> String {
    if count == 1 {
        return template.to_string();
    }
    let replicas = count.min(3).to_string();
    let min_isr = if count >= 3 { "2" } else { "1" };
    let settings = [
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.to_string()),
        ("default.replication.factor", replicas.clone()),
        ("min.insync.replicas", min_isr.to_string()),
        ("offsets.topic.replication.factor", replicas.clone()),
        ("transaction.state.log.replication.factor", replicas.clone()),
        ("transaction.state.log.min.isr", min_isr.to_string()),
        ("share.coordinator.state.topic.replication.factor", replicas),
        ("share.coordinator.state.topic.min.isr", min_isr.to_string()),
    ];
    let mut lines: Vec<String> = template
        .lines()
        .filter(|line| !settings.iter().any(|(key, _)| line.starts_with(&format!("{key}="))))
        .map(str::to_string)
        .collect();
    lines.push(format!("\n# node {id} of a {count}-node cluster (steps/src/backend/broker_config.rs)"));
    lines.extend(settings.iter().map(|(key, value)| format!("{key}={value}")));
    lines.join("\n") + "\n"
}

/// The broker settings for node `id` of a `count`-node cluster (`voters` its quorum) as the
/// `KAFKA_*` variables of the official image's convention. Once any `KAFKA_*` variable is set
/// the image's default properties are not read at all — so without these the broker would run
/// with Kafka's defaults (a 3 s initial rebalance delay, 50 offsets partitions, topics
/// auto-created, …). Listeners, the quorum and the roles are the caller's (testcontainers'
/// Kafka module sets them for a single node).
pub fn image_env(id: i32, voters: &str, count: usize) -> Vec<(String, String)> {
    let mut env = properties_as_env(&cluster_properties(KAFKA_SERVER_PROPERTIES, id, voters, count));
    env.push(("KAFKA_NODE_ID".into(), id.to_string()));
    env.push(("KAFKA_LOG_DIRS".into(), "/var/lib/kafka/data".into()));
    env
}

/// `key=value` lines → `KAFKA_KEY` variables (`.`→`_`, `_`→`__`, `-`→`___`, upper case), leaving
/// out comments and what depends on the network or is set by the module (listeners, quorum,
/// roles, node id, data directory).
fn properties_as_env(properties: &str) -> Vec<(String, String)> {
    const SET_ELSEWHERE: [&str; 9] = [
        "process.roles",
        "node.id",
        "controller.quorum.voters",
        "listeners",
        "advertised.listeners",
        "controller.listener.names",
        "inter.broker.listener.name",
        "listener.security.protocol.map",
        "log.dirs",
    ];
    properties
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| !SET_ELSEWHERE.contains(&key.trim()))
        .map(|(key, value)| {
            let name: String = key
                .trim()
                .chars()
                .map(|c| match c {
                    '.' => "_".to_string(),
                    '_' => "__".to_string(),
                    '-' => "___".to_string(),
                    c => c.to_ascii_uppercase().to_string(),
                })
                .collect();
            (format!("KAFKA_{name}"), value.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{cluster_properties, properties_as_env};

    const TEMPLATE: &str = "node.id=1\ncontroller.quorum.voters=1@127.0.0.1:9093\ndefault.replication.factor=1\nmin.insync.replicas=1\noffsets.topic.replication.factor=1\nnum.io.threads=2\n";

    #[test]
    fn one_node_keeps_the_template() {
        assert_eq!(cluster_properties(TEMPLATE, 1, "1@127.0.0.1:9093", 1), TEMPLATE);
    }

    #[test]
    fn a_cluster_node_gets_its_id_the_quorum_and_replication_three() {
        let text = cluster_properties(TEMPLATE, 2, "1@a:1,2@a:2,3@a:3", 3);
        let value = |key: &str| {
            let values: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).collect();
            assert_eq!(values.len(), 1, "{key} set once: {text}");
            values[0].to_string()
        };
        assert_eq!(value("node.id"), "2");
        assert_eq!(value("controller.quorum.voters"), "1@a:1,2@a:2,3@a:3");
        assert_eq!(value("default.replication.factor"), "3");
        assert_eq!(value("min.insync.replicas"), "2");
        assert_eq!(value("offsets.topic.replication.factor"), "3");
        assert_eq!(value("transaction.state.log.min.isr"), "2");
        assert_eq!(value("num.io.threads"), "2", "other settings stay");
    }

    #[test]
    fn broker_properties_become_the_official_images_variables() {
        let env = properties_as_env(
            "# a comment\nnode.id=1\nlisteners=PLAINTEXT://x:1\ngroup.initial.rebalance.delay.ms=0\n\nauto.create.topics.enable=false\nsome_key-name.x = 5\n",
        );
        assert_eq!(
            env,
            vec![
                ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS".to_string(), "0".to_string()),
                ("KAFKA_AUTO_CREATE_TOPICS_ENABLE".to_string(), "false".to_string()),
                ("KAFKA_SOME__KEY___NAME_X".to_string(), "5".to_string()),
            ]
        );
    }
}
