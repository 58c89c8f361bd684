//! A queue: ready messages (behind [`QueueStore`]), its consumers, and dispatch.
//!
//! Ownership: the queue's mutable state lives in one `Mutex<QueueState>`, locked only for short
//! synchronous sections and never across `.await`. Whoever changes the state (a publisher routing
//! to it, a channel acking, a consumer arriving) runs [`Queue::dispatch`] in its own task, so a
//! delivery costs no extra task hop. Deliveries leave the queue as [`ConnEvent::Deliver`] on the
//! consuming connection's unbounded channel; they are bounded by protocol credit ([`Credit`]:
//! prefetch for acking consumers, a fixed in-flight budget for no-ack ones), never by the channel.
//!
//! Lock order: vhost maps -> exchange bindings -> queue state. A queue never calls back into an
//! exchange or vhost while holding its state lock.

use crate::connection::{ConnEvent, ConnSender};
use crate::error::{AmqpError, AmqpResult};
use crate::message::Message;
use crate::store::{QueueStore, QueuedMessage};
use amq_protocol::types::FieldTable;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Deliveries a no-ack consumer may have queued towards its connection before the queue waits
/// for the connection to write them out: the byte budget that keeps a slow socket from growing
/// broker memory.
pub const NO_ACK_BUDGET: u32 = 512;

/// A counting limit shared between a queue (which acquires) and a channel (which releases on
/// ack or on write). `limit == 0` means unlimited.
#[derive(Debug, Default)]
pub struct Credit {
    limit: AtomicU32,
    used: AtomicU32,
}

impl Credit {
    pub fn new(limit: u32) -> Self {
        Credit {
            limit: AtomicU32::new(limit),
            used: AtomicU32::new(0),
        }
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }

    /// Takes one unit if below the limit.
    pub fn try_acquire(&self) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let limit = self.limit.load(Ordering::Acquire);
            if limit != 0 && used >= limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(u) => used = u,
            }
        }
    }

    /// Returns one unit; true when the credit was exhausted before, i.e. a queue may have
    /// skipped this consumer and must be asked to dispatch again.
    pub fn release(&self) -> bool {
        let prev = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(1))
            })
            .unwrap_or(0);
        let limit = self.limit.load(Ordering::Acquire);
        limit != 0 && prev >= limit
    }
}

/// Per-channel delivery gate shared by all the channel's consumers: global prefetch
/// (basic.qos global=true) and channel.flow.
#[derive(Debug)]
pub struct ChannelGate {
    pub credit: Credit,
    pub active: AtomicBool,
}

impl Default for ChannelGate {
    fn default() -> Self {
        ChannelGate {
            credit: Credit::new(0),
            active: AtomicBool::new(true),
        }
    }
}

/// A consumer as the queue sees it.
pub struct Consumer {
    pub tag: Arc<str>,
    pub conn_id: u64,
    pub channel: u16,
    pub tx: ConnSender,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false), or the no-ack budget.
    pub credit: Arc<Credit>,
    pub gate: Arc<ChannelGate>,
}

struct QueueState {
    store: Box<dyn QueueStore>,
    next_seq: u64,
    /// Round robin: the front consumer gets the next message, then moves to the back.
    consumers: VecDeque<Consumer>,
    /// Delivered and not yet acked, rejected or requeued.
    unacked: usize,
    /// auto-delete only triggers once a queue has had a consumer, as in RabbitMQ.
    had_consumers: bool,
}

/// Declared properties of a queue, fixed at declaration (equivalence is checked against them).
#[derive(Clone, Debug)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// What a full queue does with the next message (x-overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// Length limits from x-max-length / x-max-length-bytes / x-overflow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
}

fn int_arg(args: &FieldTable, key: &str) -> Option<i64> {
    use amq_protocol::types::AMQPValue as V;
    Some(match args.inner().get(key)? {
        V::ShortShortInt(v) => i64::from(*v),
        V::ShortShortUInt(v) => i64::from(*v),
        V::ShortInt(v) => i64::from(*v),
        V::ShortUInt(v) => i64::from(*v),
        V::LongInt(v) => i64::from(*v),
        V::LongUInt(v) => i64::from(*v),
        V::LongLongInt(v) => *v,
        _ => return None,
    })
}

