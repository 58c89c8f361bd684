//! Process sampling from /proc: CPU time (utime + stime) and resident memory.

use std::sync::OnceLock;
use std::time::Instant;

/// Clock ticks per second for /proc/*/stat times; 100 on every Linux the tool targets.
const CLK_TCK: f64 = 100.0;

/// The instant all timestamps in message bodies are relative to (producers and consumers share
/// the process, so a monotonic clock is enough).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Bytes 8..16 of every body this process publishes: consumers only trust a timestamp marked
/// with their own process's id, so messages left over from another run never count.
pub fn run_marker() -> [u8; 8] {
    static MARKER: OnceLock<[u8; 8]> = OnceLock::new();
    *MARKER.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (wall ^ (u64::from(std::process::id()) << 40)).to_be_bytes()
    })
}

/// Nanoseconds since [`epoch`].
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// CPU seconds (user + system, all threads) of `pid` ("self" for this process).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLK_TCK)
}

/// A `/proc/PID/status` field in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_self() {
        assert!(cpu_seconds("self").is_some());
        assert!(status_kib("self", "VmRSS").unwrap() > 0);
        assert!(status_kib("self", "NoSuchField").is_none());
    }
}
