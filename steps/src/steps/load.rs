//! A steady load for the crash scenarios (`features/crash.feature`): a background task places
//! orders open-loop ([`OpenLoop`], the bench's schedule too) — each on its schedule, whether or
//! not earlier ones were answered — for the products of the scenario's catalogue it is given
//! (with two, orders of one line mix with orders of both, their lines in either order; see
//! [`order_lines`]) and records every answer. Steps wait until it has placed so many orders, add
//! a burst, stop it, read back what every order ended as (over HTTP, the push sink and the tap);
//! `load_verdicts.rs` judges that with [`crate::checkers::crash`]. A load is bounded: it stops by
//! itself after [`MAX_RUN`], and when its scenario's World is dropped.

use super::SagaWorld;
use super::journal::{Journal, OpenOrders};
use super::params::Aliases;
use super::readback::{REQUEST_TIMEOUT, State, read_states, read_stock, terminal};
use crate::api::{NewOrder, OrderLine};
use crate::checkers::capacity;
use crate::checkers::crash::{self as crash, Answer, Attempt, Settled};
use crate::client::{ClientError, SagaClient};
use crate::observed::TapRecord;
use crate::open_loop::OpenLoop;
use cucumber::{given, then, when};
use futures::StreamExt;
use saga_contract::{Money, OrderStatus, PushKind, SagaTopic, now_millis};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The longest a load runs before it stops by itself.
const MAX_RUN: Duration = Duration::from_secs(120);

/// What every order of the load sends, but its lines.
struct Template {
    /// Bounded by [`REQUEST_TIMEOUT`].
    client: SagaClient,
    user: String,
    store: String,
    /// The products the load orders: (id, catalogue price).
    products: Vec<(String, Money)>,
}

/// The lines of the load's order number `seq`: quantities 1, 2, 3, 1, … of the first product;
/// with a second product, one order in four orders the first alone, one the second alone, and
/// two order both, once in each order (so the crash hits orders between their lines' writes,
/// and all-or-none is judged by both products' stock).
fn order_lines(products: &[(String, Money)], seq: usize) -> Vec<OrderLine> {
    let quantity = 1 + i64::try_from(seq % 3).unwrap_or(0);
    let line = |(product_id, unit_price): &(String, Money), quantity| OrderLine {
        product_id: product_id.clone(),
        quantity,
        unit_price: *unit_price,
    };
    match products {
        [first, second, ..] => match seq % 4 {
            0 => vec![line(first, quantity)],
            1 => vec![line(first, quantity), line(second, 1)],
            2 => vec![line(second, 1), line(first, quantity)],
            _ => vec![line(second, quantity)],
        },
        [only] => vec![line(only, quantity)],
        [] => unreachable!("a load orders at least one product"),
    }
}

pub(super) struct Load {
    template: Arc<Template>,
    pub(super) journal: Arc<Journal>,
    rate: f64,
    /// Each product's stock when the load started (the scenario's own products: only the load
    /// orders them).
    pub(super) initial_stock: BTreeMap<String, i64>,
    stop: watch::Sender<bool>,
    /// `None` once stopped.
    ticker: Option<JoinHandle<()>>,
    /// Bursts still being placed (see `load_burst`), awaited when the load stops.
    bursts: Vec<JoinHandle<()>>,
    /// What every order ended as, once read back.
    pub(super) settled: Option<Vec<Settled>>,
}

impl Drop for Load {
    fn drop(&mut self) {
        // Dropping the task drops its JoinSet, which aborts the requests still out.
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        for burst in &self.bursts {
            burst.abort();
        }
    }
}

/// The orders accepted among the load's first `first` requests that were sent at or after
/// `since_ms` (epoch ms); `None` while one of those requests is still unanswered (on a busy
/// machine the load sends late ticks at once, and their answers trail).
pub(super) fn accepted_among(attempts: &[Attempt], since_ms: i64, first: usize) -> Option<Vec<String>> {
    let among: Vec<&Attempt> = attempts.iter().filter(|a| a.seq < first).collect();
    if among.len() < first {
        return None;
    }
    let since = among.into_iter().filter(|a| a.sent_ms >= since_ms);
    Some(since.filter_map(|a| if let Answer::Accepted(id) = &a.answer { Some(id.clone()) } else { None }).collect())
}

impl Load {
    /// How many requests the load has sent so far, answered or not.
    pub(super) fn sent(&self) -> usize {
        *self.journal.sent.borrow()
    }

