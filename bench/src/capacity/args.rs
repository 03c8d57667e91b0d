//! The flags of `duet-bench capacity` and the checks that turn them into loads to plan for.

use super::{Load, NodeFigures, report};

/// Inputs of `duet-bench capacity`. Per-node figures default to conservative values; pass the
/// ones measured on your hardware (`duet-bench run`, scripts/bench/).
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Users to plan for (default: the four rows of the growth table, 100 to 100 M).
    #[arg(long)]
    pub users: Option<u64>,
    /// Messages each user sends per day.
    #[arg(long, default_value_t = 10.0)]
    pub messages_per_user: f64,
    /// Average stored size of a message, in bytes.
    #[arg(long, default_value_t = 1000.0)]
    pub message_bytes: f64,
    /// Message reads per message written.
    #[arg(long, default_value_t = 2.0)]
    pub reads_per_write: f64,
    /// Busiest second over the average second.
    #[arg(long, default_value_t = 2.0)]
    pub peak_factor: f64,
    /// Sends per second one app process sustains.
    #[arg(long, default_value_t = 1000.0)]
    pub app_sends_per_sec: f64,
    /// Write transactions per second one primary sustains.
    #[arg(long, default_value_t = 2000.0)]
    pub db_writes_per_sec: f64,
    /// Reads per second one replica serves.
    #[arg(long, default_value_t = 5000.0)]
    pub replica_reads_per_sec: f64,
}

impl CapacityArgs {
    /// The report for these flags.
    ///
    /// # Errors
    /// A figure that is not a positive number (or a negative --reads-per-write); the message
    /// names the flag.
    pub fn report(&self) -> anyhow::Result<String> {
        let positive = [
            ("--messages-per-user", self.messages_per_user),
            ("--message-bytes", self.message_bytes),
            ("--peak-factor", self.peak_factor),
            ("--app-sends-per-sec", self.app_sends_per_sec),
            ("--db-writes-per-sec", self.db_writes_per_sec),
            ("--replica-reads-per-sec", self.replica_reads_per_sec),
        ];
        for (name, value) in positive {
            anyhow::ensure!(
                value.is_finite() && value > 0.0,
                "{name} must be a positive number"
            );
        }
        anyhow::ensure!(
            self.reads_per_write.is_finite() && self.reads_per_write >= 0.0,
            "--reads-per-write must not be negative"
        );
        let users = match self.users {
            Some(users) => vec![users],
            None => vec![100, 10_000, 1_000_000, 100_000_000],
        };
        let loads: Vec<_> = users
            .into_iter()
            .map(|users| Load {
                users,
                messages_per_user_per_day: self.messages_per_user,
                message_bytes: self.message_bytes,
                reads_per_write: self.reads_per_write,
                peak_factor: self.peak_factor,
            })
            .collect();
        let nodes = NodeFigures {
            app_sends_per_sec: self.app_sends_per_sec,
            db_writes_per_sec: self.db_writes_per_sec,
            replica_reads_per_sec: self.replica_reads_per_sec,
        };
        Ok(report(&loads, nodes))
    }

    /// `duet-bench capacity …`: prints [`CapacityArgs::report`].
    ///
    /// # Errors
    /// As [`CapacityArgs::report`].
    pub fn print(&self) -> anyhow::Result<()> {
        print!("{}", self.report()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CapacityArgs,
    }

    fn report_for(flags: &[&str]) -> anyhow::Result<String> {
        let argv = std::iter::once("capacity").chain(flags.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        cli.args.report()
    }

    #[test]
    fn without_users_the_report_is_the_four_column_growth_table() {
        let table = report_for(&[]).expect("the defaults are valid");
        let users = table.lines().next().expect("a users row");
        let columns: Vec<_> = users.split_whitespace().skip(1).collect();
        assert_eq!(columns, ["100", "10000", "1000000", "100000000"]);
    }

    #[test]
    fn measured_figures_change_the_plan() {
        let default = report_for(&["--users", "1000000"]).expect("valid");
        let slower =
            report_for(&["--users", "1000000", "--db-writes-per-sec", "1"]).expect("valid");
        assert_ne!(default, slower);
        assert!(slower.contains("1 writes/s per primary"), "{slower}");
    }

    #[test]
    fn figures_that_are_not_positive_are_errors_naming_the_flag() {
        for (flags, naming) in [
            (&["--peak-factor", "0"][..], "--peak-factor"),
            (&["--message-bytes", "NaN"], "--message-bytes"),
            (&["--app-sends-per-sec=-3"], "--app-sends-per-sec"),
            (&["--reads-per-write=-1"], "--reads-per-write"),
        ] {
            let err = report_for(flags).expect_err("refused");
            assert!(format!("{err:#}").contains(naming), "{flags:?}: {err:#}");
        }
    }
}
