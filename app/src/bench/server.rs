//! The server's own cost, when it runs on this machine: CPU time from `/proc/PID/stat`
//! (utime + stime) and memory from `/proc/PID/status` (VmHWM, the peak, and VmRSS).

use std::path::PathBuf;

use anyhow::{Context, bail};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// User + system CPU time so far, in seconds.
    pub cpu_secs: f64,
    /// Peak resident set (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Resident set now (VmRSS), KiB.
    pub rss_kib: u64,
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
    let ticks = cpu_ticks(&stat)?;
    let (peak_rss_kib, rss_kib) = memory_kib(&status)?;
    Ok(Sample {
        cpu_secs: ticks as f64 / clock_ticks_per_sec(),
        peak_rss_kib,
        rss_kib,
    })
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
        assert!(sample(u32::MAX).is_err());
    }
}
