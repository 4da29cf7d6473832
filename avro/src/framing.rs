//! Confluent wire framing through a schema registry, via `schema_registry_converter`:
//! values are registered under `<topic>-value` (TopicNameStrategy) and framed as
//! magic byte 0 + 4-byte big-endian schema id + Avro binary.

use crate::{ContractError, Event};
use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("schema registry at {url}: {source}")]
    Registry { url: String, source: SRCError },
    /// The registry answered that it has no schema with the frame's id, and kept answering so
    /// for [`UNKNOWN_ID_BACKOFF`] (or did so recently): the record was not written through this
    /// registry (or is corrupt).
    #[error("schema id {id} is unknown to the schema registry at {url} (it answered 404)")]
    UnknownSchema { id: u32, url: String },
    #[error("not Confluent-framed Avro: {0}")]
    NotFramed(String),
    #[error("record {found} on a topic that carries {expected}")]
    WrongRecord { expected: &'static str, found: String },
    #[error(transparent)]
    Contract(#[from] ContractError),
}

impl FramingError {
    /// Whether retrying could help (registry unreachable, timing out or failing with a 5xx) as
    /// opposed to a bad record (not framed, unknown schema id, undecodable, wrong shape).
    pub fn is_transient(&self) -> bool {
        matches!(self, FramingError::Registry { source, .. } if registry_unavailable(source))
    }
}

/// The HTTP status the registry answered, when the error is one (the client library reports it
/// only in its message: "… failed with status 404 Not Found").
fn registry_status(source: &SRCError) -> Option<u16> {
    let (_, rest) = source.error.split_once("with status ")?;
    rest.get(..3)?.parse().ok()
}

/// The registry could not be asked (connection refused, timeout: the library flags these
/// retriable) or could not answer for now (5xx, 408, 429; the library flags only 502/503).
fn registry_unavailable(source: &SRCError) -> bool {
    source.retriable || matches!(registry_status(source), Some(408 | 429 | 500..=599))
}

/// A decoded record: the schema id from its frame, the writer's record name, the Avro value.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub schema_id: u32,
    pub record_name: Option<String>,
    pub value: Value,
}

/// How long [`EventCodec::decode`] waits before asking the registry again about a schema id it
/// answered 404 for: four asks over ~0.2 s before the id counts as unknown. Short on purpose:
/// the wrong 404 once seen came from one connection in four landing on the wrong server, which
/// a few fresh asks get past, while every consumer group holds its partition for this long at
/// the first record of a truly unknown id (issue 11: an order behind 1,000 poison records
/// should complete within a second).
const UNKNOWN_ID_BACKOFF: [Duration; 3] =
    [Duration::from_millis(20), Duration::from_millis(60), Duration::from_millis(120)];

/// How long an id the registry kept answering 404 for stays known as unknown: records framed
/// with it fail at once (no backoff) meanwhile, so a flood of them does not stall a partition.
const UNKNOWN_ID_MEMORY: Duration = Duration::from_secs(30);

/// What [`EventCodec`] hands back for the registry's answer: a boxed future (see
/// [`EventCodec::encode`]).
pub type Framing<'a, T> = Pin<Box<dyn Future<Output = Result<T, FramingError>> + Send + 'a>>;

/// Encoder + decoder sharing one registry; both cache schemas, so after the first record of
/// each topic no registry call is made.
pub struct EventCodec {
    url: String,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    /// Schema ids the registry kept answering 404 for, and since when.
    unknown_ids: Mutex<HashMap<u32, Instant>>,
}

impl EventCodec {
    pub fn new(registry_url: &str) -> Result<EventCodec, FramingError> {
        let settings = || {
            SrSettings::new_builder(registry_url.trim_end_matches('/').to_string())
                .set_timeout(Duration::from_secs(5))
                .build()
                .map_err(|source| FramingError::Registry { url: registry_url.to_string(), source })
        };
        Ok(EventCodec {
            url: registry_url.to_string(),
            encoder: AvroEncoder::new(settings()?),
            decoder: AvroDecoder::new(settings()?),
            unknown_ids: Mutex::new(HashMap::new()),
        })
    }

