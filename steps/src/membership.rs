//! Who owns which partition in a consumer group, read with DescribeGroups (the group's members
//! and the assignment the leader gave each), without joining the group. The scale scenarios
//! wait on it: after an instance dies or hangs, the group must hand its partitions to the live
//! instances; after one is added, the newcomer must get a share. [`check_spread`] is the pure
//! judgement, [`wait_spread`] polls it with a deadline.

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A topic partition.
pub type Partition = (String, i32);

/// One member of a group and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub partitions: BTreeSet<Partition>,
}

/// A group as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`.
    pub state: String,
    pub members: Vec<Member>,
}

/// A client that only asks coordinators about groups (never joins one).
pub fn admin_client(bootstrap: &str) -> anyhow::Result<Arc<BaseConsumer>> {
    Ok(Arc::new(crate::kafka::metadata_client(bootstrap)?))
}

/// Describes `group` (its coordinator answers through `client`).
pub async fn describe(client: Arc<BaseConsumer>, group: &str) -> anyhow::Result<GroupState> {
    let name = group.to_string();
    tokio::task::spawn_blocking(move || {
        let list = client
            .fetch_group_list(Some(&name), Duration::from_secs(5))
            .with_context(|| format!("describing consumer group {name}"))?;
        let info = list.groups().iter().find(|g| g.name() == name).with_context(|| format!("no group {name}"))?;
        let mut members = Vec::new();
        for m in info.members() {
            let partitions = parse_assignment(m.assignment().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("member {} of {name}: {e}", m.id()))?;
            members.push(Member { member_id: m.id().to_string(), partitions });
        }
        Ok(GroupState { state: info.state().to_string(), members })
    })
    .await?
}

/// Decodes a member's assignment (the consumer protocol's `ConsumerProtocolAssignment`: int16
/// version, then an array of topics, each a string and an array of int32 partitions; user data
/// after that is ignored). Empty bytes: nothing assigned (yet).
pub fn parse_assignment(bytes: &[u8]) -> Result<BTreeSet<Partition>, String> {
    let mut partitions = BTreeSet::new();
    if bytes.is_empty() {
        return Ok(partitions);
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let slice =
            bytes.get(at..at + n).ok_or_else(|| format!("assignment cut off at byte {at} of {}", bytes.len()))?;
        at += n;
        Ok(slice)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().map_err(|_| "version")?);
    let topics = i32::from_be_bytes(take(4)?.try_into().map_err(|_| "topic count")?);
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(take(2)?.try_into().map_err(|_| "topic name length")?);
        let name = String::from_utf8(take(usize::try_from(len).map_err(|_| "negative topic name length")?)?.to_vec())
            .map_err(|_| "topic name is not UTF-8".to_string())?;
        let count = i32::from_be_bytes(take(4)?.try_into().map_err(|_| "partition count")?);
        for _ in 0..count.max(0) {
            let partition = i32::from_be_bytes(take(4)?.try_into().map_err(|_| "partition")?);
            partitions.insert((name.clone(), partition));
        }
    }
    Ok(partitions)
}

/// Whether the group has settled on `live` members that between them own every partition of
/// `all` exactly once — each member at least one when there are enough partitions to go round.
/// `Err` says what is still off.
pub fn check_spread(group: &GroupState, all: &BTreeSet<Partition>, live: usize) -> Result<(), String> {
    if group.state != "Stable" {
        return Err(format!("group is {}, not Stable", group.state));
    }
    if group.members.len() != live {
        return Err(format!("{} member(s), expected the {live} live instance(s)", group.members.len()));
    }
    let mut owned = BTreeSet::new();
    for member in &group.members {
        for p in member.partitions.iter().filter(|p| all.contains(*p)) {
            if !owned.insert(p.clone()) {
                return Err(format!("{}[{}] is assigned twice", p.0, p.1));
            }
        }
        if all.len() >= live && !member.partitions.iter().any(|p| all.contains(p)) {
            return Err(format!("member {} owns no partition", member.member_id));
        }
    }
    let unowned: Vec<String> = all.difference(&owned).map(|(t, p)| format!("{t}[{p}]")).collect();
    if !unowned.is_empty() {
        return Err(format!("nobody owns {}", unowned.join(", ")));
    }
    Ok(())
}

