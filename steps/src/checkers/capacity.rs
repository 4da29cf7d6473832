//! Capacity and recovery, judged apart from correctness. The implementation declares in
//! `[capacity]` the rate its crash scenarios' load runs at, the burst on top of it, how long its
//! orders may take to settle after a fault (a generous correctness bound) and its recovery budget
//! ([`crate::config::sections::Capacity`]). The crash and scale scenarios judge correctness at that rate
//! within that bound; how much load it takes (`@CAPACITY-1`) and how fast it recovers
//! (`@RECOVERY-1`) are requirements of their own (`features/capacity.feature`), judged here by pure
//! functions over the load's answers and what its orders ended as — [`sustained`] and [`recovery`]
//! — with the figures measured, so a slow implementation fails a capacity requirement and never a
//! correctness one.

use crate::checkers::crash::{Answer, Attempt, FaultSpan, Settled};
use serde_json::{Value, json};
use std::time::Duration;

/// The share of the declared rate the orders must settle at (measured between the 10th and
/// the 90th percentile of their settle times, so one slow first or last order does not count).
pub const SETTLE_RATE_SHARE: f64 = 0.9;

/// `@CAPACITY-1` on a load that ran without a fault: every request was answered 201; the orders
/// settled at [`SETTLE_RATE_SHARE`] of the declared rate or more; and what was left when the load
/// stopped (its last request sent) settled within `drain_budget_ms` — an implementation that
/// keeps up with the rate has only its orders in flight left then; one that falls behind has a
/// backlog growing with the load's length. `Ok`/`Err` carry the figures.
pub fn sustained(attempts: &[Attempt], orders: &[Settled], rate: u32, drain_budget_ms: f64) -> Result<Value, String> {
    let accepted = attempts.iter().filter(|a| matches!(a.answer, Answer::Accepted(_))).count();
    let first_sent = attempts.iter().map(|a| a.sent_ms).min();
    let last_sent = attempts.iter().map(|a| a.sent_ms).max();
    let last_settled = orders.iter().map(|o| o.terminal_ms).try_fold(i64::MIN, |latest, t| t.map(|t| latest.max(t)));
    let drain_ms = last_sent.zip(last_settled).map(|(sent, settled)| (settled - sent).max(0));
    let span_ms = first_sent.zip(last_settled).map(|(first, last)| (last - first).max(1));
    let settle_rate = settle_rate(orders);
    let figures = json!({
        "declared_rate_per_second": rate,
        "sent": attempts.len(),
        "accepted": accepted,
        "settled_per_second": span_ms.map(|span| (orders.len() as f64 * 1000.0 / span as f64 * 10.0).round() / 10.0),
        "settle_rate_p10_p90_per_second": settle_rate.map(|r| (r * 10.0).round() / 10.0),
        "drain_after_load_ms": drain_ms,
        "drain_budget_ms": drain_budget_ms,
    });
    let mut wrong = Vec::new();
    if attempts.is_empty() {
        wrong.push("the load sent nothing".to_string());
    }
    if accepted < attempts.len() {
        let refused: Vec<String> = attempts
            .iter()
            .filter_map(|a| match &a.answer {
                Answer::Accepted(_) => None,
                Answer::Unavailable(why) | Answer::Failed(why) => Some(format!("#{} {why}", a.seq)),
            })
            .take(5)
            .collect();
        wrong.push(format!(
            "{} of {} orders were not answered 201 (e.g. {})",
            attempts.len() - accepted,
            attempts.len(),
            refused.join("; ")
        ));
    }
    if let Some(measured) = settle_rate
        && measured < f64::from(rate) * SETTLE_RATE_SHARE
    {
        wrong.push(format!(
            "the orders settled at {measured:.1}/s (between the 10th and 90th percentile of their settle times), under {:.0} % of the declared {rate} orders/s",
            SETTLE_RATE_SHARE * 100.0
        ));
    }
    match drain_ms {
        None => wrong.push("an order's last push (PAYMENT_WAIT or ORDER_CANCELLED) never arrived: no drain time".into()),
        Some(drain) if drain as f64 > drain_budget_ms => wrong.push(format!(
            "the last order settled {drain} ms after the load's last request, over the {drain_budget_ms} ms budget ([timing] saga_ms × scale): the backlog grew, the declared {rate} orders/s is not sustained"
        )),
        Some(_) => {}
    }
    if wrong.is_empty() { Ok(figures) } else { Err(format!("{}; figures: {figures}", wrong.join("; "))) }
}

