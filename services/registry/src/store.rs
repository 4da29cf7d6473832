//! Registry state in PostgreSQL, and the compatibility rules.

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use sqlx::PgPool;

/// Confluent's error codes, with the HTTP status each is sent with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "Invalid compatibility level {0}: use one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE"
    )]
    InvalidLevel(String),
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" ({level}): {reason}"
    )]
    Incompatible { subject: String, level: String, reason: String },
    #[error("Error in the backend data store: {0}")]
    Store(#[from] sqlx::Error),
}

impl RegistryError {
    pub fn codes(&self) -> (u16, u32) {
        match self {
            RegistryError::SubjectNotFound(_) => (404, 40401),
            RegistryError::VersionNotFound(_) => (404, 40402),
            RegistryError::SchemaNotFound(_) => (404, 40403),
            RegistryError::InvalidSchema(_) => (422, 42201),
            RegistryError::InvalidLevel(_) => (422, 42203),
            RegistryError::Incompatible { .. } => (409, 409),
            RegistryError::Store(_) => (500, 50001),
        }
    }
}

pub const LEVELS: [&str; 7] =
    ["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"];
const DEFAULT_LEVEL: &str = "BACKWARD";

/// A subject's version as the API shows it.
pub struct Registered {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: String,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

/// Parses and normalises a schema: the key under which identical schemas share an id.
fn normalize(schema: &str) -> Result<(Schema, String), RegistryError> {
    let json: serde_json::Value =
        serde_json::from_str(schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let parsed = Schema::parse(&json).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    // serde_json's map keeps keys sorted, so this is a stable textual key.
    Ok((parsed, json.to_string()))
}

/// Whether `candidate` may follow `existing` (oldest first) under `level`.
pub fn check(level: &str, candidate: &Schema, existing: &[Schema]) -> Result<(), String> {
    let against: &[Schema] = if level.ends_with("_TRANSITIVE") {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    for old in against {
        let backward = || {
            SchemaCompatibility::can_read(old, candidate)
                .map(|_| ())
                .map_err(|e| format!("the new schema cannot read data written with an earlier one: {e}"))
        };
        let forward = || {
            SchemaCompatibility::can_read(candidate, old)
                .map(|_| ())
                .map_err(|e| format!("an earlier schema cannot read data written with the new one: {e}"))
        };
        match level.trim_end_matches("_TRANSITIVE") {
            "BACKWARD" => backward()?,
            "FORWARD" => forward()?,
            "FULL" => {
                backward()?;
                forward()?
            }
            _ => {}
        }
    }
    Ok(())
}

impl Store {
    pub fn new(pool: PgPool) -> Store {
        Store { pool }
    }

    /// Registers `schema` under `subject` (or returns the id it already has there).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<i32, RegistryError> {
        let (parsed, normalized) = normalize(schema)?;
        let mut tx = self.pool.begin().await?;
        // One registration at a time per subject keeps version numbers dense.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(subject).execute(&mut *tx).await?;
        let existing: Option<(i32,)> = sqlx::query_as(
            "SELECT s.id FROM subject_versions v JOIN schemas s ON s.id = v.schema_id WHERE v.subject = $1 AND NOT v.deleted AND s.normalized = $2",
        )
        .bind(subject)
        .bind(&normalized)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id,)) = existing {
            return Ok(id);
        }
        let history: Vec<(String,)> = sqlx::query_as("SELECT s.schema FROM subject_versions v JOIN schemas s ON s.id = v.schema_id WHERE v.subject = $1 AND NOT v.deleted ORDER BY v.version")
            .bind(subject)
            .fetch_all(&mut *tx)
            .await?;
        let history: Vec<Schema> = history.iter().filter_map(|(s,)| Schema::parse_str(s).ok()).collect();
        let level = self.level_in(&mut tx, subject).await?;
        check(&level, &parsed, &history).map_err(|reason| RegistryError::Incompatible {
            subject: subject.to_string(),
            level: level.clone(),
            reason,
        })?;
        let (id,): (i32,) = sqlx::query_as(
            "INSERT INTO schemas (normalized, schema) VALUES ($1, $2) ON CONFLICT (normalized) DO UPDATE SET normalized = EXCLUDED.normalized RETURNING id",
        )
        .bind(&normalized)
        .bind(schema)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO subject_versions (subject, version, schema_id) SELECT $1, COALESCE(MAX(version), 0) + 1, $2 FROM subject_versions WHERE subject = $1")
            .bind(subject)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(subject, id, "schema registered");
        Ok(id)
    }

