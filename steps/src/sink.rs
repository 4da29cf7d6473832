//! The push gateway stand-in: a wiremock server that accepts every POST and keeps it, so
//! steps can check which notifications arrived, and how many times. For a while it can also
//! misbehave as a real gateway does ([`Outage`]): answer a 5xx, not answer before the client
//! gives up, or answer slowly. An outage is scoped: it hits only the pushes that name one
//! scenario's ids (its users carry the scenario's tag), so the scenarios of the push gateway
//! run alongside the others, whose pushes it takes as usual. It is the suite's own, so this
//! works on every backend.

use crate::observed::read_push;
use crate::observed::{Arrival, Push};
use crate::poll;
use saga_contract::PushKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How the gateway misbehaves while an outage lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Answers this status (a 5xx) and does not take the push.
    Status(u16),
    /// Holds every request until the outage ends, then answers 504 without taking the push:
    /// longer than any sensible client timeout for a request sent early in the outage.
    Hang,
    /// Takes the push but answers 200 only after this long.
    Slow(Duration),
}

/// An outage and when it ends.
#[derive(Debug, Clone, Copy)]
struct Window {
    outage: Outage,
    until: Instant,
}

/// The outages in place, by scope (a text a push's body must contain to be hit, e.g. a
/// scenario's tag), and how many requests each scope's outages disturbed so far.
#[derive(Debug, Default)]
struct Outages {
    windows: HashMap<String, Window>,
    disturbed: HashMap<String, usize>,
}

impl Outages {
    /// The outage a request with `body` meets at `now`, if any: the first scope its body names
    /// whose window is still open (counted as disturbed).
    fn meet(&mut self, body: &str, now: Instant) -> Option<(bool, u16, Duration)> {
        let (scope, answer) = self
            .windows
            .iter()
            .filter(|(scope, _)| body.contains(scope.as_str()))
            .find_map(|(scope, window)| Some((scope.clone(), answer(Some(*window), now)?)))?;
        *self.disturbed.entry(scope).or_default() += 1;
        Some(answer)
    }
}

/// What the gateway answers to a request arriving at `now` (`None` during no outage: take it,
/// 200 at once): whether it takes the push, the status and how long it holds the answer.
fn answer(window: Option<Window>, now: Instant) -> Option<(bool, u16, Duration)> {
    let window = window.filter(|w| w.until > now)?;
    Some(match window.outage {
        Outage::Status(status) => (false, status, Duration::ZERO),
        Outage::Hang => (false, 504, window.until - now),
        Outage::Slow(delay) => (true, 200, delay),
    })
}

/// Journals each push it takes with its arrival time (wiremock's own journal has no
/// timestamps) and answers as the outage its body meets says (200 at once without one).
struct Journal {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    changed: tokio::sync::watch::Sender<usize>,
    outages: Arc<Mutex<Outages>>,
}

impl Respond for Journal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let met = self
            .outages
            .lock()
            .expect("outage lock poisoned")
            .meet(&String::from_utf8_lossy(&request.body), Instant::now());
        let (take, status, hold) = met.unwrap_or((true, 200, Duration::ZERO));
        if take {
            let push = read_push(&request.body);
            let len = {
                let mut journal = self.arrivals.lock().expect("journal poisoned");
                journal.push(Arrival { at_ms: saga_contract::now_millis(), push });
                journal.len()
            };
            self.changed.send_replace(len);
        }
        ResponseTemplate::new(status).set_delay(hold)
    }
}

pub struct PushSink {
    server: MockServer,
    journal: Arc<Mutex<Vec<Arrival>>>,
    changed: tokio::sync::watch::Receiver<usize>,
    outages: Arc<Mutex<Outages>>,
}