    pub(super) async fn wait_sent(&self, target: usize) {
        assert!(self.ticker.is_some(), "the load has already stopped");
        // At the load's rate this takes (target − sent) / rate: allow twice that, and 5 s more.
        let left = target.saturating_sub(self.sent());
        let deadline = Duration::from_secs_f64(left as f64 / self.rate * 2.0 + 5.0);
        let sent = self.journal.sent.subscribe();
        let reached = crate::poll::until(deadline, sent.clone(), async || match *sent.borrow() {
            n if n >= target => Ok(()),
            n => Err(n),
        })
        .await;
        if let Err(sent) = reached {
            panic!(
                "the load sent {sent} of {target} orders within {deadline:?} (it stops by itself after {MAX_RUN:?})"
            );
        }
    }

    /// One line on what the load did, for every failure message.
    /// What the load did, as the conformance record's `load` figure.
    fn figures(&self) -> serde_json::Value {
        let attempts = self.journal.attempts();
        let count = |f: fn(&Answer) -> bool| attempts.iter().filter(|a| f(&a.answer)).count();
        json!({
            "sent": attempts.len(),
            "rate_per_second": self.rate,
            "accepted": count(|a| matches!(a, Answer::Accepted(_))),
            "unavailable": count(|a| matches!(a, Answer::Unavailable(_))),
            "failed": count(|a| matches!(a, Answer::Failed(_))),
        })
    }

    pub(super) fn summary(&self) -> String {
        let f = self.figures();
        format!(
            "load: {} sent at {}/s, {} accepted, {} unavailable (503 or no answer), {} failed",
            f["sent"], f["rate_per_second"], f["accepted"], f["unavailable"], f["failed"]
        )
    }

    /// Every order of the load with its lines and when it was accepted: the accepted ones,
    /// and those the tap saw on `order.created` from the load's store whose answer was lost.
    fn orders(&self, log: &[TapRecord]) -> Vec<(String, Vec<OrderLine>, Option<i64>)> {
        let mut orders: BTreeMap<String, (Vec<OrderLine>, Option<i64>)> = BTreeMap::new();
        for a in self.journal.attempts() {
            if let Answer::Accepted(id) = a.answer {
                orders.insert(id, (a.lines, Some(a.answered_ms)));
            }
        }
        for r in log.iter().filter(|r| !r.dead_letter && r.saga_topic == Some(SagaTopic::OrderCreated)) {
            let (Some(id), Some(value)) = (&r.order_id, &r.value) else { continue };
            if value["storeId"] != json!(self.template.store) || orders.contains_key(id) {
                continue;
            }
            // The journal lost the request with its answer: its lines are the ones it was sent with.
            let lines = value["items"].as_array().into_iter().flatten().filter_map(|l| {
                Some(OrderLine {
                    product_id: l["productId"].as_str()?.to_string(),
                    quantity: l["quantity"].as_i64()?,
                    unit_price: Money::from_json(&l["unitPrice"])?,
                })
            });
            orders.insert(id.clone(), (lines.collect(), None));
        }
        orders.into_iter().map(|(id, (lines, accepted))| (id, lines, accepted)).collect()
    }
}

/// POSTs one order and classifies the answer.
async fn place(t: &Template, seq: usize, lines: Vec<OrderLine>) -> Attempt {
    let order = NewOrder { store_id: t.store.clone(), items: lines.clone() };
    let sent_ms = now_millis();
    let answer = match t.client.place_order(&t.user, &order).await {
        Ok((placed, _)) if !placed.order_id.is_empty() => Answer::Accepted(placed.order_id),
        Ok((placed, _)) => Answer::Failed(format!("201 without an orderId: {placed:?}")),
        Err(unanswered @ ClientError::Unanswered { .. }) => Answer::Unavailable(unanswered.to_string()),
        Err(ClientError::Status { status: 503, body, .. }) => Answer::Unavailable(format!("503 {body}")),
        Err(ClientError::Status { status, body, .. }) => Answer::Failed(format!("{status} {body}")),
        Err(unreadable) => Answer::Failed(unreadable.to_string()),
    };
    Attempt { seq, sent_ms, answered_ms: now_millis(), lines, answer }
}

/// Places the load's next order (see [`order_lines`]) and journals the attempt; whether it was
/// accepted.
async fn place_next(template: Arc<Template>, journal: Arc<Journal>) -> bool {
    let seq = journal.next();
    let attempt = place(&template, seq, order_lines(&template.products, seq)).await;
    let accepted = matches!(attempt.answer, Answer::Accepted(_));
    journal.attempts.lock().expect("load journal poisoned").push(attempt);
    accepted
}

