//! `orders.csv`: one row per order of every step — when it was scheduled and sent, how its
//! intake was answered, its stage latencies, its `PAYMENT_WAIT` and `ORDER_CONFIRMED` pushes and
//! `stock.reserved` records counted by distinct eventId (as duplicates are) — for analyses
//! the report does not make.

use super::outcome::Outcome;
use super::report::Report;
use saga_contract::{PushKind, SagaTopic};
use serde::{Serialize, Serializer};
use std::path::Path;

/// One order, as a CSV row (the header comes from the field names).
#[derive(Serialize)]
struct Row<'a> {
    #[serde(serialize_with = "shortest")]
    step_rate: f64,
    seq: usize,
    measured: bool,
    #[serde(serialize_with = "decimals::<4, _>")]
    scheduled_s: f64,
    #[serde(serialize_with = "decimals::<3, _>")]
    sent_at_ms: f64,
    #[serde(serialize_with = "decimals::<3, _>")]
    send_lag_ms: f64,
    status: u16,
    order_id: &'a str,
    #[serde(serialize_with = "decimals::<3, _>")]
    intake_ms: f64,
    #[serde(serialize_with = "some_decimals::<2, _>")]
    created_ms: Option<f64>,
    #[serde(serialize_with = "some_decimals::<2, _>")]
    reservation_ms: Option<f64>,
    #[serde(serialize_with = "some_decimals::<2, _>")]
    confirmation_ms: Option<f64>,
    #[serde(serialize_with = "some_decimals::<2, _>")]
    payment_ms: Option<f64>,
    #[serde(serialize_with = "some_decimals::<2, _>")]
    e2e_ms: Option<f64>,
    payment_pushes: usize,
    confirmed_pushes: usize,
    reserved_event_ids: usize,
    error: &'a str,
}

impl<'a> Row<'a> {
    fn of(step_rate: f64, o: &'a Outcome) -> Row<'a> {
        Row {
            step_rate,
            seq: o.sent.seq,
            measured: o.sent.measured,
            scheduled_s: o.sent.scheduled_s,
            sent_at_ms: o.sent.sent_at_ms,
            send_lag_ms: o.sent.lag_ms,
            status: o.sent.status,
            order_id: o.sent.order_id.as_deref().unwrap_or(""),
            intake_ms: o.sent.intake_ms,
            created_ms: o.created(),
            reservation_ms: o.reservation(),
            confirmation_ms: o.confirmation(),
            payment_ms: o.payment(),
            e2e_ms: o.e2e(),
            payment_pushes: o.trace.effects.pushes_of(PushKind::PaymentWait),
            confirmed_pushes: o.trace.effects.pushes_of(PushKind::OrderConfirmed),
            reserved_event_ids: o.trace.effects.records_of(SagaTopic::StockReserved),
            error: o.sent.error.as_deref().unwrap_or(""),
        }
    }
}

/// The value in as few digits as it needs (`20`, `22.5`), as the table names a step.
fn shortest<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The value with `N` decimals, written as text so the file shows no float noise.
fn decimals<const N: usize, S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:.N$}"))
}

/// [`decimals`], or an empty field.
fn some_decimals<const N: usize, S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => decimals::<N, S>(v, s),
        None => s.serialize_str(""),
    }
}

impl Report {
    pub fn write_csv(&self, path: &Path) -> anyhow::Result<()> {
        let mut out = csv::Writer::from_path(path)?;
        for step in &self.steps {
            for o in &step.outcomes {
                out.serialize(Row::of(step.plan.rate, o))?;
            }
        }
        out.flush()?;
        Ok(())
    }
}
