//! The server's own cost, when it runs on this machine: CPU time from `/proc/PID/stat`
//! (utime + stime), per thread from `/proc/PID/task/TID/stat`, memory from
//! `/proc/PID/status` (VmHWM, the peak, and VmRSS), and the whole machine's busy time from
//! `/proc/stat`.
//!
//! The threads are there because a serial stage (one writer, one connection thread) caps
//! throughput while the cores are half idle: the busiest thread near a whole core, or the
//! machine well below its cores, says so where the process total cannot.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// One reading of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// User + system CPU time so far, in seconds.
    pub cpu_secs: f64,
    /// Peak resident set (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Resident set now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Its threads' CPU time so far (those readable at the time).
    pub threads: Vec<ThreadTime>,
    /// The machine's CPU time so far; `None` where `/proc/stat` cannot be read.
    pub machine: Option<MachineTime>,
}

/// One thread's CPU time so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadTime {
    pub tid: u32,
    /// Its name (`comm`, at most 15 bytes on Linux).
    pub name: String,
    pub cpu_secs: f64,
}

/// CPU time of every core together so far, from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineTime {
    /// Running anything: user, nice, system, irq, softirq, steal.
    pub busy_secs: f64,
    /// `busy_secs` plus idle and I/O wait.
    pub total_secs: f64,
}

/// Reads `pid` now.
///
/// # Errors
/// When the process does not exist or /proc is missing or unreadable (not Linux).
pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(proc.join("stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the server local?)"))?;
    let status = std::fs::read_to_string(proc.join("status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let ticks_per_sec = clock_ticks_per_sec();
    let ticks = cpu_ticks(&stat)?;
    let (peak_rss_kib, rss_kib) = memory_kib(&status)?;
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| machine_ticks(&stat).ok())
        .map(|(busy, total)| MachineTime {
            busy_secs: busy as f64 / ticks_per_sec,
            total_secs: total as f64 / ticks_per_sec,
        });
    Ok(Sample {
        cpu_secs: ticks as f64 / ticks_per_sec,
        peak_rss_kib,
        rss_kib,
        threads: threads(&proc, ticks_per_sec),
        machine,
    })
}

/// The threads of the process at `proc`; one that ends while being read is left out.
fn threads(proc: &std::path::Path, ticks_per_sec: f64) -> Vec<ThreadTime> {
    let Ok(tasks) = std::fs::read_dir(proc.join("task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let tid = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            Some(ThreadTime {
                tid,
                name: command_name(&stat)?.to_owned(),
                cpu_secs: cpu_ticks(&stat).ok()? as f64 / ticks_per_sec,
            })
        })
        .collect()
}

/// The command name of a `/proc` stat line: field 2, between the first `(` and the last `)`.
pub fn command_name(stat: &str) -> Option<&str> {
    let start = stat.find('(')?;
    let end = stat.rfind(')')?;
    stat.get(start + 1..end)
}

/// (busy, busy + idle + iowait) ticks from the `cpu` line of `/proc/stat`: user, nice,
/// system, idle, iowait, irq, softirq, steal (guest time is already counted in user).
pub fn machine_ticks(stat: &str) -> anyhow::Result<(u64, u64)> {
    let line = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("unexpected /proc/stat line {line:?}"))?;
    let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = fields[..] else {
        bail!("too few fields in /proc/stat line {line:?}");
    };
    let busy = user + nice + system + irq + softirq + steal;
    Ok((busy, busy + idle + iowait))
}

