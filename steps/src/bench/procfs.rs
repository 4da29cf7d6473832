//! What the bench reads from `/proc`, through the `procfs` crate: CPU time and resident memory
//! of the implementation's processes (when the bench knows them: the reference stack's, from
//! [`crate::backend::processes::Stack::pids`]) and of the bench itself, the machine's busy time, and the
//! machine's cores, memory, CPU model and load average.

use ::procfs::process::{Process, all_processes};
use ::procfs::{Current as _, CurrentSI as _, KernelStats, LoadAverage, Meminfo};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// This process (load generator, push sink, tap), in the CPU and RSS tables.
pub(super) const SELF_NAME: &str = "bench (this process)";
/// The name of the PostgreSQL server among the stack's processes; its CPU includes its
/// backends (children forked per connection).
const POSTGRES: &str = "postgresql";
/// Cadence of the RSS sampler.
const RSS_EVERY: Duration = Duration::from_millis(250);

/// The implementation's processes by name (sorted), when known.
#[derive(Clone, Debug)]
pub(super) struct Procs {
    pub list: Vec<(String, u32)>,
}

impl Procs {
    pub fn new(mut list: Vec<(String, u32)>) -> Procs {
        list.sort();
        Procs { list }
    }

    /// Every process to sample: the implementation's (if known) and this one.
    fn with_self(procs: Option<&Procs>) -> Vec<(String, u32)> {
        let mut all = procs.map(|p| p.list.clone()).unwrap_or_default();
        all.push((SELF_NAME.to_string(), std::process::id()));
        all
    }
}

/// User + system CPU ticks of `pid`; 0 once it has gone.
fn cpu_ticks(pid: u32) -> u64 {
    Process::new(pid as i32).and_then(|p| p.stat()).map(|s| s.utime + s.stime).unwrap_or(0)
}

/// CPU ticks of the children of `pid`: PostgreSQL's backends, which come and go with the
/// services' connections, so they are looked up at each snapshot.
fn children_ticks(pid: u32) -> u64 {
    let Ok(all) = all_processes() else { return 0 };
    all.flatten().filter_map(|p| p.stat().ok()).filter(|s| s.ppid == pid as i32).map(|s| s.utime + s.stime).sum()
}

fn vm_rss_mb(pid: u32) -> Option<f64> {
    let kb = Process::new(pid as i32).ok()?.status().ok()?.vmrss?;
    Some(kb as f64 / 1024.0)
}

/// `(busy, total)` ticks of the whole machine since boot.
fn machine_ticks() -> (u64, u64) {
    let Ok(stats) = KernelStats::current() else { return (0, 0) };
    let t = stats.total;
    let idle = t.idle + t.iowait.unwrap_or(0);
    let total = t.user + t.nice + t.system + idle + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + t.steal.unwrap_or(0);
    (total - idle, total)
}

/// CPU time per process at one instant, and the machine's busy/total ticks.
pub(super) struct CpuSnapshot {
    at: Instant,
    per: BTreeMap<String, u64>,
    machine: (u64, u64),
}

/// Cores used per process over a window, and the machine's busy share of it.
#[derive(Debug, Clone, Default)]
pub(super) struct CpuUse {
    pub cores: BTreeMap<String, f64>,
    pub machine_busy_pct: f64,
}

impl CpuUse {
    /// Cores busy on the machine but not in the known processes: other work competing. `None`
    /// when the implementation's processes are unknown (they would count as "other").
    pub fn other_cores(&self, procs_known: bool, machine_cores: usize) -> Option<f64> {
        procs_known
            .then(|| (self.machine_busy_pct / 100.0 * machine_cores as f64 - self.cores.values().sum::<f64>()).max(0.0))
    }
}

impl CpuSnapshot {
    pub fn take(procs: Option<&Procs>) -> CpuSnapshot {
        let per = Procs::with_self(procs)
            .into_iter()
            .map(|(name, pid)| {
                let children = if name == POSTGRES { children_ticks(pid) } else { 0 };
                (name, cpu_ticks(pid) + children)
            })
            .collect();
        CpuSnapshot { at: Instant::now(), per, machine: machine_ticks() }
    }

    /// What was used between `self` and `later`.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let hz = ::procfs::ticks_per_second() as f64;
        let cores = later
            .per
            .iter()
            .map(|(name, t)| (name.clone(), t.saturating_sub(*self.per.get(name).unwrap_or(&0)) as f64 / hz / seconds))
            .collect();
        let busy = later.machine.0.saturating_sub(self.machine.0) as f64;
        let total = later.machine.1.saturating_sub(self.machine.1) as f64;
        CpuUse { cores, machine_busy_pct: if total > 0.0 { 100.0 * busy / total } else { f64::NAN } }
    }
}

/// Samples every known process's VmRSS until stopped; keeps the max per process.
pub(super) struct RssSampler {
    max: Arc<Mutex<BTreeMap<String, f64>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(procs: Option<&Procs>) -> RssSampler {
        let max: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let all = Procs::with_self(procs);
        let task = tokio::spawn({
            let max = max.clone();
            async move {
                let mut tick = tokio::time::interval(RSS_EVERY);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {},
                        _ = stopped.changed() => return,
                    }
                    let mut max = max.lock().expect("rss poisoned");
                    for (name, pid) in &all {
                        if let Some(mb) = vm_rss_mb(*pid) {
                            let entry = max.entry(name.clone()).or_insert(0.0);
                            *entry = entry.max(mb);
                        }
                    }
                }
            }
        });
        RssSampler { max, stop, task }
    }

    pub async fn stop(self) -> BTreeMap<String, f64> {
        self.stop.send_replace(true);
        let _ = self.task.await;
        self.max.lock().expect("rss poisoned").clone()
    }
}

/// The machine the bench ran on.
pub(super) struct Machine {
    pub cores: usize,
    pub memory_mb: f64,
    pub cpu_model: String,
    /// The load average before the implementation started and after the run: other work on
    /// the machine (builds, other stacks) competes with it and shows here.
    pub load_before: String,
    pub load_after: String,
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` writes them.
pub(super) fn loadavg() -> String {
    LoadAverage::current().map(|l| format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen)).unwrap_or_default()
}

impl Machine {
    pub fn read(load_before: String) -> Machine {
        let memory_mb = Meminfo::current().map(|m| m.mem_total as f64 / (1024.0 * 1024.0)).unwrap_or(f64::NAN);
        let cpu_model = ::procfs::CpuInfo::current()
            .ok()
            .and_then(|info| info.model_name(0).map(str::to_string))
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            memory_mb,
            cpu_model,
            load_before,
            load_after: loadavg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_machine() {
        let before = CpuSnapshot::take(None);
        // Burn a little CPU so the window has something to count.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let used = before.until(&CpuSnapshot::take(None));
        assert!(used.cores.contains_key(SELF_NAME));
        assert!(used.other_cores(false, 2).is_none());
        assert!(vm_rss_mb(std::process::id()).is_some_and(|mb| mb > 0.0));
        let machine = Machine::read(loadavg());
        assert!(machine.cores > 0 && machine.memory_mb > 0.0);
        assert_eq!(machine.load_after.split(' ').count(), 3);
    }
}
