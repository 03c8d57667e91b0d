//! `duet shards status|move|rebalance|abort`: the shard map and moving logical shards
//! between physical ones, printed for an operator.

use std::fmt::Write as _;

use duet_adapters::sql::{MoveOptions, MoveReport, ShardStatus, SqlStorage};

use crate::config::StorageSettings;
use crate::storage;

/// What `duet shards` was asked to do.
#[derive(Debug, Clone)]
pub enum ShardCommand {
    Status,
    Move { logical: u32, to: usize },
    Rebalance { dry_run: bool },
    Abort { logical: u32 },
}

/// Runs `command` against the configured databases and prints what it did.
///
/// # Errors
/// When the databases cannot be reached or the command is refused (the message says why).
pub async fn run(settings: &StorageSettings, command: ShardCommand) -> anyhow::Result<()> {
    let storage = storage::connect(settings, false, false).await?;
    let done = execute(&storage, command).await;
    storage.close().await;
    done
}

async fn execute(storage: &SqlStorage, command: ShardCommand) -> anyhow::Result<()> {
    match command {
        ShardCommand::Status => print!("{}", render_status(&storage.shard_status().await?)),
        ShardCommand::Move { logical, to } => {
            let report = storage
                .move_shard(logical, to, &MoveOptions::default())
                .await?;
            println!("{}", render_move(&report));
        }
        ShardCommand::Rebalance { dry_run } => {
            let plan = storage.plan_rebalance().await?;
            if plan.is_empty() {
                println!("balanced: no move needed");
            }
            for (logical, from, to) in plan {
                if dry_run {
                    println!("would move logical shard {logical}: {from} -> {to}");
                    continue;
                }
                let report = storage
                    .move_shard(logical, to, &MoveOptions::default())
                    .await?;
                println!("{}", render_move(&report));
            }
        }
        ShardCommand::Abort { logical } => {
            storage.abort_move(logical).await?;
            println!("move of logical shard {logical} rolled back");
        }
    }
    Ok(())
}

fn render_status(status: &ShardStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shard map version {}, {} logical shards over {} physical",
        status.version,
        status.logical_shards,
        status.physical.len()
    );
    for shard in &status.physical {
        let rows: Vec<String> = shard
            .rows
            .iter()
            .map(|(table, count)| format!("{table} {count}"))
            .collect();
        let _ = writeln!(
            out,
            "physical {} ({}): {} logical [{}], {} MiB; rows: {}",
            shard.index,
            shard.name,
            shard.logical.len(),
            ranges(&shard.logical),
            shard.bytes / (1024 * 1024),
            rows.join(", ")
        );
    }
    for (logical, source, target, step) in &status.moves {
        let _ = writeln!(
            out,
            "move in progress: logical {logical} from {source} to {target}, step {step} \
             (run `duet shards move {logical} --to {target}` to finish it)"
        );
    }
    out
}

fn render_move(report: &MoveReport) -> String {
    let copied: Vec<String> = report
        .copied
        .iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    format!(
        "{} logical shard {} from physical {} to {} (map version {}) in {:.1} s; writes to it \
         waited at most {} ms; copied: {}; removed from the source: {} rows",
        if report.resumed {
            "finished moving"
        } else {
            "moved"
        },
        report.logical,
        report.source,
        report.target,
        report.version,
        report.took.as_secs_f64(),
        report.fenced_for.as_millis(),
        copied.join(", "),
        report.removed
    )
}

/// `0-255, 300, 302-310`.
fn ranges(logical: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = logical.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn logical_shards_print_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
        assert_eq!(ranges(&[]), "");
    }
}
