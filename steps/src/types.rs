//! Plain values the layers share about a running implementation: how big its stack is
//! ([`Scale`]), where it is reached ([`Endpoints`]), one instance of a service ([`InstanceId`]),
//! which build of the reference services runs ([`ServiceVariant`]) and the reference's consumer
//! groups ([`reference_consumer_groups`]). The configuration
//! builds them, the backends fill them in, the clients use them.

use crate::Service;
use std::collections::HashMap;

/// How big the stack is: processes (or containers) per service and Kafka nodes (`instances`,
/// `kafka_brokers`); for an external implementation, what it declares it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub instances: usize,
    pub brokers: usize,
}

impl Default for Scale {
    fn default() -> Self {
        Scale { instances: 1, brokers: 1 }
    }
}

/// One instance of a service: the service and its number (1-based; 1 is the one the suite's
/// HTTP requests go to).
pub type InstanceId = (Service, usize);

/// URLs of a running implementation — the same shape for every backend.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub order_url: String,
    pub product_url: String,
    pub payment_url: String,
    pub kafka_bootstrap: String,
    pub registry_url: String,
}

impl Endpoints {
    /// The base URL of `service`'s HTTP API.
    pub fn service_url(&self, service: Service) -> &str {
        match service {
            Service::Order => &self.order_url,
            Service::Product => &self.product_url,
            Service::Payment => &self.payment_url,
        }
    }
}

/// Another build of the reference services, e.g. the self-test's: binaries named
/// `<service><bin_suffix>` (`order-service-failpoints`) with extra environment per service
/// (its `FAILPOINTS`). The default is the normal build with nothing added.
#[derive(Debug, Clone, Default)]
pub struct ServiceVariant {
    pub bin_suffix: String,
    pub env: HashMap<Service, Vec<(String, String)>>,
}

impl ServiceVariant {
    /// The binary of `service` in this build.
    pub fn binary(&self, service: Service) -> String {
        format!("{}{}", service.binary(), self.bin_suffix)
    }
}

/// The consumer group names of the reference services (`<service>-service`, one each).
pub fn reference_consumer_groups() -> HashMap<Service, Vec<String>> {
    Service::ALL.into_iter().map(|s| (s, vec![s.binary().to_string()])).collect()
}
