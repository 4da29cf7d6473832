//! The faults the suite puts on an implementation, and their undoing, as values: one [`Fault`]
//! variant each. A fault knows what it is called in a report ("kill the Product Service"), the
//! `[external.commands]` key that carries it out on an external implementation (`kill_product`),
//! what lifts it ([`Fault::undo`]) and the `@needs-<capability>` tag of the scenarios putting it
//! in place ([`Fault::capability`], from which `capabilities.rs` derives what a backend can do).
//! Every backend carries faults out through its one [`FaultTarget::apply`].
//!
//! Adding a fault: a variant here (its display, command, undo and capability), an arm in each
//! backend's `apply` (`processes/mod.rs`, `containers/mod.rs`, `external.rs`), and the step that
//! puts it (`steps/faults.rs`).

use crate::Service;
use crate::types::InstanceId;
use std::fmt;

/// A fault put on the implementation, or the lifting of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every instance of the service stopped gracefully (SIGTERM, `docker stop`).
    StopService(Service),
    /// Every instance of the service killed as a crash does (SIGKILL, `docker kill`).
    KillService(Service),
    /// Every stopped or killed instance of the service started again, once it answers `/health`.
    StartService(Service),
    /// Every instance of the service frozen without stopping it (SIGSTOP, `docker pause`).
    PauseService(Service),
    UnpauseService(Service),
    /// A Kafka node stopped gracefully: the only one, or in a cluster the one leading the most
    /// saga partitions.
    StopBroker,
    /// A Kafka node killed, chosen as [`Fault::StopBroker`] chooses.
    KillBroker,
    /// The Kafka node taken down last started again, on its data, once the cluster serves the
    /// saga's topics.
    StartBroker,
    /// The PostgreSQL server killed (in our stacks one server holds every service's database).
    KillDatabase,
    /// PostgreSQL started again, once it accepts connections (external: once every service
    /// answers `/health`).
    StartDatabase,
    /// The service's own database taken away while the server and the other services'
    /// databases keep serving.
    TakeDatabase(Service),
    GiveDatabase(Service),
    /// One instance of several killed as a crash does.
    KillInstance(InstanceId),
    StartInstance(InstanceId),
    /// One instance of several frozen.
    PauseInstance(InstanceId),
    UnpauseInstance(InstanceId),
    /// One more instance of the service started (it joins the consumer group: a rebalance).
    AddInstance(Service),
    /// The instance added last to the service stopped and forgotten.
    RemoveInstance(Service),
}

/// What a fault needs of the stack's size, besides a way to carry it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleNeed {
    None,
    /// Two or more instances of each service (a fault hits one of several).
    Instances,
    /// A Kafka cluster of three or more nodes (one can fail, `min.insync.replicas` 2 still met).
    Cluster,
}

/// What carries faults out: each backend, in its own way.
pub trait FaultTarget {
    /// Puts `fault` in place (or lifts it) and returns once it is — a start once what was
    /// started serves again; `Err` says what failed.
    fn apply(&self, fault: &Fault) -> impl Future<Output = anyhow::Result<()>>;
}

impl Fault {
    /// One fault of each kind that puts something in place, per service. The instance faults
    /// name instance 2: their command and capability do not depend on the number.
    pub fn kinds() -> Vec<Fault> {
        let mut all = Vec::new();
        for service in Service::ALL {
            all.extend([
                Fault::StopService(service),
                Fault::KillService(service),
                Fault::PauseService(service),
                Fault::TakeDatabase(service),
                Fault::KillInstance((service, 2)),
                Fault::PauseInstance((service, 2)),
                Fault::AddInstance(service),
            ]);
        }
        all.extend([Fault::StopBroker, Fault::KillBroker, Fault::KillDatabase]);
        all
    }

