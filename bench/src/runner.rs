//! One run of the load generator, from setup to report: register and open, listen, send,
//! wait for deliveries, then the baseline if asked; and `duet-bench run` around it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::args::{BenchArgs, Pacing, Plan};
use crate::client::Client;
use crate::load::{self, Workload};
use crate::progress::progress_bar;
use crate::recorder::Recorder;
use crate::report::{self, Report};
use crate::{baseline, server, setup, socket, writer};

/// WebSocket handshakes in flight at once while the sockets open.
const SOCKET_OPEN_CONCURRENCY: usize = 32;
/// After Ctrl-C, in-flight deliveries get at most this long.
const INTERRUPTED_GRACE: Duration = Duration::from_secs(1);

/// `duet-bench run …` from the command line: checks the flags, runs, prints the table, writes
/// the JSON. Ctrl-C stops the sending and reports what ran.
///
/// # Errors
/// Bad flags, an unreachable server, or a failed setup.
pub async fn run_cli(args: &BenchArgs) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing in-flight sends and reporting");
            on_signal.cancel();
        }
    });
    let report = run(&plan, stop).await?;
    print!("{}", report.table());
    Ok(())
}

/// Runs the plan: setup, sockets, the sending phase, the grace period for deliveries, then the
/// baseline if asked; writes the JSON report when the plan names a file.
///
/// # Errors
/// A failed setup (registration, login, opening, sockets), an unusable `--server-pid`, a
/// failed baseline, or a JSON file that cannot be written.
pub async fn run(plan: &Plan, stop: CancellationToken) -> anyhow::Result<Report> {
    let run_id = setup::new_run_id(&mut rand::rng());
    let (workers, rate) = match plan.pacing {
        Pacing::Closed { workers } => (workers, None),
        Pacing::Open {
            rate,
            max_in_flight,
        } => (max_in_flight, Some(rate)),
    };
    let client = Client::new(plan.url.clone(), plan.timeout, workers)?;
    let population = tokio::select! {
        () = stop.cancelled() => anyhow::bail!("interrupted during setup"),
        population = setup::populate(&client, &run_id, plan.users, plan.conversations) => population?,
    };

    let recorder = Arc::new(Recorder::default());
    let owners = setup::socket_owners(&population.conversations, plan.sockets as usize);
    let mut listening = vec![false; population.users.len()];
    let stop_sockets = CancellationToken::new();
    let events = socket::events_url(&plan.ws_url)?;
    let sockets: Vec<_> = futures::stream::iter(&owners)
        .map(|owner| {
            listening[*owner] = true;
            socket::listen(
                &events,
                &population.users[*owner],
                recorder.clone(),
                stop_sockets.clone(),
            )
        })
        .buffer_unordered(SOCKET_OPEN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("opening the recipients' WebSockets")?;

    let body = message_body(plan.body_bytes);
    let workload = Arc::new(Workload {
        client,
        population,
        listening,
        body: body.clone(),
        run_id: run_id.clone(),
        recorder: recorder.clone(),
        reads_per_send: plan.reads_per_send,
    });
    let metrics_client = workload.client.clone();
    let metrics_before = metrics_client.metrics().await;
    let before = plan.server_pid.map(server::sample).transpose()?;
    let progress = progress_bar(plan, recorder.clone());
    let elapsed = match plan.pacing {
        Pacing::Closed { workers } => {
            load::closed_loop(workload, workers, plan.limits, stop.clone()).await
        }
        Pacing::Open {
            rate,
            max_in_flight,
        } => load::open_loop(workload, rate, max_in_flight, plan.limits, stop.clone()).await,
    };
    let after = plan.server_pid.map(server::sample).transpose()?;
    let group_commit = match (metrics_before, metrics_client.metrics().await) {
        (Some(before), Some(after)) => writer::GroupCommitUsage::between(&before, &after),
        _ => None,
    };
    progress.finish_and_clear();

    let interrupted = stop.is_cancelled();
    let grace = if interrupted {
        plan.grace.min(INTERRUPTED_GRACE)
    } else {
        plan.grace
    };
    let grace_ends = Instant::now() + grace;
    while recorder.missing() > 0 && Instant::now() < grace_ends {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_sockets.cancel();
    for socket in sockets {
        let _ = socket.await;
    }

    let acknowledged = recorder.acknowledged.load(Ordering::Relaxed);
    let messages_per_sec = acknowledged as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    let baseline = match &plan.baseline {
        Some(baseline) if !interrupted => Some(
            baseline::run(
                baseline,
                &run_id,
                workers,
                plan.limits,
                &body,
                messages_per_sec,
                &stop,
            )
            .await?,
        ),
        _ => None,
    };
    let report = Report {
        run_id,
        url: plan.url.to_string(),
        ws_url: plan.ws_url.to_string(),
        mode: if rate.is_some() { "open" } else { "closed" }.into(),
        rate,
        connections: workers,
        users: plan.users,
        conversations: plan.conversations,
        sockets: owners.len() as u32,
        body_bytes: plan.body_bytes,
        elapsed_secs: elapsed.as_secs_f64(),
        attempted: recorder.attempted.load(Ordering::Relaxed),
        acknowledged,
        messages_per_sec,
        late_starts: recorder.late_starts.load(Ordering::Relaxed),
        send_latency: recorder.send_latency(),
        history_reads: recorder.history_reads.load(Ordering::Relaxed),
        history_read_latency: recorder.history_read_latency(),
        delivery_latency: recorder.delivery_latency(),
        errors: recorder.errors(),
        deliveries_expected: recorder.expected.load(Ordering::Relaxed),
        deliveries_received: recorder.delivered.load(Ordering::Relaxed),
        deliveries_missing: recorder.missing(),
        unmatched_deliveries: recorder.unmatched.load(Ordering::Relaxed),
        interrupted,
        server: plan
            .server_pid
            .zip(before.zip(after))
            .map(|(pid, (before, after))| server_usage(pid, before, after, elapsed, acknowledged)),
        group_commit,
        baseline,
    };
    if let Some(path) = &plan.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// A body of `bytes` printable ASCII characters (never blank, so the server accepts it).
fn message_body(bytes: usize) -> String {
    "duet bench message "
        .chars()
        .cycle()
        .take(bytes)
        .collect::<String>()
        .replace(' ', "_")
}

fn server_usage(
    pid: u32,
    before: server::Sample,
    after: server::Sample,
    elapsed: Duration,
    acknowledged: u64,
) -> report::ServerUsage {
    let wall_secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let per_message = |cpu_secs: f64| {
        if acknowledged > 0 {
            cpu_secs * 1e6 / acknowledged as f64
        } else {
            0.0
        }
    };
    let cpu_secs = (after.cpu_secs - before.cpu_secs).max(0.0);
    let busiest_thread =
        server::busiest_thread(&before, &after).map(|(thread, cpu_secs)| report::ThreadUsage {
            name: thread.name.clone(),
            cpu_cores: cpu_secs / wall_secs,
            cpu_us_per_message: per_message(cpu_secs),
        });
    let machine = before.machine.zip(after.machine).map(|(before, after)| {
        let busy_secs = (after.busy_secs - before.busy_secs).max(0.0);
        // I/O wait, part of the total, can go backwards (proc(5)): a total below the busy
        // time would say more cores were busy than there were.
        let total_secs = (after.total_secs - before.total_secs).max(busy_secs);
        report::MachineUsage {
            busy_cores: busy_secs / wall_secs,
            cores: total_secs / wall_secs,
        }
    });
    report::ServerUsage {
        pid,
        cpu_secs,
        cpu_cores: cpu_secs / wall_secs,
        cpu_us_per_message: per_message(cpu_secs),
        peak_rss_kib: after.peak_rss_kib,
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        busiest_thread,
        machine,
    }
}
