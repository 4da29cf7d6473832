//! `cargo test` entry for the self-test (harness = false): runs the built
//! `saga-conformance selftest` on each backend of `SAGA_BACKENDS` (default `processes,containers`;
//! on containers, the faults a backend fault catches) — every seeded fault must be caught and
//! the baseline (nothing seeded) must pass. Needs the `*-failpoints` service binaries next to
//! the kit's and their `:failpoints` images (`./saga test` builds both).
//! `SAGA_SELFTEST_FAULTS=plain-avro,lost-update` narrows it (a name that does not run on a
//! backend is an error there). `SAGA_SELFTEST_JOBS=N` runs N of its runs side by side (the
//! binary's `--jobs`, default 2).
//!
//! It runs the binary rather than linking the kit, for the reason `conformance.rs` gives.

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("steps/ sits in the clone");
    let backends = std::env::var("SAGA_BACKENDS").unwrap_or_else(|_| "processes,containers".into());
    let only = std::env::var("SAGA_SELFTEST_FAULTS").unwrap_or_default();
    let jobs = std::env::var("SAGA_SELFTEST_JOBS").unwrap_or_default();
    let mut failed = false;
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        // On processes the reports keep the place they always had; containers beside it.
        let report_dir = match backend {
            "processes" => repo.join("reports/cargo-test/selftest"),
            other => repo.join(format!("reports/cargo-test/selftest-{other}")),
        };
        let mut run = Command::new(env!("CARGO_BIN_EXE_saga-conformance"));
        run.args(["selftest", "--backend", backend]).arg("--report-dir").arg(&report_dir);
        if !jobs.trim().is_empty() {
            run.args(["--jobs", jobs.trim()]);
        }
        for fault in only.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            run.args(["--fault", fault]);
        }
        println!("selftest: running saga-conformance selftest --backend {backend} (report: {})", report_dir.display());
        match run.status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                println!(
                    "selftest: FAILED on {backend} — saga-conformance selftest exited {status} (kill matrix above)"
                );
                failed = true;
            }
            Err(e) => {
                println!("selftest: FAILED — could not start saga-conformance: {e}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
