//! Store tests: shared bodies run against every store, and a property test of the disk store
//! against a model, including reopening after a simulated crash and a torn tail.

use super::*;
use crate::store::memory::MemoryStore;
use crate::store::sync::SyncCoordinator;
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn message(body: &[u8], persistent: bool) -> Arc<Message> {
    let props = if persistent {
        amq_protocol::protocol::BasicProperties::default().with_delivery_mode(2)
    } else {
        amq_protocol::protocol::BasicProperties::default().with_delivery_mode(1)
    };
    Arc::new(Message {
        exchange: "ex".into(),
        routing_key: "rk".into(),
        raw_properties: crate::protocol::codec::encode_properties(&props),
        properties: Box::new(props),
        body: Bytes::copy_from_slice(body),
    })
}

fn qm(seq: u64, persistent: bool) -> QueuedMessage {
    QueuedMessage::new(
        seq,
        message(format!("body-{seq}").as_bytes(), persistent),
        0,
    )
}

fn coord() -> Arc<SyncCoordinator> {
    SyncCoordinator::start(false)
}

/// Every store: FIFO, requeue to the original place, counts, purge.
fn common_behaviour(store: &mut dyn QueueStore) {
    for seq in 1..=10 {
        assert!(store.push(qm(seq, seq % 2 == 0)));
    }
    assert_eq!(store.len(), 10);
    let a = store.pop().unwrap();
    let b = store.pop().unwrap();
    assert_eq!((a.seq, b.seq), (1, 2));
    store.requeue(b);
    store.requeue(a);
    let order: Vec<u64> = std::iter::from_fn(|| store.pop()).map(|m| m.seq).collect();
    assert_eq!(order, (1..=10).collect::<Vec<_>>());
    assert_eq!(store.len(), 0);
    assert_eq!(store.bytes(), 0);
    for seq in 11..=15 {
        store.push(qm(seq, true));
    }
    assert_eq!(store.purge(), 5);
    assert!(store.pop().is_none());
}

#[test]
fn memory_store_common_behaviour() {
    common_behaviour(&mut MemoryStore::default());
}

#[test]
fn disk_store_common_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, next) = DiskStore::open(dir.path().join("q"), true, coord());
    assert_eq!(next, 1);
    common_behaviour(&mut s);
}

#[test]
fn disk_store_spills_beyond_the_head_cache_and_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = DiskStore::open(dir.path().join("q"), false, coord());
    let n = MEM_MAX_MESSAGES as u64 * 3;
    for seq in 1..=n {
        assert!(s.push(qm(seq, false)));
    }
    assert_eq!(s.len() as u64, n);
    assert!(
        s.disk_count > 0,
        "messages beyond the cache live on disk only"
    );
    for seq in 1..=n {
        let m = s.pop().unwrap();
        assert_eq!(m.seq, seq);
        assert_eq!(&m.msg.body[..], format!("body-{seq}").as_bytes());
    }
    assert!(s.pop().is_none());
}

#[test]
fn persistent_messages_survive_reopen_transient_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    {
        let (mut s, _) = DiskStore::open(path.clone(), true, coord());
        for seq in 1..=6 {
            s.push(qm(seq, seq <= 3));
        }
        // Deliver 1 (unacked at "crash"), ack 2.
        let m1 = s.pop().unwrap();
        s.delivered(m1.seq);
        s.write_delivered();
        let m2 = s.pop().unwrap();
        s.ack(&m2);
    }
    let (mut s, next) = DiskStore::open(path, true, coord());
    assert_eq!(
        next, 4,
        "only persistent records reach disk; seqs after them are free"
    );
    let got: Vec<(u64, bool)> = std::iter::from_fn(|| s.pop())
        .map(|m| (m.seq, m.redelivered))
        .collect();
    assert_eq!(got, vec![(1, true), (3, false)]);
}

