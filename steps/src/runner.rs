//! One conformance run: start the push sink and the backend, start the tap, run the features
//! with cucumber (console + cucumber JSON), stop the backend, write the reports — `junit.xml`,
//! the conformance record `conformance.json` and `ctrf.json`, the HTML report — and print the
//! closing count.

use crate::backend::Backend;
use crate::client::SagaClient;
use crate::config::{BackendKind, Config};
use crate::record::{Record, RunFacts};
use crate::report;
use crate::results::{FIELDS_TAGS, ScenarioResult, Skipped, Status, append_skipped, read_cucumber_json};
use crate::sink::PushSink;
use crate::steps::{SagaWorld, SuiteEnv, recovery};
use crate::tap::Tap;
use crate::timing::Recorder;
use crate::verdict::{Baseline, Judgement};
use anyhow::Context;
use cucumber::event::ScenarioFinished;
use cucumber::gherkin::tagexpr::TagOperation;
use cucumber::tag::Ext as _;
use cucumber::writer::Coloring;
use cucumber::{World as _, WriterExt as _, writer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The run's result: the scenarios, what was skipped, and the verdict on them.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub results: Vec<ScenarioResult>,
    pub skipped: Vec<Skipped>,
    pub judgement: Judgement,
    pub report_dir: std::path::PathBuf,
}

