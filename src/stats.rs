//! Message counters for the management API and Prometheus.
//!
//! The hot path must not pay for them: each connection counts into its own `MsgCounters`,
//! written only by its task (a load and a store, no locked read-modify-write, no shared cache
//! line), and queues count into their state under the lock they already hold. Readers sum the
//! live connections and the totals of closed ones; `BrokerStats::closed` is locked while a
//! connection's figures move from the first to the second, so a sum never sees them twice or
//! not at all (counters stay monotonic, as Prometheus requires). Dead-lettered and dropped
//! messages are counted per vhost ([`Losses`]).

use crate::queue::dead_letter::Reason;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

macro_rules! counts {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// A connection's message counters. Only the connection's own task writes them.
        #[derive(Default, Debug)]
        pub struct MsgCounters {
            $($(#[$doc])* pub $field: AtomicU64,)*
        }

        /// A snapshot of message counters.
        #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
        pub struct Counts {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl MsgCounters {
            pub fn snapshot(&self) -> Counts {
                Counts { $($field: self.$field.load(Relaxed),)* }
            }
        }

        impl Counts {
            pub fn add(&mut self, o: &Counts) {
                $(self.$field += o.$field;)*
            }

            /// `self - earlier`, per field (0 where a counter went backwards).
            pub fn since(&self, earlier: &Counts) -> Counts {
                Counts { $($field: self.$field.saturating_sub(earlier.$field),)* }
            }
        }
    };
}

counts! {
    /// Messages published by clients (basic.publish, including committed transactions).
    publish,
    /// Of those, published on a channel in confirm mode.
    publish_confirm,
    /// Published messages that reached at least one queue (or were dropped as duplicates).
    routed,
    /// Unroutable mandatory messages returned to the publisher.
    return_unroutable,
    /// Unroutable messages dropped.
    drop_unroutable,
    /// Publisher confirms sent (basic.ack per message).
    confirm,
    /// Deliveries to consumers that must ack.
    deliver,
    /// Deliveries to consumers in no-ack mode.
    deliver_no_ack,
    /// basic.get answers that must be acked.
    get,
    /// basic.get answers in no-ack mode.
    get_no_ack,
    /// Deliveries (consume or get) of messages delivered before.
    redeliver,
    /// Messages acknowledged by clients.
    ack,
    /// basic.get on an empty queue.
    get_empty,
}

impl Counts {
    /// Everything handed to clients, RabbitMQ's deliver_get.
    pub fn deliver_get(&self) -> u64 {
        self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
    }
}

/// Adds `n` to a counter that only the calling task writes.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed) + n, Relaxed);
}

/// Per-queue counters, kept in the queue's state under its lock.
#[derive(Clone, Copy, Default, Debug)]
pub struct QueueCounts {
    /// Messages enqueued.
    pub publish: u64,
    /// Messages handed to consumers or basic.get.
    pub deliver_get: u64,
    /// Of those, redeliveries.
    pub redeliver: u64,
    /// Messages acknowledged.
    pub ack: u64,
}

/// A queue's counters and its last sampling window (earlier, later, seconds).
pub type QueueStats = (QueueCounts, Option<(QueueCounts, QueueCounts, f64)>);

/// Broker-wide figures that do not belong to one connection.
#[derive(Default)]
pub struct BrokerStats {
    /// Counts of connections that have closed; see the module comment for why it is a lock.
    closed: Mutex<Counts>,
    /// Broker totals sampled by the management API's sampler, for rates.
    pub samples: Mutex<Samples<Counts>>,
    /// Messages published through the management API (POST .../publish). Several requests
    /// may run at once, so these take atomic adds, unlike a connection's.
    api: MsgCounters,
}

/// The last two samples of some counters, taken at a fixed interval (RabbitMQ's
/// collect_statistics_interval): a rate is their difference over the time between them.
#[derive(Clone, Copy, Debug)]
pub struct Samples<T> {
    prev: Option<(Instant, T)>,
    last: Option<(Instant, T)>,
}

impl<T> Default for Samples<T> {
    fn default() -> Self {
        Samples {
            prev: None,
            last: None,
        }
    }
}

impl<T: Copy> Samples<T> {
    pub fn push(&mut self, at: Instant, value: T) {
        self.prev = self.last.replace((at, value));
    }

    /// (earlier, later, seconds between them), once two samples exist.
    pub fn window(&self) -> Option<(T, T, f64)> {
        let ((t0, a), (t1, b)) = (self.prev?, self.last?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs > 0.0).then_some((a, b, secs))
    }
}

/// A vhost's messages that left queues unconsumed, by reason (queues reach their vhost, not
/// the broker; these paths are rare, so plain atomic adds serve).
#[derive(Default)]
pub struct Losses {
    /// Dead-lettered messages by reason: expired, rejected, maxlen, delivery_limit.
    dead_lettered: [AtomicU64; 4],
    /// Messages dropped (no dead-letter exchange) by the same reasons.
    dropped: [AtomicU64; 4],
}

impl BrokerStats {
    /// Folds a closing connection's counters into the closed totals while `remove` takes it
    /// out of the live registry, as one step for readers of [`BrokerStats::total`].
    pub fn retire(&self, counters: &MsgCounters, remove: impl FnOnce()) {
        let mut closed = self.closed.lock();
        closed.add(&counters.snapshot());
        remove();
    }

    /// Closed totals plus the live connections' counters, as `live` yields them.
    pub fn total(&self, live: impl FnOnce(&mut dyn FnMut(&MsgCounters))) -> Counts {
        let closed = self.closed.lock();
        let mut sum = *closed;
        sum.add(&self.api.snapshot());
        live(&mut |c| sum.add(&c.snapshot()));
        sum
    }

    /// Counts a publish made through the management API.
    pub fn count_api_publish(&self, routed: bool) {
        self.api.publish.fetch_add(1, Relaxed);
        let outcome = if routed {
            &self.api.routed
        } else {
            &self.api.drop_unroutable
        };
        outcome.fetch_add(1, Relaxed);
    }
}

impl Losses {
    pub fn count_dead_lettered(&self, why: Reason, n: u64) {
        self.dead_lettered[why as usize].fetch_add(n, Relaxed);
    }

    pub fn count_dropped(&self, why: Reason, n: u64) {
        self.dropped[why as usize].fetch_add(n, Relaxed);
    }

    /// (reason label, dead-lettered, dropped) per reason.
    pub fn losses(&self) -> [(&'static str, u64, u64); 4] {
        [
            Reason::Expired,
            Reason::Rejected,
            Reason::MaxLen,
            Reason::DeliveryLimit,
        ]
        .map(|r| {
            let i = r as usize;
            (
                r.as_str(),
                self.dead_lettered[i].load(Relaxed),
                self.dropped[i].load(Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retire_moves_counts_without_loss_or_double() {
        let stats = BrokerStats::default();
        let c = MsgCounters::default();
        bump(&c.publish, 3);
        bump(&c.ack, 2);
        let live = std::cell::Cell::new(true);
        let sum = |stats: &BrokerStats| {
            stats.total(|f| {
                if live.get() {
                    f(&c)
                }
            })
        };
        assert_eq!(sum(&stats).publish, 3);
        stats.retire(&c, || live.set(false));
        let after = sum(&stats);
        assert_eq!((after.publish, after.ack), (3, 2));
    }

    #[test]
    fn since_saturates() {
        let a = Counts {
            publish: 5,
            ..Default::default()
        };
        let b = Counts {
            publish: 7,
            ack: 1,
            ..Default::default()
        };
        assert_eq!(b.since(&a).publish, 2);
        assert_eq!(a.since(&b).ack, 0);
    }
}
