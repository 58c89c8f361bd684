//! The disk-first queue store.
//!
//! Every message of a durable queue published persistent is appended to the queue's current
//! segment; a publisher confirm then waits for group commit. Appends are buffered (`wbuf`) and
//! written with one `pwrite` by [`QueueStore::flush`], which the queue calls at the end of each
//! operation or, for a connection's run of publishes from one socket read, once at the end of
//! the run, before it asks for the confirms' group-commit epoch. Anything that reads the head
//! segment back writes the buffer out first. Ready messages are split in three runs, in `seq`
//! order:
//!
//! 1. `requeued`: messages delivered and given back (bounded by what consumers held);
//! 2. `mem`: a bounded head cache of recent messages, so a queue that keeps up never reads its
//!    own segments back;
//! 3. the disk run: everything after the first message that did not fit in `mem`, read back
//!    sequentially from `cursor`. It costs no heap per message: only counters.
//!
//! Once a message goes to the disk run, later ones follow it there (spilling transient ones
//! too) until the run drains, which keeps order. Each segment counts its live records; a
//! segment whose records are all acked (or, for spilled transient ones, consumed) is deleted.
//! Acks are appended to a per-segment ack file; the highest delivered persistent `seq` is kept
//! in `delivered` so recovery marks those messages redelivered.

use super::segment::{self, FLAG_PERSISTENT, HEADER_LEN, RECORD_OVERHEAD, Scan};
use super::sync::{SyncCoordinator, SyncFile};
use super::{QueueStore, QueuedMessage};
use crate::message::Message;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Segments roll over at this size (a larger message gets a segment of its own).
pub const SEGMENT_SIZE: u64 = 8 * 1024 * 1024;
/// Head cache bounds per queue.
const MEM_MAX_MESSAGES: usize = 4096;
const MEM_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Read-ahead when draining the disk run.
const READ_CHUNK: usize = 256 * 1024;
/// Largest record accepted when scanning (AMQP bodies are bounded far below this in practice).
const MAX_RECORD: usize = 1 << 30;
/// Buffered appends are written out once they reach this, so memory stays bounded whatever the
/// batch and message sizes (a larger record is written on its own, at once).
pub const WRITE_BUF_MAX: usize = 128 * 1024;

struct Segment {
    id: u64,
    /// Lowest and highest seq of records written here (acks find their segment by range).
    first_seq: u64,
    last_seq: u64,
    /// Records that must stay on disk: persistent ones not yet acked, spilled ones not yet read.
    live: u64,
    /// Set for segments found at startup: their acked and transient records are skipped when
    /// read back. Segments written by this process only hold records that are still ready.
    recovered: Option<HashSet<u64>>,
    ack_file: Option<File>,
    /// Acks of an `ack_many` call not yet written to `ack_file` (written before it returns).
    ack_pending: Vec<u8>,
    file: Arc<File>,
    size: u64,
}

/// Read position inside the disk run.
struct Cursor {
    seg: u64,
    offset: u64,
}

/// Read-ahead buffer of one segment.
struct ReadBuf {
    seg: u64,
    start: u64,
    data: Vec<u8>,
}

/// Outcome of reading one record.
enum Read {
    Record(usize, segment::Record),
    Corrupt(usize),
    Unreadable,
}

/// A disk-backed store for one queue.
pub struct DiskStore {
    dir: PathBuf,
    /// Durable queues persist persistent messages and recover them; others only spill.
    durable: bool,
    coord: Arc<SyncCoordinator>,
    segments: VecDeque<Segment>,
    /// Inside `ack_many`: acks collect in their segments' `ack_pending` until it ends.
    batching_acks: bool,
    /// The segment being appended to, registered with the sync thread.
    head: Option<Arc<SyncFile>>,
    requeued: BTreeMap<u64, QueuedMessage>,
    mem: VecDeque<QueuedMessage>,
    mem_bytes: usize,
    disk_count: u64,
    disk_bytes: u64,
    requeued_bytes: u64,
    cursor: Option<Cursor>,
    rbuf: Option<ReadBuf>,
    delivered_file: Option<File>,
    /// Highest delivered seq written to `delivered`.
    delivered_mark: u64,
    /// Highest delivered seq recorded by `delivered`, written by `write_delivered`.
    delivered_want: u64,
    /// Highest delivered seq from before the restart.
    recovered_delivered: u64,
    /// Records appended to the head segment and not yet written: they start at file offset
    /// `wbuf_at` and end at the head segment's `size`, which counts them already.
    wbuf: Vec<u8>,
    wbuf_at: u64,
    /// Bytes of the head segment's file allocated ahead of the writes (see `preallocate`).
    head_alloc: u64,
    /// Set when a write failed: the queue refuses further messages instead of losing them, and
    /// every later `flush` reports the failure (a record buffered before it may be lost).
    failed: bool,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

fn ack_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.ack"))
}