/// A store at `path` holding persistent messages 1..=n, written out and closed.
fn write_persistent(path: &std::path::Path, n: u64) {
    let (mut s, _) = DiskStore::open(path.to_path_buf(), true, coord());
    for seq in 1..=n {
        assert!(s.push(qm(seq, true)));
    }
    assert!(s.flush());
}

#[test]
fn torn_tail_is_truncated_and_appends_continue() {
    // A crash tears the last record: the file ends inside it, or (written ahead with zeroes)
    // its last bytes never reached the disk.
    for zeroed in [false, true] {
        torn_tail_case(zeroed);
    }
}

fn torn_tail_case(zeroed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    write_persistent(&path, 3);
    let seg = path.join(format!("{:010}.seg", 1));
    let end = seg_len(&path, 1);
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    if zeroed {
        f.write_all_at(&[0; 3], end - 3).unwrap();
    } else {
        f.set_len(end - 3).unwrap();
    }
    drop(f);
    {
        let (mut s, next) = DiskStore::open(path.clone(), true, coord());
        assert_eq!(next, 3, "the torn third record is gone");
        assert_eq!(s.len(), 2);
        s.push(qm(next, true));
    }
    let (mut s, _) = DiskStore::open(path, true, coord());
    let seqs: Vec<u64> = std::iter::from_fn(|| s.pop()).map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn corrupt_record_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    write_persistent(&path, 3);
    let seg = path.join(format!("{:010}.seg", 1));
    let mut data = std::fs::read(&seg).unwrap();
    // Flip a byte inside the second record's body.
    let first_len = u32::from_le_bytes(data[16..20].try_into().unwrap()) as usize + 8;
    let at = 16 + first_len + 30;
    data[at] ^= 0x55;
    std::fs::write(&seg, &data).unwrap();
    let (mut s, _) = DiskStore::open(path, true, coord());
    let seqs: Vec<u64> = std::iter::from_fn(|| s.pop()).map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 3]);
}

#[test]
fn seqs_do_not_go_back_after_a_drained_queue_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    {
        let (mut s, _) = DiskStore::open(path.clone(), true, coord());
        for seq in 1..=3 {
            s.push(qm(seq, true));
        }
        while let Some(m) = s.pop() {
            s.delivered(m.seq);
            s.write_delivered();
            s.ack(&m);
        }
    }
    // The first restart deletes the drained segment; a crash before anything new is written
    // leaves no record of seqs 1..=3 but the delivered mark.
    let (_, next) = DiskStore::open(path.clone(), true, coord());
    assert_eq!(next, 4);
    let (mut s, next) = DiskStore::open(path.clone(), true, coord());
    assert_eq!(next, 4, "a fresh message must not reuse a delivered seq");
    s.push(qm(next, true));
    drop(s);
    let (mut s, _) = DiskStore::open(path, true, coord());
    let m = s.pop().expect("the new message is recovered");
    assert!(!m.redelivered, "never delivered, so not redelivered");
}

#[test]
fn fully_acked_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (mut s, _) = DiskStore::open(path.clone(), true, coord());
    let big = vec![7u8; 1024 * 1024];
    for seq in 1..=20 {
        let m = QueuedMessage {
            seq,
            msg: message(&big, true),
            redelivered: false,
            stored: false,
            expires_at: 0,
            delivery_count: 0,
        };
        s.push(m);
    }
    let segs = || {
        std::fs::read_dir(&path)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count()
    };
    assert!(segs() >= 3);
    while let Some(m) = s.pop() {
        s.ack(&m);
    }
    assert_eq!(segs(), 1, "only the append head remains");
}

/// Where a segment's records end: the file may run on with zeroes written ahead.
fn seg_len(path: &std::path::Path, id: u64) -> u64 {
    let data = std::fs::read(path.join(format!("{id:010}.seg"))).unwrap_or_default();
    let mut off = HEADER_LEN.min(data.len());
    while let segment::Scan::Record(len) = segment::scan(&data[off..], 1 << 30) {
        off += len;
    }
    assert!(
        data[off..].iter().all(|&b| b == 0),
        "only zeroes follow the records"
    );
    off as u64
}

