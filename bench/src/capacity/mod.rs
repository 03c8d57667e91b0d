//! `duet-bench capacity`: the back-of-envelope of Duet's growth path (100 users to 100 M,
//! the profiles of docs/OPERATIONS.md), from a user count and a few per-node figures
//! (measured with `duet-bench run`, or given). Its flags are [`CapacityArgs`].
//!
//! Each sent message costs three write transactions (the append on the conversation's shard
//! and one inbox apply per member), so database writes are three per message.

mod args;

use std::fmt::Write as _;

pub use args::CapacityArgs;

/// Write transactions per sent message: append + one inbox apply per member.
const WRITES_PER_MESSAGE: f64 = 3.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// What to plan for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub users: u64,
    pub messages_per_user_per_day: f64,
    pub message_bytes: f64,
    /// Message reads (history pages, lists, sync) per message written.
    pub reads_per_write: f64,
    /// Busiest second over the average second.
    pub peak_factor: f64,
}

/// What one node carries, from measurements on the target hardware.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeFigures {
    /// Sends per second one `duet serve` process sustains.
    pub app_sends_per_sec: f64,
    /// Write transactions per second one primary sustains.
    pub db_writes_per_sec: f64,
    /// Reads per second one replica (or primary) serves.
    pub replica_reads_per_sec: f64,
}

/// The arithmetic for one load.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub users: u64,
    pub messages_per_day: f64,
    pub messages_per_sec: f64,
    pub peak_messages_per_sec: f64,
    pub peak_db_writes_per_sec: f64,
    pub peak_reads_per_sec: f64,
    pub storage_bytes_per_day: f64,
    pub storage_bytes_per_year: f64,
    pub peak_ingress_bytes_per_sec: f64,
    pub peak_egress_bytes_per_sec: f64,
    pub app_processes: u64,
    pub shards: u64,
    pub replicas_per_shard: u64,
    pub profile: &'static str,
}

impl Plan {
    pub fn for_load(load: Load, nodes: NodeFigures) -> Self {
        let messages_per_day = load.users as f64 * load.messages_per_user_per_day;
        let messages_per_sec = messages_per_day / SECONDS_PER_DAY;
        let peak = messages_per_sec * load.peak_factor;
        let peak_db_writes_per_sec = peak * WRITES_PER_MESSAGE;
        let peak_reads_per_sec = peak * load.reads_per_write;
        let shards = at_least_one(peak_db_writes_per_sec / nodes.db_writes_per_sec);
        // The primary serves reads too; replicas take what it cannot.
        let reads_per_shard = peak_reads_per_sec / shards as f64;
        let replicas_per_shard = (reads_per_shard / nodes.replica_reads_per_sec - 1.0)
            .max(0.0)
            .ceil() as u64;
        let storage_bytes_per_day = messages_per_day * load.message_bytes;
        Self {
            users: load.users,
            messages_per_day,
            messages_per_sec,
            peak_messages_per_sec: peak,
            peak_db_writes_per_sec,
            peak_reads_per_sec,
            storage_bytes_per_day,
            storage_bytes_per_year: storage_bytes_per_day * 365.0,
            peak_ingress_bytes_per_sec: peak * load.message_bytes,
            // Each message goes to both members' devices, and is read again `reads_per_write` times.
            peak_egress_bytes_per_sec: peak * load.message_bytes * (2.0 + load.reads_per_write),
            app_processes: at_least_one(peak / nodes.app_sends_per_sec),
            shards,
            replicas_per_shard,
            profile: profile_for(load.users, shards),
        }
    }
}

fn at_least_one(ratio: f64) -> u64 {
    (ratio.ceil() as u64).max(1)
}

/// The profile a deployment of this size configures: one that exists. Several shards (or
/// more users than `medium` carries) are `large`; `global` (regions) is not built, so a
/// plan never names it.
fn profile_for(users: u64, shards: u64) -> &'static str {
    match (users, shards) {
        (_, s) if s > 1 => "large",
        (0..=1_000, _) => "small",
        (0..=100_000, _) => "medium",
        _ => "large",
    }
}

