//! The self-test's runs side by side (`selftest --jobs N`): each run — the baseline, then one
//! per fault — is this binary started again as `selftest --run-one NAME`, in its own process
//! with its own stack, so runs share nothing but the machine (the suite's environment is one per
//! process: `steps::install`). The run's output goes to `REPORT_DIR/NAME/selftest.log`, its
//! [`Kill`] to `REPORT_DIR/NAME/kill.json`; [`schedule`] keeps at most N runs going and hands
//! the results back in the order the runs were given, whatever order they end in.

use super::{Kill, SeededBug};
use crate::backend::processes::process::signal;
use crate::config::BackendKind;
use clap::ValueEnum;
use futures::stream::{FuturesUnordered, StreamExt};
use rustix::process::Signal;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Runs `start(0)` … `start(count - 1)`, at most `jobs` at a time (at least one), starting them
/// in index order; the results come back in index order.
pub async fn schedule<T, F, Fut>(count: usize, jobs: usize, mut start: F) -> Vec<T>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T>,
{
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    loop {
        while next < count && running.len() < jobs.max(1) {
            let run = start(next);
            let index = next;
            running.push(async move { (index, run.await) });
            next += 1;
        }
        match running.next().await {
            Some((index, result)) => results[index] = Some(result),
            None => break,
        }
    }
    results.into_iter().map(|r| r.expect("every run was started and ended")).collect()
}

/// How a run is started: this binary, on `backend`, with the parent's `--config`.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub exe: PathBuf,
    pub backend: BackendKind,
    pub config: Option<PathBuf>,
}

/// This very binary, for the runs: `/proc/self/exe` where there is one, so a kit rebuilt while
/// the self-test goes on (the file replaced) does not change what the later runs are.
pub fn this_binary() -> anyhow::Result<PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe().map_err(|e| anyhow::anyhow!("finding this binary, to start the self-test's runs: {e}"))
}

/// The file a run leaves its result in.
pub fn kill_file(report_dir: &Path, name: &str) -> PathBuf {
    report_dir.join(name).join("kill.json")
}

/// Sends the run's process SIGTERM when the parent lets go of it (interrupted, or cancelled by
/// a signal of its own): the run then stops its stack as `saga-conformance` does on a signal,
/// where the SIGKILL of `kill_on_drop` would leave the stack's processes or containers behind.
struct TerminateOnDrop(Option<u32>);

impl Drop for TerminateOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = signal(pid, Signal::TERM);
        }
    }
}

impl Launcher {
    /// The arguments of `fault`'s run (`tags`: the scenarios it runs).
    pub fn args(&self, fault: &SeededBug, tags: &str, report_dir: &Path) -> Vec<String> {
        let backend = self.backend.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
        let mut args = vec!["selftest".to_string(), "--backend".into(), backend];
        if let Some(config) = &self.config {
            args.extend(["--config".into(), config.display().to_string()]);
        }
        args.extend([
            "--report-dir".into(),
            report_dir.display().to_string(),
            "--run-one".into(),
            fault.name.into(),
            "--tags".into(),
            tags.into(),
        ]);
        args
    }

    /// Runs `fault` in a process of its own and reads back its [`Kill`]; a run that leaves none
    /// (it could not start, or died) is a [`Kill`] with the error, its log named.
    pub async fn run(&self, fault: &SeededBug, tags: &str, report_dir: &Path) -> Kill {
        let dir = report_dir.join(fault.name);
        let (result, log) = (kill_file(report_dir, fault.name), dir.join("selftest.log"));
        let outcome = async {
            std::fs::create_dir_all(&dir)?;
            // A result left by an earlier self-test must not stand in for this run's.
            match std::fs::remove_file(&result) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)?,
                _ => {}
            }
            let out = std::fs::File::create(&log)?;
            let mut child = tokio::process::Command::new(&self.exe)
                // Named as the parent is in `ps`, not `/proc/self/exe`.
                .arg0(std::env::current_exe().unwrap_or_else(|_| self.exe.clone()))
                .args(self.args(fault, tags, report_dir))
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()?;
            let mut running = TerminateOnDrop(child.id());
            let status = child.wait().await?;
            // Ended and reaped: its pid may be another process's by now.
            running.0 = None;
            let text = std::fs::read_to_string(&result).map_err(|e| {
                anyhow::anyhow!("the run's process exited {status} leaving no {} ({e})", result.display())
            })?;
            Ok::<Kill, anyhow::Error>(serde_json::from_str(&text)?)
        }
        .await;
        outcome.unwrap_or_else(|e: anyhow::Error| {
            let mut kill = Kill::new(fault, tags, dir.clone());
            kill.error = Some(format!("{e:#}; its output: {}", log.display()));
            kill
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn every_run_starts_once_at_most_jobs_at_a_time_and_results_keep_their_order() {
        for jobs in [0, 1, 2, 3, 10] {
            let (running, most, started) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
            let results = schedule(7, jobs, |i| {
                let (running, most, started) = (&running, &most, &started);
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // The early runs end last, so results arrive out of order.
                    tokio::time::sleep(Duration::from_millis(5 * (7 - i as u64))).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 10
                }
            })
            .await;
            assert_eq!(results, vec![0, 10, 20, 30, 40, 50, 60], "jobs {jobs}");
            assert_eq!(started.load(Ordering::SeqCst), 7, "jobs {jobs}: each run started once");
            assert_eq!(most.load(Ordering::SeqCst), jobs.clamp(1, 7), "jobs {jobs}: at most that many at once");
        }
        assert!(schedule(0, 2, |i| async move { i }).await.is_empty());
    }

    #[tokio::test]
    async fn a_run_that_leaves_no_result_is_an_error_naming_its_output() {
        let dir = tempfile::tempdir().unwrap();
        // `false` ignores its arguments and exits 1 without writing kill.json.
        let launcher = Launcher { exe: "false".into(), backend: BackendKind::Processes, config: None };
        let fault = super::super::select(&["plain-avro".into()], BackendKind::Processes).unwrap()[0];
        std::fs::create_dir_all(dir.path().join("plain-avro")).unwrap();
        std::fs::write(kill_file(dir.path(), "plain-avro"), "{}").unwrap();
        let kill = launcher.run(&fault, fault.tags, dir.path()).await;
        let error = kill.error.expect("no result is an error");
        assert!(!kill.caught, "{error}");
        assert!(error.contains("leaving no") && error.contains("selftest.log"), "{error}");
        assert!(!kill_file(dir.path(), "plain-avro").exists(), "a stale result was removed, not read");
    }

    #[tokio::test]
    async fn a_run_let_go_of_is_sent_sigterm() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = tokio::process::Command::new("sleep").arg("30").spawn().unwrap();
        drop(TerminateOnDrop(child.id()));
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
        assert_eq!(status.signal(), Some(15), "{status}");
    }

    #[test]
    fn a_run_is_the_same_binary_told_its_fault_tags_backend_and_config() {
        let launcher = Launcher {
            exe: "/bin/kit".into(),
            backend: BackendKind::Containers,
            config: Some("conformance.toml".into()),
        };
        let fault = super::super::select(&["plain-avro".into()], BackendKind::Processes).unwrap()[0];
        assert_eq!(
            launcher.args(&fault, "@WIRE", Path::new("/r")).join(" "),
            "selftest --backend containers --config conformance.toml --report-dir /r --run-one plain-avro --tags @WIRE"
        );
    }
}
