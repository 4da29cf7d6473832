//! The readable summary the bench prints on stdout: the headline step's latencies per stage,
//! the floor, the orders' fate, what the run cost (memory, CPU, PostgreSQL, handler times),
//! the find-max steps, and the target lines.

use super::handler_times::{batch_use, is_batches};
use super::report::Report;
use super::stats::{NOT_MEASURED_EXTERNAL, Pct, ms, round2};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `name value, name value` with two decimals: cores per process.
fn cores(map: &BTreeMap<String, f64>) -> String {
    map.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>().join(", ")
}

impl Report {
    pub fn table(&self) -> String {
        let h = self.headline();
        let mut out = String::new();
        let _ = writeln!(out);
        let mode = if self.args.find_max {
            format!(" (find-max: headline = highest passing step, {:.0}/s)", h.plan.rate)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "saga bench ({}) — {:.0} orders/s open loop, {:.0} s measured after {:.0} s warm-up{mode}",
            self.backend, h.plan.rate, h.plan.duration_s, h.plan.warmup_s
        );
        let _ = writeln!(
            out,
            "machine: {} cores, {:.1} GiB, {}, load avg {} before / {} after | sent {} measured ({} total), achieved {:.1}/s, max send lag {:.1} ms",
            self.machine.cores,
            self.machine.memory_mb / 1024.0,
            self.machine.cpu_model,
            self.machine.load_before,
            self.machine.load_after,
            h.orders,
            h.orders_total,
            h.achieved_rate,
            h.max_lag_ms
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "latency (ms)", "p50", "p90", "p99", "max", "mean", "n"
        );
        let s = &h.stages;
        let rows: [(&str, &Pct); 6] = [
            ("intake (HTTP round trip)", &s.intake),
            ("  sent → order.created record", &s.created),
            ("  reservation (created→reserved)", &s.reservation),
            ("  confirmation (reserved→confirmed)", &s.confirmation),
            ("  payment (confirmed→push)", &s.payment),
            ("end-to-end (sent → PAYMENT_WAIT)", &s.e2e),
        ];
        for (name, p) in rows {
            let _ = writeln!(
                out,
                "  {:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
                name,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.max),
                ms(p.mean),
                p.n
            );
        }
        if let Some(u) = &self.unloaded {
            let u = &u.0;
            let _ = writeln!(
                out,
                "  unloaded ({} orders one at a time, p50): intake {} | created {} | reservation {} | confirmation {} | payment {} | e2e {} (p99 {})",
                u.e2e.n,
                ms(u.intake.p50),
                ms(u.created.p50),
                ms(u.reservation.p50),
                ms(u.confirmation.p50),
                ms(u.payment.p50),
                ms(u.e2e.p50),
                ms(u.e2e.p99)
            );
        }
        let _ = writeln!(out);
        self.floor_lines(&mut out);
        let _ = writeln!(
            out,
            "orders: completed {} of {}, lost {} (accepted, neither PAYMENT_WAIT nor ORDER_CANCELLED pushed within {:.0} s after sending ended), cancelled {}, duplicated {} (a record or push with two distinct eventIds), intake errors {}; drain took {:.1} s",
            h.completed, h.orders_total, h.lost, self.args.drain, h.cancelled, h.duplicated, h.intake_errors, h.drain_s
        );
        for e in &h.error_samples {
            let _ = writeln!(out, "  intake error: {e}");
        }
        self.cost_lines(&mut out);
        if self.args.find_max {
            self.find_max_lines(&mut out);
        }
        let _ = writeln!(out);
        for t in self.targets() {
            let verdict = match t.met {
                Some(true) => "met".to_string(),
                Some(false) => "MISSED".to_string(),
                None => format!("not measured: no step ran at the rate it names (ran {})", self.rates()),
            };
            let _ = writeln!(out, "  target {:<42} {:>9}  {verdict}", t.target, ms(t.value));
        }
        out
    }

    /// The rates the steps ran at, e.g. `20/s` or `100/s, 150/s`.
    fn rates(&self) -> String {
        self.steps.iter().map(|s| format!("{:.0}/s", s.plan.rate)).collect::<Vec<_>>().join(", ")
    }

    fn floor_lines(&self, out: &mut String) {
        let f = &self.floor;
        let postgres = match &f.postgres {
            Some(pg) => {
                let setting = |name: &str| pg.settings.get(name).map(String::as_str).unwrap_or("?").to_string();
                format!(
                    "pg commit p50 {:.2} ms (SELECT 1 {:.2}; fsync={} synchronous_commit={} wal_sync_method={})",
                    pg.commit.p50,
                    pg.select.p50,
                    setting("fsync"),
                    setting("synchronous_commit"),
                    setting("wal_sync_method")
                )
            }
            None => format!("pg commit {NOT_MEASURED_EXTERNAL}"),
        };
        let _ = writeln!(
            out,
            "floor: kafka hop p50 {:.2} ms (ack {:.2}), HTTP round trip p50 {:.2} ms, {postgres}",
            f.hop.p50, f.ack.p50, f.http.p50
        );
        let _ = writeln!(out, "       floor_ms = {}; e2e p50 / floor = {:.1}", f.worked(), self.e2e_over_floor());
    }

    /// Memory, CPU, PostgreSQL and handler time of the run.
    fn cost_lines(&self, out: &mut String) {
        let h = self.headline();
        let known = self.procs_known();
        let unknown =
            if known { String::new() } else { format!("; the implementation's processes {NOT_MEASURED_EXTERNAL}") };
        let rss: Vec<String> = self.rss.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        let _ = writeln!(out, "RSS max (MB): {}{unknown}", rss.join(", "));
        let other = match h.cpu.other_cores(known, self.machine.cores) {
            Some(c) => format!("{c:.2} cores"),
            None => NOT_MEASURED_EXTERNAL.to_string(),
        };
        let _ = writeln!(
            out,
            "CPU (cores used while measuring): {}{unknown}; machine busy {:.0}% (other processes: {other})",
            cores(&h.cpu.cores),
            h.cpu.machine_busy_pct
        );
        match (&h.postgres, known) {
            (Some(pg), _) => {
                let _ = writeln!(
                    out,
                    "PostgreSQL while measuring: {} commits/s, {} WAL fsyncs/s ({} commits per fsync, {} ms each, WAL fsync busy {}%)",
                    round2(pg.commits_per_s),
                    round2(pg.wal_syncs_per_s),
                    round2(pg.commits_per_wal_sync),
                    round2(pg.wal_sync_ms_mean),
                    round2(pg.wal_sync_busy_pct)
                );
            }
            (None, false) => {
                let _ = writeln!(out, "PostgreSQL while measuring: {NOT_MEASURED_EXTERNAL}");
            }
            (None, true) => {}
        }
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                out,
                "CPU of the idle target (cores): {}{unknown}; machine busy {:.0}%",
                cores(&idle.cores),
                idle.machine_busy_pct
            );
        }
        let handlers: Vec<String> = h
            .handler_ms
            .iter()
            .filter(|(k, (_, n))| *n > 0.0 && !is_batches(k))
            .map(|(k, (m, n))| format!("{k} {m:.2} ms×{n:.0}"))
            .collect();
        if handlers.is_empty() {
            let _ = writeln!(out, "handler time: no saga_stage_seconds in the services' /metrics");
        } else {
            let _ = writeln!(
                out,
                "handler time (services' saga_stage_seconds, mean per record: the time of the batch it was in):\n  {}",
                handlers.join("\n  ")
            );
        }
        for (service, b) in batch_use(&h.handler_ms) {
            let _ = writeln!(
                out,
                "  {service}: {:.0} batches, {:.1} records each, {:.2} ms per batch, workers busy {:.2} ms per record",
                b.batches, b.records_per_batch, b.ms_per_batch, b.busy_ms_per_record
            );
        }
    }

    fn find_max_lines(&self, out: &mut String) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  find-max steps (pass: e2e p99 ≤ {:.0} ms, nothing lost or cancelled):",
            self.args.p99_limit_ms
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "  {:>6.0}/s  achieved {:>7.1}/s  intake p99 {:>7} ms  e2e p50 {:>8} ms  p99 {:>8} ms  lost {:>5}  dup {}  busy {:>3.0}%  {}",
                s.plan.rate,
                s.achieved_rate,
                ms(s.stages.intake.p99),
                ms(s.stages.e2e.p50),
                ms(s.stages.e2e.p99),
                s.lost,
                s.duplicated,
                s.cpu.machine_busy_pct,
                if s.passes(self.args.p99_limit_ms) { "pass" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            out,
            "  max_sustained_per_s: {}",
            self.max_sustained().map(|r| format!("{r:.0}")).unwrap_or_else(|| "none passed".into())
        );
    }
}