impl Limits {
    /// Reads the limits from queue arguments; Err names the invalid argument (406).
    pub fn from_args(args: &FieldTable) -> Result<Self, String> {
        let non_negative = |key: &str| -> Result<Option<u64>, String> {
            match args.inner().get(key) {
                None => Ok(None),
                Some(_) => match int_arg(args, key) {
                    Some(v) if v >= 0 => Ok(Some(v as u64)),
                    _ => Err(format!(
                        "invalid arg '{key}': expected a non-negative integer"
                    )),
                },
            }
        };
        let overflow = match args
            .inner()
            .get("x-overflow")
            .map(|v| crate::vhost::value_as_str(v).unwrap_or(""))
        {
            None | Some("drop-head") => Overflow::DropHead,
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            Some(other) => return Err(format!("invalid arg 'x-overflow': '{other}'")),
        };
        Ok(Limits {
            max_length: non_negative("x-max-length")?,
            max_length_bytes: non_negative("x-max-length-bytes")?,
            overflow,
        })
    }

    fn exceeded(&self, len: u64, bytes: u64) -> bool {
        self.max_length.is_some_and(|m| len > m) || self.max_length_bytes.is_some_and(|m| bytes > m)
    }
}

/// A message queue.
pub struct Queue {
    pub name: String,
    pub vhost: String,
    pub options: QueueOptions,
    /// Connection that owns an exclusive queue.
    pub owner: Option<u64>,
    /// Length limits (checked on every publish).
    pub limits: Limits,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
}

/// What became of a message routed to a queue (publisher confirms depend on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Held in memory (transient message or non-durable queue): confirm at once.
    Accepted,
    /// Written to a segment: confirm once group commit has synced it.
    Stored,
    /// The queue refused it (storage failure): nack.
    Refused,
    /// The queue was deleted meanwhile: as if unrouted.
    Dropped,
}

/// What dispatch decided under the lock, acted on after it is released.
enum Outcome {
    Delivered,
    NoCredit,
}

impl Queue {
    pub fn new(
        name: String,
        vhost: String,
        options: QueueOptions,
        owner: Option<u64>,
        store: Box<dyn QueueStore>,
        next_seq: u64,
    ) -> Self {
        let limits = Limits::from_args(&options.arguments).unwrap_or(Limits {
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
        });
        Queue {
            name,
            vhost,
            limits,
            options,
            owner,
            state: Mutex::new(QueueState {
                store,
                next_seq,
                consumers: VecDeque::new(),
                unacked: 0,
                had_consumers: false,
            }),
            deleted: AtomicBool::new(false),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Enqueues a routed message and hands it to a consumer if one has credit.
    pub fn publish(self: &Arc<Self>, msg: Arc<Message>) -> Published {
        if self.is_deleted() {
            return Published::Dropped;
        }
        let stored = {
            let mut st = self.state.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            let persistent = self.options.durable && msg.persistent();
            let lim = self.limits;
            if lim.overflow != Overflow::DropHead
                && lim.exceeded(
                    st.store.len() as u64 + 1,
                    st.store.bytes() + msg.size() as u64,
                )
            {
                return Published::Refused;
            }
            let accepted = st.store.push(QueuedMessage {
                seq,
                msg,
                redelivered: false,
                stored: false,
            });
            if !accepted {
                return Published::Refused;
            }
            if lim.overflow == Overflow::DropHead {
                while lim.exceeded(st.store.len() as u64, st.store.bytes()) {
                    let Some(old) = st.store.pop() else { break };
                    st.store.ack(&old);
                }
            }
            persistent
        };
        self.dispatch();
        if stored {
            Published::Stored
        } else {
            Published::Accepted
        }
    }

    /// Delivers ready messages to consumers with credit, round robin.
    pub fn dispatch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        let mut skipped = 0;
        let mut delivered_stored = 0u64;
        while !st.store.is_empty() && skipped < st.consumers.len() {
            let outcome = {
                let Some(c) = st.consumers.front() else { break };
                if !c.gate.active.load(Ordering::Acquire) || !c.credit.try_acquire() {
                    Outcome::NoCredit
                } else if !c.gate.credit.try_acquire() {
                    c.credit.release();
                    Outcome::NoCredit
                } else {
                    Outcome::Delivered
                }
            };
            match outcome {
                Outcome::NoCredit => {
                    st.consumers.rotate_left(1);
                    skipped += 1;
                }
                Outcome::Delivered => {
                    let Some(qm) = st.store.pop() else { break };
                    let Some(c) = st.consumers.pop_front() else {
                        st.store.requeue(qm);
                        break;
                    };
                    let no_ack = c.no_ack;
                    let seq = qm.seq;
                    let stored = qm.stored;
                    let ack_copy = (no_ack && stored).then(|| qm.clone());
                    let event = ConnEvent::Deliver {
                        channel: c.channel,
                        consumer_tag: c.tag.clone(),
                        queue: self.clone(),
                        message: qm,
                        no_ack,
                    };
                    match c.tx.send(event) {
                        Ok(()) => {
                            if let Some(m) = ack_copy {
                                st.store.ack(&m);
                            } else if !no_ack {
                                st.unacked += 1;
                                if stored {
                                    delivered_stored = delivered_stored.max(seq);
                                }
                            }
                            st.consumers.push_back(c);
                            skipped = 0;
                        }
                        Err(e) => {
                            // The connection is gone; its cleanup will not find this consumer,
                            // so drop it here and keep the message.
                            if let ConnEvent::Deliver { message, .. } = e.0 {
                                st.store.requeue(message);
                            }
                        }
                    }
                }
            }
        }
        if delivered_stored > 0 {
            st.store.delivered(delivered_stored);
        }
    }

    /// basic.get: takes the next ready message, with the count left behind it.
    pub fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        let qm = st.store.pop()?;
        if no_ack {
            st.store.ack(&qm);
        } else {
            st.unacked += 1;
            if qm.stored {
                st.store.delivered(qm.seq);
            }
        }
        let left = st.store.len() as u32;
        Some((qm, left))
    }

