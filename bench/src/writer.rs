//! Where the server's group-commit writers spent the sending phase, from its `/metrics`
//! page read before and after: how many batches, how big, and the mean time per phase of a
//! batch (`duet_group_commit_phase_seconds`). This is what bounds the write path, so the
//! table shows it beside the throughput.

use serde::{Deserialize, Serialize};

use crate::prometheus::sample_sum;

/// The group-commit writers' work over the sending phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCommitUsage {
    /// Batches committed.
    pub batches: u64,
    /// Appends per batch, on average.
    pub mean_batch_size: f64,
    /// Mean milliseconds per batch: taking the connection and `BEGIN`.
    pub begin_ms: f64,
    /// … the locks and reads (conversations, duplicates, inbox state).
    pub read_ms: f64,
    /// … the writes.
    pub write_ms: f64,
    /// … `COMMIT` with its fsync.
    pub commit_ms: f64,
}

const PHASES: &str = "duet_group_commit_phase_seconds";
const BATCH_SIZE: &str = "duet_group_commit_batch_size";

impl GroupCommitUsage {
    /// The difference between two `/metrics` pages of one server; `None` when no batch
    /// committed in between (no send, or a server without these metrics).
    pub fn between(before: &str, after: &str) -> Option<Self> {
        let delta = |metric: &str, label: Option<&str>| {
            sample_sum(after, metric, label).unwrap_or(0.0)
                - sample_sum(before, metric, label).unwrap_or(0.0)
        };
        let count = |phase: &str| delta(&format!("{PHASES}_count"), Some(&label(phase)));
        let batches = count("commit");
        if batches < 1.0 {
            return None;
        }
        let mean_ms = |phase: &str| {
            let count = count(phase);
            let seconds = delta(&format!("{PHASES}_sum"), Some(&label(phase)));
            if count > 0.0 {
                seconds * 1000.0 / count
            } else {
                0.0
            }
        };
        let sizes = delta(&format!("{BATCH_SIZE}_count"), None);
        Some(Self {
            batches: batches as u64,
            mean_batch_size: if sizes > 0.0 {
                delta(&format!("{BATCH_SIZE}_sum"), None) / sizes
            } else {
                0.0
            },
            begin_ms: mean_ms("begin"),
            read_ms: mean_ms("read"),
            write_ms: mean_ms("write"),
            commit_ms: mean_ms("commit"),
        })
    }
}

fn label(phase: &str) -> String {
    format!("phase=\"{phase}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(batches: u32, seconds: [f64; 4], appends: u32) -> String {
        let mut page = String::from("# TYPE duet_group_commit_phase_seconds histogram\n");
        for (phase, seconds) in ["begin", "read", "write", "commit"].iter().zip(seconds) {
            page.push_str(&format!(
                "duet_group_commit_phase_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {batches}\n\
                 duet_group_commit_phase_seconds_sum{{phase=\"{phase}\"}} {seconds}\n\
                 duet_group_commit_phase_seconds_count{{phase=\"{phase}\"}} {batches}\n"
            ));
        }
        page.push_str(&format!(
            "duet_group_commit_batch_size{{quantile=\"0.5\"}} 3\n\
             duet_group_commit_batch_size_sum {appends}\n\
             duet_group_commit_batch_size_count {batches}\n"
        ));
        page
    }

    #[test]
    fn the_phases_are_averaged_over_the_batches_committed_in_between() {
        let before = page(10, [0.01, 0.02, 0.03, 0.04], 30);
        let after = page(110, [0.11, 0.52, 1.03, 2.04], 6_430);

        let usage = GroupCommitUsage::between(&before, &after).expect("batches committed");

        assert_eq!(usage.batches, 100);
        assert!((usage.mean_batch_size - 64.0).abs() < 1e-9, "{usage:?}");
        for (got, want) in [
            (usage.begin_ms, 1.0),
            (usage.read_ms, 5.0),
            (usage.write_ms, 10.0),
            (usage.commit_ms, 20.0),
        ] {
            assert!((got - want).abs() < 1e-9, "{usage:?}");
        }
    }

    #[test]
    fn no_batch_in_between_reports_nothing() {
        let page = page(10, [0.01, 0.02, 0.03, 0.04], 30);
        assert_eq!(GroupCommitUsage::between(&page, &page), None);
        assert_eq!(
            GroupCommitUsage::between("", "duet_http_requests_total 3\n"),
            None
        );
    }
}