/// What a reopen finds: the seqs of the recovered ready messages, in order.
fn recovered(path: &std::path::Path) -> Vec<u64> {
    let (mut s, _) = DiskStore::open(path.to_path_buf(), true, coord());
    std::iter::from_fn(|| s.pop()).map(|m| m.seq).collect()
}

#[test]
fn appends_reach_the_file_only_when_flushed_and_then_in_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (mut s, _) = DiskStore::open(path.clone(), true, coord());
    let mut expected = HEADER_LEN as u64;
    for seq in 1..=5 {
        let m = qm(seq, true);
        expected += segment::record_len(&m.msg) as u64;
        assert!(s.push(m));
    }
    assert_eq!(
        seg_len(&path, 1),
        HEADER_LEN as u64,
        "records wait in the write buffer"
    );
    assert!(s.flush());
    assert_eq!(seg_len(&path, 1), expected);
    assert!(s.flush(), "an empty flush succeeds");
    assert_eq!(seg_len(&path, 1), expected);
    let file_len = std::fs::metadata(path.join("0000000001.seg"))
        .unwrap()
        .len();
    assert!(
        file_len >= 2 * expected,
        "the file is written ahead of the records ({file_len} for {expected})"
    );
    // A crash (no destructor) after the flush keeps every flushed record.
    std::mem::forget(s);
    assert_eq!(recovered(&path), vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_crash_loses_only_appends_not_yet_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (mut s, _) = DiskStore::open(path.clone(), true, coord());
    for seq in 1..=3 {
        assert!(s.push(qm(seq, true)));
    }
    assert!(s.flush());
    for seq in 4..=5 {
        assert!(s.push(qm(seq, true)));
    }
    std::mem::forget(s);
    assert_eq!(recovered(&path), vec![1, 2, 3]);
}

#[test]
fn the_write_buffer_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (mut s, _) = DiskStore::open(path.clone(), true, coord());
    let body = vec![7u8; 10 * 1024];
    let n = 3 * WRITE_BUF_MAX / body.len();
    for seq in 1..=n as u64 {
        assert!(s.push(QueuedMessage::new(seq, message(&body, true), 0)));
        assert!(s.wbuf.len() < WRITE_BUF_MAX, "buffer grew past its cap");
    }
    assert!(
        seg_len(&path, 1) > 2 * WRITE_BUF_MAX as u64,
        "full buffers were written without a flush"
    );
    // A message larger than the cap is written at once and its memory given back.
    let big = vec![1u8; 4 * WRITE_BUF_MAX];
    assert!(s.push(QueuedMessage::new(n as u64 + 1, message(&big, true), 0)));
    assert!(s.wbuf.is_empty() && s.wbuf.capacity() <= WRITE_BUF_MAX);
    std::mem::forget(s);
    assert_eq!(recovered(&path).len(), n + 1);
}

#[test]
fn the_disk_run_reads_records_still_in_the_write_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (mut s, _) = DiskStore::open(path.clone(), true, coord());
    let n = MEM_MAX_MESSAGES as u64 + 50;
    for seq in 1..=n {
        assert!(s.push(qm(seq, true)));
    }
    assert!(
        !s.wbuf.is_empty(),
        "the test needs buffered disk-run records"
    );
    let seqs: Vec<u64> = std::iter::from_fn(|| s.pop()).map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    assert_eq!(s.len(), 0);
}

#[test]
fn a_failed_write_is_reported_by_every_later_flush_and_refuses_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let (mut s, _) = DiskStore::open(path.clone(), true, coord());
    assert!(s.push(qm(1, true)));
    assert!(s.flush());
    assert!(s.push(qm(2, true)));
    // The disk "fails": the head's handle can no longer write (a read-only handle, EBADF).
    let ro = File::open(path.join(format!("{:010}.seg", 1))).unwrap();
    s.segments.back_mut().unwrap().file = Arc::new(ro);
    assert!(!s.flush(), "the buffered record could not be written");
    assert!(!s.flush(), "the failure is sticky");
    assert!(!s.push(qm(3, true)), "a failed store refuses publishes");
    std::mem::forget(s);
    assert_eq!(recovered(&path), vec![1]);
}

