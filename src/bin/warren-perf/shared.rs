//! Counters and signals shared by producers, consumers and the coordinator.
//!
//! Hot loops keep local counts and add them here once per socket read or write batch, so the
//! atomics cost a few operations per batch, not per message.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{Notify, watch};

/// Shared run state.
pub struct Shared {
    /// Messages written to sockets by all producers.
    pub published: AtomicU64,
    /// Publisher confirms (acks) received.
    pub confirmed: AtomicU64,
    /// Publisher nacks received.
    pub nacked: AtomicU64,
    /// basic.return received (unroutable mandatory messages; the tool does not set mandatory, so
    /// this stays 0 unless a broker returns anyway).
    pub returned: AtomicU64,
    /// Deliveries completed (method + header + all body frames) by all consumers.
    pub delivered: AtomicU64,
    /// connection.blocked notifications received.
    pub blocked: AtomicU64,
    /// Producers that reached their message count (and saw all their confirms).
    pub producers_done: AtomicUsize,
    /// Consumers that reached their message count.
    pub consumers_done: AtomicUsize,
    /// Set by a producer that paused on `--max-unconsumed`; consumers then wake `resume`.
    pub producers_waiting: AtomicBool,
    /// Wakes paused producers after consumers made progress.
    pub resume: Notify,
    /// Flips to true when the run ends.
    pub stop: watch::Sender<bool>,
    /// Copies of each published message the consumers receive (queues for fanout, else 1).
    pub copies: u64,
    /// `--max-unconsumed`, 0 for open loop.
    pub max_unconsumed: u64,
}

impl Shared {
    /// Fresh counters.
    pub fn new(copies: u64, max_unconsumed: u64) -> Shared {
        Shared {
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            producers_done: AtomicUsize::new(0),
            consumers_done: AtomicUsize::new(0),
            producers_waiting: AtomicBool::new(false),
            resume: Notify::new(),
            stop: watch::channel(false).0,
            copies: copies.max(1),
            max_unconsumed,
        }
    }

    /// How many more messages producers may publish before `--max-unconsumed` is reached
    /// (u64::MAX in open loop).
    pub fn unconsumed_allowance(&self) -> u64 {
        if self.max_unconsumed == 0 {
            return u64::MAX;
        }
        let published = self.published.load(Ordering::SeqCst);
        let consumed = self.delivered.load(Ordering::SeqCst) / self.copies;
        self.max_unconsumed
            .saturating_sub(published.saturating_sub(consumed))
    }

    /// Called by consumers after adding to `delivered`.
    pub fn wake_producers(&self) {
        if self.producers_waiting.load(Ordering::SeqCst) {
            self.producers_waiting.store(false, Ordering::SeqCst);
            self.resume.notify_waiters();
        }
    }
}

/// A latency histogram in nanoseconds, 1 ns to 1 hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds are valid")
}