/// The load's task: one order each time the [`OpenLoop`] schedule has one due (orders a busy
/// machine delayed are caught up, not skipped) until stopped (or [`MAX_RUN`]), then waits for the
/// answers still out.
async fn run(template: Arc<Template>, journal: Arc<Journal>, rate: f64, mut stop: watch::Receiver<bool>) {
    let mut schedule = OpenLoop::new(tokio::time::Instant::now(), rate);
    let stop_at = tokio::time::Instant::now() + MAX_RUN;
    let mut requests = JoinSet::new();
    while tokio::time::Instant::now() < stop_at {
        tokio::select! {
            _ = schedule.next() => {}
            _ = stop.changed() => break,
        }
        requests.spawn(place_next(template.clone(), journal.clone()));
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
}

/// Notes, once the load's orders were read back after a fault, how long the implementation took
/// to recover from it (the scenario's `recovery` figure; judged only by `@RECOVERY-1`).
pub(super) fn note_recovery(world: &mut SagaWorld) {
    let Some((_, fault)) = world.fault_spans.last().copied() else { return };
    let figures = capacity::recovery_figures(&world.load().journal.attempts(), world.settled(), &fault);
    eprintln!("[capacity] recovery after {:?}: {figures}", world.fault_spans.last().map(|(f, _)| f));
    world.figures.insert("recovery".into(), figures);
}

#[given(regex = r#"^orders flow at (\d+) per second for products? (.+)$"#)]
async fn load_starts(world: &mut SagaWorld, rate: u32, aliases: String) {
    start(world, rate, aliases).await
}

/// Starts the scenario's load at `rate` orders per second for the products `aliases` names.
pub(super) async fn start(world: &mut SagaWorld, rate: u32, aliases: String) {
    assert!(world.load.is_none(), "a load already runs in this scenario");
    assert!(rate > 0, "a load needs a rate above 0");
    let aliases = aliases.parse::<Aliases>().unwrap_or_else(|never| match never {}).0;
    let mut products = Vec::new();
    let mut initial_stock = BTreeMap::new();
    for alias in &aliases {
        let product = world.product(alias);
        let stock = read_stock(&world.env, &product.id)
            .await
            .unwrap_or_else(|e| panic!("reading the stock of {alias} before the load: {e}"));
        initial_stock.insert(product.id.clone(), stock);
        products.push((product.id, product.price));
    }
    let template = Arc::new(Template {
        client: world.env.client.with_timeout(REQUEST_TIMEOUT),
        user: world.user("load"),
        store: format!("S-load-{}", world.tag),
        products,
    });
    let journal = Arc::new(Journal { attempts: Mutex::default(), sent: watch::Sender::new(0) });
    let (stop, stopped) = watch::channel(false);
    let ticker = tokio::spawn(run(template.clone(), journal.clone(), f64::from(rate), stopped));
    world.load = Some(Load {
        template,
        journal,
        rate: f64::from(rate),
        initial_stock,
        stop,
        ticker: Some(ticker),
        bursts: Vec::new(),
        settled: None,
    });
}

#[when(regex = r"^the load has placed (\d+) orders$")]
async fn load_placed(world: &mut SagaWorld, count: usize) {
    world.load().wait_sent(count).await;
}

#[when(regex = r"^the load has placed (\d+) more orders$")]
async fn load_placed_more(world: &mut SagaWorld, count: usize) {
    let load = world.load();
    let target = load.sent() + count;
    load.wait_sent(target).await;
}

/// A burst on top of the steady rate, so that many orders are open at the moment of the next
/// fault (at the steady rate the reference finishes each in milliseconds).
/// Sends `count` orders at once and returns while they are still arriving — once a quarter of
/// them is answered — so the fault the scenario puts in place next lands mid-burst, with orders
/// in every stage. Until that fault is in place, every accepted order of the burst is replaced
/// by a new one while fewer than `count` orders of the load are open (at most [`BURST_TOP_UPS`] ×
/// `count` in all; a refused one is not, so an intake already down is not flooded; a slow
/// implementation still working on the burst gets no more than the burst it declared):
/// putting a fault in place takes
/// time (a container is killed in ~0.4 s), and a fast implementation would otherwise finish
/// the burst first, so the fault would hit an idle saga and the scenario would test nothing.
/// The rest is awaited when the load stops.
#[when(regex = r"^(\d+) more orders arrive at once$")]
pub(super) async fn load_burst(world: &mut SagaWorld, count: usize) {
    let (deadline, env) = (world.deadline(), world.env.clone());
    let mut faults = world.faults_in_place.subscribe();
    let faults_before = *faults.borrow_and_update();
    let load = world.load();
    assert!(load.ticker.is_some(), "the load has already stopped");
    let (journal, before) = (load.journal.clone(), load.journal.answered());
    let (template, placing_journal) = (load.template.clone(), load.journal.clone());
    let stop = load.stop.subscribe();
    let mut open = OpenOrders::new(env, load.journal.clone());
    load.bursts.push(tokio::spawn(async move {
        let mut placing: futures::stream::FuturesUnordered<_> =
            (0..count).map(|_| place_next(template.clone(), placing_journal.clone())).collect();
        let mut top_ups = 0;
        // Bounded: each answer adds at most one order, and at most BURST_TOP_UPS × count in all.
        while let Some(accepted) = placing.next().await {
            let fault_pending = *faults.borrow() == faults_before && !*stop.borrow();
            if accepted && fault_pending && top_ups < BURST_TOP_UPS * count && open.now() < count {
                placing.push(place_next(template.clone(), placing_journal.clone()));
                top_ups += 1;
            }
        }
    }));
    let quarter = count.div_ceil(4);
    crate::poll::until(deadline, Duration::from_millis(2), async || {
        let answered = journal.answered() - before;
        if answered >= quarter { Ok(()) } else { Err(answered) }
    })
    .await
    .unwrap_or_else(|answered| panic!("only {answered} of a burst of {count} orders answered within {deadline:?}"));
}

/// How many times over a burst may be topped up while its fault is being put in place.
const BURST_TOP_UPS: usize = 10;

#[when("the load stops")]
async fn load_stops(world: &mut SagaWorld) {
    let load = world.load();
    load.stop.send_replace(true);
    if let Some(ticker) = load.ticker.take() {
        ticker.await.expect("the load's task failed");
    }
    for burst in std::mem::take(&mut load.bursts) {
        burst.await.expect("a burst's task failed");
    }
    eprintln!("[crash] {}", load.summary());
    let figures = load.figures();
    world.figures.insert("load".into(), figures);
}

#[then("every order the load placed settles: confirmed with a payment, or cancelled")]
async fn load_settles(world: &mut SagaWorld) {
    let env = world.env.clone();
    // A correctness bound, generous ([capacity] settle_seconds): speed is judged by @CAPACITY and @RECOVERY.
    let (deadline, quiet) = (env.config.capacity.settle_bound(), env.config.quiet_period());
    let load = world.load();
    assert!(load.ticker.is_none(), "stop the load first (`When the load stops`)");
    let user = load.template.user.clone();
    let began = std::time::Instant::now();
    let mut states: BTreeMap<String, State> = BTreeMap::new();
    // The orders are read from the journal and the tap again until none appears: an order whose
    // 201 was lost in an outage (committed as the server went down, the client given a 503 or no
    // answer) shows on `order.created` only once its outbox row is sent, which may be after the
    // others settled — and it takes stock like any other.
    let mut orders = load.orders(&env.tap.records());
    loop {
        let _ = crate::poll::until(deadline.saturating_sub(began.elapsed()), Duration::from_millis(200), async || {
            orders = load.orders(&env.tap.records());
            let open: Vec<String> = orders
                .iter()
                .map(|(id, _, _)| id)
                .filter(|id| !states.get(*id).is_some_and(terminal))
                .cloned()
                .collect();
            let count = open.len();
            states.extend(read_states(&env, open, false).await);
            if count == 0 { Ok(()) } else { Err(count) }
        })
        .await;
        // The quiet period: whatever a late redelivery or a zombie still does shows in the read after it.
        tokio::time::sleep(quiet).await;
        let known = orders.len();
        orders = load.orders(&env.tap.records());
        if orders.len() == known || began.elapsed() >= deadline {
            break;
        }
    }
    let ids: Vec<String> = orders.iter().map(|(id, _, _)| id.clone()).collect();
    let states: BTreeMap<String, State> = read_states(&env, ids, true).await.into_iter().collect();
    let arrivals = env.sink.arrivals();
    let mut pushes: BTreeMap<&str, Vec<(i64, crate::observed::Push)>> = BTreeMap::new();
    for a in &arrivals {
        if let Ok(p) = &a.push {
            pushes.entry(p.order_id.as_str()).or_default().push((a.at_ms, p.clone()));
        }
    }
    let settled: Vec<Settled> = orders
        .into_iter()
        .map(|(order_id, lines, accepted_ms)| {
            let (status, payments) = states[&order_id].clone();
            let mine = pushes.get(order_id.as_str()).cloned().unwrap_or_default();
            let last_stage = match status {
                Some(OrderStatus::Confirmed) => Some(PushKind::PaymentWait),
                Some(OrderStatus::Cancelled) => Some(PushKind::OrderCancelled),
                _ => None,
            };
            let terminal_ms =
                last_stage.and_then(|kind| mine.iter().filter(|(_, p)| p.kind == kind).map(|(at, _)| *at).min());
            Settled {
                order_id,
                user_id: user.clone(),
                lines,
                accepted_ms,
                status,
                payments,
                pushes: mine.into_iter().map(|(_, p)| p).collect(),
                terminal_ms,
            }
        })
        .collect();
    let violations = crash::unsettled(&settled);
    world.load().settled = Some(settled);
    note_recovery(world);
    world.judge(&format!("settled within [capacity] settle_seconds ({deadline:?})"), &violations);
}

/// The crash scenarios' precondition, made true rather than hoped for: the fault in place is held
/// until at least `at_least` accepted orders are open — accepted and not at their last stage
/// (the `PAYMENT_WAIT` or `ORDER_CANCELLED` push) before the fault was in place — or until
/// [`HOLD_AT_MOST`] has passed. Short of that the experiment did not hit the implementation
/// mid-flight, which says nothing about it: the scenario ends as not judged, with the figures.
#[when(regex = r"^the fault is held until (\d+) orders are open$")]
async fn load_hold(world: &mut SagaWorld, at_least: usize) {
    let (fault, span) = world.fault_spans.last().copied().expect("no fault was put in place in this scenario");
    assert!(span.lifted_ms.is_none(), "{fault:?} was already lifted: hold it before lifting it");
    let env = world.env.clone();
    let journal = world.load().journal.clone();
    let began = std::time::Instant::now();
    let open = crate::poll::until(HOLD_AT_MOST, Duration::from_millis(100), async || {
        let arrivals = env.sink.arrivals();
        let mut terminal: BTreeMap<&str, i64> = BTreeMap::new();
        for a in &arrivals {
            if let Ok(p) = &a.push
                && matches!(p.kind, PushKind::PaymentWait | PushKind::OrderCancelled)
            {
                let at = terminal.entry(p.order_id.as_str()).or_insert(a.at_ms);
                *at = (*at).min(a.at_ms);
            }
        }
        match crash::in_flight_now(&journal.attempts(), &terminal, &span) {
            n if n >= at_least => Ok(n),
            n => Err(n),
        }
    })
    .await;
    let summary = world.load().summary();
    match open {
        Ok(n) => {
            eprintln!("[crash] {n} orders open while {fault:?} was in place (≥ {at_least}) after {:?}", began.elapsed())
        }
        Err(n) => crate::results::not_judged(format!(
            "the experiment's precondition did not hold: {n} accepted orders were open while {fault:?} was in place, held {HOLD_AT_MOST:?} for at least {at_least}; {summary}"
        )),
    }
}

/// The longest a crash scenario holds its fault waiting for enough orders to be open.
const HOLD_AT_MOST: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(seq: usize, sent_ms: i64, answer: Answer) -> Attempt {
        Attempt { seq, sent_ms, answered_ms: sent_ms + 5, lines: Vec::new(), answer }
    }

    #[test]
    fn orders_placed_since_are_known_once_every_request_before_is_answered() {
        let accepted = |seq, sent_ms| attempt(seq, sent_ms, Answer::Accepted(format!("o{seq}")));
        let mut attempts = vec![accepted(0, 100), accepted(2, 300), accepted(3, 400)];
        assert_eq!(accepted_among(&attempts, 200, 4), None, "request 1 is unanswered");
        attempts.push(attempt(1, 200, Answer::Unavailable("503".into())));
        assert_eq!(accepted_among(&attempts, 200, 4), Some(vec!["o2".to_string(), "o3".to_string()]));
        assert_eq!(accepted_among(&attempts, 200, 3), Some(vec!["o2".to_string()]), "later requests are not counted");
    }
}
