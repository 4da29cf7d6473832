//! The push gateway stand-in: a wiremock server that accepts every POST and keeps it, so
//! steps can check which notifications arrived, and how many times.

use crate::poll;
use saga_contract::PushKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A push as the contract defines it.
pub use saga_contract::PushNotification as Push;

/// A push and when it arrived (epoch ms), for the timing scenarios.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at_ms: i64,
    pub push: Result<Push, String>,
}

/// Answers 200 and journals each request with its arrival time (wiremock's own journal has
/// no timestamps).
struct Journal(Arc<Mutex<Vec<Arrival>>>, tokio::sync::watch::Sender<usize>);

impl Respond for Journal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let push = read_push(&request.body);
        let len = {
            let mut journal = self.0.lock().expect("journal poisoned");
            journal.push(Arrival { at_ms: saga_contract::now_millis(), push });
            journal.len()
        };
        self.1.send_replace(len);
        ResponseTemplate::new(200)
    }
}

pub struct PushSink {
    server: MockServer,
    journal: Arc<Mutex<Vec<Arrival>>>,
    changed: tokio::sync::watch::Receiver<usize>,
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
        Mock::given(method("POST")).respond_with(Journal(journal.clone(), tx)).mount(&server).await;
        Ok(PushSink { server, journal, changed })
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

/// A push as the contract defines it; a body the contract cannot read (an unknown type, a
/// missing field) is kept as text with the reason, for the evidence and the whole-run check.
pub(crate) fn read_push(body: &[u8]) -> Result<Push, String> {
    serde_json::from_slice::<Push>(body).map_err(|e| format!("{} — {e}", String::from_utf8_lossy(body)))
}

fn pushes_of(arrivals: &[Arrival], order_id: &str) -> Vec<Push> {
    arrivals.iter().filter_map(|a| a.push.as_ref().ok()).filter(|p| p.order_id == order_id).cloned().collect()
}
