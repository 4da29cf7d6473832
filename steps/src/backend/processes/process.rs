//! Child processes of a local stack: output teed to a log file (and scanned for a readiness
//! line), killed when dropped, stopped gracefully with SIGTERM on request.

use crate::poll;
use anyhow::{Context, bail};
use rustix::process::{Pid, Signal};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    /// Set once a line containing the readiness text was printed.
    ready: watch::Receiver<bool>,
}

impl Proc {
    /// Spawns `command`, teeing stdout and stderr into `log` and watching for `ready_line`.
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: &Path,
        ready_line: Option<&'static str>,
    ) -> anyhow::Result<Proc> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().with_context(|| format!("starting {name} ({command:?})"))?;
        let (ready_tx, ready) = watch::channel(ready_line.is_none());
        let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let tx = lines_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(lines_tx);
        let log_path = log.to_path_buf();
        tokio::spawn(async move {
            let mut file = match tokio::fs::OpenOptions::new().create(true).append(true).open(&log_path).await {
                Ok(f) => f,
                Err(_) => return,
            };
            while let Some(line) = lines_rx.recv().await {
                if let Some(wanted) = ready_line
                    && line.contains(wanted)
                {
                    let _ = ready_tx.send(true);
                }
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
            }
            let _ = file.flush().await;
        });
        Ok(Proc { name: name.to_string(), log: log.to_path_buf(), child, ready })
    }

    /// Waits for the readiness line; fails early if the process exits, or at `deadline`.
    pub async fn wait_ready(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let ready = self.ready.clone();
        let child = &mut self.child;
        // Woken by the readiness line; every 100 ms at the latest to see whether it exited,
        // which nothing announces. The wait ends on either: ready, or dead.
        let wake = poll::Capped { signal: self.ready.clone(), every: Duration::from_millis(100) };
        let outcome = poll::until(deadline, wake, async || {
            if *ready.borrow() {
                return Ok(Ok(()));
            }
            match child.try_wait() {
                Ok(None) => Err(()),
                Ok(Some(status)) => Ok(Err(format!("exited with {status} before it was ready"))),
                Err(e) => Ok(Err(format!("cannot be watched: {e}"))),
            }
        })
        .await;
        let failure = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(failure)) => failure,
            Err(()) => format!("was not ready after {deadline:?}"),
        };
        bail!("{} {failure}; its log: {}\n{}", self.name, self.log.display(), tail(&self.log, 25))
    }

    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL if it is still alive after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = signal(pid, Signal::TERM);
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    /// SIGKILL now: a crash, as fault scenarios want it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: Signal) -> anyhow::Result<()> {
    let target = i32::try_from(pid).ok().and_then(Pid::from_raw).with_context(|| format!("no such pid {pid}"))?;
    rustix::process::kill_process(target, signal).with_context(|| format!("sending {signal:?} to pid {pid}"))
}

/// The last `n` lines of a log, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (the OS picks; the listener is closed before use), never one
/// this process handed out before.
///
/// The OS may give the port it just released to the next `bind(0)`, so two calls in a row can
/// return the same port. That happened once to the registry's `(free_port(), free_port())`:
/// Apicurio's API and its Quarkus management interface were both told 36177, and Vert.x, seeing
/// two HTTP servers on one address, *shares* it and hands connections to them in turn. A consumer
/// whose connection landed on the management router got 404 for `/apis/ccompat/v7/schemas/ids/1`
/// (that router serves only health and metrics, and is not in the access log; reproduced by hand:
/// 3 of 12 fresh connections got 404 for a registered id), and dead-lettered
/// its records as "schema id 1 is unknown" (consumer_loop, a restarted Product Service).
pub fn free_port() -> anyhow::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return Ok(port);
        }
    }
    bail!("100 ports in a row on 127.0.0.1 were ones already handed out")
}

/// Polls `url` until it answers 2xx or `deadline` passes (for things that are not our child
/// processes: containers, external services).
pub async fn wait_http_ok_url(url: &str, deadline: Duration) -> anyhow::Result<()> {
    poll_http_ok(url, deadline, || Ok(())).await
}

/// Polls `url` until it answers 2xx, the process exits, or `deadline` passes.
pub async fn wait_http_ok(proc: &mut Proc, url: &str, deadline: Duration) -> anyhow::Result<()> {
    let result = poll_http_ok(url, deadline, || {
        if proc.exited() { bail!("{} exited before answering {url}", proc.name) } else { Ok(()) }
    })
    .await;
    result.map_err(|e| anyhow::anyhow!("{e}; its log: {}\n{}", proc.log.display(), tail(&proc.log, 25)))
}

/// The wait both share: until `url` answers 2xx or `alive` fails (waiting is pointless then);
/// on timeout the error says what the last request got.
async fn poll_http_ok(
    url: &str,
    deadline: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    // `Ok` ends the wait (healthy, or the process is gone); `Err` is what the request got.
    let outcome = poll::until(deadline, Duration::from_millis(50), async || {
        let last = match client.get(url).timeout(Duration::from_secs(1)).send().await {
            Ok(r) if r.status().is_success() => return Ok(Ok(())),
            Ok(r) => format!("it answered {}", r.status()),
            Err(e) => e.to_string(),
        };
        match alive() {
            Ok(()) => Err(last),
            Err(dead) => Ok(Err(dead)),
        }
    })
    .await;
    match outcome {
        Ok(result) => result,
        Err(last) => bail!("{url} did not answer 2xx within {deadline:?} (last: {last})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        // Each listener is closed before the next call: the OS may offer the same port again.
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
    }
}
