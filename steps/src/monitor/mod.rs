//! # `saga-conformance monitor`: the suite's checkers on a live system
//!
//! ```text
//! saga-conformance monitor --config live.toml [--listen ADDR] [--start end|TIME]
//! ```
//!
//! Observe-only: it reads the saga topics with a consumer of its own (manual assignment, a
//! group id of its own, nothing committed, nothing produced), reassembles each order's saga,
//! applies the suite's checkers as records arrive, and serves `/metrics` and a live page. The
//! system is named by the config's `[external]` (`kafka_bootstrap`, `registry_url`,
//! `consumer_groups`), the monitor's own settings by `[monitor]` (see `docs/monitor/live.toml`).
//!
//! - [`consume`]: the monitor's consumer, from the topics' end or from a time;
//! - [`sagas`]: reassembly, completion, deadlines, and what the checkers found per saga;
//! - [`rules`]: which of the suite's checkers run on a saga, and their requirement ids;
//! - [`lag`]: the services' groups' committed offsets — consumer lag, and when the Payment
//!   Service consumed an `order.confirmed` (the saga's last step leaves no record);
//! - [`exposition`]: the Prometheus metrics; [`page`]: the HTML page; [`http`]: the endpoints.

mod consume;
mod exposition;
mod http;
mod lag;
mod page;
mod rules;
mod sagas;

use crate::Service;
use crate::config::Config;
use crate::groups::ConsumerGroups;
use crate::tap::StartAt;
use anyhow::Context as _;
use exposition::Metrics;
use saga_contract::now_millis;
use sagas::{Changes, Found, Sagas, Settings};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How often deadlines are checked and the gauges refreshed.
const TICK: Duration = Duration::from_millis(100);

/// The CLI's arguments (`saga-conformance monitor`).
#[derive(clap::Args, Debug)]
pub struct MonitorArgs {
    /// The system to watch and the monitor's settings (`[external]`, `[monitor]`; see docs/monitor/live.toml).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Serve `/metrics` and the page here (overrides `[monitor] listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// `end`, an RFC 3339 time or epoch ms (overrides `[monitor] start`).
    #[arg(long)]
    pub start: Option<String>,
}

struct State {
    sagas: Sagas,
    recent: VecDeque<Found>,
    totals: BTreeMap<(&'static str, &'static str), u64>,
}

/// What the tasks share with the HTTP endpoints.
pub(crate) struct Shared {
    metrics: Metrics,
    state: Mutex<State>,
    watching: String,
    recent_max: usize,
}

impl Shared {
    fn apply(&self, state: &mut State, changes: Changes) {
        for (stage, seconds) in changes.stages {
            self.metrics.stage(stage, seconds);
        }
        for found in changes.found {
            tracing::warn!(requirement = found.requirement, checker = found.checker, order = %found.order_id, "{}", found.detail);
            self.metrics.violation(found.requirement, found.checker);
            *state.totals.entry((found.requirement, found.checker)).or_default() += 1;
            state.recent.push_front(found);
            state.recent.truncate(self.recent_max);
        }
    }

    /// Runs `f` on the sagas and records what it changed.
    fn update(&self, f: impl FnOnce(&mut Sagas) -> Changes) {
        let mut state = self.state.lock().expect("monitor state poisoned");
        let changes = f(&mut state.sagas);
        self.apply(&mut state, changes);
    }

    fn page(&self) -> String {
        let state = self.state.lock().expect("monitor state poisoned");
        let (in_flight, past_deadline) = state.sagas.in_flight();
        page::render(&page::View {
            watching: &self.watching,
            in_flight,
            past_deadline,
            totals: &state.totals,
            recent: state.recent.iter().collect(),
        })
    }
}

/// A running monitor; dropping it does not stop it, [`Monitor::stop`] does.
pub struct Monitor {
    /// Where `/metrics` and the page are served.
    pub addr: SocketAddr,
    close: watch::Sender<bool>,
}