/// Whether the group has dropped every member it had `before` a service was paused: the
/// broker evicted the hung member(s) once their session timed out — the zombie a pause is meant
/// to make. `Err` names the members still there.
pub fn evicted(before: &GroupState, now: &GroupState) -> Result<(), String> {
    if before.members.is_empty() {
        return Err(format!("the group had no member before the pause ({}): nothing to evict", before.state));
    }
    let still: Vec<&str> = now
        .members
        .iter()
        .filter(|m| before.members.iter().any(|b| b.member_id == m.member_id))
        .map(|m| m.member_id.as_str())
        .collect();
    if still.is_empty() { Ok(()) } else { Err(format!("still a member: {} ({})", still.join(", "), now.state)) }
}

/// Waits until [`check_spread`] holds; returns how long that took, or the last state seen.
pub async fn wait_spread(
    bootstrap: &str,
    group: &str,
    all: &BTreeSet<Partition>,
    live: usize,
    deadline: Duration,
) -> Result<Duration, String> {
    let began = Instant::now();
    let client = admin_client(bootstrap).map_err(|e| format!("{e:#}"))?;
    crate::poll::until(deadline, Duration::from_millis(100), async || {
        let state = describe(client.clone(), group).await.map_err(|e| format!("{e:#}"))?;
        check_spread(&state, all, live).map_err(|why| format!("{why}: {state:?}"))
    })
    .await
    .map(|()| began.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = 1i16.to_be_bytes().to_vec();
        b.extend(i32::try_from(topics.len()).unwrap().to_be_bytes());
        for (name, partitions) in topics {
            b.extend(i16::try_from(name.len()).unwrap().to_be_bytes());
            b.extend(name.as_bytes());
            b.extend(i32::try_from(partitions.len()).unwrap().to_be_bytes());
            for p in *partitions {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // no user data
        b
    }

    fn member(id: &str, partitions: &[i32]) -> Member {
        Member {
            member_id: id.into(),
            partitions: parse_assignment(&assignment(&[("order.created", partitions)])).unwrap(),
        }
    }

    fn all() -> BTreeSet<Partition> {
        (0..3).map(|p| ("order.created".to_string(), p)).collect()
    }

    fn stable(members: Vec<Member>) -> GroupState {
        GroupState { state: "Stable".into(), members }
    }

    #[test]
    fn assignments_decode() {
        let parsed = parse_assignment(&assignment(&[("a", &[0, 2]), ("b", &[1])])).unwrap();
        assert_eq!(parsed, [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into());
        assert!(parse_assignment(&[]).unwrap().is_empty());
        assert!(parse_assignment(&assignment(&[("a", &[0])])[..9]).unwrap_err().contains("cut off"));
    }

    #[test]
    fn a_group_spread_over_its_live_instances_passes() {
        assert_eq!(check_spread(&stable(vec![member("m1", &[0, 1]), member("m2", &[2])]), &all(), 2), Ok(()));
        assert_eq!(check_spread(&stable(vec![member("m1", &[0, 1, 2])]), &all(), 1), Ok(()));
    }

    #[test]
    fn a_dead_member_still_holding_partitions_is_caught() {
        // Two members (one of them the killed instance, not yet timed out) when one is live.
        let v = check_spread(&stable(vec![member("m1", &[0, 1]), member("dead", &[2])]), &all(), 1);
        assert!(v.unwrap_err().contains("2 member(s)"));
    }

    #[test]
    fn a_paused_member_is_evicted_only_once_the_group_dropped_it() {
        let before = stable(vec![member("m1", &[0, 1, 2])]);
        let empty = GroupState { state: "Empty".into(), members: vec![] };
        assert_eq!(evicted(&before, &empty), Ok(()));
        // Still there (its session has not timed out): no zombie yet.
        assert!(evicted(&before, &before).unwrap_err().contains("still a member: m1"));
        // A group with no member before the pause: the pause hung nobody the broker knew of.
        assert!(evicted(&empty, &empty).unwrap_err().contains("no member before the pause"));
    }

    #[test]
    fn unowned_twice_owned_idle_members_and_rebalances_are_caught() {
        let unowned = check_spread(&stable(vec![member("m1", &[0]), member("m2", &[1])]), &all(), 2);
        assert!(unowned.unwrap_err().contains("nobody owns order.created[2]"));
        let twice = check_spread(&stable(vec![member("m1", &[0, 1]), member("m2", &[1, 2])]), &all(), 2);
        assert!(twice.unwrap_err().contains("assigned twice"));
        let idle = check_spread(&stable(vec![member("m1", &[0, 1, 2]), member("new", &[])]), &all(), 2);
        assert!(idle.unwrap_err().contains("member new owns no partition"));
        let moving = GroupState { state: "PreparingRebalance".into(), ..stable(vec![member("m1", &[0, 1, 2])]) };
        assert!(check_spread(&moving, &all(), 1).unwrap_err().contains("not Stable"));
    }
}