    /// The version of `subject` holding `schema`.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Registered, RegistryError> {
        let (_, normalized) = normalize(schema)?;
        self.subject_exists(subject).await?;
        let row: Option<(i32, i32, String)> = sqlx::query_as(
            "SELECT v.version, s.id, s.schema FROM subject_versions v JOIN schemas s ON s.id = v.schema_id WHERE v.subject = $1 AND NOT v.deleted AND s.normalized = $2",
        )
        .bind(subject)
        .bind(&normalized)
        .fetch_optional(&self.pool)
        .await?;
        let (version, id, schema) =
            row.ok_or_else(|| RegistryError::SchemaNotFound(format!("under subject {subject}")))?;
        Ok(Registered { subject: subject.to_string(), version, id, schema })
    }

    pub async fn schema_by_id(&self, id: i32) -> Result<String, RegistryError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT schema FROM schemas WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.map(|(s,)| s).ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    pub async fn versions_of_id(&self, id: i32) -> Result<Vec<(String, i32)>, RegistryError> {
        self.schema_by_id(id).await?;
        Ok(sqlx::query_as("SELECT subject, version FROM subject_versions WHERE schema_id = $1 AND NOT deleted ORDER BY subject, version").bind(id).fetch_all(&self.pool).await?)
    }

    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT subject FROM subject_versions WHERE NOT deleted ORDER BY subject")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    pub async fn versions(&self, subject: &str) -> Result<Vec<i32>, RegistryError> {
        let rows: Vec<(i32,)> =
            sqlx::query_as("SELECT version FROM subject_versions WHERE subject = $1 AND NOT deleted ORDER BY version")
                .bind(subject)
                .fetch_all(&self.pool)
                .await?;
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// `version` is a number, `latest` or `-1`.
    pub async fn version(&self, subject: &str, version: &str) -> Result<Registered, RegistryError> {
        let versions = self.versions(subject).await?;
        let wanted = match version {
            "latest" | "-1" => *versions.last().expect("versions() is never empty"),
            v => v
                .parse()
                .ok()
                .filter(|v| versions.contains(v))
                .ok_or_else(|| RegistryError::VersionNotFound(v.to_string()))?,
        };
        let (id, schema): (i32, String) = sqlx::query_as("SELECT s.id, s.schema FROM subject_versions v JOIN schemas s ON s.id = v.schema_id WHERE v.subject = $1 AND v.version = $2")
            .bind(subject)
            .bind(wanted)
            .fetch_one(&self.pool)
            .await?;
        Ok(Registered { subject: subject.to_string(), version: wanted, id, schema })
    }

    /// Whether `schema` could be registered next under `subject`; `Err` carries the reason.
    pub async fn compatible(
        &self,
        subject: &str,
        version: &str,
        schema: &str,
    ) -> Result<Result<(), String>, RegistryError> {
        let (parsed, _) = normalize(schema)?;
        let level = self.level(subject).await?;
        let against = if level.ends_with("_TRANSITIVE") && matches!(version, "latest" | "-1") {
            let mut all = Vec::new();
            for v in self.versions(subject).await? {
                all.push(self.version(subject, &v.to_string()).await?);
            }
            all
        } else {
            vec![self.version(subject, version).await?]
        };
        let history: Vec<Schema> = against.iter().filter_map(|r| Schema::parse_str(&r.schema).ok()).collect();
        Ok(check(&level, &parsed, &history))
    }

    /// The subject's level, else the global one, else BACKWARD.
    pub async fn level(&self, subject: &str) -> Result<String, RegistryError> {
        let mut conn = self.pool.acquire().await?;
        self.level_in(&mut conn, subject).await
    }

    async fn level_in(&self, conn: &mut sqlx::PgConnection, subject: &str) -> Result<String, RegistryError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT level FROM compatibility WHERE subject IN ($1, '') ORDER BY subject DESC LIMIT 1")
                .bind(subject)
                .fetch_optional(conn)
                .await?;
        Ok(row.map(|(l,)| l).unwrap_or_else(|| DEFAULT_LEVEL.to_string()))
    }

    /// Sets the level of `subject` ('' = global).
    pub async fn set_level(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        if !LEVELS.contains(&level) {
            return Err(RegistryError::InvalidLevel(level.to_string()));
        }
        sqlx::query("INSERT INTO compatibility (subject, level) VALUES ($1, $2) ON CONFLICT (subject) DO UPDATE SET level = EXCLUDED.level").bind(subject).bind(level).execute(&self.pool).await?;
        Ok(())
    }

    async fn subject_exists(&self, subject: &str) -> Result<(), RegistryError> {
        self.versions(subject).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)).unwrap()
    }

    #[test]
    fn backward_allows_a_new_field_with_a_default_and_refuses_one_without() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let with_default = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        let without_default = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        assert!(check("BACKWARD", &with_default, std::slice::from_ref(&v1)).is_ok());
        assert!(check("BACKWARD", &without_default, std::slice::from_ref(&v1)).is_err());
        assert!(check("NONE", &without_default, std::slice::from_ref(&v1)).is_ok());
    }

    #[test]
    fn forward_refuses_removing_a_field_without_default() {
        let v1 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        let v2 = record(r#"{"name":"a","type":"string"}"#);
        assert!(check("BACKWARD", &v2, std::slice::from_ref(&v1)).is_ok());
        assert!(check("FORWARD", &v2, std::slice::from_ref(&v1)).is_err());
        assert!(check("FULL", &v2, std::slice::from_ref(&v1)).is_err());
    }

    #[test]
    fn transitive_checks_every_earlier_version() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let v2 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        // v3 drops the default: readable from v2's data (b present) but not from v1's.
        let v3 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        assert!(check("BACKWARD", &v3, &[v1.clone(), v2.clone()]).is_ok());
        assert!(check("BACKWARD_TRANSITIVE", &v3, &[v1, v2]).is_err());
    }
}
