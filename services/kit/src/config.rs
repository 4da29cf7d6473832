//! Runtime configuration from the environment — the knobs any implementation of the contract
//! reads when the conformance kit starts it (see docs/contract.md, "Runtime knobs").

use anyhow::{Context, bail};
use saga_contract::Topics;

/// Short enough that the group's other members take over a dead one's partitions within
/// seconds, long enough (4 heartbeats, one every 1.5 s) that a loaded machine does not lose
/// members: the broker's floor (`group.min.session.timeout.ms`, 6 s). 10 s until issue 22 — at
/// 6 s, full suites on the shared 2-core machine (load average 5–14) saw sessions time out only
/// in the faults that make them (the broker down, the zombie pause), as at 10 s.
const DEFAULT_SESSION_TIMEOUT_MS: u32 = 6_000;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Used for the consumer group (`<name>-service`), logs and dead-letter headers.
    pub service_name: &'static str,
    pub kafka_bootstrap_servers: String,
    pub schema_registry_url: String,
    pub database_url: String,
    /// Where push notifications are POSTed; `None` disables them (logged once at start).
    pub push_gateway_url: Option<String>,
    pub http_port: u16,
    pub topics: Topics,
    /// Partitions for topics this service creates when they are missing.
    pub topic_partitions: i32,
    /// Replication factor for topics this service creates; -1 (the default) takes the
    /// cluster's `default.replication.factor`, so a 3-node cluster gets 3 without telling us.
    pub topic_replication: i32,
    /// The consumer's `group.instance.id` (static membership): a restarted instance with the
    /// same id takes its partitions back at once instead of waiting for the broker to time the
    /// old member out. `None` (`INSTANCE_ID=` empty) joins as a dynamic member.
    pub instance_id: Option<String>,
    /// How long the broker waits for heartbeats before it gives a silent member's partitions
    /// to the group's other members.
    pub session_timeout_ms: u32,
    /// `OUTBOX_KAFKA_TRANSACTIONS`: the outbox relay publishes in Kafka transactions (off: `None`).
    pub kafka_transactions: Option<KafkaTransactions>,
}

/// The outbox relay publishes each batch in a Kafka transaction, and with `abort_every` aborts
/// every Nth batch's after its records were acknowledged, then publishes them again in a new
/// one (`crate::outbox`'s `transactions`). Set by `OUTBOX_KAFKA_TRANSACTIONS=on` or
/// `=abort-every:N`; unset, empty or `off`: no transactions (the reference's way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaTransactions {
    pub abort_every: Option<u64>,
}

impl KafkaTransactions {
    pub fn parse(value: Option<&str>) -> anyhow::Result<Option<KafkaTransactions>> {
        let value = value.map(str::trim).unwrap_or_default();
        match value {
            "" | "off" => Ok(None),
            "on" => Ok(Some(KafkaTransactions { abort_every: None })),
            _ => match value.strip_prefix("abort-every:").map(str::parse::<u64>) {
                Some(Ok(n)) if n >= 1 => Ok(Some(KafkaTransactions { abort_every: Some(n) })),
                _ => bail!("OUTBOX_KAFKA_TRANSACTIONS={value}: use off, on, or abort-every:N (N ≥ 1 batches)"),
            },
        }
    }

    /// Whether the `n`th transaction (from 1) of a relay is to be aborted first.
    pub fn aborts(&self, n: u64) -> bool {
        self.abort_every.is_some_and(|every| n.is_multiple_of(every))
    }
}

