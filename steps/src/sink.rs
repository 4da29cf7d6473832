//! The push gateway stand-in: a wiremock server that accepts every POST and keeps it, so
//! steps can check which notifications arrived, and how many times. For a while it can also
//! misbehave as a real gateway does ([`Outage`]): answer a 5xx, not answer before the client
//! gives up, or answer slowly. It is the suite's own, so this works on every backend.

use crate::observed::read_push;
use crate::observed::{Arrival, Push};
use crate::poll;
use saga_contract::PushKind;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// timestamps) and answers as the current outage says (200 at once without one).
struct Journal {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    changed: tokio::sync::watch::Sender<usize>,
    outage: Arc<Mutex<Option<Window>>>,
    /// Requests answered otherwise than 200 at once.
    disturbed: Arc<AtomicUsize>,
}

impl Respond for Journal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let window = *self.outage.lock().expect("outage lock poisoned");
        let (take, status, hold) = match answer(window, Instant::now()) {
            Some(answer) => {
                self.disturbed.fetch_add(1, Ordering::SeqCst);
                answer
            }
            None => (true, 200, Duration::ZERO),
        };
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
    outage: Arc<Mutex<Option<Window>>>,
    disturbed: Arc<AtomicUsize>,
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
        let (outage, disturbed) = (Arc::new(Mutex::new(None)), Arc::new(AtomicUsize::new(0)));
        let responder =
            Journal { arrivals: journal.clone(), changed: tx, outage: outage.clone(), disturbed: disturbed.clone() };
        Mock::given(method("POST")).respond_with(responder).mount(&server).await;
        Ok(PushSink { server, journal, changed, outage, disturbed })
    }

    /// Misbehaves as `outage` says for the next `length` (replacing any outage in place); when
    /// it ends.
    pub fn fail_for(&self, outage: Outage, length: Duration) -> Instant {
        let until = Instant::now() + length;
        *self.outage.lock().expect("outage lock poisoned") = Some(Window { outage, until });
        until
    }

    /// Ends the outage in place, if any.
    pub fn recover(&self) {
        *self.outage.lock().expect("outage lock poisoned") = None;
    }

    /// How many requests so far were answered otherwise than 200 at once (refused, held, slow).
    pub fn disturbed(&self) -> usize {
        self.disturbed.load(Ordering::SeqCst)
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
        let body = r#"{"userId":"u","orderId":"o","type":"ORDER_CONFIRMED","message":"m","eventId":"e"}"#;
        let post = || client.post(sink.url()).body(body).send();
        sink.fail_for(Outage::Status(503), Duration::from_secs(30));
        assert_eq!(post().await.unwrap().status(), 503);
        assert!(sink.arrivals().is_empty(), "a refused push is not delivered");
        sink.fail_for(Outage::Hang, Duration::from_millis(300));
        let began = Instant::now();
        assert_eq!(post().await.unwrap().status(), 504);
        assert!(began.elapsed() >= Duration::from_millis(250), "answered after {:?}", began.elapsed());
        assert!(sink.arrivals().is_empty(), "a held push is not delivered");
        assert_eq!(post().await.unwrap().status(), 200, "the outage is over");
        assert_eq!(sink.arrivals().len(), 1);
        assert_eq!(sink.disturbed(), 2);
    }
}
