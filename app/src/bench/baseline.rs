//! `--baseline`: after Duet's run, the rows a send writes straight into copies of the server's
//! tables, with the same concurrency and limits, one transaction per message and then
//! batched. Duet's messages/s over each is the share of the database's raw limit the server
//! reaches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use duet_adapters::sql::baseline::{Baseline, BaselineTarget};
use tokio_util::sync::CancellationToken;

use super::args::{BaselinePlan, Limits};
use super::report::{BaselineReport, BaselineRun};

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
        database: describe(&plan.target),
        per_message,
        batched,
    })
}

fn describe(target: &BaselineTarget) -> String {
    match target {
        BaselineTarget::Sqlite {
            synchronous_full, ..
        } => format!(
            "sqlite (WAL, synchronous={})",
            if *synchronous_full { "FULL" } else { "NORMAL" }
        ),
        BaselineTarget::Postgres { .. } => "postgres".into(),
    }
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
