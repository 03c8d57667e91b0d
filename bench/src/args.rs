//! What `duet-bench run` is told, and the checks that turn it into a [`Plan`]: every bad value is
//! a clear error naming the flag, never a panic halfway through a run.

use std::path::PathBuf;
use std::time::Duration;

use crate::baseline::BaselineTarget;
use anyhow::{Context, bail, ensure};

/// The longest message body the API accepts.
const MAX_BODY_BYTES: usize = 4096;
/// Handles are at most 32 characters; the run prefix and the index share them.
const MAX_USERS: u32 = 1_000_000;
/// Beyond this, one machine's file descriptors run out before the server does.
const MAX_CONNECTIONS: u32 = 10_000;

/// Drives a running Duet over HTTP and WebSocket like real clients and reports throughput,
/// send and delivery latency, errors, and (with --baseline) the database's raw limit.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Base URL the recipients' WebSockets connect to (default: --url). Pointing it at
    /// another process than --url measures delivery across processes.
    #[arg(long)]
    pub ws_url: Option<String>,
    /// After each acknowledged send, the sender reads the conversation's latest page this
    /// many times (`GET .../messages`), as a client showing the conversation would.
    #[arg(long, default_value_t = 0)]
    pub reads_per_send: u32,
    /// Users to register (unique handles per run).
    #[arg(long, default_value_t = 100)]
    pub users: u32,
    /// Conversations between distinct random pairs of those users.
    #[arg(long, default_value_t = 50)]
    pub conversations: u32,
    /// How long to send, e.g. `10s`, `500ms`, `2m` (default 10s unless --count is given).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How many messages to send; with --duration, whichever comes first.
    #[arg(long)]
    pub count: Option<u64>,
    /// Open loop: send this many messages per second on a fixed timeline, latency measured
    /// from each send's scheduled time. Without it, closed loop: as fast as possible.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: concurrent senders. Open loop: the cap on sends in flight.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// WebSockets to open, one per recipient, at most this many (default: every user).
    #[arg(long)]
    pub sockets: Option<u32>,
    /// Size of each message body in bytes.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Per-request timeout (a send that takes longer counts as a timeout error).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long to wait after the last send for deliveries still in flight.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Process id of a local server: report its CPU time and peak memory (from /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// After the run, insert the same rows straight into the server's database (scratch
    /// tables), one transaction per message and batched, and report Duet as a ratio of both.
    #[arg(long, requires = "database_url")]
    pub baseline: bool,
    /// The server's database for --baseline: a SQLite file path (or sqlite:// URL) or a
    /// postgres:// URL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// The server's SQLite durability, for --baseline: `full` or `normal`.
    #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
    pub sqlite_synchronous: String,
    /// Messages per transaction in the batched baseline.
    #[arg(long, default_value_t = 256)]
    pub baseline_batch: u32,
}

/// How sends are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// `workers` senders, each sending its next message as soon as the last one is answered.
    Closed { workers: u32 },
    /// `rate` sends per second on a fixed timeline, at most `max_in_flight` at once.
    Open { rate: f64, max_in_flight: u32 },
}

/// When the sending stops: whichever bound comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub duration: Option<Duration>,
    pub count: Option<u64>,
}

/// A checked run description.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: reqwest::Url,
    pub ws_url: reqwest::Url,
    pub reads_per_send: u32,
    pub users: u32,
    pub conversations: u32,
    pub limits: Limits,
    pub pacing: Pacing,
    pub sockets: u32,
    pub body_bytes: usize,
    pub timeout: Duration,
    pub grace: Duration,
    pub server_pid: Option<u32>,
    pub json: Option<PathBuf>,
    pub quiet: bool,
    pub baseline: Option<BaselinePlan>,
}

/// What `--baseline` runs against.
#[derive(Debug, Clone)]
pub struct BaselinePlan {
    pub target: BaselineTarget,
    pub batch: u32,
}

