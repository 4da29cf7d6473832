//! Whether the tap has read everything: each assigned partition up to its end offset. The
//! checks over the whole run (FIELDS-1) read the tap's log; a partition the tap silently stopped
//! reading would make them blame the implementation for records it did write, so they first wait
//! for the tap to catch up and are not judged when it does not.

use super::{Tap, TapRecord};
use crate::poll;
use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use std::collections::BTreeMap;
use std::time::Duration;

impl Tap {
    /// Waits until the tap has read every partition up to its end as of now — what the checks
    /// over the whole run need — or `deadline` passes; then the partitions it is behind on. A
    /// tap that stopped reading a partition (seen once after a broker restart, with no error
    /// from the client) would otherwise make the run's checks blame the implementation for
    /// records it did write.
    pub async fn wait_caught_up(&self, deadline: Duration) -> Result<(), Vec<Behind>> {
        let ends = match self.end_offsets().await {
            Ok(ends) => ends,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the saga topics' end offsets to check the tap caught up");
                return Ok(());
            }
        };
        let log = &self.inner.log;
        poll::until(deadline, Duration::from_millis(250), async || {
            let behind = behind(&self.inner.started_at, &read_up_to(&log.read().expect("tap log poisoned")), &ends);
            if behind.is_empty() { Ok(()) } else { Err(behind) }
        })
        .await
    }

    /// Each assigned partition's end offset now.
    async fn end_offsets(&self) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
        let bootstrap = self.inner.bootstrap.clone();
        let partitions: Vec<(String, i32)> = self.inner.started_at.keys().cloned().collect();
        tokio::task::spawn_blocking(move || {
            let probe = crate::kafka::metadata_client(&bootstrap)?;
            partitions
                .into_iter()
                .map(|(topic, partition)| {
                    let (_, high) = probe
                        .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                        .with_context(|| format!("end offset of {topic}[{partition}] on {bootstrap}"))?;
                    Ok(((topic, partition), high))
                })
                .collect()
        })
        .await?
    }
}

/// A partition the tap has not read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub topic: String,
    pub partition: i32,
    /// The offset after the last record the tap read (where it started, if none).
    pub read_to: i64,
    pub end: i64,
}

impl std::fmt::Display for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}]: read to offset {}, the partition ends at {} ({} not read)",
            self.topic,
            self.partition,
            self.read_to,
            self.end,
            self.end - self.read_to
        )
    }
}

/// The offset after the last record read, per partition.
fn read_up_to(log: &[TapRecord]) -> BTreeMap<(String, i32), i64> {
    let mut read = BTreeMap::new();
    for r in log {
        let to = read.entry((r.topic.clone(), r.partition)).or_insert(0);
        *to = (*to).max(r.offset + 1);
    }
    read
}

/// The partitions whose end lies beyond what was read. One offset of slack: a transaction's
/// commit marker takes an offset a `read_committed` reader never receives, so a partition whose
/// last write was a transaction ends one past its last record.
fn behind(
    started_at: &BTreeMap<(String, i32), i64>,
    read: &BTreeMap<(String, i32), i64>,
    ends: &BTreeMap<(String, i32), i64>,
) -> Vec<Behind> {
    ends.iter()
        .filter_map(|((topic, partition), &end)| {
            let key = (topic.clone(), *partition);
            let read_to = read.get(&key).copied().unwrap_or(0).max(started_at.get(&key).copied().unwrap_or(0));
            (end > read_to + 1).then(|| Behind { topic: topic.clone(), partition: *partition, read_to, end })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(entries: &[(&str, i32, i64)]) -> BTreeMap<(String, i32), i64> {
        entries.iter().map(|(t, p, o)| ((t.to_string(), *p), *o)).collect()
    }

    #[test]
    fn a_partition_read_to_its_end_is_not_behind() {
        let started = at(&[("order.created", 0, 10), ("order.created", 1, 0)]);
        let read = at(&[("order.created", 0, 15)]);
        // Partition 1: nothing written since the start; partition 0: read to its end.
        assert!(behind(&started, &read, &at(&[("order.created", 0, 15), ("order.created", 1, 0)])).is_empty());
        // A commit marker after the last record takes one offset the reader never sees.
        assert!(behind(&started, &read, &at(&[("order.created", 0, 16), ("order.created", 1, 0)])).is_empty());
    }

    #[test]
    fn a_partition_the_tap_stopped_reading_is_behind() {
        let started = at(&[("order.created", 0, 10), ("order.created", 1, 4)]);
        let read = at(&[("order.created", 0, 15)]);
        let ends = at(&[("order.created", 0, 40), ("order.created", 1, 9)]);
        let found = behind(&started, &read, &ends);
        assert_eq!(
            found,
            vec![
                Behind { topic: "order.created".into(), partition: 0, read_to: 15, end: 40 },
                Behind { topic: "order.created".into(), partition: 1, read_to: 4, end: 9 },
            ]
        );
        assert_eq!(found[0].to_string(), "order.created[0]: read to offset 15, the partition ends at 40 (25 not read)");
    }

    #[test]
    fn read_up_to_is_one_past_the_highest_offset_per_partition() {
        let record = |partition, offset| TapRecord {
            partition,
            offset,
            ..TapRecord::of(saga_contract::SagaTopic::OrderCreated, serde_json::json!({}))
        };
        let read = read_up_to(&[record(0, 7), record(0, 3), record(2, 0)]);
        assert_eq!(read, at(&[("order.created", 0, 8), ("order.created", 2, 1)]));
    }
}
