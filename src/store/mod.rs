//! Where a queue keeps its ready messages. The queue talks only to [`QueueStore`], so the disk
//! store slots in beside the in-memory one without the queue changing.

pub mod definitions;
pub mod disk;
pub mod memory;
pub mod priority;
pub mod segment;
pub mod sync;

use crate::message::Message;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A message inside a queue: its queue-local sequence number orders it, so a requeued message
/// goes back to its original place.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    /// Monotonic per queue; ready messages are kept in `seq` order.
    pub seq: u64,
    pub msg: Arc<Message>,
    /// Set once the message has been delivered and returned.
    pub redelivered: bool,
    /// The store holds a durable copy that an ack must retire.
    pub stored: bool,
    /// When the message expires (ms since the epoch, 0 = never): queue or per-message TTL.
    pub expires_at: u64,
    /// Unsuccessful deliveries so far (returned by nack/reject/requeue), for x-delivery-limit.
    pub delivery_count: u32,
}

impl QueuedMessage {
    /// A newly published message.
    pub fn new(seq: u64, msg: Arc<Message>, expires_at: u64) -> Self {
        QueuedMessage {
            seq,
            msg,
            redelivered: false,
            stored: false,
            expires_at,
            delivery_count: 0,
        }
    }
}

/// Storage of a queue's ready messages. Unacked messages are held by the channel that received
/// them; the store hears about them again only through `requeue` or `ack`.
pub trait QueueStore: Send {
    /// Appends a newly published message (its `seq` is larger than any before). False when
    /// the store could not take it (a write failed): the publish must be refused, not lost.
    /// A durable copy may only be buffered: it is written by [`QueueStore::flush`].
    fn push(&mut self, m: QueuedMessage) -> bool;
    /// Writes what `push` buffered (one write for all of it) and registers it with group
    /// commit; a confirm epoch requested after this covers it. False if a write failed since
    /// the store opened (this one or an earlier one): messages pushed before may not be
    /// durable, so their publishes must be nacked. No-op for stores that buffer nothing.
    fn flush(&mut self) -> bool {
        true
    }
    /// Takes the oldest ready message.
    fn pop(&mut self) -> Option<QueuedMessage>;
    /// Puts a delivered message back at its `seq` position.
    fn requeue(&mut self, m: QueuedMessage);
    /// Records that a delivered message is done with.
    fn ack(&mut self, m: &QueuedMessage);
    /// Acks several at once (a multiple ack); stores with ack files write them in one go.
    fn ack_many(&mut self, messages: &mut dyn Iterator<Item = &QueuedMessage>) {
        for m in messages {
            self.ack(m);
        }
    }
    /// Records that stored messages up to `seq` were handed to consumers, so a restart marks
    /// them redelivered. Nothing is written until `write_delivered`.
    fn delivered(&mut self, _seq: u64) {}
    /// Writes the delivered mark if `delivered` raised it. Must happen before the client can
    /// see those deliveries: the consuming connection calls it before its socket write.
    fn write_delivered(&mut self) {}
    /// Removes the store's files (the queue was deleted).
    fn destroy(&mut self) {}
    /// Ready messages.
    fn len(&self) -> usize;
    /// Body bytes of ready messages.
    fn bytes(&self) -> u64;
    /// Drops every ready message, returning how many.
    fn purge(&mut self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where queue stores live and how they are made durable; one per broker.
pub struct StoreEnv {
    pub data_dir: PathBuf,
    pub coord: Arc<sync::SyncCoordinator>,
    next_transient: AtomicU64,
    /// The durable definitions log, set once boot has replayed it (changes made while
    /// replaying are not logged again).
    defs: std::sync::OnceLock<(definitions::DefinitionsLog, Arc<sync::SyncFile>)>,
}

impl StoreEnv {
    /// Prepares the data directory: transient spill files of a previous run are discarded.
    pub fn new(data_dir: PathBuf, fsync: bool) -> std::io::Result<Self> {
        let transient = data_dir.join("transient");
        if transient.exists() {
            std::fs::remove_dir_all(&transient)?;
        }
        std::fs::create_dir_all(data_dir.join("queues"))?;
        Ok(StoreEnv {
            data_dir,
            coord: sync::SyncCoordinator::start(fsync),
            next_transient: AtomicU64::new(1),
            defs: std::sync::OnceLock::new(),
        })
    }

    /// Starts logging topology changes to `log`.
    pub fn set_definitions_log(&self, log: definitions::DefinitionsLog) {
        let file = sync::SyncFile::new(log.file());
        let _ = self.defs.set((log, file));
    }

    /// Appends a durable topology change. It reaches disk with the next group commit, so any
    /// confirm issued after this call also covers it.
    pub fn log(&self, op: &definitions::DefOp) {
        let Some((log, file)) = self.defs.get() else {
            return;
        };
        match log.append(op) {
            Ok(()) => self.coord.mark_dirty(file),
            Err(e) => tracing::error!(error = %e, "cannot append to the definitions log"),
        }
    }

    /// Directory of a durable queue: a hash of vhost and name, so any name is a safe path.
    pub fn queue_dir(&self, vhost: &str, name: &str) -> PathBuf {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(vhost.as_bytes());
        h.update([0]);
        h.update(name.as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.data_dir.join("queues").join(hex)
    }

    /// Opens the store of a queue (recovering a durable one); returns it with the next seq.
    pub fn open_queue(
        &self,
        vhost: &str,
        name: &str,
        durable: bool,
        max_priority: Option<u8>,
    ) -> (Box<dyn QueueStore>, u64) {
        let dir = if durable {
            self.queue_dir(vhost, name)
        } else {
            let n = self.next_transient.fetch_add(1, Ordering::Relaxed);
            self.data_dir.join("transient").join(n.to_string())
        };
        let Some(max) = max_priority else {
            let (store, next) = disk::DiskStore::open(dir, durable, self.coord.clone());
            return (Box::new(store), next);
        };
        let mut next = 1;
        let levels = (0..=max)
            .map(|p| {
                let (s, n) =
                    disk::DiskStore::open(dir.join(format!("p{p}")), durable, self.coord.clone());
                next = next.max(n);
                Box::new(s) as Box<dyn QueueStore>
            })
            .collect();
        (Box::new(priority::PriorityStore::new(levels)), next)
    }

    /// Deletes durable queue directories no live queue claims (a crash between a queue's
    /// deletion from the definitions and the removal of its files).
    pub fn remove_orphans(&self, live: &std::collections::HashSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(self.data_dir.join("queues")) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if !live.contains(&p) {
                tracing::warn!(dir = %p.display(), "removing files of a queue that no longer exists");
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
}