    /// Delivered messages are finished with (acked, or rejected without requeue).
    pub fn ack<'a>(&self, messages: impl IntoIterator<Item = &'a QueuedMessage>) {
        if self.is_deleted() {
            return;
        }
        let mut st = self.state.lock();
        for m in messages {
            st.store.ack(m);
            st.unacked = st.unacked.saturating_sub(1);
        }
    }

    /// Delivered messages go back to their original places, marked redelivered.
    pub fn requeue(self: &Arc<Self>, messages: impl IntoIterator<Item = QueuedMessage>) {
        if self.is_deleted() {
            return;
        }
        {
            let mut st = self.state.lock();
            for mut qm in messages {
                qm.redelivered = true;
                st.unacked = st.unacked.saturating_sub(1);
                st.store.requeue(qm);
            }
        }
        self.dispatch();
    }

    /// Registers a consumer, enforcing exclusive-consumer rules.
    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> AmqpResult<()> {
        {
            let mut st = self.state.lock();
            if consumer.exclusive && !st.consumers.is_empty() {
                return Err(AmqpError::access_refused(format!(
                    "queue '{}' in vhost '{}' in exclusive use",
                    self.name, self.vhost
                )));
            }
            if st.consumers.iter().any(|c| c.exclusive) {
                return Err(AmqpError::access_refused(format!(
                    "queue '{}' in vhost '{}' in exclusive use",
                    self.name, self.vhost
                )));
            }
            st.had_consumers = true;
            st.consumers.push_back(consumer);
        }
        self.dispatch();
        Ok(())
    }

    /// Removes one consumer; true if the queue is now due for auto-delete.
    pub fn remove_consumer(&self, conn_id: u64, channel: u16, tag: &str) -> bool {
        let mut st = self.state.lock();
        st.consumers
            .retain(|c| !(c.conn_id == conn_id && c.channel == channel && &*c.tag == tag));
        self.options.auto_delete && st.had_consumers && st.consumers.is_empty()
    }

    /// Ready message count and consumer count.
    pub fn counts(&self) -> (u32, u32) {
        let st = self.state.lock();
        (st.store.len() as u32, st.consumers.len() as u32)
    }

    /// Messages delivered and not yet settled.
    pub fn unacked(&self) -> usize {
        self.state.lock().unacked
    }

    /// Drops ready messages (unacked ones are untouched, as in RabbitMQ).
    pub fn purge(&self) -> u32 {
        self.state.lock().store.purge() as u32
    }

    /// Marks the queue deleted and hands back its consumers (to be told) and ready count.
    pub fn mark_deleted(&self) -> (u32, Vec<Consumer>) {
        self.deleted.store(true, Ordering::Release);
        let mut st = self.state.lock();
        let n = st.store.len() as u32;
        st.store.destroy();
        (n, st.consumers.drain(..).collect())
    }
}
