//! `cargo test` entry for the conformance suite (harness = false): runs every feature against
//! the reference implementation on each backend in `SAGA_BACKENDS` (default
//! `processes,containers`) and fails on any failed scenario. The containers backend needs a
//! Docker engine (`docker/images.sh ensure-engine`, which `./saga` runs); without one it fails
//! with that advice rather than pretending to pass. `SAGA_TAGS` narrows the run
//! (e.g. `SAGA_TAGS='@FLOW' SAGA_BACKENDS=processes cargo test --test conformance`).

use saga_conformance::config::{BackendKind, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let backends = std::env::var("SAGA_BACKENDS").unwrap_or_else(|_| "processes,containers".into());
    let (mut passed, mut failed) = (0, 0);
    for name in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let backend = match name {
            "processes" => BackendKind::Processes,
            "containers" => BackendKind::Containers,
            other => {
                eprintln!("conformance: SAGA_BACKENDS names {other}; use processes and/or containers");
                return std::process::ExitCode::FAILURE;
            }
        };
        let mut config = match Config::load(None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("conformance: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        };
        // Tests always judge the reference implementation, wherever a conformance.toml points.
        config.backend = backend;
        config.report_dir = saga_conformance::backend::paths::repo_file(&format!("reports/cargo-test/{name}"));
        println!("conformance: running the suite on the {name} backend (report: {})", config.report_dir.display());
        match saga_conformance::runner::run(config, std::env::var("SAGA_TAGS").ok()).await {
            Ok(summary) => {
                let judgement = &summary.judgement;
                println!("{name} backend: {}", judgement.closing_line());
                passed += judgement.passed;
                failed += judgement.failed.len();
                // The reference runs where it can do everything: a skipped required scenario,
                // or nothing run at all, is a failure of this test, not a pass.
                if judgement.verdict.exit_code() != 0 {
                    failed += 1;
                }
            }
            Err(e) => {
                eprintln!("conformance ({name} backend): {e:#}");
                failed += 1;
            }
        }
    }
    println!("conformance: {passed} passed, {failed} failed");
    if failed == 0 && passed > 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}