/// Operations of the model test.
#[derive(Clone, Debug)]
enum Op {
    Push(bool),
    Pop,
    AckOldest,
    RequeueOldest,
    Flush,
    Reopen,
    /// A multiple ack of the oldest n deliveries (`ack_many`), newest first to mix segments.
    AckMany(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(Op::Push),
        3 => Just(Op::Pop),
        2 => Just(Op::AckOldest),
        1 => Just(Op::RequeueOldest),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        2 => (1usize..8).prop_map(Op::AckMany),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The disk store against a model: ready messages come out in seq order; after a reopen
    /// (a crash: the store is forgotten, so its buffer is never written and nothing is
    /// fsynced) the persistent, unacked messages remain, including those that were delivered
    /// and not acked: all of those pushed before the last flush, and those pushed later only
    /// if something else wrote them (a full buffer, a read of the disk run).
    #[test]
    fn disk_store_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let c = coord();
        let (mut s, mut next) = DiskStore::open(path.clone(), true, c.clone());
        let mut ready: BTreeSet<u64> = BTreeSet::new();
        let mut persistent: BTreeSet<u64> = BTreeSet::new();
        let mut unacked: Vec<QueuedMessage> = Vec::new();
        // Persistent seqs flushed, so certain to survive a crash unless acked.
        let mut flushed: BTreeSet<u64> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Push(p) => {
                    prop_assert!(s.push(qm(next, p)));
                    ready.insert(next);
                    if p { persistent.insert(next); }
                    next += 1;
                }
                Op::Pop => {
                    let got = s.pop().map(|m| { let seq = m.seq; unacked.push(m); seq });
                    let want = ready.pop_first();
                    prop_assert_eq!(got, want);
                }
                Op::AckOldest => {
                    if !unacked.is_empty() {
                        let m = unacked.remove(0);
                        s.ack(&m);
                        persistent.remove(&m.seq);
                        flushed.remove(&m.seq);
                    }
                }
                Op::AckMany(n) => {
                    let n = n.min(unacked.len());
                    let taken: Vec<QueuedMessage> = unacked.drain(..n).rev().collect();
                    s.ack_many(&mut taken.iter());
                    for m in &taken {
                        persistent.remove(&m.seq);
                        flushed.remove(&m.seq);
                    }
                }
                Op::Flush => {
                    prop_assert!(s.flush());
                    flushed = persistent.clone();
                }
                Op::RequeueOldest => {
                    if !unacked.is_empty() {
                        let m = unacked.remove(0);
                        ready.insert(m.seq);
                        s.requeue(m);
                    }
                }
                Op::Reopen => {
                    std::mem::forget(s);
                    let (mut s2, n2) = DiskStore::open(path.clone(), true, c.clone());
                    // seqs of lost transient messages may be reused only above the max kept.
                    prop_assert!(n2 <= next);
                    next = next.max(n2);
                    let mut found: Vec<QueuedMessage> = std::iter::from_fn(|| s2.pop()).collect();
                    let seqs: Vec<u64> = found.iter().map(|m| m.seq).collect();
                    prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", seqs);
                    let got: BTreeSet<u64> = seqs.iter().copied().collect();
                    prop_assert!(flushed.is_subset(&got), "lost flushed {:?}, got {:?}", flushed, got);
                    prop_assert!(got.is_subset(&persistent), "resurrected: {:?} of {:?}", got, persistent);
                    for m in found.drain(..).rev() {
                        s2.requeue(m);
                    }
                    s = s2;
                    persistent = got;
                    flushed = persistent.clone();
                    ready = persistent.clone();
                    unacked.clear();
                }
            }
            prop_assert_eq!(s.len(), ready.len());
        }
    }
}