impl PushSink {
    /// Starts on 127.0.0.1: on `port`, or on a free one when `None`.
    pub async fn start(port: Option<u16>) -> anyhow::Result<PushSink> {
        let server = match port {
            Some(port) => {
                let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
                    anyhow::anyhow!("push sink cannot listen on 127.0.0.1:{port}: {e}; choose another push_sink_port")
                })?;
                MockServer::builder().listener(listener).start().await
            }
            None => MockServer::start().await,
        };
        let journal = Arc::new(Mutex::new(Vec::new()));
        let (tx, changed) = tokio::sync::watch::channel(0);
        let outages = Arc::new(Mutex::new(Outages::default()));
        let responder = Journal { arrivals: journal.clone(), changed: tx, outages: outages.clone() };
        Mock::given(method("POST")).respond_with(responder).mount(&server).await;
        Ok(PushSink { server, journal, changed, outages })
    }

    /// Misbehaves as `outage` says for the next `length` towards every request whose body
    /// contains `scope` (a scenario's tag: its users' pushes), replacing any outage of that
    /// scope in place; when it ends. Other requests are taken as usual.
    pub fn fail_for(&self, scope: &str, outage: Outage, length: Duration) -> Instant {
        assert!(!scope.is_empty(), "an outage of the push gateway needs a scope");
        let until = Instant::now() + length;
        self.outages.lock().expect("outage lock poisoned").windows.insert(scope.to_string(), Window { outage, until });
        until
    }

    /// Ends `scope`'s outage in place, if any.
    pub fn recover(&self, scope: &str) {
        self.outages.lock().expect("outage lock poisoned").windows.remove(scope);
    }

    /// How many requests so far met an outage of `scope` (refused, held, slow).
    pub fn disturbed(&self, scope: &str) -> usize {
        self.outages.lock().expect("outage lock poisoned").disturbed.get(scope).copied().unwrap_or_default()
    }

    /// The URL to give the implementation as `PUSH_GATEWAY_URL`.
    pub fn url(&self) -> String {
        format!("{}/push", self.server.uri())
    }

    /// Every request received so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.journal.lock().expect("journal poisoned").clone()
    }

    /// Pushes for one order.
    pub fn for_order(&self, order_id: &str) -> Vec<Push> {
        pushes_of(&self.journal.lock().expect("journal poisoned"), order_id)
    }

    /// When the push of `kind` for `order_id` first arrived.
    pub fn arrival_of(&self, order_id: &str, kind: PushKind) -> Option<i64> {
        self.arrivals()
            .into_iter()
            .find(|a| a.push.as_ref().is_ok_and(|p| p.order_id == order_id && p.kind == kind))
            .map(|a| a.at_ms)
    }

    /// Waits until `predicate` holds over the order's pushes, or `deadline` passes; either way
    /// the order's pushes.
    pub async fn wait_for(
        &self,
        order_id: &str,
        deadline: Duration,
        predicate: impl Fn(&[Push]) -> bool,
    ) -> Result<Vec<Push>, Vec<Push>> {
        self.wait_until(deadline, |arrivals| {
            let pushes = pushes_of(arrivals, order_id);
            if predicate(&pushes) { Ok(pushes) } else { Err(pushes) }
        })
        .await
    }

    /// Waits, woken by each arrival, until `check` over everything received so far returns
    /// `Ok`, or `deadline` passes; then `check`'s last `Err` (what it saw instead). `check`
    /// runs under the journal's lock, so it must not call back into the sink.
    pub async fn wait_until<T, E>(
        &self,
        deadline: Duration,
        mut check: impl FnMut(&[Arrival]) -> Result<T, E>,
    ) -> Result<T, E> {
        let journal = &self.journal;
        poll::until(deadline, self.changed.clone(), async || check(&journal.lock().expect("journal poisoned"))).await
    }
}

fn pushes_of(arrivals: &[Arrival], order_id: &str) -> Vec<Push> {
    arrivals.iter().filter_map(|a| a.push.as_ref().ok()).filter(|p| p.order_id == order_id).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outage_answers_as_it_says_and_only_while_it_lasts() {
        let now = Instant::now();
        let until = now + Duration::from_secs(5);
        let window = |outage| Some(Window { outage, until });
        assert_eq!(answer(None, now), None, "no outage: take it, 200 at once");
        assert_eq!(answer(window(Outage::Status(503)), now), Some((false, 503, Duration::ZERO)));
        assert_eq!(answer(window(Outage::Hang), now), Some((false, 504, Duration::from_secs(5))), "held to the end");
        let slow = Outage::Slow(Duration::from_secs(2));
        assert_eq!(answer(window(slow), now), Some((true, 200, Duration::from_secs(2))));
        assert_eq!(answer(window(Outage::Status(503)), until), None, "over once it ends");
    }

    #[tokio::test]
    async fn a_failing_gateway_does_not_keep_what_it_refuses() {
        let sink = PushSink::start(None).await.unwrap();
        let client = reqwest::Client::new();
        let body = |user: &str| {
            format!(r#"{{"userId":"{user}","orderId":"o","type":"ORDER_CONFIRMED","message":"m","eventId":"e"}}"#)
        };
        let post = |user: &str| client.post(sink.url()).body(body(user)).send();
        sink.fail_for("tag1", Outage::Status(503), Duration::from_secs(30));
        assert_eq!(post("load-tag1").await.unwrap().status(), 503);
        assert!(sink.arrivals().is_empty(), "a refused push is not delivered");
        assert_eq!(post("load-tag2").await.unwrap().status(), 200, "another scenario's push is taken");
        assert_eq!(sink.arrivals().len(), 1);
        sink.fail_for("tag1", Outage::Hang, Duration::from_millis(300));
        let began = Instant::now();
        assert_eq!(post("load-tag1").await.unwrap().status(), 504);
        assert!(began.elapsed() >= Duration::from_millis(250), "answered after {:?}", began.elapsed());
        assert_eq!(sink.arrivals().len(), 1, "a held push is not delivered");
        assert_eq!(post("load-tag1").await.unwrap().status(), 200, "the outage is over");
        assert_eq!(sink.arrivals().len(), 2);
        assert_eq!((sink.disturbed("tag1"), sink.disturbed("tag2")), (2, 0));
        sink.fail_for("tag2", Outage::Status(500), Duration::from_secs(30));
        sink.recover("tag2");
        assert_eq!(post("load-tag2").await.unwrap().status(), 200, "recovered");
    }
}
