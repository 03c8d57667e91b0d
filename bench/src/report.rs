//! What a run found: the numbers, the table `duet-bench run` prints, and the JSON it writes (the
//! same fields, so a script reads what a person reads).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::writer::GroupCommitUsage;

/// Latencies are recorded in microseconds, up to an hour, to three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

/// Percentiles of one latency, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }
}

/// The server's own cost over the sending phase, read from /proc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// User + system CPU time spent while the bench was sending.
    pub cpu_secs: f64,
    /// `cpu_secs` over the wall time: cores kept busy on average.
    pub cpu_cores: f64,
    /// CPU time per acknowledged message, in microseconds.
    pub cpu_us_per_message: f64,
    /// Peak resident memory of the process over its life (VmHWM), KiB.
    pub peak_rss_kib: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// Its thread that spent the most CPU time while the bench was sending.
    #[serde(default)]
    pub busiest_thread: Option<ThreadUsage>,
    /// The whole machine over the same time, every process counted (this bench too).
    #[serde(default)]
    pub machine: Option<MachineUsage>,
}

/// One thread's CPU time over the sending phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadUsage {
    pub name: String,
    pub cpu_cores: f64,
    pub cpu_us_per_message: f64,
}

/// The machine's CPU over the sending phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineUsage {
    /// Cores kept busy on average, by every process.
    pub busy_cores: f64,
    /// Cores the machine has (busy and idle time over the wall time).
    pub cores: f64,
}

/// One baseline mode's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRun {
    /// Messages per transaction.
    pub batch: u32,
    /// Messages committed (counted in the table afterwards).
    pub inserted: u64,
    pub elapsed_secs: f64,
    pub messages_per_sec: f64,
    pub errors: u64,
    /// Duet's acknowledged messages/s over this mode's.
    pub duet_ratio: f64,
}

/// The raw-insert baselines beside Duet's figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineReport {
    pub database: String,
    pub per_message: BaselineRun,
    pub batched: BaselineRun,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    pub url: String,
    /// Where the recipients' WebSockets connected.
    pub ws_url: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Open loop: the target messages/s.
    pub rate: Option<f64>,
    pub connections: u32,
    pub users: u32,
    pub conversations: u32,
    pub sockets: u32,
    pub body_bytes: usize,
    /// Wall time of the sending phase, until the last send was answered.
    pub elapsed_secs: f64,
    /// Sends started.
    pub attempted: u64,
    /// Sends answered 2xx.
    pub acknowledged: u64,
    /// Acknowledged messages per second.
    pub messages_per_sec: f64,
    /// Open loop: sends that found every slot busy at their due time and started late
    /// (their latency still counts from the due time).
    pub late_starts: u64,
    /// Due time (open loop) or start (closed loop) → 2xx answer.
    pub send_latency: Latency,
    /// Due time or start → `message.created` on the recipient's socket.
    pub delivery_latency: Latency,
    /// Latest-page reads answered 2xx (`--reads-per-send`).
    pub history_reads: u64,
    pub history_read_latency: Latency,
    /// Failed sends by kind: `http 503`, `timeout`, `connection`, …
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged messages whose recipient had a socket.
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    /// Expected deliveries that had not arrived when the grace period ended.
    pub deliveries_missing: u64,
    /// `message.created` events for no outstanding send (repeats, or sends that failed).
    pub unmatched_deliveries: u64,
    /// Stopped by Ctrl-C: the figures cover what ran.
    pub interrupted: bool,
    pub server: Option<ServerUsage>,
    /// The server's group-commit batches over the sending phase (from its /metrics).
    #[serde(default)]
    pub group_commit: Option<GroupCommitUsage>,
    pub baseline: Option<BaselineReport>,
}

/// Microseconds as the table shows them: µs below a millisecond, ms below a second, else s.
pub fn human_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