/// Most physical shards a cluster can have: one logical shard each.
const LOGICAL_SHARDS: u64 = 1024;

impl Plan {
    /// The plan in the configuration's own terms.
    pub fn configuration(&self) -> String {
        let storage = match (self.profile, self.shards) {
            ("small", _) => "storage.kind = \"sqlite\" (one file)".to_owned(),
            (_, 1) => format!(
                "storage.kind = \"postgres\", storage.postgres.url{}",
                replicas(self.replicas_per_shard, "storage.postgres.replicas")
            ),
            (_, shards) => format!(
                "storage.kind = \"postgres\", {} [[storage.postgres.shards]]{}, then \
                 `duet shards rebalance` when shards are added",
                shards.min(LOGICAL_SHARDS),
                replicas(self.replicas_per_shard, "replicas")
            ),
        };
        let processes = if self.app_processes > 1 || self.profile != "small" {
            format!(
                "{} `duet serve` processes with delivery.kind = \"nats\" and cache.kind = \"redis\"",
                self.app_processes
            )
        } else {
            "one `duet serve` process".to_owned()
        };
        let mut text = format!("{storage}; {processes}");
        if self.shards > LOGICAL_SHARDS {
            text.push_str(&format!(
                " (the writes call for {} shards, more than the {LOGICAL_SHARDS} logical shards \
                 allow: beyond this, regions, which are not built yet)",
                self.shards
            ));
        }
        text
    }
}

/// `, each with N entries in KEY` (nothing for none).
fn replicas(count: u64, key: &str) -> String {
    match count {
        0 => String::new(),
        1 => format!(", each with 1 entry in {key}"),
        n => format!(", each with {n} entries in {key}"),
    }
}

/// A rate with enough digits to stay readable below one per second.
fn rate(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.1}")
    }
}

/// Bytes in decimal units, as disks and links are sold.
fn bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = value;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How one row of the report shows a plan.
type Cell = fn(&Plan) -> String;

