//! One conformance run: start the push sink and the backend, start the tap, run the features
//! with cucumber (console + JUnit + cucumber JSON), stop the backend, write the HTML report
//! and print the closing count.

use crate::backend::Backend;
use crate::config::{BackendKind, Config};
use crate::report::{self, Skipped};
use crate::sink::PushSink;
use crate::steps::{SagaWorld, SuiteEnv};
use crate::tap::Tap;
use crate::timing::Recorder;
use anyhow::Context;
use cucumber::gherkin::tagexpr::TagOperation;
use cucumber::tag::Ext as _;
use cucumber::writer::Coloring;
use cucumber::{World as _, WriterExt as _, writer};
use rdkafka::config::ClientConfig;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The run's result; `failed == 0` means the implementation conforms (for what ran).
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: Vec<Skipped>,
    pub report_dir: std::path::PathBuf,
}

impl RunSummary {
    /// The closing line CI and people read.
    pub fn closing_line(&self) -> String {
        let skipped = if self.skipped.is_empty() { String::new() } else { format!(", {} skipped", self.skipped.len()) };
        format!("conformance: {} passed, {} failed{skipped}", self.passed, self.failed)
    }
}

pub async fn run(config: Config, tags: Option<String>) -> anyhow::Result<RunSummary> {
    let began = Instant::now();
    let run_began_ms = saga_contract::now_millis();
    let tag_filter: Option<TagOperation> = match &tags {
        Some(t) => Some(t.parse().map_err(|e| anyhow::anyhow!("--tags {t:?} is not a tag expression: {e}"))?),
        None => None,
    };
    std::fs::create_dir_all(&config.report_dir).with_context(|| format!("creating report directory {}", config.report_dir.display()))?;
    let sink_port = (config.backend == BackendKind::External).then_some(config.external.push_sink_port);
    let sink = PushSink::start(sink_port).await?;
    eprintln!("[run {:>5.1}s] push sink at {}", began.elapsed().as_secs_f64(), sink.url());
    let backend = Backend::start(&config, &sink.url()).await?;
    let endpoints = backend.endpoints().clone();
    eprintln!("[run {:>5.1}s] implementation: order {} product {} payment {} kafka {} registry {}", began.elapsed().as_secs_f64(), endpoints.order_url, endpoints.product_url, endpoints.payment_url, endpoints.kafka_bootstrap, endpoints.registry_url);
    let topics = config.topic_map();
    let result = async {
        let tap = Tap::start(&endpoints.kafka_bootstrap, &endpoints.registry_url, topics.clone(), crate::tap::Pace::Live).await?;
        let producer = ClientConfig::new().set("bootstrap.servers", &endpoints.kafka_bootstrap).set("acks", "all").create().context("creating the kit's Kafka producer")?;
        let capabilities = backend.capabilities();
        Ok::<_, anyhow::Error>((tap, producer, capabilities))
    }
    .await;
    let (tap, producer, capabilities) = match result {
        Ok(parts) => parts,
        Err(e) => {
            backend.shutdown().await;
            return Err(e);
        }
    };
    let env = crate::steps::install(Arc::new(SuiteEnv {
        config: config.clone(),
        topics,
        endpoints,
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?,
        tap,
        sink,
        producer,
        backend,
        capabilities,
        timing: Recorder::default(),
    }));

    let skipped: Arc<Mutex<Vec<Skipped>>> = Arc::default();
    let filter = {
        let skipped = skipped.clone();
        move |feature: &cucumber::gherkin::Feature, _rule: Option<&cucumber::gherkin::Rule>, scenario: &cucumber::gherkin::Scenario| {
            let tags: Vec<String> = feature.tags.iter().chain(&scenario.tags).cloned().collect();
            if let Some(op) = &tag_filter
                && !op.eval(tags.iter())
            {
                return false;
            }
            let missing = [
                ("faults", capabilities.faults, "the backend cannot stop and start services (configure [external.commands] stop_*/start_*)"),
                ("pause", capabilities.pause, "the backend cannot pause services (configure [external.commands] pause_*/unpause_*)"),
                ("broker-faults", capabilities.broker_faults, "the backend cannot stop and start the broker (configure [external.commands] stop_kafka/start_kafka)"),
                ("dead-letters", capabilities.dead_letters, "the implementation declares no dead-letter topics"),
            ]
                .into_iter()
                .find(|(tag, able, _)| !able && tags.iter().any(|t| t == tag));
            if let Some((_, _, reason)) = missing {
                skipped.lock().expect("poisoned").push(Skipped { feature: feature.name.clone(), scenario: scenario.name.clone(), tags, reason: reason.to_string() });
                return false;
            }
            true
        }
    };

    eprintln!("[run {:>5.1}s] running features from {}", began.elapsed().as_secs_f64(), config.features.display());
    let json_path = config.report_dir.join("cucumber.json");
    let junit_path = config.report_dir.join("junit.xml");
    let json_file = std::fs::File::create(&json_path)?;
    let junit_file = std::fs::File::create(&junit_path)?;
    let scenarios_began = Instant::now();
    SagaWorld::cucumber()
        .max_concurrent_scenarios(config.concurrency)
        .fail_on_skipped()
        .after(|_, _, _, _, world| {
            Box::pin(async move {
                // Put back whatever a fault scenario left stopped or paused, so later scenarios run
                // against the whole implementation.
                if let Some(world) = world {
                    world.undo_faults().await;
                }
            })
        })
        .with_writer(
            writer::Basic::raw(std::io::stdout(), Coloring::Never, 0)
                .summarized()
                .tee::<SagaWorld, _>(writer::JUnit::for_tee(junit_file, 0))
                .tee::<SagaWorld, _>(writer::Json::for_tee(json_file))
                .normalized(),
        )
        // After with_writer (which resets it): our CLI owns the arguments, not cucumber.
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .filter_run(config.features.clone(), filter)
        .await;
    let scenarios_took = scenarios_began.elapsed();

    // FIELDS-run: field meanings over every record and push of the run (steps/src/fields.rs).
    let field_violations = crate::fields::check_suite(&env, run_began_ms).await;
    for v in &field_violations {
        eprintln!("[run] FIELDS-run violation: {v}");
    }

    env.tap.close();
    env.backend.shutdown().await;
    let results = report::read_cucumber_json(&json_path)?;
    let skipped = skipped.lock().expect("poisoned").clone();
    let summary = RunSummary {
        passed: results.iter().filter(|r| r.status == report::Status::Passed).count(),
        failed: results.iter().filter(|r| r.status != report::Status::Passed).count() + usize::from(!field_violations.is_empty()),
        skipped,
        report_dir: config.report_dir.clone(),
    };
    let samples = env.timing.samples();
    report::write_html(&config, &results, &summary.skipped, &samples, began.elapsed(), scenarios_took)?;
    eprintln!("[run {:>5.1}s] report: {}", began.elapsed().as_secs_f64(), config.report_dir.join("index.html").display());
    Ok(summary)
}

