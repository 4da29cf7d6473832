//! `cargo test` entry for the conformance suite (harness = false): runs the built
//! `saga-conformance run` against the reference implementation on each backend in
//! `SAGA_BACKENDS` (default `processes,containers`) and fails unless each run's exit code is 0
//! (CONFORMS, or a `SAGA_TAGS` subset passed). The containers backend needs a Docker engine
//! (`docker/images.sh ensure-engine`, which `./saga` runs); without one the run exits 2 with
//! that advice rather than pretending to pass. `SAGA_TAGS` narrows the run
//! (e.g. `SAGA_TAGS='@FLOW' SAGA_BACKENDS=processes cargo test --test conformance`).
//!
//! It runs the binary rather than linking the kit: the kit's library is one long release link,
//! and the binary cargo builds for this test is the one `./saga conformance` uses anyway.

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let backends = std::env::var("SAGA_BACKENDS").unwrap_or_else(|_| "processes,containers".into());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("steps/ sits in the clone");
    let mut failed = Vec::new();
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        if !matches!(backend, "processes" | "containers") {
            eprintln!("conformance: SAGA_BACKENDS names {backend}; use processes and/or containers");
            return ExitCode::FAILURE;
        }
        let report_dir = repo.join("reports/cargo-test").join(backend);
        println!("conformance: running the suite on the {backend} backend (report: {})", report_dir.display());
        let mut run = Command::new(env!("CARGO_BIN_EXE_saga-conformance"));
        // Tests always judge the reference implementation, wherever a conformance.toml points.
        run.args(["run", "--backend", backend, "--report-dir"]).arg(&report_dir);
        if let Ok(tags) = std::env::var("SAGA_TAGS") {
            run.args(["--tags", &tags]);
        }
        match run.status() {
            // The reference runs where it can do everything: anything but 0 (a failure, a
            // skipped required scenario, a run that could not start) fails this test.
            Ok(status) if status.success() => println!("conformance: {backend} backend passed"),
            Ok(status) => failed.push(format!("{backend}: saga-conformance run exited {status}")),
            Err(e) => failed.push(format!("{backend}: could not start saga-conformance: {e}")),
        }
    }
    if failed.is_empty() {
        println!("conformance: every backend passed");
        ExitCode::SUCCESS
    } else {
        println!("conformance: FAILED — {}", failed.join("; "));
        ExitCode::FAILURE
    }
}