impl ServiceConfig {
    pub fn from_env(service_name: &'static str, default_port: u16) -> anyhow::Result<ServiceConfig> {
        let required = |name: &str| -> anyhow::Result<String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(v),
                _ => bail!(
                    "{service_name}-service: environment variable {name} is not set (see docs/contract.md, \"Runtime knobs\")"
                ),
            }
        };
        let http_port = match std::env::var("HTTP_PORT") {
            Ok(p) => p.parse().with_context(|| format!("HTTP_PORT={p} is not a port number"))?,
            Err(_) => default_port,
        };
        let topic_partitions = match std::env::var("TOPIC_PARTITIONS") {
            Ok(p) => p.parse().with_context(|| format!("TOPIC_PARTITIONS={p} is not a number"))?,
            Err(_) => 3,
        };
        let topic_replication = match std::env::var("TOPIC_REPLICATION_FACTOR") {
            Ok(r) => r.parse().ok().filter(|r| *r == -1 || *r >= 1).with_context(|| {
                format!("TOPIC_REPLICATION_FACTOR={r} is not a replication factor (1 or more, or -1 for the broker's default)")
            })?,
            Err(_) => -1,
        };
        let session_timeout_ms = match std::env::var("KAFKA_SESSION_TIMEOUT_MS") {
            Ok(ms) => ms.parse().ok().filter(|ms| (6000..=300_000).contains(ms)).with_context(|| {
                format!("KAFKA_SESSION_TIMEOUT_MS={ms} is not a number of milliseconds between 6000 and 300000 (the broker's default group.min/max.session.timeout.ms)")
            })?,
            Err(_) => DEFAULT_SESSION_TIMEOUT_MS,
        };
        Ok(ServiceConfig {
            service_name,
            kafka_bootstrap_servers: required("KAFKA_BOOTSTRAP_SERVERS")?,
            schema_registry_url: required("SCHEMA_REGISTRY_URL")?,
            database_url: required("DATABASE_URL")?,
            push_gateway_url: std::env::var("PUSH_GATEWAY_URL").ok().filter(|u| !u.trim().is_empty()),
            http_port,
            topics: Topics::from_env(),
            topic_partitions,
            topic_replication,
            instance_id: instance_id(std::env::var("INSTANCE_ID").ok(), service_name, http_port),
            session_timeout_ms,
            kafka_transactions: KafkaTransactions::parse(std::env::var("OUTBOX_KAFKA_TRANSACTIONS").ok().as_deref())?,
        })
    }

    pub fn consumer_group(&self) -> String {
        format!("{}-service", self.service_name)
    }
}

/// `INSTANCE_ID` as given (empty: none), else `<service>-<hostname>-<port>`: the same across
/// restarts of one instance (a process keeps its port, a container its hostname) and different
/// for two live instances (on one host they cannot share the port, in containers the hostname).
fn instance_id(given: Option<String>, service_name: &str, http_port: u16) -> Option<String> {
    match given {
        Some(id) => Some(id.trim().to_string()).filter(|id| !id.is_empty()),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            Some(format!("{service_name}-{host}-{http_port}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{KafkaTransactions, instance_id};

    #[test]
    fn outbox_transactions_are_off_on_or_abort_every_n() {
        assert_eq!(KafkaTransactions::parse(None).unwrap(), None);
        assert_eq!(KafkaTransactions::parse(Some("off")).unwrap(), None);
        assert_eq!(KafkaTransactions::parse(Some("on")).unwrap(), Some(KafkaTransactions { abort_every: None }));
        let every3 = KafkaTransactions::parse(Some("abort-every:3")).unwrap().unwrap();
        assert_eq!((1..=7).filter(|n| every3.aborts(*n)).collect::<Vec<_>>(), [3, 6]);
        assert!(!KafkaTransactions { abort_every: None }.aborts(3));
        for wrong in ["abort-every:0", "abort-every:x", "yes"] {
            let err = KafkaTransactions::parse(Some(wrong)).unwrap_err().to_string();
            assert!(err.contains("use off, on, or abort-every:N"), "{err}");
        }
    }

    #[test]
    fn instance_id_is_given_or_stable_per_service_and_port() {
        assert_eq!(instance_id(Some("order-a".into()), "order", 8081).as_deref(), Some("order-a"));
        assert_eq!(
            instance_id(Some("  ".into()), "order", 8081),
            None,
            "an empty INSTANCE_ID opts out of static membership"
        );
        let default = instance_id(None, "order", 8081).unwrap();
        assert!(default.starts_with("order-") && default.ends_with("-8081"), "{default}");
        assert_eq!(instance_id(None, "order", 8081), Some(default.clone()), "stable across restarts");
        assert_ne!(instance_id(None, "order", 18081), Some(default), "distinct per port on one host");
    }
}