/// The report `duet-bench capacity` prints: one column per load.
pub fn report(loads: &[Load], nodes: NodeFigures) -> String {
    let plans: Vec<Plan> = loads.iter().map(|l| Plan::for_load(*l, nodes)).collect();
    let rows: [(&str, Cell); 14] = [
        ("users", |p| p.users.to_string()),
        ("messages/day", |p| format!("{:.0}", p.messages_per_day)),
        ("messages/s (average)", |p| rate(p.messages_per_sec)),
        ("messages/s (peak)", |p| rate(p.peak_messages_per_sec)),
        ("DB writes/s (peak)", |p| {
            format!("{:.0}", p.peak_db_writes_per_sec)
        }),
        ("DB reads/s (peak)", |p| {
            format!("{:.0}", p.peak_reads_per_sec)
        }),
        ("storage/day", |p| bytes(p.storage_bytes_per_day)),
        ("storage/year", |p| bytes(p.storage_bytes_per_year)),
        ("ingress (peak)", |p| {
            format!("{}/s", bytes(p.peak_ingress_bytes_per_sec))
        }),
        ("egress (peak)", |p| {
            format!("{}/s", bytes(p.peak_egress_bytes_per_sec))
        }),
        ("app processes", |p| p.app_processes.to_string()),
        ("physical shards", |p| {
            p.shards.min(LOGICAL_SHARDS).to_string()
        }),
        ("replicas per shard", |p| p.replicas_per_shard.to_string()),
        ("profile", |p| p.profile.to_owned()),
    ];
    let mut out = String::new();
    for (name, value) in &rows {
        let _ = write!(out, "{name:<22}");
        for plan in &plans {
            let _ = write!(out, "{:>16}", value(plan));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nper node: {:.0} sends/s per app process, {:.0} writes/s per primary, {:.0} reads/s per replica; \
         {WRITES_PER_MESSAGE} write transactions per message",
        nodes.app_sends_per_sec, nodes.db_writes_per_sec, nodes.replica_reads_per_sec
    );
    for plan in &plans {
        let _ = writeln!(out, "{} users: {}", plan.users, plan.configuration());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: NodeFigures = NodeFigures {
        app_sends_per_sec: 1_000.0,
        db_writes_per_sec: 2_000.0,
        replica_reads_per_sec: 5_000.0,
    };

    fn load(users: u64) -> Load {
        Load {
            users,
            messages_per_user_per_day: 10.0,
            message_bytes: 1_000.0,
            reads_per_write: 2.0,
            peak_factor: 2.0,
        }
    }

    #[test]
    fn a_million_users_sending_ten_a_day_is_about_115_messages_a_second_and_10_gb_a_day() {
        let plan = Plan::for_load(load(1_000_000), NODES);
        assert_eq!(plan.messages_per_day, 10_000_000.0);
        assert!((plan.messages_per_sec - 115.74).abs() < 0.01, "{plan:?}");
        assert!((plan.peak_reads_per_sec - 463.0).abs() < 0.1, "{plan:?}");
        assert_eq!(plan.storage_bytes_per_day, 10e9);
        assert_eq!(bytes(plan.storage_bytes_per_day), "10.0 GB");
        assert_eq!(
            (plan.app_processes, plan.shards, plan.replicas_per_shard),
            (1, 1, 0)
        );
        assert_eq!(plan.profile, "large");
    }

    #[test]
    fn a_hundred_million_users_need_several_shards_and_processes() {
        let plan = Plan::for_load(load(100_000_000), NODES);
        // 11,574 msg/s average, 23,148 peak → 69,444 writes/s over 2,000 per primary.
        assert_eq!(plan.shards, 35);
        assert_eq!(plan.app_processes, 24);
        assert_eq!(
            plan.profile, "large",
            "regions are not built: never recommended"
        );
        let configuration = plan.configuration();
        assert!(
            configuration.contains("35 [[storage.postgres.shards]]"),
            "{configuration}"
        );
        assert!(
            configuration.contains("24 `duet serve` processes"),
            "{configuration}"
        );
    }

    #[test]
    fn one_shard_is_configured_with_a_url_and_the_small_row_with_sqlite() {
        let plan = Plan::for_load(load(1_000_000), NODES);
        assert!(
            plan.configuration()
                .starts_with("storage.kind = \"postgres\", storage.postgres.url;"),
            "{}",
            plan.configuration()
        );
        let small = Plan::for_load(load(100), NODES);
        assert!(
            small.configuration().contains("sqlite"),
            "{}",
            small.configuration()
        );
    }

    #[test]
    fn more_shards_than_logical_shards_are_capped_and_said_so() {
        let plan = Plan::for_load(load(10_000_000_000), NODES);
        assert!(plan.shards > 1024);
        let text = report(&[load(10_000_000_000)], NODES);
        assert!(text.contains("1024 [[storage.postgres.shards]]"), "{text}");
        assert!(text.contains("regions"), "{text}");
    }

    #[test]
    fn the_smallest_row_is_the_small_profile_on_one_of_everything() {
        let plan = Plan::for_load(load(100), NODES);
        assert_eq!(
            (plan.app_processes, plan.shards, plan.replicas_per_shard),
            (1, 1, 0)
        );
        assert_eq!(plan.profile, "small");
    }

    #[test]
    fn the_report_has_a_column_per_load() {
        let text = report(&[load(100), load(1_000_000)], NODES);
        let users = text.lines().next().expect("a first line");
        assert!(users.contains("100") && users.contains("1000000"), "{text}");
        assert!(text.contains("10.0 GB"), "{text}");
    }
}
