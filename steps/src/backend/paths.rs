//! Where the kit finds what it needs at run time, so that an installed `saga-conformance`
//! (`cargo install`, the `saga-conformance` image) works outside the clone:
//!
//! | what | where | needed by |
//! |---|---|---|
//! | the features | built in (`build.rs`), or a directory: `features = …`, `SAGA_FEATURES_DIR`, `--features-dir` | every run |
//! | the broker's settings and log configuration | built in (`docker/kafka/`) | processes, containers |
//! | the scripts that fetch the Java parts and build our images | a checkout of the kit: `SAGA_SOURCE_DIR`, else the clone the binary was built in | processes, containers (only when the cache or an image is missing or stale) |
//! | the service binaries | `SAGA_BIN_DIR`, else beside the running executable | processes |
//! | Kafka jars, Apicurio Registry, logs | `SAGA_CACHE_DIR` | processes, containers |
//!
//! The external backend needs the features alone.

use anyhow::Context;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/features.rs"));
}

/// The features built into the kit: (file name, Gherkin text), sorted by name.
pub fn built_in_features() -> &'static [(&'static str, &'static str)] {
    embedded::FEATURES
}

/// `docker/kafka/server.properties.example`: the broker settings' one template.
pub const KAFKA_SERVER_PROPERTIES: &str = include_str!("../../../docker/kafka/server.properties.example");
/// `docker/kafka/log4j2.yaml`: the broker's log configuration (as in our Kafka image).
pub const KAFKA_LOG4J2: &str = include_str!("../../../docker/kafka/log4j2.yaml");

/// A file of the clone this binary was built from (tests write their reports there).
pub fn repo_file(relative: &str) -> PathBuf {
    let steps = Path::new(env!("CARGO_MANIFEST_DIR"));
    steps.parent().unwrap_or(steps).join(relative)
}

/// A file of a checkout of the kit — a script that builds images or fetches jars: under
/// `SAGA_SOURCE_DIR`, else in the clone this binary was built from. An error says which was
/// looked at and how to provide one.
pub fn source_file(relative: &str) -> anyhow::Result<PathBuf> {
    let (path, from) = match std::env::var_os("SAGA_SOURCE_DIR") {
        Some(dir) => (PathBuf::from(dir).join(relative), "SAGA_SOURCE_DIR"),
        None => (repo_file(relative), "the clone this saga-conformance was built from"),
    };
    anyhow::ensure!(
        path.is_file(),
        "{} not found ({from}): set SAGA_SOURCE_DIR to a checkout of saga-conformance at this version",
        path.display()
    );
    Ok(path)
}

/// The features a run reads: a configured directory, or the built-in ones written to a
/// temporary directory that lives as long as this value.
pub struct FeaturesDir {
    path: PathBuf,
    /// Held so the temporary directory outlives the run.
    built_in: Option<tempfile::TempDir>,
}

impl FeaturesDir {
    /// `configured` if given (it must exist), else the built-in features.
    pub fn new(configured: Option<&Path>) -> anyhow::Result<FeaturesDir> {
        if let Some(dir) = configured {
            anyhow::ensure!(
                dir.is_dir(),
                "features directory {} not found (features = … / SAGA_FEATURES_DIR / --features-dir)",
                dir.display()
            );
            return Ok(FeaturesDir { path: dir.to_path_buf(), built_in: None });
        }
        let dir =
            tempfile::Builder::new().prefix("saga-features-").tempdir().context("creating a temporary directory")?;
        for (name, text) in embedded::FEATURES {
            let path = dir.path().join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(FeaturesDir { path: dir.path().to_path_buf(), built_in: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether these are the features built into the kit.
    pub fn is_built_in(&self) -> bool {
        self.built_in.is_some()
    }

    /// The `*.feature` files this run reads: (path relative to the directory with `/`, text),
    /// sorted by path — the input of [`crate::record::features_digest`].
    pub fn files(&self) -> anyhow::Result<Vec<(String, String)>> {
        if self.built_in.is_some() {
            return Ok(built_in_features().iter().map(|(n, t)| (n.to_string(), t.to_string())).collect());
        }
        let mut files = Vec::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "feature") {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    let relative = path.strip_prefix(&self.path).unwrap_or(&path);
                    let name = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>();
                    files.push((name.join("/"), text));
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// For the run's log: where the features come from.
    pub fn describe(&self) -> String {
        match self.built_in {
            Some(_) => format!("the {} built-in features", embedded::FEATURES.len()),
            None => format!("features from {}", self.path.display()),
        }
    }
}

/// Where the service binaries are: `SAGA_BIN_DIR`, else next to the running executable
/// (`target/<profile>/`, also when running from `target/<profile>/deps/`; or the `bin/` of a
/// `cargo install --root` that installed the services too).
pub fn default_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SAGA_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") { dir.parent().map(Path::to_path_buf).unwrap_or(dir) } else { dir }
}

/// The cache directory shared by runs and CI: `SAGA_CACHE_DIR`, else `~/.cache/saga-conformance`.
pub fn cache_dir() -> PathBuf {
    std::env::var("SAGA_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache/saga-conformance")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_features_are_the_clones() {
        let built_in = FeaturesDir::new(None).unwrap();
        let mut clone: Vec<String> = std::fs::read_dir(repo_file("features"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".feature"))
            .collect();
        clone.sort();
        let written: Vec<String> = embedded::FEATURES.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(written, clone);
        for name in &clone {
            assert_eq!(
                std::fs::read_to_string(built_in.path().join(name)).unwrap(),
                std::fs::read_to_string(repo_file("features").join(name)).unwrap()
            );
        }
    }

    #[test]
    fn a_directory_lists_the_same_files_as_the_built_in_set() {
        let built_in = FeaturesDir::new(None).unwrap();
        let from_clone = FeaturesDir::new(Some(&repo_file("features"))).unwrap();
        assert!(built_in.is_built_in() && !from_clone.is_built_in());
        assert_eq!(built_in.files().unwrap(), from_clone.files().unwrap());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.feature"), "B").unwrap();
        std::fs::write(dir.path().join("a.feature"), "A").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a feature").unwrap();
        let files = FeaturesDir::new(Some(dir.path())).unwrap().files().unwrap();
        assert_eq!(files, vec![("a.feature".into(), "A".into()), ("sub/b.feature".into(), "B".into())]);
    }

    #[test]
    fn a_configured_directory_must_exist() {
        let err = FeaturesDir::new(Some(Path::new("/nonexistent/features"))).err().unwrap();
        assert!(err.to_string().contains("SAGA_FEATURES_DIR"), "{err}");
    }
}
