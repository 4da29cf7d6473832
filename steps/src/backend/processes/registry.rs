//! The schema registry of the `processes` backend: Apicurio Registry 3.3 (a real, widely used
//! registry with a Confluent-compatible API), run from its Quarkus distribution that
//! `docker/fetch-maven.sh apicurio` unpacks from Maven Central into the cache directory, stored in
//! the stack's PostgreSQL (database `registry_db`) and with compatibility BACKWARD as Confluent's
//! default. Clients use its `/apis/ccompat/v7` base as `SCHEMA_REGISTRY_URL`.

use super::process::{Proc, free_port, wait_http_ok};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

/// Apicurio 3.x is built for Java 21 (class-file version 65).
const MIN_JAVA: u32 = 21;

/// The path under the registry's root where its Confluent-compatible API lives.
pub const CCOMPAT_PATH: &str = "/apis/ccompat/v7";

pub struct Registry {
    /// `http://127.0.0.1:PORT/apis/ccompat/v7`: what producers and consumers are given.
    pub url: String,
    pub proc: Proc,
}

impl Registry {
    /// Starts Apicurio from `distribution` on free loopback ports, its storage in the database
    /// at `jdbc_url`, and waits until it reports ready (storage reachable and initialised).
    pub async fn start(distribution: &Path, jdbc_url: &str, logs: &Path) -> anyhow::Result<Registry> {
        let java = find_java(MIN_JAVA)?;
        let (port, management_port) = (free_port()?, free_port()?);
        let mut command = Command::new(java.join("bin/java"));
        command
            .current_dir(distribution)
            // A registry that serves a few dozen schemas: a small heap, the serial GC and the C1
            // JIT start fastest on a 2-core machine.
            .args(["-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", "quarkus-run.jar"])
            .envs(apicurio_env(jdbc_url, "postgres", "postgres"))
            .env("QUARKUS_HTTP_HOST", "127.0.0.1")
            .env("QUARKUS_HTTP_PORT", port.to_string())
            // Health lives on Quarkus' management interface, 0.0.0.0:9000 unless told otherwise:
            // a fixed port would collide between stacks running side by side.
            .env("QUARKUS_MANAGEMENT_HOST", "127.0.0.1")
            .env("QUARKUS_MANAGEMENT_PORT", management_port.to_string());
        let mut proc = Proc::spawn("schema-registry", command, &logs.join("schema-registry.log"), None)?;
        let ready = format!("http://127.0.0.1:{management_port}/health/ready");
        wait_http_ok(&mut proc, &ready, Duration::from_secs(120)).await.context("Apicurio Registry")?;
        Ok(Registry { url: format!("http://127.0.0.1:{port}{CCOMPAT_PATH}"), proc })
    }
}

/// The settings that make Apicurio the saga's registry, the same for the process and the image
/// (`docker/apicurio/Dockerfile` documents them): SQL storage in PostgreSQL, a small connection
/// pool (the default holds 20 connections open), and compatibility BACKWARD for every subject
/// (Apicurio enforces none by default; Confluent's registry defaults to BACKWARD).
pub fn apicurio_env(jdbc_url: &str, user: &str, password: &str) -> Vec<(String, String)> {
    [
        ("APICURIO_STORAGE_KIND", "sql"),
        ("APICURIO_STORAGE_SQL_KIND", "postgresql"),
        ("APICURIO_DATASOURCE_URL", jdbc_url),
        ("APICURIO_DATASOURCE_USERNAME", user),
        ("APICURIO_DATASOURCE_PASSWORD", password),
        ("APICURIO_DATASOURCE_JDBC_INITIAL_SIZE", "2"),
        ("APICURIO_DATASOURCE_JDBC_MIN_SIZE", "2"),
        ("APICURIO_DATASOURCE_JDBC_MAX_SIZE", "20"),
        ("APICURIO_RULES_GLOBAL_COMPATIBILITY", "BACKWARD"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A Java home with a runtime of at least `min` (its `release` file's `JAVA_VERSION`), the newest
/// of: `SAGA_JAVA_HOME`, `JAVA_HOME`, `/usr/lib/jvm/*`.
pub fn find_java(min: u32) -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> =
        ["SAGA_JAVA_HOME", "JAVA_HOME"].iter().filter_map(std::env::var_os).map(PathBuf::from).collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/jvm") {
        candidates.extend(entries.flatten().map(|e| e.path()));
    }
    let mut seen: Vec<(u32, PathBuf)> = candidates
        .into_iter()
        .filter(|home| home.join("bin/java").is_file())
        .filter_map(|home| java_major(&home).map(|major| (major, home)))
        .collect();
    seen.sort();
    match seen.iter().rev().find(|(major, _)| *major >= min) {
        Some((_, home)) => Ok(home.clone()),
        None => bail!(
            "no Java {min} or newer found (looked at SAGA_JAVA_HOME, JAVA_HOME and /usr/lib/jvm/*; found {}): Apicurio Registry needs it. Install one (e.g. Temurin 21+, or openjdk-21-jre-headless where Debian has it) and set SAGA_JAVA_HOME to its directory",
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.iter().map(|(m, h)| format!("{} = {m}", h.display())).collect::<Vec<_>>().join(", ")
            }
        ),
    }
}

/// The feature release of the Java runtime at `home`, from its `release` file
/// (`JAVA_VERSION="25.0.3"` → 25, `JAVA_VERSION="1.8.0_402"` → 8).
fn java_major(home: &Path) -> Option<u32> {
    let release = std::fs::read_to_string(home.join("release")).ok()?;
    parse_java_version(&release)
}

fn parse_java_version(release: &str) -> Option<u32> {
    let line = release.lines().find_map(|l| l.strip_prefix("JAVA_VERSION="))?;
    let version = line.trim().trim_matches('"');
    let mut parts = version.split(['.', '_', '-', '+']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_java_version;

    #[test]
    fn java_versions_are_read_from_the_release_file() {
        assert_eq!(parse_java_version("IMPLEMENTOR=\"Eclipse Adoptium\"\nJAVA_VERSION=\"25.0.3\"\n"), Some(25));
        assert_eq!(parse_java_version("JAVA_VERSION=\"17.0.15\""), Some(17));
        assert_eq!(parse_java_version("JAVA_VERSION=\"21\""), Some(21));
        assert_eq!(parse_java_version("JAVA_VERSION=\"1.8.0_402\""), Some(8));
        assert_eq!(parse_java_version("IMPLEMENTOR=\"x\""), None);
    }
}
