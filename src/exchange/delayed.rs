//! Delayed delivery (the x-delayed-message exchange type): a message published with an
//! `x-delay` header (ms) is held by the exchange and routed when due. Held messages live in a
//! store of their own (durable for a durable exchange, so they survive a restart) with their
//! due time in the record's expiry field, plus an in-memory schedule ordered by due time
//! (delayed messages are expected to be few; each costs one schedule entry). A timer task per
//! exchange routes them when due and only then retires them from the store.

use crate::message::Message;
use crate::queue::{Published, now_ms};
use crate::store::{QueueStore, QueuedMessage, StoreEnv};
use crate::vhost::VHost;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

struct State {
    store: Box<dyn QueueStore>,
    next_seq: u64,
    /// (due ms, seq) -> message.
    schedule: BTreeMap<(u64, u64), QueuedMessage>,
}

/// The held messages of one delayed exchange.
pub struct Delayed {
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    deleted: AtomicBool,
    durable: bool,
}

/// Name under which a delayed exchange's store lives (cannot clash with a queue name, which
/// never contains NUL).
pub fn store_name(exchange: &str) -> String {
    format!("\u{0}delayed\u{0}{exchange}")
}

impl Delayed {
    /// Opens the exchange's store, taking every recovered message into the schedule.
    pub fn open(env: &StoreEnv, vhost: &str, exchange: &str, durable: bool) -> Arc<Self> {
        let (mut store, next_seq) = env.open_queue(vhost, &store_name(exchange), durable, None);
        let mut schedule = BTreeMap::new();
        while let Some(m) = store.pop() {
            schedule.insert((m.expires_at, m.seq), m);
        }
        Arc::new(Delayed {
            state: Mutex::new(State {
                store,
                next_seq,
                schedule,
            }),
            wake: tokio::sync::Notify::new(),
            deleted: AtomicBool::new(false),
            durable,
        })
    }

    /// Holds `msg` until `delay_ms` from now.
    pub fn hold(&self, msg: Arc<Message>, delay_ms: u64) -> Published {
        let due = now_ms().saturating_add(delay_ms);
        let stored = self.durable && msg.persistent();
        {
            let mut st = self.state.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            if !st.store.push(QueuedMessage::new(seq, msg, due)) {
                return Published::Refused;
            }
            // Keep it out of the store's ready accounting: the schedule owns it now.
            let Some(m) = st.store.pop() else {
                return Published::Refused;
            };
            // Held messages are few: each is written at once, not batched with the
            // connection's other publishes. If the write failed it is not held at all.
            if !st.store.flush() {
                return Published::Refused;
            }
            st.schedule.insert((due, m.seq), m);
        }
        self.wake.notify_one();
        if stored {
            Published::Stored
        } else {
            Published::Accepted
        }
    }

    /// Messages held right now.
    pub fn len(&self) -> usize {
        self.state.lock().schedule.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take_due(&self, now: u64) -> (Vec<QueuedMessage>, Option<u64>) {
        let mut st = self.state.lock();
        let mut due = Vec::new();
        while let Some(entry) = st.schedule.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        let next = st.schedule.keys().next().map(|(at, _)| *at);
        (due, next)
    }

    fn retire(&self, msgs: &[QueuedMessage]) {
        let mut st = self.state.lock();
        for m in msgs {
            st.store.ack(m);
        }
    }

    /// The exchange was deleted: drop held messages and files, stop the timer.
    pub fn destroy(&self) {
        self.deleted.store(true, Ordering::Release);
        let mut st = self.state.lock();
        st.schedule.clear();
        st.store.destroy();
        drop(st);
        self.wake.notify_one();
    }
}

/// Routes held messages of `exchange` as they come due.
pub async fn run(exchange: Weak<super::Exchange>, vhost: Weak<VHost>, d: Arc<Delayed>) {
    loop {
        if d.deleted.load(Ordering::Acquire) {
            return;
        }
        let (due, next) = d.take_due(now_ms());
        if !due.is_empty() {
            let (Some(ex), Some(vh)) = (exchange.upgrade(), vhost.upgrade()) else {
                return;
            };
            let mut queues = Vec::new();
            for m in &due {
                let keys = crate::queue::dead_letter::routing_keys(&m.msg);
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                queues.clear();
                vh.route(&ex, &refs, m.msg.properties.headers().as_ref(), &mut queues);
                for q in &queues {
                    q.publish(m.msg.clone());
                }
            }
            d.retire(&due);
            continue;
        }
        match next {
            Some(at) => {
                let wait = Duration::from_millis(at.saturating_sub(now_ms()).max(1));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = d.wake.notified() => {}
                }
            }
            None => d.wake.notified().await,
        }
    }
}
