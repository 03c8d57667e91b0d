//! `--baseline`: after Duet's run, how fast the database itself stores the rows a send
//! stores, with nothing of Duet in between, at the same concurrency and limits: one
//! transaction per message, then batched. Duet's messages/s over each is the share of the
//! database's raw limit the server reaches.
//!
//! A send with inline delivery commits, in one transaction: its message row, the
//! conversation's new last seq and read position, one feed event per member, both members'
//! feed cursors and both inbox entries. The baseline writes exactly those rows
//! ([`Baseline::send`]), with values it computes itself (no reads, no dedupe lookup, no
//! locking reads: it is the floor Duet's cost is measured against, not a second
//! implementation), into scratch copies of the five tables ([`Baseline`]). Each writer has its
//! own conversation, so writers never wait on each other's rows: the raw limit is the best
//! case.
//!
//! The database is opened the way the server opens it ([`BaselineTarget`]): SQLite in WAL with
//! the same `synchronous` and pragmas through one writer connection, PostgreSQL with the
//! server's pool options and one connection per concurrent writer.

mod scratch;
mod send;
mod target;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use scratch::Baseline;
pub use send::BaselinePair;
pub use target::BaselineTarget;

use crate::args::{BaselinePlan, Limits};
use crate::report::{BaselineReport, BaselineRun};

/// Runs both modes and drops the scratch tables, even after a failed mode.
///
/// # Errors
/// When the database cannot be opened or the scratch tables cannot be created.
pub async fn run(
    plan: &BaselinePlan,
    run_id: &str,
    workers: u32,
    limits: Limits,
    body: &str,
    duet_per_sec: f64,
    stop: &CancellationToken,
) -> anyhow::Result<BaselineReport> {
    let baseline = Baseline::create(&plan.target, workers, run_id)
        .await
        .context("opening the baseline database (--database-url)")?;
    let modes = async {
        let per_message = mode(&baseline, 1, workers, limits, body, duet_per_sec, stop, 0).await?;
        let batched = mode(
            &baseline,
            plan.batch,
            workers,
            limits,
            body,
            duet_per_sec,
            stop,
            per_message.inserted,
        )
        .await?;
        anyhow::Ok((per_message, batched))
    }
    .await;
    let dropped = baseline.drop_tables().await;
    let (per_message, batched) = modes?;
    dropped.context("dropping the baseline tables")?;
    Ok(BaselineReport {
        database: plan.target.describe(),
        per_message,
        batched,
    })
}

/// One mode: `workers` writers committing `batch` messages per transaction until a limit.
/// `before` is how many rows earlier modes left in the table.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every value distinct"
)]
async fn mode(
    baseline: &Baseline,
    batch: u32,
    workers: u32,
    limits: Limits,
    body: &str,
    duet_per_sec: f64,
    stop: &CancellationToken,
    before: u64,
) -> anyhow::Result<BaselineRun> {
    let start = Instant::now();
    let deadline = limits.duration.map(|d| start + d);
    let claimed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..workers)
        .map(|_| {
            let (baseline, claimed, errors, stop) = (
                baseline.clone(),
                claimed.clone(),
                errors.clone(),
                stop.clone(),
            );
            let body = body.to_owned();
            tokio::spawn(async move {
                let mut pair = match baseline.open_pair().await {
                    Ok(pair) => pair,
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                while !stop.is_cancelled() && deadline.is_none_or(|d| Instant::now() < d) {
                    let first = claimed.fetch_add(u64::from(batch), Ordering::Relaxed);
                    let size = match limits.count {
                        Some(count) if first >= count => break,
                        Some(count) => (count - first).min(u64::from(batch)),
                        None => u64::from(batch),
                    };
                    let size = usize::try_from(size).unwrap_or(usize::MAX);
                    if baseline.send(&mut pair, size, &body).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        // A busy database is not helped by an immediate retry storm.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        let _ = writer.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let inserted = baseline
        .count()
        .await
        .context("counting baseline rows")?
        .saturating_sub(before);
    let per_sec = if elapsed > 0.0 {
        inserted as f64 / elapsed
    } else {
        0.0
    };
    Ok(BaselineRun {
        batch,
        inserted,
        elapsed_secs: elapsed,
        messages_per_sec: per_sec,
        errors: errors.load(Ordering::Relaxed),
        duet_ratio: if per_sec > 0.0 {
            duet_per_sec / per_sec
        } else {
            0.0
        },
    })
}