/// The thread that spent the most CPU time between `before` and `after` (a thread that
/// started in between counts from zero), with that time in seconds.
pub fn busiest_thread<'a>(before: &Sample, after: &'a Sample) -> Option<(&'a ThreadTime, f64)> {
    after
        .threads
        .iter()
        .map(|thread| {
            let earlier = before
                .threads
                .iter()
                .find(|t| t.tid == thread.tid)
                .map_or(0.0, |t| t.cpu_secs);
            (thread, (thread.cpu_secs - earlier).max(0.0))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command
/// name (field 2) is in parentheses and may hold spaces or parentheses itself, so fields are
/// counted from the last `)`.
pub fn cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("unexpected /proc stat line: {stat:?}");
    };
    // `rest` starts at field 3 (state): utime is field 14, index 11 here.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no CPU time field in /proc stat line {stat:?}"))
    };
    Ok(field(11)? + field(12)?)
}

/// (VmHWM, VmRSS) in KiB from `/proc/PID/status`.
pub fn memory_kib(status: &str) -> anyhow::Result<(u64, u64)> {
    let value = |key: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {key} in /proc status"))
    };
    Ok((value("VmHWM:")?, value("VmRSS:")?))
}

/// `getconf CLK_TCK`; 100 (Linux's value on every common architecture) if that fails.
fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (duet (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(stat).expect("parses"), 325);
        assert!(cpu_ticks("garbage").is_err());
        assert!(cpu_ticks("1 (x) S 1 2").is_err());
    }

    #[test]
    fn memory_is_read_from_the_status_lines() {
        let status = "Name:\tduet\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(memory_kib(status).expect("parses"), (51_200, 40_960));
        assert!(memory_kib("Name:\tduet\n").is_err());
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = sample(std::process::id()).expect("our own /proc entry");
        assert!(me.rss_kib > 0 && me.peak_rss_kib >= me.rss_kib, "{me:?}");
        assert!(
            me.threads.iter().any(|t| t.tid == std::process::id()),
            "the main thread is one of {:?}",
            me.threads
        );
        let machine = me.machine.expect("/proc/stat");
        assert!(machine.total_secs >= machine.busy_secs && machine.busy_secs > 0.0);
        assert!(sample(u32::MAX).is_err());
    }

    #[test]
    fn command_names_may_hold_spaces_and_parentheses() {
        assert_eq!(
            command_name("7 (sqlx-sqlite-wor) S 1"),
            Some("sqlx-sqlite-wor")
        );
        assert_eq!(command_name("7 (duet (x) y) S 1"), Some("duet (x) y"));
        assert_eq!(command_name("garbage"), None);
    }

    #[test]
    fn machine_time_counts_idle_and_iowait_as_not_busy() {
        let stat = "cpu  100 5 20 300 40 3 2 1 0 0\ncpu0 50 2 10 150 20 1 1 0 0 0\nintr 1\n";
        assert_eq!(machine_ticks(stat).expect("parses"), (131, 471));
        assert!(machine_ticks("cpu  1 2 3\n").is_err());
        assert!(machine_ticks("intr 1\n").is_err());
    }

    fn thread(tid: u32, name: &str, cpu_secs: f64) -> ThreadTime {
        ThreadTime {
            tid,
            name: name.into(),
            cpu_secs,
        }
    }

    fn with_threads(threads: Vec<ThreadTime>) -> Sample {
        Sample {
            cpu_secs: threads.iter().map(|t| t.cpu_secs).sum(),
            peak_rss_kib: 1,
            rss_kib: 1,
            threads,
            machine: None,
        }
    }

    #[test]
    fn the_busiest_thread_is_the_one_that_spent_the_most_in_between() {
        let before = with_threads(vec![thread(1, "main", 50.0), thread(2, "writer", 1.0)]);
        // The main thread has the most in all, the writer the most since `before`; a thread
        // that started in between counts from zero.
        let after = with_threads(vec![
            thread(1, "main", 51.0),
            thread(2, "writer", 4.5),
            thread(3, "late", 2.0),
        ]);
        let (busiest, secs) = busiest_thread(&before, &after).expect("threads");
        assert_eq!((busiest.name.as_str(), secs), ("writer", 3.5));
        assert!(busiest_thread(&before, &with_threads(Vec::new())).is_none());
    }
}
