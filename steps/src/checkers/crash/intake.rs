//! Intake through a fault: what the load's requests were answered while a fault was in place
//! and after it was lifted, and how many orders were open while it was.

use super::{Answer, Attempt, FaultSpan, violation};
use crate::checkers::Violation;
use std::collections::BTreeMap;

/// Intake answers: a failure is always a violation; "unavailable" only while a fault was in
/// place — from the moment the first fault began until intake answered 201 again after the
/// last one was lifted. Intake must come back: some order sent after the lift is accepted.
pub fn intake(attempts: &[Attempt], faults: &[FaultSpan]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let began = faults.iter().map(|f| f.began_ms).min();
    // When the last fault was lifted; `None` while one is still in place (or there was none).
    let lifted = if faults.is_empty() {
        None
    } else {
        faults.iter().map(|f| f.lifted_ms).try_fold(i64::MIN, |latest, l| l.map(|l| latest.max(l)))
    };
    // The first 201 to a request sent after the last lift: from then on intake is back.
    let recovered = lifted.and_then(|lifted| {
        attempts
            .iter()
            .filter(|a| a.sent_ms >= lifted && matches!(a.answer, Answer::Accepted(_)))
            .map(|a| a.sent_ms)
            .min()
    });
    for a in attempts {
        match &a.answer {
            Answer::Accepted(_) => {}
            Answer::Failed(detail) => {
                violations.push(violation("intake", &format!("#{}", a.seq), format!("sent at {}: {detail}", a.sent_ms)))
            }
            Answer::Unavailable(detail) => {
                let during_fault = began.is_some_and(|b| a.answered_ms >= b) && recovered.is_none_or(|r| a.sent_ms < r);
                if !during_fault {
                    let when = if began.is_none_or(|b| a.answered_ms < b) {
                        "before any fault"
                    } else {
                        "after intake had recovered"
                    };
                    violations.push(violation(
                        "intake",
                        &format!("#{}", a.seq),
                        format!("sent at {} {when}: {detail}", a.sent_ms),
                    ));
                }
            }
        }
    }
    if lifted.is_some() && recovered.is_none() {
        let after = attempts.iter().filter(|a| lifted.is_some_and(|l| a.sent_ms >= l)).count();
        violations.push(violation(
            "intake",
            "-",
            format!("no order sent after the fault was lifted was accepted ({after} sent): intake did not recover"),
        ));
    }
    violations
}

/// How many orders were accepted and not yet terminal at some moment while the fault was in
/// place (accepted before it was lifted — or before now while it still is — and terminal, if
/// ever, after it was in place). `orders`: each order's (accepted, terminal) times.
pub fn in_flight(orders: impl IntoIterator<Item = (Option<i64>, Option<i64>)>, fault: &FaultSpan) -> usize {
    let lifted = fault.lifted_ms.unwrap_or(i64::MAX);
    orders
        .into_iter()
        .filter(|(accepted, terminal)| {
            accepted.is_some_and(|a| a <= lifted) && terminal.is_none_or(|t| t > fault.in_place_ms)
        })
        .count()
}

/// [`in_flight`] while the fault is still in place, from the load's answers so far and when each
/// order's last stage was seen (`terminal`: orderId → when its `PAYMENT_WAIT` or
/// `ORDER_CANCELLED` push arrived).
pub fn in_flight_now(attempts: &[Attempt], terminal: &BTreeMap<&str, i64>, fault: &FaultSpan) -> usize {
    in_flight(
        attempts.iter().filter_map(|a| match &a.answer {
            Answer::Accepted(id) => Some((Some(a.answered_ms), terminal.get(id.as_str()).copied())),
            _ => None,
        }),
        fault,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(seq: usize, sent: i64, answer: Answer) -> Attempt {
        Attempt { seq, sent_ms: sent, answered_ms: sent + 5, lines: Vec::new(), answer }
    }

    fn fault() -> FaultSpan {
        FaultSpan { began_ms: 1000, in_place_ms: 1010, lifted_ms: Some(2000) }
    }

    fn ok(seq: usize, sent: i64) -> Attempt {
        attempt(seq, sent, Answer::Accepted(format!("o{seq}")))
    }

    fn down(seq: usize, sent: i64) -> Attempt {
        attempt(seq, sent, Answer::Unavailable("503".into()))
    }

    #[test]
    fn intake_that_answered_201_outside_the_fault_passes() {
        let attempts = [ok(0, 900), down(1, 1100), down(2, 2100), ok(3, 2200), ok(4, 2300)];
        assert!(intake(&attempts, &[fault()]).is_empty(), "{:?}", intake(&attempts, &[fault()]));
    }

    #[test]
    fn unavailability_outside_the_fault_is_caught() {
        let before = [down(0, 500), ok(1, 2200)];
        let v = intake(&before, &[fault()]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("before any fault"));
        let after_recovery = [ok(0, 2100), down(1, 2200)];
        let v = intake(&after_recovery, &[fault()]);
        assert!(v.len() == 1 && v[0].detail.contains("after intake had recovered"), "{v:?}");
    }

    #[test]
    fn intake_that_never_recovers_is_caught() {
        let v = intake(&[ok(0, 900), down(1, 2100), down(2, 2200)], &[fault()]);
        assert!(v.iter().any(|v| v.detail.contains("did not recover")), "{v:?}");
    }

    #[test]
    fn a_failed_answer_is_caught_even_during_the_fault() {
        let v =
            intake(&[attempt(0, 1500, Answer::Failed("500 Internal Server Error".into())), ok(1, 2100)], &[fault()]);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("500"));
    }

    #[test]
    fn in_flight_now_counts_only_accepted_orders_not_finished_before_the_fault() {
        let span = FaultSpan { began_ms: 1000, in_place_ms: 1100, lifted_ms: None };
        let attempt = |seq: usize, answered_ms: i64, answer: Answer| Attempt {
            seq,
            sent_ms: answered_ms - 5,
            answered_ms,
            lines: Vec::new(),
            answer,
        };
        let attempts = vec![
            attempt(0, 500, Answer::Accepted("done-before".into())),
            attempt(1, 900, Answer::Accepted("open".into())),
            attempt(2, 950, Answer::Accepted("done-during".into())),
            attempt(3, 1200, Answer::Unavailable("503".into())),
            attempt(4, 1300, Answer::Accepted("accepted-during".into())),
        ];
        let terminal: BTreeMap<&str, i64> = [("done-before", 1000), ("done-during", 1150)].into();
        // 3 open: short of a precondition of 20, which the hold step then reports as not judged.
        assert_eq!(in_flight_now(&attempts, &terminal, &span), 3);
        assert_eq!(in_flight_now(&attempts[..1], &terminal, &span), 0);
    }
}
