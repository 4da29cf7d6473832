//! The REST surface, shaped like Confluent Schema Registry's (paths, bodies, error codes).

use crate::store::{Registered, RegistryError, Store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn routes(store: Store) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route("/subjects/{subject}/versions/{version}/schema", get(raw_schema))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/config", get(global_config).put(set_global_config))
        .route("/config/{subject}", get(subject_config).put(set_subject_config))
        .with_state(store)
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        if let RegistryError::Store(e) = &self {
            tracing::error!(error = %e, "registry store error");
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            json!({"error_code": code, "message": self.to_string()}).to_string(),
        )
            .into_response()
    }
}

fn reply(body: Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

fn registered(r: Registered) -> Response {
    reply(json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema}))
}

/// The body of register/lookup/compatibility requests.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

/// Parses a request body leniently on content type (clients send several), strictly on shape.
fn schema_request(body: &Bytes) -> Result<String, RegistryError> {
    let request: SchemaRequest =
        serde_json::from_slice(body).map_err(|e| RegistryError::InvalidSchema(format!("request body: {e}")))?;
    match request.schema_type.as_deref() {
        None | Some("AVRO") => {}
        Some(other) => {
            return Err(RegistryError::InvalidSchema(format!(
                "schemaType {other} is not supported; this registry holds AVRO schemas"
            )));
        }
    }
    if !request.references.is_empty() {
        return Err(RegistryError::InvalidSchema("schema references are not supported".into()));
    }
    Ok(request.schema)
}

async fn register(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let schema = schema_request(&body)?;
    let id = store.register(&subject, &schema).await?;
    let version = store.lookup(&subject, &schema).await?;
    Ok(reply(json!({"id": id, "subject": subject, "version": version.version, "schema": version.schema})))
}

async fn lookup(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let schema = schema_request(&body)?;
    Ok(registered(store.lookup(&subject, &schema).await?))
}

async fn schema_by_id(State(store): State<Store>, Path(id): Path<i32>) -> Result<Response, RegistryError> {
    Ok(reply(json!({"schema": store.schema_by_id(id).await?})))
}

async fn versions_of_id(State(store): State<Store>, Path(id): Path<i32>) -> Result<Response, RegistryError> {
    let pairs = store.versions_of_id(id).await?;
    Ok(reply(Value::Array(
        pairs.into_iter().map(|(subject, version)| json!({"subject": subject, "version": version})).collect(),
    )))
}

async fn subjects(State(store): State<Store>) -> Result<Response, RegistryError> {
    Ok(reply(json!(store.subjects().await?)))
}

async fn versions(State(store): State<Store>, Path(subject): Path<String>) -> Result<Response, RegistryError> {
    Ok(reply(json!(store.versions(&subject).await?)))
}

async fn version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    Ok(registered(store.version(&subject, &version).await?))
}

async fn raw_schema(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let r = store.version(&subject, &version).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], r.schema).into_response())
}

async fn compatibility(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let schema = schema_request(&body)?;
    Ok(match store.compatible(&subject, &version, &schema).await? {
        Ok(()) => reply(json!({"is_compatible": true})),
        Err(reason) => reply(json!({"is_compatible": false, "messages": [reason]})),
    })
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

async fn global_config(State(store): State<Store>) -> Result<Response, RegistryError> {
    Ok(reply(json!({"compatibilityLevel": store.level("").await?})))
}

async fn subject_config(State(store): State<Store>, Path(subject): Path<String>) -> Result<Response, RegistryError> {
    Ok(reply(json!({"compatibilityLevel": store.level(&subject).await?})))
}

async fn set_global_config(State(store): State<Store>, body: Bytes) -> Result<Response, RegistryError> {
    set_config(store, "", body).await
}

async fn set_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    set_config(store, &subject, body).await
}

async fn set_config(store: Store, subject: &str, body: Bytes) -> Result<Response, RegistryError> {
    let request: ConfigRequest =
        serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidLevel(format!("(request body: {e})")))?;
    store.set_level(subject, &request.compatibility).await?;
    Ok(reply(json!({"compatibility": request.compatibility})))
}