/// Orders settled per second between the 10th and the 90th percentile of the settle times
/// (`None` with fewer than 10 orders, or one not settled).
fn settle_rate(orders: &[Settled]) -> Option<f64> {
    let mut times: Vec<i64> = orders.iter().map(|o| o.terminal_ms).collect::<Option<_>>()?;
    if times.len() < 10 {
        return None;
    }
    times.sort_unstable();
    let (low, high) = (times.len() / 10, times.len() * 9 / 10);
    let span = (times[high] - times[low]).max(1);
    Some((high - low) as f64 * 1000.0 / span as f64)
}

/// What a recovery took, in ms after the fault was lifted: until intake answered 201 again (to a
/// request sent after the lift) and until the backlog drained — every order accepted before the
/// lift (or known only from `order.created`) at its last stage. `None`: it did not happen.
pub fn recovery_figures(attempts: &[Attempt], orders: &[Settled], fault: &FaultSpan) -> Value {
    let Some(lifted) = fault.lifted_ms else { return json!({"lifted": false}) };
    let intake = attempts
        .iter()
        .filter(|a| a.sent_ms >= lifted && matches!(a.answer, Answer::Accepted(_)))
        .map(|a| a.answered_ms - lifted)
        .min();
    let backlog: Vec<&Settled> = orders.iter().filter(|o| o.accepted_ms.is_none_or(|a| a <= lifted)).collect();
    let drained = backlog.iter().map(|o| o.terminal_ms).try_fold(lifted, |latest, t| t.map(|t| latest.max(t)));
    json!({
        "intake_201_after_ms": intake.map(|ms| ms.max(0)),
        "backlog_orders": backlog.len(),
        "backlog_drained_after_ms": drained.map(|at| at - lifted),
        "down_ms": lifted - fault.in_place_ms,
    })
}