impl Report {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The table `duet-bench run` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mode = match self.rate {
            Some(rate) => format!(
                "open loop at {rate} msg/s, at most {} in flight",
                self.connections
            ),
            None => format!("closed loop, {} senders", self.connections),
        };
        let _ = writeln!(
            out,
            "duet-bench run {} against {}: {mode}",
            self.run_id, self.url
        );
        let _ = writeln!(
            out,
            "{} users, {} conversations, {} sockets, {}-byte bodies{}",
            self.users,
            self.conversations,
            self.sockets,
            self.body_bytes,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "\n{:<22}{:>14}  ({} of {} acknowledged in {:.2} s)",
            "messages/s",
            format!("{:.1}", self.messages_per_sec),
            self.acknowledged,
            self.attempted,
            self.elapsed_secs
        );
        if self.rate.is_some() {
            let _ = writeln!(out, "{:<22}{:>14}", "late starts", self.late_starts);
        }
        let _ = writeln!(
            out,
            "\n{:<22}{:>12}{:>12}{:>12}{:>12}{:>10}",
            "latency", "p50", "p90", "p99", "max", "count"
        );
        for (name, latency) in [
            ("send → ack", &self.send_latency),
            ("send → delivery", &self.delivery_latency),
            ("latest-page read", &self.history_read_latency),
        ] {
            if latency.count == 0 && name == "latest-page read" {
                continue;
            }
            let _ = writeln!(
                out,
                "{name:<22}{:>12}{:>12}{:>12}{:>12}{:>10}",
                human_us(latency.p50_us),
                human_us(latency.p90_us),
                human_us(latency.p99_us),
                human_us(latency.max_us),
                latency.count
            );
        }
        let _ = writeln!(
            out,
            "\ndeliveries            {} of {} expected, {} missing, {} unmatched",
            self.deliveries_received,
            self.deliveries_expected,
            self.deliveries_missing,
            self.unmatched_deliveries
        );
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors                none");
        } else {
            let listed: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(out, "errors                {}", listed.join(", "));
            if self.errors.contains_key("http 429") {
                let _ = writeln!(
                    out,
                    "                      (429: the server limits sends per user; for a benchmark start it with \
                     DUET__LIMITS__SENDS_PER_SECOND and DUET__LIMITS__SEND_BURST raised)"
                );
            }
        }
        if let Some(server) = &self.server {
            let _ = writeln!(
                out,
                "server (pid {})      {:.2} s CPU ({:.2} cores, {:.0} µs/message), peak RSS {:.1} MiB (now {:.1} MiB)",
                server.pid,
                server.cpu_secs,
                server.cpu_cores,
                server.cpu_us_per_message,
                server.peak_rss_kib as f64 / 1024.0,
                server.rss_after_kib as f64 / 1024.0
            );
            if let Some(thread) = &server.busiest_thread {
                let _ = writeln!(
                    out,
                    "  busiest thread      {}: {:.2} cores ({:.0} µs/message)",
                    thread.name, thread.cpu_cores, thread.cpu_us_per_message
                );
            }
            if let Some(machine) = &server.machine {
                let _ = writeln!(
                    out,
                    "machine               {:.2} of {:.0} cores busy (every process, this bench too)",
                    machine.busy_cores, machine.cores
                );
            }
        }
        if let Some(usage) = &self.group_commit {
            let _ = writeln!(
                out,
                "group commit          {} batches of {:.1} sends on average; per batch: begin {:.2} ms, \
                 read {:.2} ms, write {:.2} ms, commit {:.2} ms",
                usage.batches,
                usage.mean_batch_size,
                usage.begin_ms,
                usage.read_ms,
                usage.write_ms,
                usage.commit_ms
            );
        }
        if let Some(baseline) = &self.baseline {
            let _ = writeln!(
                out,
                "\nbaseline on {} (raw inserts, same concurrency)",
                baseline.database
            );
            for (name, run) in [
                ("one txn per message", &baseline.per_message),
                ("batched", &baseline.batched),
            ] {
                let _ = writeln!(
                    out,
                    "{:<22}{:>14}  msg/s  ({} per txn, {} rows, {} errors)  Duet = {:.1}% of it",
                    name,
                    format!("{:.1}", run.messages_per_sec),
                    run.batch,
                    run.inserted,
                    run.errors,
                    run.duet_ratio * 100.0
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_at_microsecond_precision() {
        let mut histogram = new_histogram();
        for us in 1..=1000 {
            histogram.record(us).expect("in range");
        }
        histogram.record(2_000_000).expect("in range");
        let latency = Latency::from_histogram(&histogram);
        assert_eq!(latency.count, 1001);
        assert_eq!(latency.p50_us, 501);
        assert_eq!(latency.p90_us, 901);
        assert_eq!(latency.p99_us, 991);
        // Three significant digits: 2 s is kept within 0.1%.
        assert!(
            (1_998_000..=2_002_000).contains(&latency.max_us),
            "{latency:?}"
        );
    }

    #[test]
    fn an_empty_histogram_reports_zeros_not_a_panic() {
        assert_eq!(
            Latency::from_histogram(&new_histogram()),
            Latency::default()
        );
    }

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(human_us(850), "850 µs");
        assert_eq!(human_us(1_500), "1.50 ms");
        assert_eq!(human_us(2_345_000), "2.35 s");
    }

    fn report() -> Report {
        Report {
            run_id: "abc123".into(),
            url: "http://127.0.0.1:8080/".into(),
            ws_url: "http://127.0.0.1:8081/".into(),
            mode: "open".into(),
            rate: Some(500.0),
            connections: 16,
            users: 10,
            conversations: 5,
            sockets: 10,
            body_bytes: 100,
            elapsed_secs: 2.0,
            attempted: 1000,
            acknowledged: 998,
            messages_per_sec: 499.0,
            late_starts: 3,
            send_latency: Latency {
                count: 998,
                p50_us: 900,
                p90_us: 1_200,
                p99_us: 4_000,
                max_us: 12_000,
                mean_us: 1000.0,
            },
            delivery_latency: Latency::default(),
            history_reads: 0,
            history_read_latency: Latency::default(),
            errors: BTreeMap::from([("http 503".to_owned(), 2)]),
            deliveries_expected: 998,
            deliveries_received: 997,
            deliveries_missing: 1,
            unmatched_deliveries: 0,
            interrupted: false,
            server: None,
            group_commit: Some(GroupCommitUsage {
                batches: 250,
                mean_batch_size: 4.0,
                begin_ms: 0.5,
                read_ms: 1.25,
                write_ms: 2.0,
                commit_ms: 3.5,
            }),
            baseline: Some(BaselineReport {
                database: "sqlite".into(),
                per_message: BaselineRun {
                    batch: 1,
                    inserted: 4000,
                    elapsed_secs: 2.0,
                    messages_per_sec: 2000.0,
                    errors: 0,
                    duet_ratio: 0.25,
                },
                batched: BaselineRun {
                    batch: 256,
                    inserted: 100_000,
                    elapsed_secs: 2.0,
                    messages_per_sec: 50_000.0,
                    errors: 0,
                    duet_ratio: 0.00998,
                },
            }),
        }
    }

    #[test]
    fn the_table_shows_rate_latency_errors_and_the_baseline_ratio() {
        let table = report().table();
        for expected in [
            "open loop at 500 msg/s",
            "499.0",
            "late starts",
            "900 µs",
            "4.00 ms",
            "http 503: 2",
            "1 missing",
            "Duet = 25.0% of it",
            "250 batches of 4.0 sends",
            "read 1.25 ms",
            "commit 3.50 ms",
        ] {
            assert!(
                table.contains(expected),
                "{expected:?} missing from\n{table}"
            );
        }
    }

    #[test]
    fn the_json_reads_back_as_the_same_report() {
        let report = report();
        let json = serde_json::to_string(&report).expect("serializes");
        let back: Report = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, report);
        assert_eq!(back.error_count(), 2);
    }
}