pub async fn run(config: Config, tags: Option<String>) -> anyhow::Result<RunSummary> {
    let began = Instant::now();
    let run_began_ms = saga_contract::now_millis();
    let tag_filter: Option<TagOperation> = match &tags {
        Some(t) => Some(t.parse().map_err(|e| anyhow::anyhow!("--tags {t:?} is not a tag expression: {e}"))?),
        None => None,
    };
    let baseline = match &config.baseline {
        Some(path) => Baseline::load(path)?,
        None => Baseline::default(),
    };
    // Before the backend starts, so a wrong directory fails the run with nothing to tear down.
    let features = crate::backend::paths::FeaturesDir::new(config.features.as_deref())?;
    std::fs::create_dir_all(&config.report_dir)
        .with_context(|| format!("creating report directory {}", config.report_dir.display()))?;
    let sink_port = (config.backend == BackendKind::External).then_some(config.external.push_sink_port);
    let sink = PushSink::start(sink_port).await?;
    eprintln!("[run {:>5.1}s] push sink at {}", began.elapsed().as_secs_f64(), sink.url());
    let backend = Backend::start(&config, &sink.url()).await?;
    let endpoints = backend.endpoints().clone();
    eprintln!(
        "[run {:>5.1}s] implementation: order {} product {} payment {} kafka {} registry {}",
        began.elapsed().as_secs_f64(),
        endpoints.order_url,
        endpoints.product_url,
        endpoints.payment_url,
        endpoints.kafka_bootstrap,
        endpoints.registry_url
    );
    let topics = config.topic_map();
    let result = async {
        let capabilities = backend.capabilities();
        let dead_letters = capabilities.has("dead-letters");
        let tap = Tap::start(
            &endpoints.kafka_bootstrap,
            &endpoints.registry_url,
            topics.clone(),
            dead_letters,
            crate::tap::Pace::Live,
        )
        .await?;
        let producer = crate::kafka::producer(&endpoints.kafka_bootstrap)?;
        let codec = saga_contract::EventCodec::new(&endpoints.registry_url)?;
        let groups = crate::groups::ConsumerGroups::new(&endpoints.kafka_bootstrap, config.consumer_groups()?);
        Ok::<_, anyhow::Error>((tap, producer, capabilities, codec, groups))
    }
    .await;
    let (tap, producer, capabilities, codec, groups) = match result {
        Ok(parts) => parts,
        Err(e) => {
            backend.shutdown().await;
            return Err(e);
        }
    };
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let (env, _installed) = crate::steps::install(Arc::new(SuiteEnv {
        config: config.clone(),
        topics,
        client: SagaClient::new(http.clone(), &endpoints),
        endpoints,
        http,
        tap,
        sink,
        producer,
        backend,
        capabilities: capabilities.clone(),
        timing: Recorder::default(),
        codec,
        groups,
        notes: Mutex::default(),
        figures: Mutex::default(),
        recovery: Default::default(),
    }));

    let skipped: Arc<Mutex<Vec<Skipped>>> = Arc::default();
    let not_selected: Arc<Mutex<usize>> = Arc::default();
    let filter = {
        let (skipped, not_selected) = (skipped.clone(), not_selected.clone());
        move |feature: &cucumber::gherkin::Feature,
              _rule: Option<&cucumber::gherkin::Rule>,
              scenario: &cucumber::gherkin::Scenario| {
            let tags: Vec<String> = feature.tags.iter().chain(&scenario.tags).cloned().collect();
            if let Some(op) = &tag_filter
                && !op.eval(tags.iter())
            {
                *not_selected.lock().expect("poisoned") += 1;
                return false;
            }
            let missing: Vec<String> = tags
                .iter()
                .filter_map(|t| t.strip_prefix("needs-"))
                .filter_map(|capability| capabilities.missing(capability))
                .collect();
            if !missing.is_empty() {
                skipped.lock().expect("poisoned").push(Skipped {
                    feature: feature.name.clone(),
                    scenario: scenario.name.clone(),
                    tags,
                    reason: missing.join("; "),
                });
                return false;
            }
            true
        }
    };

    eprintln!("[run {:>5.1}s] running {}", began.elapsed().as_secs_f64(), features.describe());
    let json_path = config.report_dir.join("cucumber.json");
    let json_file = std::fs::File::create(&json_path)?;
    let scenarios_began = Instant::now();
    SagaWorld::cucumber()
        .max_concurrent_scenarios(config.concurrency)
        .fail_on_skipped()
        .before(|_, _, scenario, world| {
            // After a failed scenario: is the implementation healthy and idle again? If not, this
            // scenario is not judged (steps/src/steps/recovery.rs).
            Box::pin(async move { recovery::check_before(world.env(), &scenario.name).await })
        })
        .after(|feature, _, scenario, finished, world| {
            Box::pin(async move {
                // Put back whatever a fault scenario left stopped or paused, so later scenarios run
                // against the whole implementation.
                if let Some(world) = world {
                    world.undo_faults().await;
                    world.hand_over_figures(&feature.name, &scenario.name);
                    if matches!(finished, ScenarioFinished::StepFailed(..)) {
                        recovery::scenario_failed(world.env(), &scenario.name).await;
                    }
                }
            })
        })
        .with_writer(
            writer::Basic::raw(std::io::stdout(), Coloring::Never, 0)
                .summarized()
                .tee::<SagaWorld, _>(writer::Json::for_tee(json_file))
                .normalized(),
        )
        // After with_writer (which resets it): our CLI owns the arguments, not cucumber.
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .filter_run(features.path().to_path_buf(), filter)
        .await;
    let scenarios_took = scenarios_began.elapsed();

    // FIELDS-1: field meanings over every record and push of the run (steps/src/checkers/fields/),
    // judged only on a complete log: a partition the tap did not read to its end would make it
    // blame the implementation for records it wrote.
    let tap_behind = env.tap.wait_caught_up(Duration::from_secs(10)).await.err();
    let field_violations = crate::steps::check_suite(&env, run_began_ms).await;
    for v in &field_violations {
        eprintln!("[run] FIELDS-1 violation: {v}");
    }
    if let Some(behind) = &tap_behind {
        for b in behind {
            eprintln!("[run] FIELDS-1 not judged: the kit's tap did not read {b}");
        }
    }

    env.tap.close();
    env.backend.shutdown().await;
    let results = read_cucumber_json(&json_path)?;
    let skipped = skipped.lock().expect("poisoned").clone();
    let mut results = results;
    // The run-level field check counts as one more required scenario, so the verdict, the
    // report, junit.xml and the baseline all treat it like any other requirement.
    results.push(ScenarioResult {
        feature: "Field meanings over the whole run".into(),
        scenario: "every record and push of the run means what the contract says".into(),
        tags: FIELDS_TAGS.iter().map(|t| t.to_string()).collect(),
        status: match (&tap_behind, field_violations.is_empty()) {
            (Some(_), _) => Status::NotJudged,
            (None, true) => Status::Passed,
            (None, false) => Status::Failed,
        },
        failed_step: match &tap_behind {
            Some(_) => Some("not judged: the kit's tap did not read every record of the run".into()),
            None => (!field_violations.is_empty()).then(|| format!("{} field violation(s)", field_violations.len())),
        },
        error: match &tap_behind {
            Some(behind) => Some(format!(
                "the kit's tap (a read_committed consumer of every saga topic) stopped short of these partitions' \
                 ends, so the run's records cannot be judged as a whole — a problem of the kit or the broker, \
                 not of the implementation; rerun, and report it if it repeats:\n{}",
                behind.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
            )),
            None => (!field_violations.is_empty())
                .then(|| field_violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
        },
        duration_ms: 0.0,
    });
    let judgement = crate::verdict::judge(&results, &skipped, &baseline, *not_selected.lock().expect("poisoned"));
    append_skipped(&json_path, &skipped)?;
    std::fs::write(config.report_dir.join("junit.xml"), crate::junit::render(&results, &skipped, &judgement))
        .context("writing junit.xml")?;
    let samples = env.timing.samples();
    let figures = std::mem::take(&mut *env.figures.lock().expect("figures lock poisoned"));
    let record = Record::from_run(&RunFacts {
        config: &config,
        features: &features,
        capabilities: &env.capabilities,
        tags: tags.as_deref(),
        baseline: &baseline,
        results: &results,
        skipped: &skipped,
        judgement: &judgement,
        figures,
        started_ms: run_began_ms,
        stopped_ms: saga_contract::now_millis(),
    })?;
    record.write(&config.report_dir)?;
    std::fs::write(
        config.report_dir.join(crate::record::ctrf::FILE_NAME),
        serde_json::to_string_pretty(&crate::record::ctrf::render(&record))? + "\n",
    )
    .context("writing ctrf.json")?;
    let notes: Vec<String> = env.notes.lock().expect("notes lock poisoned").iter().cloned().collect();
    report::write_html(
        &config,
        &record,
        &results,
        &skipped,
        &judgement,
        &notes,
        &samples,
        began.elapsed(),
        scenarios_took,
    )?;
    let summary = RunSummary { results, skipped, judgement, report_dir: config.report_dir.clone() };
    eprintln!("[run {:>5.1}s] declared capacity: {}", began.elapsed().as_secs_f64(), config.capacity.describe());
    eprintln!(
        "[run {:>5.1}s] report: {}",
        began.elapsed().as_secs_f64(),
        config.report_dir.join("index.html").display()
    );
    Ok(summary)
}