    /// Frames `event` for `topic`, registering the contract schema under `<topic>-value` the
    /// first time.
    ///
    /// A boxed future made by a plain function, not an async fn: an async fn's body (here the
    /// registry client's whole HTTP exchange) is compiled again into every crate that awaits
    /// it, each service among them (docs/performance.md, "Build time").
    pub fn encode<E: Event>(&self, topic: &str, event: E) -> Framing<'_, Vec<u8>> {
        self.encode_value(topic, E::FULL_NAME, E::SCHEMA_JSON, event.into_value())
    }

    #[inline(never)] // compiled here, once (see `encode`)
    fn encode_value(&self, topic: &str, name: &str, schema_json: &str, value: Value) -> Framing<'_, Vec<u8>> {
        let schema = SuppliedSchema::new(Some(name.to_string()), SchemaType::Avro, schema_json.to_string());
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_string(), false, schema);
        Box::pin(async move {
            self.encoder.encode_value(value, &strategy).await.map_err(|source| {
                if source.cached {
                    // The library keeps a failed registration in its cache and replays it to every
                    // later encode of that subject without asking again: a registry that failed for
                    // a moment (a 500 while its own database restarted, CRASH-3) would fail the
                    // subject for the life of the process, and its partition would wait forever.
                    self.encoder.remove_errors_from_cache();
                }
                self.registry_error(source)
            })
        })
    }

    /// Decodes any framed record (looking its writer schema up by id).
    ///
    /// A 404 for the frame's schema id is not taken at its word at once. Seen once (consumer_loop,
    /// loaded machine): a Product Service restarted after a SIGKILL dead-lettered 139
    /// `order.created` records as "schema id 1 is unknown (404)" within 3 s of its start, although
    /// the registry had served `GET /schemas/ids/1?deleted=true` with 200 five seconds before.
    /// What the logs and `schema_registry_converter` 6.0.0 show:
    /// - the library asks `{url}/schemas/ids/{id}?deleted=true` through one shared future per
    ///   id (concurrent decodes share one request); a 404 is `non_retryable` and the failed
    ///   future *stays in its cache* (`into_cache`, `cached: true`) until
    ///   `remove_errors_from_cache`, which this codec called only for 5xx/unreachable. So one 404
    ///   answer, to the first record after the restart, failed every later record of that id in
    ///   the process without asking again: the 139 letters are one answer replayed.
    /// - the registry's access log has no 404 and misses GETs it must have served, and its
    ///   startup line reads "Listening on: http://127.0.0.1:36177. Management interface listening
    ///   on http://127.0.0.1:36177": the stack had picked the same free port twice
    ///   (`free_port()` closed its listener; fixed in steps' `process::free_port`). Vert.x then
    ///   shares the address between the API and the management server, handing connections to
    ///   them in turn; a connection landing on the management router (health and metrics only,
    ///   no access log) gets 404 for any ccompat path. Reproduced by hand with both ports equal:
    ///   3 of 12 fresh connections asking for a registered id got 404, and only the 9 200s were
    ///   in the access log. Apicurio 3.x ccompat ids are content ids, stable once registered: a
    ///   404 for an id that served 200 was not the registry's answer.
    ///
    /// Hence the rule: on a 404 the decoder's cached error is dropped and the registry is asked
    /// again after [`UNKNOWN_ID_BACKOFF`] (~0.2 s in all); only if it still answers 404 is the
    /// record [`FramingError::UnknownSchema`] (poison), and the id is remembered for
    /// [`UNKNOWN_ID_MEMORY`] so the next records with it fail at once instead of waiting again.
    /// Any success forgets the id.
    pub async fn decode(&self, bytes: &[u8]) -> Result<Decoded, FramingError> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(FramingError::NotFramed(format!("{} bytes, first byte {:?}", bytes.len(), bytes.first())));
        }
        let schema_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let mut backoff = UNKNOWN_ID_BACKOFF.iter();
        loop {
            let source = match self.decoder.decode(Some(bytes)).await {
                Ok(result) => {
                    self.unknown_ids().remove(&schema_id);
                    return Ok(Decoded {
                        schema_id,
                        record_name: result.name.map(|n| n.fullname(None)),
                        value: result.value,
                    });
                }
                Err(source) => source,
            };
            if registry_unavailable(&source) {
                if source.cached {
                    // The library caches non-retriable errors (a 500 among them); forget it so
                    // the retry asks the registry again.
                    self.decoder.remove_errors_from_cache();
                }
                return Err(self.registry_error(source));
            }
            if registry_status(&source) != Some(404) {
                return Err(FramingError::NotFramed(source.to_string()));
            }
            let unknown = FramingError::UnknownSchema { id: schema_id, url: self.url.clone() };
            if self.unknown_ids().get(&schema_id).is_some_and(|since| since.elapsed() < UNKNOWN_ID_MEMORY) {
                return Err(unknown);
            }
            match backoff.next() {
                Some(pause) => {
                    // The library caches the 404: drop it so the next attempt asks again.
                    self.decoder.remove_errors_from_cache();
                    tokio::time::sleep(*pause).await;
                }
                None => {
                    // Kept in the library's cache, the 404 answers the next records with this id
                    // without a request while it is remembered here; once that memory expires,
                    // the next record drops it and asks again.
                    self.unknown_ids().insert(schema_id, Instant::now());
                    return Err(unknown);
                }
            }
        }
    }

    fn unknown_ids(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Instant>> {
        self.unknown_ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decodes a record that must be an `E`.
    pub async fn decode_as<E: Event>(&self, bytes: &[u8]) -> Result<E, FramingError> {
        let decoded = self.decode(bytes).await?;
        match decoded.record_name.as_deref() {
            Some(name) if name == E::FULL_NAME => Ok(E::from_value(&decoded.value)?),
            other => Err(FramingError::WrongRecord {
                expected: E::FULL_NAME,
                found: other.unwrap_or("<no name>").to_string(),
            }),
        }
    }

    fn registry_error(&self, source: SRCError) -> FramingError {
        FramingError::Registry { url: self.url.clone(), source }
    }
}

#[cfg(test)]
mod tests {
    //! The classification the consumer loop relies on: what is poison (dead-lettered at once)
    //! and what is transient (retried), against a registry stub on a real socket.
    use super::*;
    use crate::events::OrderCreated;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every `GET /schemas/ids/<id>` with `status` and `body`; counts the requests.
    async fn registry(status: &'static str, body: String) -> (String, Arc<AtomicUsize>) {
        scripted_registry(move |_| (status, body.clone())).await
    }

    /// Answers the n-th request (from 0) with `answer(n)`; counts the requests.
    async fn scripted_registry(
        answer: impl Fn(usize) -> (&'static str, String) + Send + 'static,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = answer(counter.fetch_add(1, Ordering::SeqCst));
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        (url, requests)
    }

    fn not_found(id: u32) -> (&'static str, String) {
        ("404 Not Found", format!(r#"{{"error_code":40403,"message":"Schema {id} not found"}}"#))
    }

    fn frame(id: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    async fn poison(codec: &EventCodec, bytes: &[u8]) -> FramingError {
        let error = codec.decode(bytes).await.expect_err("should not decode");
        assert!(!error.is_transient(), "{error} should be poison, not transient");
        error
    }

    #[tokio::test]
    async fn undecodable_records_are_poison() {
        let schema = serde_json::json!({ "schema": OrderCreated::SCHEMA_JSON }).to_string();
        let (url, _) = registry("200 OK", schema).await;
        let codec = EventCodec::new(&url).unwrap();
        assert!(matches!(poison(&codec, b"").await, FramingError::NotFramed(_)), "empty value");
        assert!(matches!(poison(&codec, b"not avro at all").await, FramingError::NotFramed(_)), "garbage");
        assert!(matches!(poison(&codec, &[1, 0, 0, 0, 1, 2, 3]).await, FramingError::NotFramed(_)), "wrong magic byte");
        assert!(matches!(poison(&codec, &frame(1, &[2])).await, FramingError::NotFramed(_)), "truncated frame");
        let wrong = codec.decode_as::<crate::events::StockReserved>(&frame(1, &[2])).await.expect_err("truncated");
        assert!(!wrong.is_transient(), "{wrong}");
    }

    #[tokio::test]
    async fn an_unknown_schema_id_is_poison_and_not_waited_for_twice() {
        let (url, requests) = scripted_registry(|_| not_found(77)).await;
        let codec = EventCodec::new(&url).unwrap();
        let began = Instant::now();
        let error = poison(&codec, &frame(77, &[2])).await;
        assert!(matches!(error, FramingError::UnknownSchema { id: 77, .. }), "{error}");
        let asked = requests.load(Ordering::SeqCst);
        assert_eq!(asked, UNKNOWN_ID_BACKOFF.len() + 1, "a 404 should be asked again over the backoff");
        assert!(began.elapsed() >= UNKNOWN_ID_BACKOFF.iter().sum(), "gave up after {:?}", began.elapsed());

        // The next records with that id: dead-lettered at once, without asking again.
        let again = Instant::now();
        for _ in 0..3 {
            let error = poison(&codec, &frame(77, &[4])).await;
            assert!(matches!(error, FramingError::UnknownSchema { id: 77, .. }), "{error}");
        }
        assert!(again.elapsed() < Duration::from_millis(40), "waited again: {:?}", again.elapsed());
        assert_eq!(requests.load(Ordering::SeqCst), asked, "a remembered unknown id should not be asked again");
    }

    #[tokio::test]
    async fn a_404_for_a_schema_the_registry_has_is_asked_again() {
        // The registry answers 404 for id 1 twice (as once seen after a restart), then serves it.
        let schema = serde_json::json!({ "schema": r#""string""# }).to_string();
        let (url, requests) =
            scripted_registry(move |n| if n < 2 { not_found(1) } else { ("200 OK", schema.clone()) }).await;
        let codec = EventCodec::new(&url).unwrap();
        let decoded = codec.decode(&frame(1, &[4, b'h', b'i'])).await.expect("the schema exists");
        assert_eq!(decoded.value, Value::String("hi".into()));
        assert_eq!(requests.load(Ordering::SeqCst), 3, "asked until it served the schema");
        // Served once, the schema is cached: no further request.
        codec.decode(&frame(1, &[2, b'x'])).await.expect("cached");
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_transient() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let codec = EventCodec::new(&url).unwrap();
        let error = codec.decode(&frame(1, &[2])).await.expect_err("nothing listens");
        assert!(error.is_transient(), "connection refused should be transient: {error}");
    }

    #[tokio::test]
    async fn a_failed_registration_is_asked_again_not_replayed() {
        // The registry fails the first registration (its database restarting), then registers.
        let (url, requests) = scripted_registry(|n| match n {
            0 => ("500 Internal Server Error", r#"{"error_code":50001,"message":"store unavailable"}"#.into()),
            _ => ("200 OK", r#"{"id":7}"#.into()),
        })
        .await;
        let codec = EventCodec::new(&url).unwrap();
        let event = || OrderCreated {
            event_id: "e-1".into(),
            event_timestamp: 1_700_000_000_000,
            order_id: "o-1".into(),
            user_id: "u-1".into(),
            store_id: "s-1".into(),
            items: vec![crate::events::OrderItem {
                product_id: "p-1".into(),
                quantity: 2,
                unit_price: crate::Money(1_500_000),
            }],
            total_amount: crate::Money(3_000_000),
            created_at: 1_700_000_000_001,
        };
        let error = codec.encode("order.created", event()).await.expect_err("the registry fails");
        assert!(error.is_transient(), "a 500 should be transient: {error}");
        let framed = codec.encode("order.created", event()).await.expect("the second ask registers");
        assert_eq!(framed[..5], [0, 0, 0, 0, 7], "framed with the id the registry gave");
        assert_eq!(requests.load(Ordering::SeqCst), 2, "the failed registration should be asked again");
    }

    #[tokio::test]
    async fn a_failing_registry_is_transient_and_asked_again() {
        let (url, requests) =
            registry("500 Internal Server Error", r#"{"error_code":50001,"message":"store unavailable"}"#.into()).await;
        let codec = EventCodec::new(&url).unwrap();
        for attempt in 1..=2 {
            let error = codec.decode(&frame(5, &[2])).await.expect_err("the registry fails");
            assert!(error.is_transient(), "a 500 should be transient: {error}");
            assert_eq!(
                requests.load(Ordering::SeqCst),
                attempt,
                "each attempt should ask the registry, not replay a cached 500"
            );
        }
    }
}