impl DiskStore {
    /// Opens (and recovers) the store in `dir`; returns it and the next free seq.
    pub fn open(dir: PathBuf, durable: bool, coord: Arc<SyncCoordinator>) -> (Self, u64) {
        let mut store = DiskStore {
            dir,
            durable,
            coord,
            segments: VecDeque::new(),
            batching_acks: false,
            head: None,
            requeued: BTreeMap::new(),
            mem: VecDeque::new(),
            mem_bytes: 0,
            disk_count: 0,
            disk_bytes: 0,
            requeued_bytes: 0,
            cursor: None,
            rbuf: None,
            delivered_file: None,
            delivered_mark: 0,
            delivered_want: 0,
            recovered_delivered: 0,
            wbuf: Vec::new(),
            wbuf_at: 0,
            head_alloc: 0,
            failed: false,
        };
        let next_seq = if durable && store.dir.exists() {
            store.recover()
        } else {
            if store.dir.exists() {
                let _ = fs::remove_dir_all(&store.dir);
            }
            1
        };
        (store, next_seq)
    }

    /// Removes the store's files (queue deleted).
    fn destroy(&mut self) {
        self.wbuf = Vec::new();
        self.segments.clear();
        self.head = None;
        self.delivered_file = None;
        if self.dir.exists()
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove queue directory");
        }
    }

    fn recover(&mut self) -> u64 {
        let started = std::time::Instant::now();
        let mut ids: Vec<u64> = match fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.strip_suffix(".seg")?.parse().ok()
                })
                .collect(),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot list queue directory");
                return 1;
            }
        };
        ids.sort_unstable();
        if let Ok(b) = fs::read(self.dir.join("delivered"))
            && b.len() >= 8
        {
            self.recovered_delivered = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
        }
        let mut max_seq = 0u64;
        for id in ids {
            if let Some(seg) = self.recover_segment(id, &mut max_seq) {
                self.segments.push_back(seg);
            }
        }
        if let Some(first) = self.segments.front() {
            self.cursor = Some(Cursor {
                seg: first.id,
                offset: HEADER_LEN as u64,
            });
        }
        if self.disk_count > 0 || !self.segments.is_empty() {
            tracing::info!(
                dir = %self.dir.display(),
                messages = self.disk_count,
                segments = self.segments.len(),
                ms = started.elapsed().as_millis() as u64,
                "queue recovered"
            );
        }
        if self.disk_count == 0 {
            self.cursor = None;
        }
        // Fully acked segments are deleted, so the records left need not hold the highest seq
        // ever used; the delivered mark does (every acked message was delivered first). Reusing
        // seqs at or below it would flag fresh messages redelivered after the next restart.
        max_seq.max(self.recovered_delivered) + 1
    }

    fn recover_segment(&mut self, id: u64, max_seq: &mut u64) -> Option<Segment> {
        let path = seg_path(&self.dir, id);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read segment; skipped");
                return None;
            }
        };
        if let Err(e) = segment::check_header(&data) {
            tracing::error!(path = %path.display(), error = %e, "corrupt segment header; segment skipped");
            let _ = fs::rename(&path, path.with_extension("corrupt"));
            return None;
        }
        let acked: HashSet<u64> = match fs::read(ack_path(&self.dir, id)) {
            Ok(b) => b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            Err(_) => HashSet::new(),
        };
        let mut off = HEADER_LEN;
        let (mut first, mut last, mut live) = (u64::MAX, 0u64, 0u64);
        let mut truncate_at = None;
        while off < data.len() {
            match segment::scan(&data[off..], MAX_RECORD) {
                Scan::Record(len) => {
                    let (seq, flags, body_len) = segment::peek(&data[off..]);
                    first = first.min(seq);
                    last = last.max(seq);
                    *max_seq = (*max_seq).max(seq);
                    if flags & FLAG_PERSISTENT != 0 && !acked.contains(&seq) {
                        live += 1;
                        self.disk_count += 1;
                        self.disk_bytes += body_len as u64;
                    }
                    off += len;
                }
                Scan::End => break,
                Scan::Torn => {
                    tracing::warn!(path = %path.display(), offset = off, "torn record at the tail; truncated");
                    truncate_at = Some(off);
                    break;
                }
                Scan::Corrupt(len) => {
                    tracing::error!(path = %path.display(), offset = off, "corrupt record (CRC mismatch); skipped");
                    off += len;
                }
                Scan::Garbage => {
                    tracing::error!(path = %path.display(), offset = off, "unreadable data; rest of segment skipped");
                    truncate_at = Some(off);
                    break;
                }
            }
        }
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open segment; skipped");
                return None;
            }
        };
        let size = truncate_at.unwrap_or(off) as u64;
        if truncate_at.is_some()
            && let Err(e) = file.set_len(size)
        {
            tracing::error!(path = %path.display(), error = %e, "cannot truncate segment");
        }
        if live == 0 {
            // Nothing left to deliver: the segment only holds acked or transient records.
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(ack_path(&self.dir, id));
            return None;
        }
        Some(Segment {
            id,
            first_seq: first,
            last_seq: last,
            live,
            recovered: Some(acked),
            ack_file: None,
            ack_pending: Vec::new(),
            file: Arc::new(file),
            size,
        })
    }

    /// Appends a record to the write buffer, rolling to a new segment when the head is full.
    /// Returns the record's offset in the head segment, or None if the store has failed (a
    /// write, now or of records buffered before, did not complete).
    fn append(&mut self, m: &QueuedMessage, flags: u8) -> Option<u64> {
        if self.failed {
            return None;
        }
        let len = segment::record_len(&m.msg) as u64;
        // Recovered segments are never appended to (head is None until this run creates one).
        let need_new = match self.segments.back() {
            None => true,
            Some(s) => {
                self.head.is_none() || (s.size > HEADER_LEN as u64 && s.size + len > SEGMENT_SIZE)
            }
        };
        if need_new {
            // Buffered records belong to the segment being closed.
            if !self.flush_pending() {
                return None;
            }
            if let Err(e) = self.new_segment() {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot create segment");
                self.failed = true;
                return None;
            }
        }
        let seg = self.segments.back_mut()?;
        let at = seg.size;
        if self.wbuf.is_empty() {
            self.wbuf_at = at;
        }
        segment::encode(&mut self.wbuf, m.seq, flags, m.expires_at, &m.msg);
        seg.size += len;
        seg.live += 1;
        seg.first_seq = seg.first_seq.min(m.seq);
        seg.last_seq = seg.last_seq.max(m.seq);
        if self.wbuf.len() >= WRITE_BUF_MAX && !self.flush_pending() {
            return None;
        }
        Some(at)
    }

    /// Writes the buffered records with one `pwrite` and registers the head with the sync
    /// thread. False if this or an earlier write failed: the buffered records are then lost and
    /// their publishes must not be confirmed.
    fn flush_pending(&mut self) -> bool {
        if self.wbuf.is_empty() {
            return !self.failed;
        }
        let end = self.wbuf_at + self.wbuf.len() as u64;
        if self.durable && end > self.head_alloc {
            self.preallocate(end);
        }
        let written = match (self.segments.back(), &self.head) {
            (Some(seg), Some(_)) => seg.file.write_all_at(&self.wbuf, self.wbuf_at),
            _ => Err(io::Error::other("no segment to write to")),
        };
        if let Err(e) = written {
            tracing::error!(dir = %self.dir.display(), error = %e, "segment write failed; queue stops accepting messages");
            self.failed = true;
            self.wbuf = Vec::new();
            return false;
        }
        self.wbuf_at += self.wbuf.len() as u64;
        self.wbuf.clear();
        // A large message grew the buffer past the cap: give the memory back.
        self.wbuf.shrink_to(WRITE_BUF_MAX);
        if let Some(h) = &self.head {
            self.coord.mark_dirty(h);
        }
        true
    }

    /// Writes zeroes ahead of a write ending at `end` in the head segment. An `fdatasync` after
    /// an append that grows the file also writes the inode's new size (or commits it to the
    /// journal); over blocks already written it does not. Every confirm waits for one, and on
    /// ext4 here 3,000 syncs of 7 KB appends took 0.73 s appending and 0.43 s over zeroes
    /// written ahead. (`fallocate` does not help: its unwritten extents are converted on each
    /// sync, 0.84-1.0 s.) The zeroes double with what was written, at most 64 KiB ahead: a
    /// larger step makes the one sync that carries it slow enough to show in confirm p99 (a
    /// 1 MiB step: p99 685-1,060 µs over six A/B rounds, 64 KiB: 657-776 µs). A queue holding a
    /// few messages still takes one block; recovery already reads zeroes as the end of the
    /// records. A failed zero write only costs the speed-up: the record write that follows
    /// reports errors that matter.
    fn preallocate(&mut self, end: u64) {
        const AHEAD_MAX: usize = 64 * 1024;
        static ZEROES: [u8; AHEAD_MAX] = [0; AHEAD_MAX];
        let Some(seg) = self.segments.back() else {
            return;
        };
        let want = (2 * end)
            .next_power_of_two()
            .clamp(4096, end + AHEAD_MAX as u64)
            .min(SEGMENT_SIZE.max(end));
        // Only the part past what the record write itself covers: at most `AHEAD_MAX`, since
        // the caller only asks when `end` is past what was allocated.
        let n = want.saturating_sub(end) as usize;
        self.head_alloc = if seg.file.write_all_at(&ZEROES[..n], end).is_ok() {
            want
        } else {
            u64::MAX
        };
    }

    fn new_segment(&mut self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let id = self.segments.back().map_or(1, |s| s.id + 1);
        let path = seg_path(&self.dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all_at(&segment::header(), 0)?;
        let file = Arc::new(file);
        if self.segments.is_empty() && self.durable {
            // A new queue directory must itself be durable before anything in it is confirmed.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        self.head = Some(SyncFile::new(file.clone()));
        self.head_alloc = 0;
        self.segments.push_back(Segment {
            id,
            first_seq: u64::MAX,
            last_seq: 0,
            live: 0,
            recovered: None,
            ack_file: None,
            ack_pending: Vec::new(),
            file,
            size: HEADER_LEN as u64,
        });
        Ok(())
    }

    fn segment_of(&self, seq: u64) -> Option<usize> {
        // Segments hold increasing, disjoint seq ranges.
        let idx = self.segments.partition_point(|s| s.last_seq < seq);
        let s = self.segments.get(idx)?;
        (s.first_seq <= seq && seq <= s.last_seq).then_some(idx)
    }

    /// One record of a segment is no longer needed; deletes the segment when none are.
    fn release(&mut self, idx: usize, seq: u64, write_ack: bool) {
        let is_head = idx + 1 == self.segments.len() && self.head.is_some();
        let Some(seg) = self.segments.get_mut(idx) else {
            return;
        };
        seg.live = seg.live.saturating_sub(1);
        let id = seg.id;
        let reading = self.cursor.as_ref().is_some_and(|c| c.seg == id);
        // The ack must reach disk while the segment stays: it still holds live records, or it
        // is the append head or being read. Otherwise deleting the file below is the ack.
        if write_ack && (seg.live > 0 || is_head || reading) {
            seg.ack_pending.extend_from_slice(&seq.to_le_bytes());
            if !self.batching_acks {
                Self::write_acks(seg, &self.dir);
            }
        }
        if seg.live == 0 {
            self.gc_segment(id);
        }
    }

    /// Reads the next ready record of the disk run.
    fn read_next(&mut self) -> Option<QueuedMessage> {
        loop {
            let cur = self.cursor.as_ref()?;
            let (seg_id, offset) = (cur.seg, cur.offset);
            let idx = self.segments.iter().position(|s| s.id == seg_id)?;
            let seg_size = self.segments[idx].size;
            if offset >= seg_size {
                let next = self.segments.get(idx + 1).map(|s| s.id)?;
                self.cursor = Some(Cursor {
                    seg: next,
                    offset: HEADER_LEN as u64,
                });
                self.rbuf = None;
                self.gc_segment(seg_id);
                continue;
            }
            let rec = match self.read_at(idx, offset) {
                Read::Record(len, rec) => {
                    if let Some(c) = self.cursor.as_mut() {
                        c.offset += len as u64;
                    }
                    rec
                }
                Read::Corrupt(len) => {
                    tracing::error!(dir = %self.dir.display(), segment = seg_id, offset, "corrupt record skipped");
                    if let Some(c) = self.cursor.as_mut() {
                        c.offset += len as u64;
                    }
                    self.disk_count = self.disk_count.saturating_sub(1);
                    continue;
                }
                Read::Unreadable => {
                    tracing::error!(dir = %self.dir.display(), segment = seg_id, offset, "unreadable segment data; rest of segment skipped");
                    if let Some(c) = self.cursor.as_mut() {
                        c.offset = seg_size;
                    }
                    continue;
                }
            };
            let seg = &self.segments[idx];
            let persistent = rec.flags & FLAG_PERSISTENT != 0;
            if let Some(acked) = &seg.recovered
                && (!persistent || acked.contains(&rec.seq))
            {
                continue;
            }
            let body_len = rec.body.len() as u64;
            self.disk_count = self.disk_count.saturating_sub(1);
            self.disk_bytes = self.disk_bytes.saturating_sub(body_len);
            let stored = persistent && self.durable;
            if !stored {
                // A spilled transient record is done with once read.
                self.release(idx, rec.seq, false);
            }
            let properties =
                amq_protocol::protocol::basic::parse_properties(&rec.raw_properties[..])
                    .map(|(_, p)| p)
                    .unwrap_or_default();
            return Some(QueuedMessage {
                seq: rec.seq,
                redelivered: rec.seq <= self.recovered_delivered,
                stored,
                expires_at: rec.expires_at,
                delivery_count: 0,
                msg: Arc::new(Message {
                    exchange: rec.exchange,
                    routing_key: rec.routing_key,
                    properties: Box::new(properties),
                    raw_properties: rec.raw_properties,
                    body: rec.body,
                }),
            });
        }
    }

    /// Appends a segment's pending acks to its ack file (opened on first use).
    fn write_acks(seg: &mut Segment, dir: &Path) {
        if seg.ack_pending.is_empty() {
            return;
        }
        if seg.ack_file.is_none() {
            seg.ack_file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(ack_path(dir, seg.id))
                .map_err(|e| tracing::error!(error = %e, "cannot open ack file"))
                .ok();
        }
        if let Some(f) = seg.ack_file.as_mut()
            && let Err(e) = f.write_all(&seg.ack_pending)
        {
            tracing::error!(error = %e, "ack write failed; the message may be redelivered after a restart");
        }
        seg.ack_pending.clear();
    }

    /// Deletes a segment nobody needs any more (not the append head, not being read).
    fn gc_segment(&mut self, id: u64) {
        let Some(idx) = self.segments.iter().position(|s| s.id == id) else {
            return;
        };
        let is_head = idx + 1 == self.segments.len() && self.head.is_some();
        let reading = self.cursor.as_ref().is_some_and(|c| c.seg == id);
        if self.segments[idx].live == 0 && !is_head && !reading {
            self.segments.remove(idx);
            let _ = fs::remove_file(seg_path(&self.dir, id));
            let _ = fs::remove_file(ack_path(&self.dir, id));
            if self.rbuf.as_ref().is_some_and(|r| r.seg == id) {
                self.rbuf = None;
            }
        }
    }

    /// Decodes the record at `offset` of segment `idx`, refilling the read-ahead as needed.
    fn read_at(&mut self, idx: usize, offset: u64) -> Read {
        let is_head = idx + 1 == self.segments.len();
        if is_head && !self.wbuf.is_empty() && offset >= self.wbuf_at && !self.flush_pending() {
            return Read::Unreadable;
        }
        let seg = &self.segments[idx];
        let (seg_id, file) = (seg.id, seg.file.clone());
        // Only what has been written can be read: records still buffered (after the one wanted)
        // stay out of the read-ahead.
        let seg_size = if is_head && !self.wbuf.is_empty() {
            self.wbuf_at
        } else {
            seg.size
        };
        for attempt in 0..2 {
            if let Some(rb) = &self.rbuf
                && rb.seg == seg_id
                && offset >= rb.start
                && offset < rb.start + rb.data.len() as u64
            {
                let at = (offset - rb.start) as usize;
                match segment::scan(&rb.data[at..], MAX_RECORD) {
                    Scan::Record(len) => {
                        return match segment::decode_payload(
                            &rb.data[at + RECORD_OVERHEAD..at + len],
                        ) {
                            Some(rec) => Read::Record(len, rec),
                            None => Read::Corrupt(len),
                        };
                    }
                    Scan::Corrupt(len) => return Read::Corrupt(len),
                    Scan::Torn if attempt == 0 => {}
                    Scan::End | Scan::Garbage | Scan::Torn => return Read::Unreadable,
                }
            }
            let mut len_buf = [0u8; 4];
            let want = match file.read_exact_at(&mut len_buf, offset) {
                Ok(()) => (u32::from_le_bytes(len_buf) as usize + RECORD_OVERHEAD).max(READ_CHUNK),
                Err(_) => READ_CHUNK,
            };
            let want = want.min(seg_size.saturating_sub(offset) as usize);
            let mut data = vec![0u8; want];
            match read_full_at(&file, &mut data, offset) {
                Ok(n) => data.truncate(n),
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), error = %e, "segment read failed");
                    return Read::Unreadable;
                }
            }
            self.rbuf = Some(ReadBuf {
                seg: seg_id,
                start: offset,
                data,
            });
        }
        Read::Unreadable
    }
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl QueueStore for DiskStore {
    fn push(&mut self, mut m: QueuedMessage) -> bool {
        let persist = self.durable && m.msg.persistent();
        let size = m.msg.size();
        let to_mem = self.cursor.is_none()
            && self.mem.len() < MEM_MAX_MESSAGES
            && self.mem_bytes + size <= MEM_MAX_BYTES;
        let mut at = None;
        if persist {
            at = self.append(&m, FLAG_PERSISTENT);
            if at.is_none() {
                return false;
            }
            m.stored = true;
        }
        if to_mem {
            self.mem_bytes += size;
            self.mem.push_back(m);
            return true;
        }
        // Disk run: the record is the only copy.
        if !persist {
            at = self.append(&m, 0);
        }
        let Some(offset) = at else {
            return false;
        };
        if self.cursor.is_none() {
            let Some(seg) = self.segments.back() else {
                return false;
            };
            self.cursor = Some(Cursor {
                seg: seg.id,
                offset,
            });
        }
        self.disk_count += 1;
        self.disk_bytes += size as u64;
        true
    }

    fn pop(&mut self) -> Option<QueuedMessage> {
        if let Some((_, m)) = self.requeued.pop_first() {
            self.requeued_bytes -= m.msg.size() as u64;
            return Some(m);
        }
        if let Some(m) = self.mem.pop_front() {
            self.mem_bytes -= m.msg.size();
            return Some(m);
        }
        if self.disk_count == 0 {
            return None;
        }
        let m = self.read_next();
        if m.is_none() {
            // The run ended early (unreadable data): resynchronise the counters.
            self.disk_count = 0;
            self.disk_bytes = 0;
        }
        if self.disk_count == 0 {
            // The run is drained: new messages may use the head cache again.
            if let Some(c) = self.cursor.take() {
                self.rbuf = None;
                self.gc_segment(c.seg);
            }
        }
        m
    }

    fn requeue(&mut self, m: QueuedMessage) {
        self.requeued_bytes += m.msg.size() as u64;
        self.requeued.insert(m.seq, m);
    }

    fn ack(&mut self, m: &QueuedMessage) {
        if !m.stored {
            return;
        }
        if let Some(idx) = self.segment_of(m.seq) {
            self.release(idx, m.seq, true);
        }
    }

    fn delivered(&mut self, seq: u64) {
        self.delivered_want = self.delivered_want.max(seq);
    }

    fn write_delivered(&mut self) {
        let seq = self.delivered_want;
        if seq <= self.delivered_mark {
            return;
        }
        self.delivered_mark = seq;
        if self.delivered_file.is_none() {
            self.delivered_file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.dir.join("delivered"))
                .ok();
        }
        if let Some(f) = &self.delivered_file {
            let _ = f.write_all_at(&seq.to_le_bytes(), 0);
        }
    }

    fn ack_many(&mut self, messages: &mut dyn Iterator<Item = &QueuedMessage>) {
        // One write per segment for the whole call instead of one per message; all of them
        // happen before this returns, so what reaches the ack files is unchanged. A segment
        // that empties meanwhile is deleted with its pending acks, which then do not matter.
        self.batching_acks = true;
        for m in messages {
            self.ack(m);
        }
        self.batching_acks = false;
        for seg in self.segments.iter_mut() {
            Self::write_acks(seg, &self.dir);
        }
    }

    fn destroy(&mut self) {
        DiskStore::destroy(self)
    }

    fn flush(&mut self) -> bool {
        self.flush_pending()
    }

    fn len(&self) -> usize {
        self.requeued.len() + self.mem.len() + self.disk_count as usize
    }

    fn bytes(&self) -> u64 {
        self.requeued_bytes + self.mem_bytes as u64 + self.disk_bytes
    }

    fn purge(&mut self) -> usize {
        let n = self.len();
        while let Some(m) = self.pop() {
            self.ack(&m);
        }
        n
    }
}

impl Drop for DiskStore {
    /// Records nobody flushed (a panic between append and flush) still reach the file; nothing
    /// was confirmed for them, so this is only a best effort.
    fn drop(&mut self) {
        self.flush_pending();
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