    /// The fault that lifts this one; `None` for a fault that itself lifts another.
    pub fn undo(&self) -> Option<Fault> {
        Some(match *self {
            Fault::StopService(service) | Fault::KillService(service) => Fault::StartService(service),
            Fault::PauseService(service) => Fault::UnpauseService(service),
            Fault::StopBroker | Fault::KillBroker => Fault::StartBroker,
            Fault::KillDatabase => Fault::StartDatabase,
            Fault::TakeDatabase(service) => Fault::GiveDatabase(service),
            Fault::KillInstance(instance) => Fault::StartInstance(instance),
            Fault::PauseInstance(instance) => Fault::UnpauseInstance(instance),
            Fault::AddInstance(service) => Fault::RemoveInstance(service),
            Fault::StartService(_)
            | Fault::UnpauseService(_)
            | Fault::StartBroker
            | Fault::StartDatabase
            | Fault::GiveDatabase(_)
            | Fault::StartInstance(_)
            | Fault::UnpauseInstance(_)
            | Fault::RemoveInstance(_) => return None,
        })
    }

    /// The `[external.commands]` key that carries it out: `<verb>_<svc>`, `<verb>_kafka`,
    /// `<verb>_postgres`, `<verb>_db_<svc>`, `<verb>_instance_<svc>`.
    pub fn command(&self) -> String {
        let on = |verb: &str, service: Service| format!("{verb}_{}", short_name(service));
        match *self {
            Fault::StopService(service) => on("stop", service),
            Fault::KillService(service) => on("kill", service),
            Fault::StartService(service) => on("start", service),
            Fault::PauseService(service) => on("pause", service),
            Fault::UnpauseService(service) => on("unpause", service),
            Fault::StopBroker => "stop_kafka".into(),
            Fault::KillBroker => "kill_kafka".into(),
            Fault::StartBroker => "start_kafka".into(),
            Fault::KillDatabase => "kill_postgres".into(),
            Fault::StartDatabase => "start_postgres".into(),
            Fault::TakeDatabase(service) => on("kill_db", service),
            Fault::GiveDatabase(service) => on("start_db", service),
            Fault::KillInstance((service, _)) => on("kill_instance", service),
            Fault::StartInstance((service, _)) => on("start_instance", service),
            Fault::PauseInstance((service, _)) => on("pause_instance", service),
            Fault::UnpauseInstance((service, _)) => on("unpause_instance", service),
            Fault::AddInstance(service) => on("add_instance", service),
            Fault::RemoveInstance(service) => on("remove_instance", service),
        }
    }

    /// The capability a scenario putting this fault in place needs (its `@needs-<capability>`
    /// tag): the commands of the fault and of its undoing, at [`Fault::scale_need`]. `None` for a
    /// fault that lifts another.
    pub fn capability(&self) -> Option<String> {
        self.undo()?;
        let svc = |service: Service| short_name(service);
        Some(match *self {
            Fault::StopService(service) => format!("stop-{}", svc(service)),
            Fault::KillService(service) => format!("kill-{}", svc(service)),
            Fault::PauseService(service) => format!("pause-{}", svc(service)),
            Fault::TakeDatabase(service) => format!("db-kill-{}", svc(service)),
            Fault::KillInstance((service, _)) => format!("kill-instance-{}", svc(service)),
            Fault::PauseInstance((service, _)) => format!("pause-instance-{}", svc(service)),
            Fault::AddInstance(service) => format!("add-instance-{}", svc(service)),
            Fault::StopBroker => "broker-stop".into(),
            Fault::KillBroker => "broker-kill".into(),
            Fault::KillDatabase => "db-kill".into(),
            _ => return None,
        })
    }

    /// What the fault needs of the stack's size.
    pub fn scale_need(&self) -> ScaleNeed {
        match self {
            Fault::KillInstance(_)
            | Fault::StartInstance(_)
            | Fault::PauseInstance(_)
            | Fault::UnpauseInstance(_)
            | Fault::AddInstance(_)
            | Fault::RemoveInstance(_) => ScaleNeed::Instances,
            _ => ScaleNeed::None,
        }
    }

