//! Queue store benchmarks: `DiskStore` (the broker's store) against `MemoryStore`, with 16-byte
//! messages through the `QueueStore` trait.
//!
//! - `shallow`: push, pop, ack one message at a time (a queue whose consumer keeps up): the
//!   disk store keeps the message in its head cache, and for a persistent message on a durable
//!   queue it still appends a record (one `pwrite`) and writes an ack.
//! - `fill_drain_10k`: push 10,000 messages, then pop and ack them all (a backlog): beyond the
//!   head cache (4,096 messages) the disk store reads the records back from its segment.
//!
//! The sync coordinator runs with fsync off (`SyncCoordinator::start(false)`), so these figures
//! are the store's CPU cost; the fsync cost is the group commit's and is measured end to end by
//! `warren-perf --persistent --confirm`. Stores live in a temporary directory under
//! `$WARREN_BENCH_DIR` (default: the system temp dir).

use amq_protocol::protocol::BasicProperties;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Duration;
use warren::message::Message;
use warren::protocol::codec::encode_properties;
use warren::store::disk::DiskStore;
use warren::store::memory::MemoryStore;
use warren::store::sync::SyncCoordinator;
use warren::store::{QueueStore, QueuedMessage};

const SHALLOW_BATCH: u64 = 1_000;
const BACKLOG: u64 = 10_000;

fn message(persistent: bool) -> Arc<Message> {
    let props = BasicProperties::default().with_delivery_mode(if persistent { 2 } else { 1 });
    Arc::new(Message {
        exchange: String::new(),
        routing_key: "bench-q".into(),
        raw_properties: encode_properties(&props),
        properties: Box::new(props),
        body: Bytes::from_static(b"0123456789abcdef"),
    })
}

/// A store plus the next sequence number to push with.
struct Subject {
    store: Box<dyn QueueStore>,
    seq: u64,
    msg: Arc<Message>,
}

impl Subject {
    fn push(&mut self) {
        let ok = self
            .store
            .push(QueuedMessage::new(self.seq, self.msg.clone(), 0));
        assert!(ok, "store refused a push");
        self.seq += 1;
    }

    fn pop_ack(&mut self) {
        let m = self.store.pop().expect("store lost a message");
        self.store.ack(&m);
    }
}

fn subjects(root: &std::path::Path, coord: &Arc<SyncCoordinator>) -> Vec<(&'static str, Subject)> {
    let disk = |name: &str, durable: bool, persistent: bool| {
        let (store, next) = DiskStore::open(root.join(name), durable, coord.clone());
        Subject {
            store: Box::new(store),
            seq: next,
            msg: message(persistent),
        }
    };
    vec![
        ("disk_durable_persistent", disk("dp", true, true)),
        ("disk_transient", disk("t", false, false)),
        (
            "memory",
            Subject {
                store: Box::<MemoryStore>::default(),
                seq: 1,
                msg: message(false),
            },
        ),
    ]
}

fn store(c: &mut Criterion) {
    let base = std::env::var_os("WARREN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let coord = SyncCoordinator::start(false);

    let mut g = c.benchmark_group("store_shallow");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(SHALLOW_BATCH));
    for (name, mut s) in subjects(&dir.path().join("shallow"), &coord) {
        g.bench_function(BenchmarkId::new("push_pop_ack", name), |b| {
            b.iter(|| {
                for _ in 0..SHALLOW_BATCH {
                    s.push();
                    s.pop_ack();
                }
            })
        });
        assert!(s.store.is_empty());
    }
    g.finish();

    let mut g = c.benchmark_group("store_backlog");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(30);
    g.throughput(Throughput::Elements(BACKLOG));
    for (name, mut s) in subjects(&dir.path().join("backlog"), &coord) {
        g.bench_function(BenchmarkId::new("fill_drain_10k", name), |b| {
            b.iter(|| {
                for _ in 0..BACKLOG {
                    s.push();
                }
                assert_eq!(s.store.len() as u64, BACKLOG);
                for _ in 0..BACKLOG {
                    s.pop_ack();
                }
            })
        });
        assert!(s.store.is_empty());
    }
    g.finish();
    coord.stop();
}

criterion_group!(benches, store);
criterion_main!(benches);