impl Monitor {
    /// Connects to the system `config` names, starts reading and serving. Fails with what
    /// could not be reached.
    pub async fn start(config: &Config) -> anyhow::Result<Monitor> {
        let external = &config.external;
        let settings = &config.monitor;
        let start = parse_start(&settings.start)?;
        let groups = config.consumer_groups()?;
        let topics = config.topic_map();
        let listener = tokio::net::TcpListener::bind(&settings.listen).await.with_context(|| {
            format!("the monitor cannot listen on {}: choose another [monitor] listen or --listen", settings.listen)
        })?;
        let addr = listener.local_addr()?;
        let deadline_ms =
            i64::try_from(settings.saga_deadline_ms).context("[monitor] saga_deadline_ms is too large")?;
        anyhow::ensure!(deadline_ms > 0, "[monitor] saga_deadline_ms = 0: give sagas a deadline in milliseconds");
        let window_start_ms = match start {
            StartAt::End => now_millis(),
            StartAt::TimeMs(ms) => ms,
        };
        let sagas = Sagas::new(Settings {
            topics: topics.clone(),
            deadline_ms,
            window_start_ms,
            clock_skew_ms: config.fields.clock_skew_ms,
            payment_tracked: groups.contains_key(&Service::Payment),
        });
        let group_names: Vec<String> = groups.values().flatten().cloned().collect();
        let shared = Arc::new(Shared {
            metrics: Metrics::default(),
            state: Mutex::new(State {
                sagas,
                recent: VecDeque::new(),
                // Every pair from the start, as on /metrics: a clean system shows its zeros.
                totals: rules::CHECKERS.iter().map(|(checker, requirement)| ((*requirement, *checker), 0)).collect(),
            }),
            watching: format!(
                "{} from {} · registry {} · groups {:?} · deadline {deadline_ms} ms",
                external.kafka_bootstrap, settings.start, external.registry_url, group_names
            ),
            recent_max: settings.recent_violations,
        });
        let (close, closed) = watch::channel(false);
        let partitions = consume::start(
            &external.kafka_bootstrap,
            &external.registry_url,
            topics.clone(),
            start,
            shared.clone(),
            closed.clone(),
        )
        .await?;
        let groups = ConsumerGroups::new(&external.kafka_bootstrap, groups);
        let poll = Duration::from_millis(settings.lag_poll_ms.max(10));
        tokio::spawn(lag::watch(groups, topics, partitions, poll, shared.clone(), closed.clone()));
        tokio::spawn(tick(shared.clone(), closed.clone()));
        tokio::spawn(http::serve(listener, shared, closed));
        Ok(Monitor { addr, close })
    }

    pub fn stop(&self) {
        self.close.send_replace(true);
    }
}

/// Deadlines and the saga gauges, every [`TICK`].
async fn tick(shared: Arc<Shared>, mut closed: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = closed.changed() => return,
        }
        shared.update(|sagas| sagas.tick(now_millis()));
        let (in_flight, past_deadline) = shared.state.lock().expect("monitor state poisoned").sagas.in_flight();
        shared.metrics.sagas(in_flight, past_deadline);
    }
}

/// `end`, an RFC 3339 time, or epoch milliseconds.
pub fn parse_start(text: &str) -> anyhow::Result<StartAt> {
    let text = text.trim();
    if text == "end" {
        return Ok(StartAt::End);
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(StartAt::TimeMs(ms));
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|t| StartAt::TimeMs(t.timestamp_millis())).map_err(|e| {
        anyhow::anyhow!(
            "start = {text:?} ({e}): use \"end\", an RFC 3339 time such as 2026-12-02T07:00:00Z, or epoch milliseconds"
        )
    })
}

/// `saga-conformance monitor`: runs until Ctrl-C.
pub async fn run(args: MonitorArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.monitor.listen = listen;
    }
    if let Some(start) = args.start {
        config.monitor.start = start;
    }
    let monitor = Monitor::start(&config).await?;
    println!("monitor: watching {} (Ctrl-C stops it)", config.external.kafka_bootstrap);
    println!("  live page  http://{}/", monitor.addr);
    println!("  metrics    http://{}/metrics", monitor.addr);
    let _ = tokio::signal::ctrl_c().await;
    monitor.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_is_the_end_a_time_or_epoch_ms() {
        assert_eq!(parse_start("end").unwrap(), StartAt::End);
        assert_eq!(parse_start("1790000000000").unwrap(), StartAt::TimeMs(1_790_000_000_000));
        assert_eq!(parse_start("1970-01-01T00:00:01Z").unwrap(), StartAt::TimeMs(1000));
        let e = parse_start("yesterday").unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn the_example_live_toml_is_a_valid_config() {
        let config = Config::load(Some(&crate::backend::paths::repo_file("docs/monitor/live.toml"))).unwrap();
        assert_eq!(config.monitor.listen, "127.0.0.1:9464");
        assert_eq!(config.consumer_groups().unwrap().len(), 3);
        assert_eq!(parse_start(&config.monitor.start).unwrap(), StartAt::End);
    }
}
