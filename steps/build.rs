//! Embeds the requirements (`features/*.feature`) in the kit, so an installed `saga-conformance`
//! (`cargo install`, the `saga-conformance` image) runs the features its steps were built for
//! without the clone. Writes `$OUT_DIR/features.rs`: `FEATURES`, (file name, text) pairs sorted
//! by name. A build script rather than a directory-embedding macro because cargo re-runs it when
//! a feature file is added, removed or edited (`rerun-if-changed` on the directory).
//!
//! Also sets `SAGA_GIT_REVISION` for the conformance record (`steps/src/record/`): the commit the
//! kit was built from — `SAGA_GIT_REVISION` from the build's environment if set (an image built
//! from a tarball), else `git rev-parse HEAD` in the clone, else `unknown`. Never fails the build.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rustc-env=SAGA_GIT_REVISION={}", git_revision(&manifest));
    embed_features(&manifest);
}

/// The commit HEAD names, or `unknown`; asks cargo to rebuild when HEAD moves.
fn git_revision(manifest: &Path) -> String {
    println!("cargo:rerun-if-env-changed=SAGA_GIT_REVISION");
    if let Ok(revision) = std::env::var("SAGA_GIT_REVISION")
        && !revision.trim().is_empty()
    {
        return revision.trim().to_string();
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").arg("-C").arg(manifest).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(revision) = git(&["rev-parse", "HEAD"]) else { return "unknown".into() };
    // HEAD, the branch it names and packed-refs: where a commit or a checkout shows.
    let git_dir = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from);
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]).map(PathBuf::from);
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let mut watched: Vec<PathBuf> = Vec::new();
    if let Some(dir) = &git_dir {
        watched.push(dir.join("HEAD"));
    }
    if let Some(common) = common.as_ref().or(git_dir.as_ref()) {
        watched.push(common.join("packed-refs"));
        if let Some(branch) = &branch {
            watched.push(common.join(branch));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    revision
}

fn embed_features(manifest: &Path) {
    let dir = manifest.join("../features");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e} (the features sit beside steps/ in the clone)", dir.display()))
        .map(|entry| entry.expect("a directory entry of features/").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".feature"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no *.feature file in {}", dir.display());
    let mut code = String::from("/// The features of the clone this kit was built from: (file name, Gherkin text).\n");
    code.push_str("pub const FEATURES: &[(&str, &str)] = &[\n");
    for name in &names {
        let path = dir.join(name).canonicalize().expect("a feature file that was just listed");
        writeln!(code, "    ({name:?}, include_str!({:?})),", path.display().to_string()).expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("features.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
