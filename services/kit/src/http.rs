//! HTTP plumbing shared by the services: RFC 9457 problem responses (bad input is a 4xx that
//! says what was wrong; internals never leak), a JSON extractor that answers with problems,
//! `/health` and `/metrics`, and serving with graceful shutdown.

use crate::metrics::Metrics;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Largest accepted request body; an order with thousands of lines is not a real order.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of an oversized body is still read (and thrown away) so the client, which is
/// usually still sending, receives the 413 instead of a connection reset (nginx's "lingering
/// close"). Beyond this, or after [`LINGER_TIME`], the connection is simply closed.
const LINGER_MAX_BYTES: usize = 16 * 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// An RFC 9457 problem; the `detail` says what to fix.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem { status: StatusCode::BAD_REQUEST, title: "Invalid request", detail: detail.into() }
    }
    pub fn unprocessable(detail: impl Into<String>) -> Problem {
        Problem { status: StatusCode::UNPROCESSABLE_ENTITY, title: "Invalid request content", detail: detail.into() }
    }
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem { status: StatusCode::NOT_FOUND, title: "Not found", detail: detail.into() }
    }
    /// For failures that are ours (database down …): logged in full, answered with a 503 so a
    /// client knows to retry, never with internals.
    pub fn unavailable(context: &str, error: impl std::fmt::Display) -> Problem {
        tracing::error!(%error, "{context}");
        Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Temporarily unavailable",
            detail: format!("{context}; retry later"),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    }
}

impl From<sqlx::Error> for Problem {
    fn from(error: sqlx::Error) -> Problem {
        Problem::unavailable("database error", error)
    }
}

/// `Json<T>` whose rejections are problem responses with the parser's message.
pub struct ProblemJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ProblemJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ProblemJson(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    let status = rejection.status();
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => Problem::unprocessable(detail),
        JsonRejection::MissingJsonContentType(_) => {
            Problem { status, title: "Unsupported media type", detail: "send the body as application/json".into() }
        }
        _ => Problem::bad_request(detail),
    }
}

/// The buyer from `X-User-Id`, required on order intake.
pub fn user_id(headers: &HeaderMap) -> Result<String, Problem> {
    let value = headers.get("x-user-id").ok_or_else(|| Problem::bad_request("header X-User-Id is required"))?;
    let text = value.to_str().map_err(|_| Problem::bad_request("header X-User-Id must be visible ASCII"))?.trim();
    if text.is_empty() || text.len() > 128 {
        return Err(Problem::bad_request("header X-User-Id must be 1 to 128 characters"));
    }
    Ok(text.to_string())
}

/// `/health` and `/metrics`, merged into every service's router.
pub fn operational_routes(metrics: Metrics) -> Router {
    Router::new().route("/health", get(|| async { Json(json!({"status": "UP"})) })).route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()) }
        }),
    )
}

/// Serves `router` on 127.0.0.1:`port` (0.0.0.0 when `HTTP_BIND_ALL=1`, for containers) until
/// `shutdown`, then finishes in-flight requests.
pub async fn serve(router: Router, port: u16, shutdown: crate::Shutdown) -> anyhow::Result<()> {
    let host = if std::env::var("HTTP_BIND_ALL").as_deref() == Ok("1") { "0.0.0.0" } else { "127.0.0.1" };
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port}: {e}; set HTTP_PORT to a free port"))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let router = router
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn(limit_body));
    axum::serve(listener, router).with_graceful_shutdown(crate::wait_for_shutdown(shutdown)).await?;
    Ok(())
}

/// Buffers the request body up to [`MAX_BODY_BYTES`]; a larger one is answered with a 413
/// problem after the rest of it has been drained (see [`LINGER_MAX_BYTES`]). Without the drain
/// the server would close a socket that still holds unread data, the kernel would answer with
/// a reset, and a client still writing its body would see "connection reset" instead of 413.
async fn limit_body(request: Request, next: axum::middleware::Next) -> Response {
    use futures::StreamExt;
    let (parts, body) = request.into_parts();
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        Problem {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            title: "Payload too large",
            detail: format!("the body exceeds {MAX_BODY_BYTES} bytes; an order needs far less"),
        }
        .into_response()
    };
    if declared.is_some_and(|n| n > LINGER_MAX_BYTES) {
        return too_large();
    }
    let mut stream = body.into_data_stream();
    let mut buffered = Vec::with_capacity(declared.unwrap_or(0).min(MAX_BODY_BYTES));
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Problem::bad_request("the request body could not be read to its end").into_response();
        };
        if buffered.len() + chunk.len() > MAX_BODY_BYTES {
            let mut drained = buffered.len() + chunk.len();
            let _ = tokio::time::timeout(LINGER_TIME, async {
                while let Some(Ok(chunk)) = stream.next().await {
                    drained += chunk.len();
                    if drained > LINGER_MAX_BYTES {
                        break;
                    }
                }
            })
            .await;
            return too_large();
        }
        buffered.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(buffered))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    /// A client that sends a far-too-large body while the server has already decided must
    /// still read a 413 problem, every time, and the connection must stay usable for the
    /// next request (the race this guards against shows up as "connection reset").
    #[tokio::test]
    async fn oversized_bodies_get_a_413_problem_not_a_reset() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/echo", post(|ProblemJson(v): ProblemJson<serde_json::Value>| async move { Json(v) }))
            .layer(axum::middleware::from_fn(limit_body));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();
        let url = format!("http://{address}/echo");
        for size in [MAX_BODY_BYTES + 1, 1024 * 1024, 4 * 1024 * 1024] {
            for _ in 0..10 {
                let body = serde_json::to_vec(&json!({"x": "y".repeat(size)})).unwrap();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{size} bytes: {e:?}"));
                assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
                assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/problem+json");
            }
        }
        let small = client.post(&url).json(&json!({"x": 1})).send().await.unwrap();
        assert_eq!(small.status(), StatusCode::OK);
        assert_eq!(small.json::<serde_json::Value>().await.unwrap(), json!({"x": 1}));
    }
}
