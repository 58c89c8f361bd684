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
//! exchange or vhost while holding its state lock: messages it dead-letters are collected under
//! the lock and routed after it is released, then retired from the store (so a crash midway
//! duplicates rather than loses them).
//!
//! Timers (message expiry at the head, x-expires) are tokio tasks holding a `Weak` to the queue.
//!
//! Policies: the arguments the queue acts on ([`Queue::args`]) are its declared ones combined
//! with the vhost's policy for it, swapped as a whole when a policy changes so the hot path reads
//! them with one atomic load and no lock (see `policy.rs`).

pub mod args;
pub mod dead_letter;

pub use args::{Overflow, QueueArgs};
use dead_letter::Reason;

use crate::connection::{ConnEvent, ConnSender};
use crate::error::{AmqpError, AmqpResult};
use crate::message::Message;
use crate::policy::Policy;
use crate::store::{QueueStore, QueuedMessage};
use crate::vhost::VHost;
use amq_protocol::types::FieldTable;
use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Milliseconds since the Unix epoch (the unit of expiry times).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Deliveries a no-ack consumer may have queued towards its connection before the queue waits
/// for the connection to write them out: the byte budget that keeps a slow socket from growing
/// broker memory.
pub const NO_ACK_BUDGET: u32 = 512;

/// A counting limit shared between a queue (which acquires) and a channel (which releases on
/// ack or on write). `limit == 0` means unlimited. Aligned to a cache line so that, inside its
/// `Arc`, the counters do not share a line with the reference counts, which the consuming
/// thread changes on every delivery while the dispatching thread updates `used`.
#[derive(Debug, Default)]
#[repr(align(64))]
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

    /// Whether a unit is available now (dispatch picks consumers with this, then acquires).
    pub fn available(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        limit == 0 || self.used.load(Ordering::Acquire) < limit
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
        self.release_n(1)
    }

    /// Returns `n` units at once (a multiple ack): the counter is shared with the dispatching
    /// thread, so one update per settle instead of one per message saves cache-line transfers.
    pub fn release_n(&self, n: u32) -> bool {
        if n == 0 {
            return false;
        }
        let prev = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
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
    /// x-priority from basic.consume: higher-priority consumers with credit are served first.
    pub priority: i64,
    /// Per-consumer prefetch (basic.qos global=false), or the no-ack budget.
    pub credit: Arc<Credit>,
    pub gate: Arc<ChannelGate>,
}

/// A consumer as the management API shows it.
pub struct ConsumerInfo {
    pub tag: Arc<str>,
    pub conn_id: u64,
    pub channel: u16,
    pub ack_required: bool,
    pub exclusive: bool,
    pub priority: i64,
    pub prefetch_count: u32,
    /// False for a single-active-consumer queue's waiting consumers.
    pub active: bool,
}

impl Consumer {
    fn ready(&self) -> bool {
        self.gate.active.load(Ordering::Acquire)
            && self.credit.available()
            && (self.no_ack || self.gate.credit.available())
    }

    fn acquire(&self) -> bool {
        if !self.credit.try_acquire() {
            return false;
        }
        if !self.no_ack && !self.gate.credit.try_acquire() {
            self.credit.release();
            return false;
        }
        true
    }

    fn release(&self) {
        self.credit.release();
        if !self.no_ack {
            self.gate.credit.release();
        }
    }
}

struct QueueState {
    store: Box<dyn QueueStore>,
    next_seq: u64,
    /// In registration order; round robin moves a served consumer to the back.
    consumers: VecDeque<Consumer>,
    /// Delivered and not yet acked, rejected or requeued.
    unacked: usize,
    /// auto-delete only triggers once a queue has had a consumer, as in RabbitMQ.
    had_consumers: bool,
    /// A head-expiry timer task is running.
    expiry_armed: bool,
    /// x-message-deduplication cache.
    dedup: Option<crate::dedup::Dedup>,
    /// Message counters (management API message_stats).
    counts: crate::stats::QueueCounts,
    /// Samples of `counts` for rates.
    rates: crate::stats::Samples<crate::stats::QueueCounts>,
}

