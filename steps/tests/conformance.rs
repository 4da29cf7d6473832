//! `cargo test` entry for the conformance suite (harness = false): runs every feature against
//! the reference implementation on the processes backend and fails on any failed scenario.
//! `SAGA_TAGS` narrows the run (e.g. `SAGA_TAGS='@FLOW' cargo test --test conformance`).

use saga_conformance::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut config = match Config::load(None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conformance: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Tests always judge the reference implementation, wherever a conformance.toml points.
    config.backend = saga_conformance::config::BackendKind::Processes;
    if std::env::var("SAGA_REPORT_DIR").is_err() {
        config.report_dir = saga_conformance::stack::repo_file("reports/cargo-test");
    }
    match saga_conformance::runner::run(config, std::env::var("SAGA_TAGS").ok()).await {
        Ok(summary) => {
            println!("{}", summary.closing_line());
            if summary.failed == 0 && summary.passed > 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("conformance: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