    /// The service a fault on a service, its database or one of its instances is on.
    pub fn service(&self) -> Option<Service> {
        match *self {
            Fault::StopService(service)
            | Fault::KillService(service)
            | Fault::StartService(service)
            | Fault::PauseService(service)
            | Fault::UnpauseService(service)
            | Fault::TakeDatabase(service)
            | Fault::GiveDatabase(service)
            | Fault::KillInstance((service, _))
            | Fault::StartInstance((service, _))
            | Fault::PauseInstance((service, _))
            | Fault::UnpauseInstance((service, _))
            | Fault::AddInstance(service)
            | Fault::RemoveInstance(service) => Some(service),
            Fault::StopBroker | Fault::KillBroker | Fault::StartBroker | Fault::KillDatabase | Fault::StartDatabase => {
                None
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::StopService(service) => write!(f, "stop the {service}"),
            Fault::KillService(service) => write!(f, "kill the {service}"),
            Fault::StartService(service) => write!(f, "start the {service}"),
            Fault::PauseService(service) => write!(f, "pause the {service}"),
            Fault::UnpauseService(service) => write!(f, "resume the {service}"),
            Fault::StopBroker => write!(f, "stop the Kafka broker"),
            Fault::KillBroker => write!(f, "kill the Kafka broker"),
            Fault::StartBroker => write!(f, "start the Kafka broker"),
            Fault::KillDatabase => write!(f, "kill the PostgreSQL server"),
            Fault::StartDatabase => write!(f, "start the PostgreSQL server"),
            Fault::TakeDatabase(service) => write!(f, "take the {service}'s database away"),
            Fault::GiveDatabase(service) => write!(f, "give the {service}'s database back"),
            Fault::KillInstance((service, n)) => write!(f, "kill instance {n} of the {service}"),
            Fault::StartInstance((service, n)) => write!(f, "start instance {n} of the {service}"),
            Fault::PauseInstance((service, n)) => write!(f, "pause instance {n} of the {service}"),
            Fault::UnpauseInstance((service, n)) => write!(f, "resume instance {n} of the {service}"),
            Fault::AddInstance(service) => write!(f, "add an instance of the {service}"),
            Fault::RemoveInstance(service) => write!(f, "remove the instance added last to the {service}"),
        }
    }
}

/// `order`, `product`, `payment`: how commands and capability tags name a service.
pub fn short_name(service: Service) -> &'static str {
    service.binary().trim_end_matches("-service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_put_in_place_is_lifted_by_one_that_lifts_nothing() {
        for fault in Fault::kinds() {
            let undo = fault.undo().unwrap_or_else(|| panic!("{fault} has no undo"));
            assert_eq!(undo.undo(), None, "{undo} lifts {fault}, and would itself need lifting");
            assert!(fault.capability().is_some(), "{fault} has no capability");
            assert_eq!(undo.capability(), None, "{undo}");
            assert_eq!(fault.scale_need(), undo.scale_need(), "{fault} and {undo} need different scales");
            assert_eq!(fault.service(), undo.service(), "{fault} and {undo} are on different services");
        }
    }

    #[test]
    fn commands_and_capabilities_name_the_service() {
        let fault = Fault::TakeDatabase(Service::Product);
        assert_eq!(fault.to_string(), "take the Product Service's database away");
        assert_eq!(fault.command(), "kill_db_product");
        assert_eq!(fault.undo().map(|u| u.command()).as_deref(), Some("start_db_product"));
        assert_eq!(fault.capability().as_deref(), Some("db-kill-product"));
        let instance = Fault::PauseInstance((Service::Order, 3));
        assert_eq!((instance.command(), instance.scale_need()), ("pause_instance_order".into(), ScaleNeed::Instances));
        assert_eq!(instance.to_string(), "pause instance 3 of the Order Service");
        assert_eq!(Fault::KillBroker.undo().map(|u| u.command()).as_deref(), Some("start_kafka"));
        let names: Vec<String> = Fault::kinds().iter().filter_map(Fault::capability).collect();
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "two faults share a capability: {names:?}");
    }
}