/// Declared properties of a queue, fixed at declaration (equivalence is checked against them).
#[derive(Clone, Debug)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// A message queue.
pub struct Queue {
    pub name: String,
    pub vhost: String,
    pub options: QueueOptions,
    /// Connection that owns an exclusive queue.
    pub owner: Option<u64>,
    /// Parsed x-arguments, as declared.
    pub declared: QueueArgs,
    /// What the queue acts on: `declared` combined with `policy`.
    args: ArcSwap<QueueArgs>,
    /// The policy applied to this queue, if any.
    policy: ArcSwapOption<Policy>,
    /// The operator policy applied to this queue, if any.
    operator_policy: ArcSwapOption<Policy>,
    /// Bumped whenever the x-expires timer is (re)started; an older timer task sees the
    /// change and ends.
    expires_gen: AtomicU64,
    /// For dead-lettering and x-expires (the vhost owns the queue, hence weak).
    vhost_ref: Weak<VHost>,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
    /// Last use (consume, get, declare), ms since the epoch, for x-expires.
    last_used: AtomicU64,
}

/// What became of a message routed to a queue (publisher confirms depend on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Held in memory (transient message or non-durable queue): confirm at once.
    Accepted,
    /// Written to a segment: confirm once group commit has synced it.
    Stored,
    /// The queue refused it (length limit with reject-publish, storage failure): nack.
    Refused,
    /// The queue was deleted meanwhile: as if unrouted.
    Dropped,
}

/// The queues one connection published to while it handled one socket read, with their
/// records possibly still in write buffers ([`Queue::publish_deferred`]). Flushing them all at
/// the end of the read costs one write per queue instead of one per message; the confirms of
/// those publishes take their group-commit epoch only after that flush.
#[derive(Default)]
pub struct WriteBatch {
    queues: Vec<Arc<Queue>>,
    /// Addresses of `queues` once there are many (a wide fanout), so adding stays O(1).
    index: std::collections::HashSet<usize, crate::FastHash>,
    /// A flush of this batch failed: its confirms must be nacks.
    failed: bool,
    /// Confirms wait for the end of the batch (and whether any of them waits for group commit).
    confirms: bool,
    stored: bool,
}

impl WriteBatch {
    /// Remembers a queue published to with `publish_deferred` (once per queue).
    pub fn add(&mut self, q: &Arc<Queue>) {
        const SCAN: usize = 8;
        if self.queues.len() < SCAN {
            if !self.queues.iter().any(|x| Arc::ptr_eq(x, q)) {
                self.queues.push(q.clone());
            }
            return;
        }
        if self.index.is_empty() {
            self.index
                .extend(self.queues.iter().map(|x| Arc::as_ptr(x) as usize));
        }
        if self.index.insert(Arc::as_ptr(q) as usize) {
            self.queues.push(q.clone());
        }
    }

    /// A confirm now waits for the end of the batch; `stored` if it also waits for group commit.
    pub fn add_confirm(&mut self, stored: bool) {
        self.confirms = true;
        self.stored |= stored;
    }

    /// Writes every touched queue's buffered records. False if any write of this batch failed.
    pub fn flush(&mut self) -> bool {
        self.index.clear();
        for q in self.queues.drain(..) {
            if !q.flush() {
                self.failed = true;
            }
        }
        !self.failed
    }

    /// Ends the batch: flushes, and returns None if no confirm waits for it, else whether the
    /// batch's writes all succeeded and whether a confirm waits for group commit.
    pub fn finish(&mut self) -> Option<(bool, bool)> {
        let ok = self.flush();
        self.failed = false;
        let confirms = std::mem::take(&mut self.confirms);
        let stored = std::mem::take(&mut self.stored);
        confirms.then_some((ok, stored))
    }
}

