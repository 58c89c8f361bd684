//! Group commit. Writers append to files without syncing, register the file as dirty and ask
//! for an epoch; one sync thread repeatedly takes every dirty file, `fdatasync`s them, and
//! publishes the epoch it covered. A publisher confirm waits for its epoch, so one fsync covers
//! everything written since the previous one and batching grows with load, with no timer.
//!
//! Invariant: a write that completed before `request()` returned epoch `e` is on disk once the
//! published epoch is >= `e`. The epoch bump and the take of the dirty list happen under the
//! same lock, after which any writer reading the old epoch had already registered its file.
//! An fsync failure is final: the state becomes `Failed` and nothing more is ever confirmed.

use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::watch;

/// A file the sync thread can flush.
pub struct SyncFile {
    pub file: Arc<File>,
    dirty: AtomicBool,
}

impl SyncFile {
    pub fn new(file: Arc<File>) -> Arc<Self> {
        Arc::new(SyncFile {
            file,
            dirty: AtomicBool::new(false),
        })
    }
}

/// What the sync thread has achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Everything written before epoch `n` was requested is durable.
    Synced(u64),
    /// fsync failed; the store is stopped.
    Failed,
}

struct Pending {
    dirty: Vec<Arc<SyncFile>>,
    requested: u64,
    stop: bool,
}

/// The group-commit coordinator shared by every store of a broker.
pub struct SyncCoordinator {
    pending: Mutex<Pending>,
    wake: Condvar,
    epoch: AtomicU64,
    state: watch::Sender<SyncState>,
    /// `--no-fsync`: confirm after the write, as RabbitMQ classic queues do.
    fsync: bool,
}

impl SyncCoordinator {
    /// Starts the sync thread.
    pub fn start(fsync: bool) -> Arc<Self> {
        let (state, _) = watch::channel(SyncState::Synced(0));
        let coord = Arc::new(SyncCoordinator {
            pending: Mutex::new(Pending {
                dirty: Vec::new(),
                requested: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            epoch: AtomicU64::new(1),
            state,
            fsync,
        });
        let c = coord.clone();
        let spawned = std::thread::Builder::new()
            .name("warren-sync".into())
            .spawn(move || c.run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the sync thread; nothing will be confirmed");
            coord.state.send_replace(SyncState::Failed);
        }
        coord
    }

    /// Whether confirms wait for fsync at all.
    pub fn fsync_enabled(&self) -> bool {
        self.fsync
    }

    /// Registers a file written since its last sync.
    pub fn mark_dirty(&self, f: &Arc<SyncFile>) {
        if !f.dirty.swap(true, Ordering::SeqCst) {
            self.pending.lock().dirty.push(f.clone());
        }
    }

    /// The epoch a confirm for writes completed so far must wait for; guarantees a sync pass
    /// will publish it.
    pub fn request(&self) -> u64 {
        let mut p = self.pending.lock();
        let e = self.epoch.load(Ordering::SeqCst);
        if p.requested < e {
            p.requested = e;
            self.wake.notify_one();
        }
        e
    }

    /// Watch the published sync state.
    pub fn subscribe(&self) -> watch::Receiver<SyncState> {
        self.state.subscribe()
    }

    pub fn state(&self) -> SyncState {
        *self.state.borrow()
    }

    /// Stops the thread after a final pass.
    pub fn stop(&self) {
        let mut p = self.pending.lock();
        p.stop = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let (epoch, files, stop) = {
                let mut p = self.pending.lock();
                let synced = match *self.state.borrow() {
                    SyncState::Synced(n) => n,
                    SyncState::Failed => return,
                };
                while p.dirty.is_empty() && p.requested <= synced && !p.stop {
                    self.wake.wait(&mut p);
                }
                let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
                let files = std::mem::take(&mut p.dirty);
                for f in &files {
                    f.dirty.store(false, Ordering::SeqCst);
                }
                (epoch, files, p.stop)
            };
            if self.fsync {
                for f in &files {
                    if let Err(e) = f.file.sync_data() {
                        tracing::error!(
                            error = %e,
                            "fsync failed: the message store is stopped and nothing further \
                             will be confirmed; restart the broker once the disk is healthy"
                        );
                        self.state.send_replace(SyncState::Failed);
                        return;
                    }
                }
            }
            self.state.send_replace(SyncState::Synced(epoch));
            if stop {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn request_is_published_after_sync() {
        let coord = SyncCoordinator::start(true);
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("f")).unwrap());
        let sf = SyncFile::new(file.clone());
        (&*file).write_all(b"data").unwrap();
        coord.mark_dirty(&sf);
        let e = coord.request();
        let mut rx = coord.subscribe();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let SyncState::Synced(n) = *rx.borrow_and_update()
                && n >= e
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "epoch {e} never synced"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // A request with nothing dirty still gets published (no waiter hangs).
        let e2 = coord.request();
        while !matches!(coord.state(), SyncState::Synced(n) if n >= e2) {
            assert!(
                std::time::Instant::now() < deadline,
                "epoch {e2} never published"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        coord.stop();
    }
}
