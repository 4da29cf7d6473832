//! Where the kit finds its files: the clone's own files (features, docker/), the cache shared
//! by runs and CI (outside the clone), and the service binaries.

use std::path::{Path, PathBuf};

/// A file of this repository (the CLI and tests run from a clone).
pub fn repo_file(relative: &str) -> PathBuf {
    let steps = Path::new(env!("CARGO_MANIFEST_DIR"));
    steps.parent().unwrap_or(steps).join(relative)
}

/// Where the service binaries are: `SAGA_BIN_DIR`, else next to the running executable
/// (`target/<profile>/`, also when running from `target/<profile>/deps/`).
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
