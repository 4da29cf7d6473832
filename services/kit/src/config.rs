//! Runtime configuration from the environment — the knobs any implementation of the contract
//! reads when the conformance kit starts it (see the README's "Runtime knobs").

use anyhow::{Context, bail};
use saga_contract::Topics;

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
}

impl ServiceConfig {
    pub fn from_env(service_name: &'static str, default_port: u16) -> anyhow::Result<ServiceConfig> {
        let required = |name: &str| -> anyhow::Result<String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(v),
                _ => bail!("{service_name}-service: environment variable {name} is not set (see the README's runtime knobs)"),
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
        Ok(ServiceConfig {
            service_name,
            kafka_bootstrap_servers: required("KAFKA_BOOTSTRAP_SERVERS")?,
            schema_registry_url: required("SCHEMA_REGISTRY_URL")?,
            database_url: required("DATABASE_URL")?,
            push_gateway_url: std::env::var("PUSH_GATEWAY_URL").ok().filter(|u| !u.trim().is_empty()),
            http_port,
            topics: Topics::from_env(),
            topic_partitions,
        })
    }

    pub fn consumer_group(&self) -> String {
        format!("{}-service", self.service_name)
    }
}
