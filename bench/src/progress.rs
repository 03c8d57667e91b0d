//! The bar on stderr while sending, so a person watching a long run sees it move.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{Pacing, Plan};
use crate::recorder::Recorder;
use crate::schedule;

/// A bar on stderr while sending: by messages when their number is known, else by time.
/// Hidden with --quiet or when stderr is not a terminal.
pub fn progress_bar(plan: &Plan, recorder: Arc<Recorder>) -> ProgressBar {
    use std::io::IsTerminal as _;
    if plan.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let planned = match plan.pacing {
        Pacing::Open { rate, .. } => schedule::planned_sends(plan.limits, rate),
        Pacing::Closed { .. } => plan.limits.count,
    };
    let by_count = planned.is_some();
    let length = planned
        .or(plan.limits.duration.map(|d| d.as_millis() as u64))
        .unwrap_or(0);
    let bar = ProgressBar::new(length);
    let template = if by_count {
        "{elapsed_precise} [{bar:40}] {pos}/{len} sent  {msg}"
    } else {
        "{elapsed_precise} [{bar:40}] {percent}%  {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let ticker = bar.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        while !ticker.is_finished() {
            let attempted = recorder.attempted.load(Ordering::Relaxed);
            ticker.set_position(if by_count {
                attempted
            } else {
                start.elapsed().as_millis() as u64
            });
            ticker.set_message(format!(
                "{} acked, {} errors",
                recorder.acknowledged.load(Ordering::Relaxed),
                recorder.error_count()
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    bar
}