/// Messages leaving the queue for its dead-letter exchange, and whether they were unacked.
type DeadLetters = Vec<(QueuedMessage, Reason)>;

impl Queue {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        vhost: String,
        options: QueueOptions,
        owner: Option<u64>,
        store: Box<dyn QueueStore>,
        next_seq: u64,
        vhost_ref: Weak<VHost>,
    ) -> Arc<Self> {
        let args = QueueArgs::parse(&options.arguments).unwrap_or_default();
        let dedup = crate::dedup::Dedup::from_args(&options.arguments)
            .ok()
            .flatten();
        let q = Arc::new(Queue {
            name,
            vhost,
            args: ArcSwap::from_pointee(args.clone()),
            declared: args,
            policy: ArcSwapOption::empty(),
            operator_policy: ArcSwapOption::empty(),
            expires_gen: AtomicU64::new(0),
            options,
            owner,
            vhost_ref,
            state: Mutex::new(QueueState {
                store,
                next_seq,
                consumers: VecDeque::new(),
                unacked: 0,
                had_consumers: false,
                expiry_armed: false,
                dedup,
                counts: Default::default(),
                rates: Default::default(),
            }),
            deleted: AtomicBool::new(false),
            last_used: AtomicU64::new(now_ms()),
        });
        q.start_expires_timer();
        // Recovered messages may carry expiry times.
        q.arm_expiry();
        q
    }

    /// The arguments in force (declared, combined with the policy). One atomic load.
    pub fn args(&self) -> arc_swap::Guard<Arc<QueueArgs>> {
        self.args.load()
    }

    /// The policy applied to this queue, if any.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.load_full()
    }

    /// The operator policy applied to this queue, if any.
    pub fn operator_policy(&self) -> Option<Arc<Policy>> {
        self.operator_policy.load_full()
    }

    /// Applies `policy` and `operator` (None, None: back to the declared arguments) and returns
    /// the arguments in force before, for [`Queue::policy_applied`]. Only swaps: safe under a
    /// map entry lock. The three swaps are not one step, so the management API may for an
    /// instant show one kind's new policy beside the other's old one; the hot path reads only
    /// `args`, and changes are serialised by the vhost's topology lock.
    pub fn set_policies(
        &self,
        policy: Option<Arc<Policy>>,
        operator: Option<Arc<Policy>>,
    ) -> Arc<QueueArgs> {
        let args = Arc::new(
            self.declared
                .with_policies(policy.as_deref(), operator.as_deref()),
        );
        self.policy.store(policy);
        self.operator_policy.store(operator);
        self.args.swap(args)
    }

    /// Acts on a change of arguments at run time, as RabbitMQ does when a policy changes: a
    /// lowered length limit drops (and dead-letters) head messages at once, a changed x-expires
    /// restarts its timer from now, a changed consumer timeout re-arms the consumers'
    /// connections. Message TTL needs nothing: expiry is stamped on each message at enqueue,
    /// so only messages published from now on get the new TTL, as in RabbitMQ.
    pub fn policy_applied(self: &Arc<Self>, old: &QueueArgs) {
        let args = self.args.load_full();
        if args.expires != old.expires {
            self.touch();
            self.start_expires_timer();
        }
        if args.consumer_timeout != old.consumer_timeout {
            let st = self.state.lock();
            let mut told: Vec<u64> = Vec::new();
            for c in st.consumers.iter().filter(|c| !c.no_ack) {
                if !told.contains(&c.conn_id) {
                    told.push(c.conn_id);
                    let _ = c.tx.send(ConnEvent::ConsumerTimeoutChanged);
                }
            }
        }
        if args.overflow == Overflow::DropHead {
            let mut dead = DeadLetters::new();
            {
                let mut st = self.state.lock();
                while args.exceeded(st.store.len() as u64, st.store.bytes()) {
                    let Some(old) = st.store.pop() else { break };
                    dead.push((old, Reason::MaxLen));
                }
            }
            self.dead_letter(dead, false);
        }
    }

    /// (Re)starts the x-expires timer for the current arguments; a running one ends.
    fn start_expires_timer(self: &Arc<Self>) {
        let generation = self.expires_gen.fetch_add(1, Ordering::AcqRel) + 1;
        if self.args().expires.is_some()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(expires_loop(Arc::downgrade(self), generation));
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Marks the queue used (for x-expires).
    pub fn touch(&self) {
        self.last_used.store(now_ms(), Ordering::Relaxed);
    }

    /// The expiry time for a message published now: the sooner of the queue TTL and the
    /// message's expiration property (already validated by the channel).
    fn expiry_for(ttl: Option<u64>, msg: &Message, now: u64) -> u64 {
        let per_msg = msg
            .properties
            .expiration()
            .as_ref()
            .and_then(|e| e.as_str().parse::<u64>().ok());
        match (ttl, per_msg) {
            (None, None) => 0,
            (a, b) => now.saturating_add(a.unwrap_or(u64::MAX).min(b.unwrap_or(u64::MAX))),
        }
    }

    /// Enqueues a routed message and hands it to a consumer if one has credit. A durable copy
    /// is written before this returns, so a confirm epoch requested afterwards covers it.
    pub fn publish(self: &Arc<Self>, msg: Arc<Message>) -> Published {
        self.enqueue(msg, true)
    }

    /// Like [`Queue::publish`], but a durable copy may stay in the store's write buffer: the
    /// caller must [`Queue::flush`] (through a [`WriteBatch`]) before it asks for the epoch
    /// that confirms this publish, and nack the publish if that flush fails.
    pub fn publish_deferred(self: &Arc<Self>, msg: Arc<Message>) -> Published {
        self.enqueue(msg, false)
    }

    /// Writes the records publishes left buffered. False if the store has failed: publishes
    /// accepted since may not be durable.
    pub fn flush(&self) -> bool {
        self.state.lock().store.flush()
    }

    fn enqueue(self: &Arc<Self>, msg: Arc<Message>, write_now: bool) -> Published {
        if self.is_deleted() {
            return Published::Dropped;
        }
        // One clock reading for both the expiry and the dispatch below: with a TTL of 0, a
        // millisecond ticking over in between would expire a message a consumer was waiting for.
        // Without a TTL there is nothing to stamp, and dispatch reads the clock only if it meets
        // an expiring message (0 = not read yet).
        let args = self.args();
        let mut now = 0;
        let expires_at = if args.message_ttl.is_some() || msg.properties.expiration().is_some() {
            now = now_ms();
            Self::expiry_for(args.message_ttl, &msg, now)
        } else {
            0
        };
        let mut dead = DeadLetters::new();
        let outcome = {
            // One lock hold for the push and the dispatch after it: the publisher and an
            // acking consumer contend for this lock, and every extra hold is another chance
            // for one of them to sleep on it.
            let mut st = self.state.lock();
            let persistent = self.options.durable && msg.persistent();
            if let Some(d) = st.dedup.as_mut()
                && d.is_duplicate(&msg, if now == 0 { now_ms() } else { now })
            {
                // Dropped, and confirmed like any accepted message.
                return Published::Accepted;
            }
            if args.overflow != Overflow::DropHead
                && args.exceeded(
                    st.store.len() as u64 + 1,
                    st.store.bytes() + msg.size() as u64,
                )
            {
                if args.overflow == Overflow::RejectPublishDlx {
                    dead.push((QueuedMessage::new(0, msg, 0), Reason::MaxLen));
                }
                Published::Refused
            } else {
                let seq = st.next_seq;
                st.next_seq += 1;
                if !st.store.push(QueuedMessage::new(seq, msg, expires_at))
                    || (write_now && !st.store.flush())
                {
                    // A message whose write failed after it was buffered stays ready (it may be
                    // delivered); its publisher is nacked since it may not survive a restart.
                    Published::Refused
                } else {
                    st.counts.publish += 1;
                    if args.overflow == Overflow::DropHead {
                        while args.exceeded(st.store.len() as u64, st.store.bytes()) {
                            let Some(old) = st.store.pop() else { break };
                            dead.push((old, Reason::MaxLen));
                        }
                    }
                    self.dispatch_locked(&mut st, &mut dead, now);
                    if persistent {
                        Published::Stored
                    } else {
                        Published::Accepted
                    }
                }
            }
        };
        if expires_at != 0 && matches!(outcome, Published::Stored | Published::Accepted) {
            self.arm_expiry();
        }
        self.dead_letter(dead, false);
        outcome
    }

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut dead = DeadLetters::new();
        self.dispatch_locked(&mut self.state.lock(), &mut dead, 0);
        self.dead_letter(dead, false);
    }

    /// Pops the next message that has not expired; expired ones go to `dead`.
    fn pop_live(
        st: &mut QueueState,
        now: &mut u64,
        dead: &mut DeadLetters,
    ) -> Option<QueuedMessage> {
        loop {
            let m = st.store.pop()?;
            if m.expires_at != 0 {
                if *now == 0 {
                    *now = now_ms();
                }
                // Strictly past: a TTL of 0 still lets a waiting consumer take the message in
                // the same millisecond, as RabbitMQ's "expire unless delivered at once".
                if m.expires_at < *now {
                    dead.push((m, Reason::Expired));
                    continue;
                }
            }
            return Some(m);
        }
    }

    /// Picks the consumer to serve next: the single active one, or the first ready consumer
    /// of the highest priority among ready ones.
    fn pick(&self, st: &QueueState) -> Option<usize> {
        if self.declared.single_active_consumer {
            return st.consumers.front().filter(|c| c.ready()).map(|_| 0);
        }
        let mut best: Option<(usize, i64)> = None;
        for (i, c) in st.consumers.iter().enumerate() {
            if c.ready() && best.is_none_or(|(_, p)| c.priority > p) {
                best = Some((i, c.priority));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Dispatch with the queue's lock held. `now` is the clock reading to judge expiry by, or 0
    /// to read the clock when needed.
    fn dispatch_locked(
        self: &Arc<Self>,
        st: &mut QueueState,
        dead: &mut DeadLetters,
        mut now: u64,
    ) {
        let mut delivered_stored = 0u64;
        let mut misses = 0;
        while !st.store.is_empty() && misses < 4 {
            let Some(idx) = self.pick(st) else { break };
            if !st.consumers[idx].acquire() {
                // Lost a race for shared (channel) credit with another queue; re-pick.
                misses += 1;
                continue;
            }
            let Some(qm) = Self::pop_live(st, &mut now, dead) else {
                st.consumers[idx].release();
                break;
            };
            let c = &st.consumers[idx];
            let (no_ack, seq, stored, again) = (c.no_ack, qm.seq, qm.stored, qm.redelivered);
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
                    st.counts.deliver_get += 1;
                    st.counts.redeliver += u64::from(again);
                    if let Some(m) = ack_copy {
                        st.store.ack(&m);
                    } else if !no_ack {
                        st.unacked += 1;
                        if stored {
                            delivered_stored = delivered_stored.max(seq);
                        }
                    }
                    // Round robin: the served consumer goes to the back (a single active
                    // consumer is the front one and stays). Already there: nothing to move.
                    if !self.declared.single_active_consumer
                        && idx + 1 != st.consumers.len()
                        && let Some(c) = st.consumers.remove(idx)
                    {
                        st.consumers.push_back(c);
                    }
                }
                Err(e) => {
                    // The connection is gone; its cleanup will not find this consumer, so
                    // drop it here and keep the message.
                    st.consumers.remove(idx);
                    if let ConnEvent::Deliver { message, .. } = e.0 {
                        st.store.requeue(message);
                    }
                }
            }
        }
        if delivered_stored > 0 {
            st.store.delivered(delivered_stored);
        }
    }

    /// Writes the delivered mark raised by dispatches (see [`QueueStore::write_delivered`]).
    pub fn write_delivered(&self) {
        self.state.lock().store.write_delivered();
    }

    /// basic.get: takes the next ready message, with the count left behind it.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        self.touch();
        let mut dead = DeadLetters::new();
        let got = {
            let mut st = self.state.lock();
            let mut now = 0;
            Self::pop_live(&mut st, &mut now, &mut dead).map(|qm| {
                st.counts.deliver_get += 1;
                st.counts.redeliver += u64::from(qm.redelivered);
                if no_ack {
                    st.store.ack(&qm);
                } else {
                    st.unacked += 1;
                    if qm.stored {
                        // basic.get-ok goes out with this connection's next write: mark now.
                        st.store.delivered(qm.seq);
                        st.store.write_delivered();
                    }
                }
                let left = st.store.len() as u32;
                (qm, left)
            })
        };
        self.dead_letter(dead, false);
        got
    }

    /// Delivered messages are finished with (acked); with `dispatch`, the credit their acks
    /// freed is used in the same lock hold (one hold fewer for the publisher to meet).
    pub fn ack<'a>(
        self: &Arc<Self>,
        messages: impl IntoIterator<Item = &'a QueuedMessage>,
        dispatch: bool,
    ) {
        if self.is_deleted() {
            return;
        }
        let mut dead = DeadLetters::new();
        {
            let mut st = self.state.lock();
            let mut n = 0u64;
            st.store
                .ack_many(&mut messages.into_iter().inspect(|_| n += 1));
            st.unacked = st.unacked.saturating_sub(n as usize);
            st.counts.ack += n;
            if dispatch {
                self.dispatch_locked(&mut st, &mut dead, 0);
            }
        }
        self.dead_letter(dead, false);
    }

    /// Delivered messages rejected without requeue: dead-lettered (if configured), then gone.
    pub fn reject(self: &Arc<Self>, messages: Vec<QueuedMessage>) {
        if self.is_deleted() {
            return;
        }
        let dead = messages
            .into_iter()
            .map(|m| (m, Reason::Rejected))
            .collect();
        self.dead_letter(dead, true);
    }

    /// Delivered messages go back to their original places, marked redelivered; past the
    /// delivery limit they are dead-lettered instead.
    pub fn requeue(self: &Arc<Self>, messages: impl IntoIterator<Item = QueuedMessage>) {
        if self.is_deleted() {
            return;
        }
        let mut over_limit = DeadLetters::new();
        let delivery_limit = self.args().delivery_limit;
        {
            let mut st = self.state.lock();
            for mut qm in messages {
                qm.redelivered = true;
                qm.delivery_count = qm.delivery_count.saturating_add(1);
                if let Some(limit) = delivery_limit {
                    if u64::from(qm.delivery_count) > limit {
                        over_limit.push((qm, Reason::DeliveryLimit));
                        continue;
                    }
                    qm.msg = dead_letter::with_delivery_count(&qm.msg, qm.delivery_count);
                }
                st.unacked = st.unacked.saturating_sub(1);
                st.store.requeue(qm);
            }
        }
        self.dead_letter(over_limit, true);
        self.dispatch();
    }

    /// Routes messages to the dead-letter exchange (when there is one and it exists), then
    /// retires them from this queue's store. `unacked` says they were counted as delivered.
    fn dead_letter(self: &Arc<Self>, items: DeadLetters, unacked: bool) {
        if items.is_empty() {
            return;
        }
        let args = self.args.load_full();
        let vhost = self.vhost_ref.upgrade();
        if let Some(vh) = &vhost {
            let has_dlx = args
                .dead_letter_exchange
                .as_ref()
                .is_some_and(|x| vh.exchanges.contains_key(x));
            for (_, reason) in &items {
                if has_dlx {
                    vh.losses.count_dead_lettered(*reason, 1);
                } else {
                    vh.losses.count_dropped(*reason, 1);
                }
            }
        }
        if let (Some(dlx), Some(vhost)) = (&args.dead_letter_exchange, vhost)
            && let Ok(exchange) = vhost.exchange(dlx)
        {
            let now_secs = now_ms() / 1000;
            let mut targets: Vec<Arc<Queue>> = Vec::new();
            for (m, reason) in &items {
                let dl_key = args.dead_letter_routing_key.as_deref();
                let msg =
                    dead_letter::dead_lettered(&m.msg, *reason, &self.name, dlx, dl_key, now_secs);
                let keys: Vec<String> = match dl_key {
                    Some(k) => vec![k.to_owned()],
                    None => dead_letter::routing_keys(&m.msg),
                };
                let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                targets.clear();
                vhost.route(
                    &exchange,
                    &key_refs,
                    msg.properties.headers().as_ref(),
                    &mut targets,
                );
                for q in &targets {
                    if *reason != Reason::Rejected
                        && dead_letter::is_cycle(&msg, &q.name)
                        && dead_letter::is_cycle(&m.msg, &q.name)
                    {
                        continue;
                    }
                    if *reason != Reason::Rejected
                        && Arc::ptr_eq(q, self)
                        && dead_letter::is_cycle(&msg, &q.name)
                    {
                        continue;
                    }
                    q.publish(msg.clone());
                }
            }
        }
        let mut st = self.state.lock();
        for (m, _) in &items {
            st.store.ack(m);
            if unacked {
                st.unacked = st.unacked.saturating_sub(1);
            }
        }
    }

    /// Starts the head-expiry timer if messages with an expiry may be waiting.
    fn arm_expiry(self: &Arc<Self>) {
        {
            let mut st = self.state.lock();
            if st.expiry_armed || st.store.is_empty() {
                return;
            }
            st.expiry_armed = true;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(expiry_loop(Arc::downgrade(self)));
            }
            Err(_) => self.state.lock().expiry_armed = false,
        }
    }

    /// Expires messages at the head; returns when the next head message expires, or None
    /// (and disarms) when nothing at the head carries an expiry.
    fn expire_head(self: &Arc<Self>) -> Option<u64> {
        let mut dead = DeadLetters::new();
        let next = {
            let mut st = self.state.lock();
            let now = now_ms();
            let next = loop {
                let Some(m) = st.store.pop() else { break None };
                if m.expires_at != 0 && m.expires_at < now {
                    dead.push((m, Reason::Expired));
                    continue;
                }
                let at = m.expires_at;
                st.store.requeue(m);
                break (at != 0).then_some(at);
            };
            if next.is_none() {
                st.expiry_armed = false;
            }
            next
        };
        self.dead_letter(dead, false);
        next
    }

    /// Registers a consumer, enforcing exclusive-consumer rules.
    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> AmqpResult<()> {
        self.touch();
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
    pub fn remove_consumer(self: &Arc<Self>, conn_id: u64, channel: u16, tag: &str) -> bool {
        self.touch();
        let (auto_delete, was_active) = {
            let mut st = self.state.lock();
            let was_active = st
                .consumers
                .front()
                .is_some_and(|c| c.conn_id == conn_id && c.channel == channel && &*c.tag == tag);
            st.consumers
                .retain(|c| !(c.conn_id == conn_id && c.channel == channel && &*c.tag == tag));
            (
                self.options.auto_delete && st.had_consumers && st.consumers.is_empty(),
                was_active,
            )
        };
        if was_active && self.declared.single_active_consumer {
            // The next registered consumer takes over.
            self.dispatch();
        }
        auto_delete
    }

    /// Ready message count and consumer count.
    pub fn counts(&self) -> (u32, u32) {
        let st = self.state.lock();
        (st.store.len() as u32, st.consumers.len() as u32)
    }

    /// Message counters since the queue was declared (or recovered), and the last sampling
    /// window (earlier, later, seconds) for rates.
    pub fn message_stats(&self) -> crate::stats::QueueStats {
        let st = self.state.lock();
        (st.counts, st.rates.window())
    }

    /// Takes a rate sample (the management API's sampler calls this periodically).
    pub fn sample_rates(&self, at: std::time::Instant) {
        let mut st = self.state.lock();
        let c = st.counts;
        st.rates.push(at, c);
    }

    /// Its consumers, for the management API.
    pub fn consumer_infos(&self) -> Vec<ConsumerInfo> {
        let st = self.state.lock();
        st.consumers
            .iter()
            .enumerate()
            .map(|(i, c)| ConsumerInfo {
                tag: c.tag.clone(),
                conn_id: c.conn_id,
                channel: c.channel,
                ack_required: !c.no_ack,
                exclusive: c.exclusive,
                priority: c.priority,
                prefetch_count: if c.no_ack { 0 } else { c.credit.limit() },
                active: !self.declared.single_active_consumer || i == 0,
            })
            .collect()
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

/// Expires head messages as they come due; ends when nothing at the head has an expiry.
async fn expiry_loop(q: Weak<Queue>) {
    loop {
        let next = {
            let Some(q) = q.upgrade() else { return };
            if q.is_deleted() {
                return;
            }
            match q.expire_head() {
                Some(at) => at,
                None => return,
            }
        };
        let wait = next.saturating_sub(now_ms()) + 1;
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Deletes the queue once it has gone unused for its x-expires (read afresh on each round, so
/// a policy change takes effect); ends when the timer is restarted (newer `generation`).
async fn expires_loop(q: Weak<Queue>, generation: u64) {
    loop {
        let wait = {
            let Some(q) = q.upgrade() else { return };
            if q.is_deleted() || q.expires_gen.load(Ordering::Acquire) != generation {
                return;
            }
            let Some(expires) = q.args().expires else {
                return;
            };
            let idle = now_ms().saturating_sub(q.last_used.load(Ordering::Relaxed));
            let (_, consumers) = q.counts();
            if consumers == 0 && idle >= expires {
                if let Some(vhost) = q.vhost_ref.upgrade() {
                    tracing::info!(queue = %q.name, vhost = %q.vhost, "queue expired (x-expires)");
                    let (_, consumers) = vhost.remove_queue(&q);
                    crate::channel::notify_cancelled(consumers);
                }
                return;
            }
            if consumers > 0 {
                expires
            } else {
                expires - idle
            }
        };
        tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    fn queue(name: &str) -> Arc<Queue> {
        let options = QueueOptions {
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::default(),
        };
        let store = Box::new(crate::store::memory::MemoryStore::default());
        Queue::new(
            name.into(),
            "/".into(),
            options,
            None,
            store,
            1,
            Weak::new(),
        )
    }

    #[test]
    fn a_batch_holds_each_queue_once_however_wide_the_fanout() {
        let queues: Vec<Arc<Queue>> = (0..40).map(|i| queue(&format!("q{i}"))).collect();
        let mut batch = WriteBatch::default();
        for _ in 0..3 {
            for q in queues.iter().rev() {
                batch.add(q);
            }
        }
        assert_eq!(batch.queues.len(), queues.len());
        batch.add_confirm(true);
        assert_eq!(batch.finish(), Some((true, true)));
        assert!(batch.queues.is_empty() && batch.index.is_empty());
        assert_eq!(batch.finish(), None, "a finished batch starts empty");
        batch.add(&queues[0]);
        batch.add(&queues[0]);
        assert_eq!(batch.queues.len(), 1);
    }
}
