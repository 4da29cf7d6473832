//! The saga's records per order, indexed incrementally from the tap's append-only log: the
//! producer timestamps the stage latencies come from, and each topic's eventIds that reveal a
//! duplicated effect ([`Effects`]; the load adds the order's pushes).

use crate::checkers::once::Effects;
use crate::observed::TapRecord;
use saga_contract::SagaTopic;
use std::collections::HashMap;

/// One order's saga records as the tap saw them: the first of each topic's timestamp, and the
/// distinct eventIds of every topic (and, once the load adds them, of every push kind).
#[derive(Default, Debug, Clone)]
pub(super) struct Trace {
    pub created_ts: Option<i64>,
    pub reserved_ts: Option<i64>,
    pub confirmed_ts: Option<i64>,
    pub effects: Effects,
}

impl Trace {
    /// The tap has seen the order's created, reserved and confirmed records. It receives
    /// partitions independently, so a later topic's record can arrive before an earlier one's.
    pub fn has_every_stage(&self) -> bool {
        self.created_ts.is_some() && self.reserved_ts.is_some() && self.confirmed_ts.is_some()
    }
}

/// Reads only the records added since the last look.
#[derive(Default)]
pub(super) struct TapIndex {
    cursor: usize,
    pub orders: HashMap<String, Trace>,
}

impl TapIndex {
    pub fn ingest(&mut self, log: &[TapRecord]) {
        for r in &log[self.cursor.min(log.len())..] {
            if r.dead_letter {
                continue;
            }
            let Some(order) = r.order_id.clone().or_else(|| r.key.clone()) else { continue };
            let trace = self.orders.entry(order).or_default();
            trace.effects.add_record(r);
            match r.saga_topic {
                Some(SagaTopic::OrderCreated) => {
                    trace.created_ts.get_or_insert(r.timestamp_ms);
                }
                Some(SagaTopic::StockReserved) => {
                    trace.reserved_ts.get_or_insert(r.timestamp_ms);
                }
                Some(SagaTopic::OrderConfirmed) => {
                    trace.confirmed_ts.get_or_insert(r.timestamp_ms);
                }
                _ => {}
            }
        }
        self.cursor = log.len();
    }

    /// Whether every one of `ids` has all its stages indexed.
    pub fn complete<'a>(&self, mut ids: impl Iterator<Item = &'a str>) -> bool {
        ids.all(|id| self.orders.get(id).is_some_and(Trace::has_every_stage))
    }
}