impl BenchArgs {
    /// Checks every value and resolves the defaults.
    ///
    /// # Errors
    /// A value out of range or inconsistent with another; the message names the flag.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let url = reqwest::Url::parse(&self.url).with_context(|| format!("--url {}", self.url))?;
        ensure!(
            matches!(url.scheme(), "http" | "https") && url.host().is_some(),
            "--url must be an http:// or https:// URL with a host, not {}",
            self.url
        );
        let ws_url = match &self.ws_url {
            None => url.clone(),
            Some(raw) => {
                let ws_url = reqwest::Url::parse(raw).with_context(|| format!("--ws-url {raw}"))?;
                ensure!(
                    matches!(ws_url.scheme(), "http" | "https") && ws_url.host().is_some(),
                    "--ws-url must be an http:// or https:// URL with a host, not {raw}"
                );
                ws_url
            }
        };
        ensure!(
            self.reads_per_send <= 100,
            "--reads-per-send must be between 0 and 100"
        );
        ensure!(
            (2..=MAX_USERS).contains(&self.users),
            "--users must be between 2 and {MAX_USERS}"
        );
        let pairs = u64::from(self.users) * u64::from(self.users - 1) / 2;
        ensure!(
            self.conversations >= 1 && u64::from(self.conversations) <= pairs,
            "--conversations must be between 1 and {pairs} (the distinct pairs of {} users)",
            self.users
        );
        ensure!(
            (1..=MAX_CONNECTIONS).contains(&self.connections),
            "--connections must be between 1 and {MAX_CONNECTIONS}"
        );
        ensure!(
            (1..=MAX_BODY_BYTES).contains(&self.body_bytes),
            "--body-bytes must be between 1 and {MAX_BODY_BYTES}"
        );
        ensure!(!self.timeout.is_zero(), "--timeout must be positive");
        if let Some(count) = self.count {
            ensure!(count > 0, "--count must be at least 1");
        }
        if let Some(duration) = self.duration {
            ensure!(!duration.is_zero(), "--duration must be positive");
        }
        let limits = Limits {
            duration: self
                .duration
                .or(self.count.is_none().then_some(Duration::from_secs(10))),
            count: self.count,
        };
        let pacing = match self.rate {
            None => Pacing::Closed {
                workers: self.connections,
            },
            Some(rate) if rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0 => Pacing::Open {
                rate,
                max_in_flight: self.connections,
            },
            Some(rate) => {
                bail!("--rate must be a positive number of messages per second, not {rate}")
            }
        };
        let sockets = self.sockets.unwrap_or(self.users).min(self.users);
        let baseline = if self.baseline {
            let Some(database_url) = &self.database_url else {
                bail!("--baseline needs --database-url (the server's database)");
            };
            ensure!(
                self.baseline_batch >= 1 && self.baseline_batch <= 4096,
                "--baseline-batch must be between 1 and 4096"
            );
            let target = BaselineTarget::parse(database_url, self.sqlite_synchronous == "full")
                .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
            Some(BaselinePlan {
                target,
                batch: self.baseline_batch,
            })
        } else {
            None
        };
        Ok(Plan {
            url,
            ws_url,
            reads_per_send: self.reads_per_send,
            users: self.users,
            conversations: self.conversations,
            limits,
            pacing,
            sockets,
            body_bytes: self.body_bytes,
            timeout: self.timeout,
            grace: self.grace,
            server_pid: self.server_pid,
            json: self.json.clone(),
            quiet: self.quiet,
            baseline,
        })
    }
}

/// `250ms`, `10s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
///
/// # Errors
/// Anything else, a negative or a non-finite number.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn plan(flags: &[&str]) -> anyhow::Result<Plan> {
        let argv = std::iter::once("bench").chain(flags.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        cli.args.plan()
    }

    fn refused(flags: &[&str], naming: &str) {
        let err = plan(flags).expect_err("refused");
        assert!(format!("{err:#}").contains(naming), "{flags:?}: {err:#}");
    }

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "-1s", "10 parsecs", "1e400s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_are_a_ten_second_closed_loop_over_every_user() {
        let plan = plan(&[]).expect("defaults are valid");
        assert_eq!(plan.pacing, Pacing::Closed { workers: 32 });
        assert_eq!(plan.limits.duration, Some(Duration::from_secs(10)));
        assert_eq!(plan.limits.count, None);
        assert_eq!(plan.sockets, 100);
        assert!(plan.baseline.is_none());
    }

    #[test]
    fn a_count_alone_is_not_cut_short_by_the_default_duration() {
        let plan = plan(&["--count", "200"]).expect("valid");
        assert_eq!(plan.limits.duration, None);
        assert_eq!(plan.limits.count, Some(200));
    }

    #[test]
    fn a_rate_makes_an_open_loop_capped_by_the_connections() {
        let plan = plan(&["--rate", "500", "--connections", "8"]).expect("valid");
        assert_eq!(
            plan.pacing,
            Pacing::Open {
                rate: 500.0,
                max_in_flight: 8
            }
        );
    }

    #[test]
    fn bad_values_are_errors_naming_the_flag() {
        refused(&["--users", "1"], "--users");
        refused(&["--users", "3", "--conversations", "4"], "--conversations");
        refused(&["--conversations", "0"], "--conversations");
        refused(&["--connections", "0"], "--connections");
        refused(&["--rate", "0"], "--rate");
        refused(&["--rate", "NaN"], "--rate");
        refused(&["--rate=-5"], "--rate");
        refused(&["--count", "0"], "--count");
        refused(&["--duration", "0s"], "--duration");
        refused(&["--duration", "soon"], "--duration");
        refused(&["--body-bytes", "5000"], "--body-bytes");
        refused(&["--url", "ftp://x"], "--url");
        refused(&["--url", "not a url"], "--url");
        refused(&["--baseline"], "--database-url");
        refused(
            &["--baseline", "--database-url", "mysql://h/db"],
            "--database-url",
        );
        refused(&["--sqlite-synchronous", "off"], "--sqlite-synchronous");
    }

    #[test]
    fn the_baseline_reads_the_database_and_its_durability() {
        let plan = plan(&[
            "--baseline",
            "--database-url",
            "/tmp/duet.db",
            "--sqlite-synchronous",
            "normal",
        ])
        .expect("valid");
        let baseline = plan.baseline.expect("a baseline");
        assert_eq!(baseline.batch, 256);
        assert_eq!(
            baseline.target,
            BaselineTarget::Sqlite {
                path: "/tmp/duet.db".into(),
                synchronous_full: false
            }
        );
    }
}
