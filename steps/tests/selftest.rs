//! `cargo test` entry for the self-test (harness = false): runs the built
//! `saga-conformance selftest` on the processes backend — every seeded fault must be caught and
//! the baseline (nothing seeded) must pass. Needs the `*-failpoints` service binaries next to
//! the kit's (`./saga test` builds them). `SAGA_SELFTEST_FAULTS=plain-avro,lost-update` narrows it.
//!
//! It runs the binary rather than linking the kit, for the reason `conformance.rs` gives.

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("steps/ sits in the clone");
    let report_dir = repo.join("reports/cargo-test/selftest");
    let mut run = Command::new(env!("CARGO_BIN_EXE_saga-conformance"));
    run.arg("selftest").arg("--report-dir").arg(&report_dir);
    let only = std::env::var("SAGA_SELFTEST_FAULTS").unwrap_or_default();
    for fault in only.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        run.args(["--fault", fault]);
    }
    println!("selftest: running saga-conformance selftest (report: {})", report_dir.display());
    match run.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            println!("selftest: FAILED — saga-conformance selftest exited {status} (kill matrix above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("selftest: FAILED — could not start saga-conformance: {e}");
            ExitCode::FAILURE
        }
    }
}
