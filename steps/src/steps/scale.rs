//! Steps of the scale scenarios (`features/scale.feature`): faults on one instance of several
//! (killed, paused, one added) and on the Kafka node leading the saga partitions, and the
//! conditions that show the implementation absorbed them — the consumer group spread its
//! partitions over the live instances, the cluster elected leaders on the live nodes. The load,
//! the other faults and every check are the crash scenarios' own (`load.rs`, `faults.rs`,
//! `checkers/crash.rs`).

use super::SagaWorld;
use super::params::Svc;
use crate::Service;
use crate::backend::fault::Fault;
use crate::groups::consumer_of;
use crate::membership::{self, Partition};
use crate::types::InstanceId;
use cucumber::when;
use saga_contract::SagaTopic;
use std::collections::BTreeSet;

impl SagaWorld {
    /// The instances of `service` that run and are not paused by this scenario.
    async fn live_instances(&self, service: Service) -> usize {
        let running = self.env.backend.running_instances(service).await;
        let paused = |n: &usize| self.faults.contains(&Fault::PauseInstance((service, *n)));
        running.iter().filter(|n| !paused(n)).count()
    }
}

/// Kills (SIGKILL) one instance other than the one the suite talks to.
#[when(expr = "a {service} instance is killed")]
async fn instance_killed(world: &mut SagaWorld, service: Svc) {
    instance_fault(world, service.0, Fault::KillInstance).await;
}

/// Pauses (SIGSTOP) one instance other than the one the suite talks to.
#[when(expr = "a {service} instance is paused")]
async fn instance_paused(world: &mut SagaWorld, service: Svc) {
    instance_fault(world, service.0, Fault::PauseInstance).await;
}

async fn instance_fault(world: &mut SagaWorld, service: Service, fault: fn(InstanceId) -> Fault) {
    let victim = world.env.backend.victim_instance(service).await;
    let n = victim.unwrap_or_else(|e| panic!("choosing an instance of the {service} for the fault: {e:#}"));
    world.put(fault((service, n))).await;
}

#[when(expr = "the paused {service} instance is resumed")]
async fn instance_resumed(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    let what = format!("resuming the paused instance of the {service}");
    world.lift_where(|f| matches!(f, Fault::PauseInstance((s, _)) if *s == service), &what).await;
}

/// A new instance joins the consumer group while the load runs: a rebalance. It stays until the
/// scenario ends.
#[when(expr = "a {service} instance is added")]
async fn instance_added(world: &mut SagaWorld, service: Svc) {
    world.put(Fault::AddInstance(service.0)).await;
    eprintln!("[scale] an added instance of the {} serves", service.0);
}

/// The group handed the partitions of the service's topics to its live instances (a dead or hung
/// member's went to the others, a new member got its share). With static membership a killed or
/// hung member keeps its partitions until its session times out, so this takes about that long.
#[when(expr = "the {service}'s partitions are spread over its live instances")]
async fn partitions_spread(world: &mut SagaWorld, service: Svc) {
    let service = service.0;
    let env = world.env.clone();
    let groups = env.groups.groups_of(service);
    assert!(!groups.is_empty(), "the {service}'s consumer group is not known: name it in [external.consumer_groups]");
    let topics: Vec<String> = SagaTopic::ALL
        .into_iter()
        .filter(|t| consumer_of(*t) == Some(service))
        .map(|t| env.topics.name(t).to_string())
        .collect();
    let partitions = crate::backend::kafka_meta::partitions(&env.endpoints.kafka_bootstrap, &topics)
        .await
        .unwrap_or_else(|e| panic!("reading the partitions of {topics:?}: {e:#}"));
    let all: BTreeSet<Partition> = partitions.into_keys().collect();
    let live = world.live_instances(service).await;
    let deadline = world.deadline();
    for group in groups {
        let theirs = group_partitions(&env, group, groups.len(), &all).await;
        match membership::wait_spread(&env.endpoints.kafka_bootstrap, group, &theirs, live, deadline).await {
            Ok(took) => eprintln!(
                "[scale] {group}: {} partition(s) spread over {live} live instance(s) after {took:?}",
                theirs.len()
            ),
            Err(last) => panic!(
                "the {service}'s group {group} did not spread its {} partitions over its {live} live instance(s) within {deadline:?}: {last} (a killed or paused member is dropped once its session times out — KAFKA_SESSION_TIMEOUT_MS)",
                theirs.len()
            ),
        }
    }
    // Before any fault this is the scenario's precondition (every instance has work to lose).
    if !world.fault_spans.is_empty() {
        world.absorbed(&format!("waiting for {} to rebalance", groups.join(", ")));
    }
}

/// The partitions of `all` that `group` consumes: all of them when it is its service's only
/// group; otherwise those of the topics it has committed offsets on.
async fn group_partitions(
    env: &crate::steps::SuiteEnv,
    group: &str,
    of: usize,
    all: &BTreeSet<Partition>,
) -> BTreeSet<Partition> {
    if of == 1 {
        return all.clone();
    }
    let listed: Vec<Partition> = all.iter().cloned().collect();
    let committed = env.groups.committed(group, &listed).await.unwrap_or_else(|e| panic!("{e:#}"));
    let read: BTreeSet<&String> = committed.iter().filter(|(_, o)| o.is_some()).map(|((t, _), _)| t).collect();
    all.iter().filter(|(t, _)| read.contains(t)).cloned().collect()
}

/// The cluster took over from the node that went down: every saga partition has a leader among
/// the running nodes again, with enough replicas in sync to accept `acks=all` writes.
#[when("the saga topics' partitions have leaders on the running brokers")]
async fn leaders_elected(world: &mut SagaWorld) {
    let deadline = world.deadline();
    let took = world.env.backend.wait_kafka_leaders(deadline).await.unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("[scale] saga partitions led by the running Kafka nodes after {took:?}");
    world.absorbed("waiting for new partition leaders");
}
