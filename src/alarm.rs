//! Resource alarms. A monitor task samples free disk space in the data directory and the
//! broker's resident memory; while free disk is below the limit (RabbitMQ's disk_free_limit)
//! or memory above the high watermark (vm_memory_high_watermark, default 40% of RAM or of the
//! cgroup memory limit, whichever is lower) the alarm is raised and every connection that
//! publishes stops being read (and is told connection.blocked if it announced the capability),
//! while consumers keep draining. The alarm state has one owner, the monitor, and is broadcast
//! through a watch channel.

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

/// Memory the broker may use: physical memory, or its cgroup's limit when that is lower. In a
/// container the limit is what the OOM killer enforces; a watermark taken from the host's RAM
/// could lie above it and never fire.
pub fn total_memory() -> Option<u64> {
    let host = physical_memory();
    let limit = cgroup_memory_limit(Path::new("/proc/self/cgroup"), Path::new("/sys/fs/cgroup"));
    match (host, limit) {
        (Some(h), Some(l)) => Some(h.min(l)),
        (h, l) => h.or(l),
    }
}

fn physical_memory() -> Option<u64> {
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

/// The lowest memory limit on the cgroup this process is in (`proc_cgroup`, as in
/// /proc/self/cgroup) or on any cgroup above it, read under `root` (/sys/fs/cgroup): cgroup v2's
/// `memory.max` or v1's `memory/memory.limit_in_bytes`. None when nothing sets one.
pub fn cgroup_memory_limit(proc_cgroup: &Path, root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_cgroup).ok()?;
    let mut lowest: Option<u64> = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (dir, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        // Without a cgroup namespace a container sees its host-side path, which does not exist
        // under its own /sys/fs/cgroup; its limit is then found at an ancestor (the root).
        let mut at = Some(Path::new(path.trim_start_matches('/')));
        while let Some(p) = at {
            if let Some(v) = read_limit(&dir.join(p).join(file)) {
                lowest = Some(lowest.map_or(v, |l| l.min(v)));
            }
            at = p.parent();
        }
    }
    lowest
}

/// A limit file's value; None for "max" (v2) or v1's near-2^63 "unlimited".
fn read_limit(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: u64 = text.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
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

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn cgroup_limits_are_read_from_v2_v1_and_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let (proc_cgroup, root) = (dir.path().join("cgroup"), dir.path().join("fs"));
        assert_eq!(cgroup_memory_limit(&proc_cgroup, &root), None, "no file");

        // v2 in a container (cgroup namespace: the container's cgroup is the root).
        write(&proc_cgroup, "0::/\n");
        write(&root.join("memory.max"), "536870912\n");
        assert_eq!(cgroup_memory_limit(&proc_cgroup, &root), Some(536870912));
        write(&root.join("memory.max"), "max\n");
        assert_eq!(cgroup_memory_limit(&proc_cgroup, &root), None);

        // v2 on a host: a service's own cgroup has no limit, its parent slice has.
        write(&proc_cgroup, "0::/system.slice/warren.service\n");
        write(
            &root.join("system.slice/warren.service/memory.max"),
            "max\n",
        );
        write(&root.join("system.slice/memory.max"), "1000000\n");
        assert_eq!(cgroup_memory_limit(&proc_cgroup, &root), Some(1000000));
        write(
            &root.join("system.slice/warren.service/memory.max"),
            "999\n",
        );
        assert_eq!(cgroup_memory_limit(&proc_cgroup, &root), Some(999));

        // v1 without a cgroup namespace: the host-side path is absent, the root holds the limit.
        let root = dir.path().join("v1");
        write(
            &proc_cgroup,
            "12:memory:/docker/0123abcd\n5:cpu,cpuacct:/docker/0123abcd\n",
        );
        write(&root.join("cpu,cpuacct/cpu.shares"), "1024\n");
        write(&root.join("memory/memory.limit_in_bytes"), "268435456\n");
        assert_eq!(cgroup_memory_limit(&proc_cgroup, &root), Some(268435456));
        write(
            &root.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        assert_eq!(
            cgroup_memory_limit(&proc_cgroup, &root),
            None,
            "v1 unlimited"
        );
    }

    #[test]
    fn total_memory_is_at_most_physical_memory() {
        let total = total_memory().unwrap();
        assert!(total > 0 && total <= physical_memory().unwrap());
    }

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
