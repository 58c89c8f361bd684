//! Resource alarms. A monitor task samples free disk space in the data directory and the
//! broker's resident memory; while free disk is below the limit (RabbitMQ's disk_free_limit)
//! or memory above the high watermark (vm_memory_high_watermark, default 40% of RAM) the alarm
//! is raised and every connection that publishes stops being read (and is told connection.blocked if it announced the
//! capability), while consumers keep draining. The alarm state has one owner, the monitor,
//! and is broadcast through a watch channel.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Which alarms are raised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alarms {
    pub disk: bool,
    pub memory: bool,
}

impl Alarms {
    pub fn any(&self) -> bool {
        self.disk || self.memory
    }

    /// The reason given in connection.blocked, as RabbitMQ words it.
    pub fn reason(&self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory and disk",
            (true, false) => "low on memory",
            _ => "low on disk",
        }
    }
}

/// Alarm state and limits shared by the broker.
pub struct AlarmMonitor {
    /// Free-space limit in bytes; adjustable at run time.
    pub disk_free_limit: AtomicU64,
    /// Resident-memory limit in bytes; adjustable at run time.
    pub memory_limit: AtomicU64,
    state: watch::Sender<Alarms>,
}

impl AlarmMonitor {
    pub fn new(disk_free_limit: u64, memory_limit: u64) -> Arc<Self> {
        let (state, _) = watch::channel(Alarms::default());
        Arc::new(AlarmMonitor {
            disk_free_limit: AtomicU64::new(disk_free_limit),
            memory_limit: AtomicU64::new(memory_limit),
            state,
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Alarms> {
        self.state.subscribe()
    }

    pub fn current(&self) -> Alarms {
        *self.state.borrow()
    }

    /// Re-evaluates the disk alarm now.
    pub fn check_disk(&self, dir: &Path) {
        let Some(free) = free_bytes(dir) else { return };
        let limit = self.disk_free_limit.load(Ordering::Relaxed);
        let low = free < limit;
        let was = self.current().disk;
        if low != was {
            if low {
                tracing::warn!(
                    free,
                    limit,
                    "disk resource limit alarm set: publishers blocked"
                );
            } else {
                tracing::info!(free, limit, "disk resource limit alarm cleared");
            }
            self.state.send_modify(|a| a.disk = low);
        }
    }

    /// Re-evaluates the memory alarm now.
    pub fn check_memory(&self) {
        let Some(rss) = resident_bytes() else { return };
        let limit = self.memory_limit.load(Ordering::Relaxed);
        let high = limit != 0 && rss > limit;
        if high != self.current().memory {
            if high {
                tracing::warn!(
                    rss,
                    limit,
                    "memory resource limit alarm set: publishers blocked"
                );
            } else {
                tracing::info!(rss, limit, "memory resource limit alarm cleared");
            }
            self.state.send_modify(|a| a.memory = high);
        }
    }

    /// Samples until the broker shuts down.
    pub async fn run(
        self: Arc<Self>,
        dir: std::path::PathBuf,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let me = self.clone();
                    let dir = dir.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        me.check_disk(&dir);
                        me.check_memory();
                    })
                    .await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The process's resident set size.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

/// Total physical memory.
pub fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Bytes available to unprivileged users on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_follows_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let m = AlarmMonitor::new(u64::MAX, 0);
        m.check_disk(dir.path());
        assert!(m.current().disk);
        m.disk_free_limit.store(0, Ordering::Relaxed);
        m.check_disk(dir.path());
        assert!(!m.current().disk);
        assert!(free_bytes(dir.path()).unwrap() > 0);
        m.memory_limit.store(1, Ordering::Relaxed);
        m.check_memory();
        assert!(m.current().memory && m.current().reason() == "low on memory");
        m.memory_limit.store(0, Ordering::Relaxed);
        m.check_memory();
        assert!(!m.current().memory);
    }
}