/// `@RECOVERY-1`: both intake and the backlog recovered within `budget` ([`recovery_figures`]).
pub fn recovery(figures: &Value, budget: Duration) -> Result<(), String> {
    let budget_ms = i64::try_from(budget.as_millis()).unwrap_or(i64::MAX);
    let mut wrong = Vec::new();
    for (key, what) in [
        ("intake_201_after_ms", "intake answered 201 again"),
        ("backlog_drained_after_ms", "every order open at the restart settled"),
    ] {
        match figures[key].as_i64() {
            None => wrong.push(format!("{what}: never, after the fault was lifted")),
            Some(ms) if ms > budget_ms => {
                wrong.push(format!("{what} {ms} ms after the fault was lifted, over the {budget:?} budget"))
            }
            Some(_) => {}
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{} ([capacity] recovery_seconds); figures: {figures}", wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sections::Capacity;
    use saga_contract::OrderStatus;

    fn attempt(seq: usize, sent: i64, answer: Answer) -> Attempt {
        Attempt { seq, sent_ms: sent, answered_ms: sent + 10, lines: Vec::new(), answer }
    }

    fn ok(seq: usize, sent: i64) -> Attempt {
        attempt(seq, sent, Answer::Accepted(format!("o{seq}")))
    }

    fn settled(id: &str, accepted: Option<i64>, terminal: Option<i64>) -> Settled {
        Settled {
            order_id: id.into(),
            user_id: "u".into(),
            lines: Vec::new(),
            accepted_ms: accepted,
            status: Some(OrderStatus::Cancelled),
            payments: Vec::new(),
            pushes: Vec::new(),
            terminal_ms: terminal,
        }
    }

    /// 10 orders at 10/s (one every 100 ms from 0), each settled `lag(i)` ms after it was sent.
    fn load(lag: impl Fn(i64) -> i64) -> (Vec<Attempt>, Vec<Settled>) {
        let attempts: Vec<Attempt> = (0..10).map(|i| ok(i, i as i64 * 100)).collect();
        let orders =
            (0..10i64).map(|i| settled(&format!("o{i}"), Some(i * 100 + 10), Some(i * 100 + lag(i)))).collect();
        (attempts, orders)
    }

    #[test]
    fn a_load_kept_up_with_is_sustained_with_its_figures() {
        let (attempts, orders) = load(|_| 50);
        let figures = sustained(&attempts, &orders, 10, 5000.0).unwrap();
        assert_eq!(figures["drain_after_load_ms"], 50);
        assert_eq!(figures["accepted"], 10);
        assert_eq!(figures["settled_per_second"], 10.5);
        assert_eq!(figures["settle_rate_p10_p90_per_second"], 10.0);
    }

    #[test]
    fn a_backlog_that_grows_fails_capacity() {
        // Settled at 5/s: order i settles at i × 200 ms, so the last one 900 ms after the load ended.
        let (attempts, orders) = load(|i| i * 100 + 100);
        let err = sustained(&attempts, &orders, 10, 500.0).unwrap_err();
        assert!(
            err.contains("settled 1000 ms after the load's last request") && err.contains("not sustained"),
            "{err}"
        );
        assert!(err.contains("\"settled_per_second\":5.3"), "{err}");
        assert!(err.contains("settled at 5.0/s"), "{err}");
        // A generous drain budget does not hide the rate: the backlog grew at half the rate.
        let err = sustained(&attempts, &orders, 10, 60_000.0).unwrap_err();
        assert!(err.contains("settled at 5.0/s") && err.contains("under 90 % of the declared 10"), "{err}");
        assert!(!err.contains("budget ([timing]"), "{err}");
    }

    #[test]
    fn a_refused_order_or_one_never_settled_fails_capacity() {
        let (mut attempts, orders) = load(|_| 50);
        attempts[3].answer = Answer::Unavailable("503 busy".into());
        let err = sustained(&attempts, &orders, 10, 5000.0).unwrap_err();
        assert!(err.contains("1 of 10 orders were not answered 201 (e.g. #3 503 busy)"), "{err}");
        let (attempts, mut orders) = load(|_| 50);
        orders[9].terminal_ms = None;
        assert!(sustained(&attempts, &orders, 10, 5000.0).unwrap_err().contains("never arrived"));
        assert!(sustained(&[], &[], 10, 5000.0).unwrap_err().contains("sent nothing"));
    }

    fn fault() -> FaultSpan {
        FaultSpan { began_ms: 1000, in_place_ms: 1100, lifted_ms: Some(3000) }
    }

    #[test]
    fn recovery_is_measured_from_the_lift_and_judged_against_the_budget() {
        let attempts = [ok(0, 900), attempt(1, 2000, Answer::Unavailable("refused".into())), ok(2, 3100), ok(3, 3200)];
        // o0 accepted before the fault, settled 1500 ms after the lift; o2 after it (not backlog);
        // o9 known only from order.created (its answer lost), settled 800 ms after the lift.
        let orders = [
            settled("o0", Some(910), Some(4500)),
            settled("o2", Some(3110), Some(9000)),
            settled("o9", None, Some(3800)),
        ];
        let figures = recovery_figures(&attempts, &orders, &fault());
        assert_eq!(figures["intake_201_after_ms"], 110);
        assert_eq!(figures["backlog_orders"], 2);
        assert_eq!(figures["backlog_drained_after_ms"], 1500);
        assert_eq!(recovery(&figures, Duration::from_secs(2)), Ok(()));
        let err = recovery(&figures, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("every order open at the restart settled 1500 ms after"), "{err}");
        assert!(!err.contains("intake answered 201 again 110"), "{err}");
    }

    #[test]
    fn a_recovery_that_never_happens_fails() {
        let attempts = [ok(0, 900), attempt(1, 3100, Answer::Unavailable("503".into()))];
        let orders = [settled("o0", Some(910), None)];
        let figures = recovery_figures(&attempts, &orders, &fault());
        let err = recovery(&figures, Duration::from_secs(60)).unwrap_err();
        assert!(err.contains("intake answered 201 again: never") && err.contains("settled: never"), "{err}");
    }

    #[test]
    fn a_declaration_the_suite_cannot_run_with_is_refused() {
        assert!(Capacity::default().check().is_ok());
        let zero = Capacity { load_rate: 0, ..Capacity::default() };
        assert!(zero.check().unwrap_err().to_string().contains("load_rate = 0"));
        assert_eq!(Capacity::default().describe(), "25 orders/s (burst 100), settled within 120 s, recovery 30 s");
    }
}
