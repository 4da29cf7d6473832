//! `cargo test` entry for the self-test (harness = false): runs `saga-conformance selftest`
//! on the processes backend — every seeded fault must be caught and the baseline (nothing
//! seeded) must pass. Needs the `*-failpoints` service binaries next to the test binary
//! (`./saga setup` builds them). `SAGA_SELFTEST_FAULTS=plain-avro,lost-update` narrows it.

use saga_conformance::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let only: Vec<String> = std::env::var("SAGA_SELFTEST_FAULTS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let outcome = async {
        let faults = saga_conformance::selftest::select(&only)?;
        // Tests always judge the reference implementation, wherever a conformance.toml points.
        let config = Config::load(None)?;
        let report_dir = saga_conformance::backend::paths::repo_file("reports/cargo-test/selftest");
        println!("selftest: {} faults (report: {})", faults.len(), report_dir.display());
        saga_conformance::selftest::run(config, &faults, &report_dir).await
    }
    .await;
    match outcome {
        Ok(result) => {
            print!("{}", saga_conformance::selftest::matrix(&result));
            println!("{}", result.closing_line());
            if result.ok() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("selftest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
