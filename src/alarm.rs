//! Resource alarms. A monitor task samples free disk space in the data directory; while it is
//! below the limit (RabbitMQ's disk_free_limit) the alarm is raised and every connection that
//! publishes stops being read (and is told connection.blocked if it announced the
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
}

impl Alarms {
    pub fn any(&self) -> bool {
        self.disk
    }

    /// The reason given in connection.blocked, as RabbitMQ words it.
    pub fn reason(&self) -> &'static str {
        "low on disk"
    }
}

/// Alarm state and limits shared by the broker.
pub struct AlarmMonitor {
    /// Free-space limit in bytes; adjustable at run time.
    pub disk_free_limit: AtomicU64,
    state: watch::Sender<Alarms>,
}

impl AlarmMonitor {
    pub fn new(disk_free_limit: u64) -> Arc<Self> {
        let (state, _) = watch::channel(Alarms::default());
        Arc::new(AlarmMonitor {
            disk_free_limit: AtomicU64::new(disk_free_limit),
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
                    let _ = tokio::task::spawn_blocking(move || me.check_disk(&dir)).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
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
        let m = AlarmMonitor::new(u64::MAX);
        m.check_disk(dir.path());
        assert!(m.current().disk);
        m.disk_free_limit.store(0, Ordering::Relaxed);
        m.check_disk(dir.path());
        assert!(!m.current().disk);
        assert!(free_bytes(dir.path()).unwrap() > 0);
    }
}
