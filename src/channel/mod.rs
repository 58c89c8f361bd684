//! A channel: what each method means for this client. Owned by its connection task as a plain
//! struct; it holds the channel's unacked deliveries, consumers, prefetch, confirm and tx state.
//!
//! Handlers return `AmqpResult`; the connection turns a soft error into channel.close and a hard
//! one into connection.close (the single error mapping point).

mod basic;
pub use basic::{REPLY_TO, RouteOutcome, check_properties, deliver, sender_selected_keys};
mod topology;
mod unacked;

use crate::connection::ConnCtx;
use crate::error::{AmqpError, AmqpResult};
use crate::message::Message;
use crate::protocol::assembler::{Assembler, Command, Content};
use crate::protocol::codec::{self, ContentHeader};
use crate::queue::{ChannelGate, Consumer, Credit, Queue};
use crate::store::QueuedMessage;
use crate::store::sync::SyncState;
use amq_protocol::protocol::{AMQPClass, basic as bm, channel as chm};
use bytes::Bytes;
use std::sync::Arc;

/// A frame addressed to a channel.
pub enum Input {
    Method(AMQPClass),
    Header(ContentHeader),
    Body(Bytes),
}

/// What the connection should do with the channel after a method.
pub enum After {
    Continue,
    /// The client closed the channel; it is released and can be forgotten.
    Closed,
    /// tx.commit wrote durable messages: stop reading this connection until group commit
    /// reaches this epoch, then call [`Channel::sync_done`] (keeps replies in order).
    WaitSync(u64),
}

/// A delivery awaiting ack.
struct Unacked {
    /// Its delivery tag (kept so a tx rollback can put it back).
    tag: u64,
    queue: Arc<Queue>,
    message: QueuedMessage,
    /// The consumer credit it holds (None for basic.get deliveries, which prefetch does not
    /// limit); the channel gate credit is held whenever this is Some.
    credit: Option<Arc<Credit>>,
    /// Consumer deliveries: the consumer and when it was delivered. The deadline is this plus
    /// the queue's consumer timeout as it is when checked (a policy may change it meanwhile).
    consumer: Option<(Arc<str>, std::time::Instant)>,
}

impl unacked::Tagged for Unacked {
    fn tag(&self) -> u64 {
        self.tag
    }
}

/// A consumer as the channel sees it.
struct ChanConsumer {
    queue: Arc<Queue>,
    credit: Arc<Credit>,
}

/// The direct reply-to pseudo-consumer of this channel.
struct ReplyConsumer {
    tag: String,
    /// Unguessable part of the reply-to address, so no other client can inject replies.
    secret: u64,
}

/// Pending publisher confirms, released strictly in publish order so a run of acks can be
/// coalesced into one `multiple` ack.
#[derive(Default)]
struct Confirms {
    /// Sequence number of the last publish.
    next: u64,
    /// (seq, group-commit epoch to wait for or 0, nack) for publishes not yet confirmed.
    pending: std::collections::VecDeque<(u64, u64, bool)>,
    /// Entries of `pending` waiting for group commit (checked on every loop iteration).
    waiting_sync: usize,
    /// Entries of `pending` whose epoch is still one of the `UNSEALED_*` placeholders.
    unsealed: usize,
}

/// Placeholder epochs of confirms whose records may still sit in a write buffer: never due
/// until `seal_confirms` replaces them after the batch's flush. Which one says whether the
/// message was written to disk (then the real epoch comes from group commit) or only accepted.
const UNSEALED_STORED: u64 = u64::MAX;
const UNSEALED_ACCEPTED: u64 = u64::MAX - 1;

impl Confirms {
    /// A publish confirmed once the connection's write batch ends.
    fn push_unsealed(&mut self, stored: bool) {
        self.next += 1;
        let placeholder = if stored {
            UNSEALED_STORED
        } else {
            UNSEALED_ACCEPTED
        };
        self.pending.push_back((self.next, placeholder, false));
        self.waiting_sync += 1;
        self.unsealed += 1;
    }

    /// A publish whose answer is known now: a nack if `refused`, else an ack (unroutable).
    fn push_settled(&mut self, refused: bool) {
        self.next += 1;
        self.pending.push_back((self.next, 0, refused));
    }

    /// Gives every placeholder its real epoch (stored messages; 0 for the others), or makes
    /// it a nack when the batch's writes failed.
    fn seal(&mut self, epoch: u64, ok: bool) {
        // Placeholders are the newest entries, possibly interleaved with settled ones.
        for entry in self.pending.iter_mut().rev() {
            if self.unsealed == 0 {
                break;
            }
            let stored = match entry.1 {
                UNSEALED_STORED => true,
                UNSEALED_ACCEPTED => false,
                _ => continue,
            };
            self.unsealed -= 1;
            entry.1 = if stored && ok { epoch } else { 0 };
            entry.2 |= !ok;
            if entry.1 == 0 {
                self.waiting_sync -= 1;
            }
        }
    }
}

/// Work buffered by tx.select until commit.
#[derive(Default)]
struct Tx {
    /// Publishes held until commit, as reassembled.
    publishes: Vec<Content>,
    /// Settlements taken out of `unacked`; put back on rollback.
    settles: Vec<(Unacked, Settle)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Drop,
}

/// A channel's state.
pub struct Channel {
    pub id: u16,
    assembler: Assembler,
    /// We sent channel.close and await close-ok; everything else is ignored meanwhile.
    pub closing: bool,
    next_tag: u64,
    unacked: unacked::UnackedList<Unacked>,
    consumers: crate::FastMap<Arc<str>, ChanConsumer>,
    /// basic.qos global=false: the limit new consumers get.
    prefetch: u32,
    gate: Arc<ChannelGate>,
    confirms: Option<Confirms>,
    tx: Option<Tx>,
    /// The last queue declared on this channel ("" in later methods refers to it).
    last_queue: Option<String>,
    reply: Option<ReplyConsumer>,
    /// The exchange this channel last published to and whether the user may write to it:
    /// publishers mostly use one exchange, so its by-name lookup and the permission check run
    /// once, not per message. Permissions are fixed for the connection's lifetime, so the answer
    /// cannot go stale; a deleted exchange is looked up again.
    publish_to: Option<(Arc<crate::exchange::Exchange>, bool)>,
    /// The queue this channel's last publish to the default exchange went to (see `deliver`).
    publish_queue: Option<Arc<crate::queue::Queue>>,
    /// A tx.commit-ok is owed once group commit completes.
    commit_pending: bool,
    /// Group commit failed under a transaction: later commits are refused.
    commit_failed: bool,
    /// Earliest consumer-timeout deadline among unacked deliveries (may be stale-early).
    pub next_timeout: Option<std::time::Instant>,
}

/// A channel as the management API shows it.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    pub number: u16,
    pub confirm: bool,
    pub transactional: bool,
    pub prefetch_count: u32,
    pub global_prefetch_count: u32,
    pub consumer_count: usize,
    pub messages_unacknowledged: usize,
    pub messages_unconfirmed: usize,
    /// channel.flow(active=false) from the client.
    pub flow_blocked: bool,
}

impl Channel {
    /// A snapshot for the management API.
    pub fn info(&self) -> ChannelInfo {
        ChannelInfo {
            number: self.id,
            confirm: self.confirms.is_some(),
            transactional: self.tx.is_some(),
            prefetch_count: self.prefetch,
            global_prefetch_count: self.gate.credit.limit(),
            consumer_count: self.consumers.len(),
            messages_unacknowledged: self.unacked.len(),
            messages_unconfirmed: self.confirms.as_ref().map_or(0, |c| c.pending.len()),
            flow_blocked: !self.gate.active.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    pub fn new(id: u16) -> Self {
        Channel {
            id,
            assembler: Assembler::default(),
            closing: false,
            next_tag: 1,
            unacked: Default::default(),
            consumers: crate::FastMap::default(),
            prefetch: 0,
            gate: Arc::new(ChannelGate::default()),
            confirms: None,
            tx: None,
            last_queue: None,
            reply: None,
            publish_to: None,
            publish_queue: None,
            commit_pending: false,
            commit_failed: false,
            next_timeout: None,
        }
    }

    /// Feeds one frame through the assembler and runs any completed command.
    pub fn input(&mut self, ctx: &mut ConnCtx, input: Input) -> AmqpResult<After> {
        let cmd = match input {
            Input::Method(m) => self.assembler.method(m)?,
            Input::Header(h) => self.assembler.header(h)?,
            Input::Body(b) => self.assembler.body(b)?,
        };
        match cmd {
            None => Ok(After::Continue),
            Some(Command::Publish(content)) => {
                self.publish(ctx, content)?;
                Ok(After::Continue)
            }
            Some(Command::Method(AMQPClass::Tx(
                amq_protocol::protocol::tx::AMQPMethod::Commit(_),
            ))) => self.tx_commit(ctx).map_err(|e| e.on(90, 20)),
            Some(Command::Method(m)) => {
                let (class_id, method_id) = (m.get_amqp_class_id(), m.get_amqp_method_id());
                self.method(ctx, m).map_err(|e| e.on(class_id, method_id))
            }
        }
    }

    fn method(&mut self, ctx: &mut ConnCtx, m: AMQPClass) -> AmqpResult<After> {
        use amq_protocol::protocol::{confirm, exchange as ex, queue as qm, tx};
        match m {
            AMQPClass::Channel(chm::AMQPMethod::Close(_)) => {
                self.release(ctx);
                ctx.send_method(
                    self.id,
                    AMQPClass::Channel(chm::AMQPMethod::CloseOk(chm::CloseOk {})),
                );
                return Ok(After::Closed);
            }
            AMQPClass::Channel(chm::AMQPMethod::CloseOk(_)) => {}
            AMQPClass::Channel(chm::AMQPMethod::Flow(f)) => self.flow(ctx, f.active),
            AMQPClass::Channel(chm::AMQPMethod::FlowOk(_)) => {}
            AMQPClass::Exchange(ex::AMQPMethod::Declare(d)) => self.exchange_declare(ctx, d)?,
            AMQPClass::Exchange(ex::AMQPMethod::Delete(d)) => self.exchange_delete(ctx, d)?,
            AMQPClass::Exchange(ex::AMQPMethod::Bind(b)) => self.exchange_bind(
                ctx,
                b.destination.as_str(),
                b.source.as_str(),
                b.routing_key.as_str(),
                b.arguments,
                true,
                b.nowait,
            )?,
            AMQPClass::Exchange(ex::AMQPMethod::Unbind(b)) => self.exchange_bind(
                ctx,
                b.destination.as_str(),
                b.source.as_str(),
                b.routing_key.as_str(),
                b.arguments,
                false,
                b.nowait,
            )?,
            AMQPClass::Queue(qm::AMQPMethod::Declare(d)) => self.queue_declare(ctx, d)?,
            AMQPClass::Queue(qm::AMQPMethod::Bind(b)) => self.queue_bind(ctx, b)?,
            AMQPClass::Queue(qm::AMQPMethod::Unbind(u)) => self.queue_unbind(ctx, u)?,
            AMQPClass::Queue(qm::AMQPMethod::Purge(p)) => self.queue_purge(ctx, p)?,
            AMQPClass::Queue(qm::AMQPMethod::Delete(d)) => self.queue_delete(ctx, d)?,
            AMQPClass::Basic(bm::AMQPMethod::Qos(q)) => self.qos(ctx, q)?,
            AMQPClass::Basic(bm::AMQPMethod::Consume(c)) => self.consume(ctx, c)?,
            AMQPClass::Basic(bm::AMQPMethod::Cancel(c)) => self.cancel(ctx, c),
            AMQPClass::Basic(bm::AMQPMethod::Get(g)) => self.get(ctx, g)?,
            AMQPClass::Basic(bm::AMQPMethod::Ack(a)) => {
                self.settle(ctx, a.delivery_tag, a.multiple, Settle::Ack)?
            }
            AMQPClass::Basic(bm::AMQPMethod::Nack(n)) => self.settle(
                ctx,
                n.delivery_tag,
                n.multiple,
                if n.requeue {
                    Settle::Requeue
                } else {
                    Settle::Drop
                },
            )?,
            AMQPClass::Basic(bm::AMQPMethod::Reject(r)) => self.settle(
                ctx,
                r.delivery_tag,
                false,
                if r.requeue {
                    Settle::Requeue
                } else {
                    Settle::Drop
                },
            )?,
            AMQPClass::Basic(bm::AMQPMethod::Recover(r)) => {
                self.recover(ctx, r.requeue)?;
                ctx.send_method(
                    self.id,
                    AMQPClass::Basic(bm::AMQPMethod::RecoverOk(bm::RecoverOk {})),
                );
            }
            AMQPClass::Basic(bm::AMQPMethod::RecoverAsync(r)) => self.recover(ctx, r.requeue)?,
            AMQPClass::Tx(tx::AMQPMethod::Select(_)) => self.tx_select(ctx)?,
            AMQPClass::Tx(tx::AMQPMethod::Rollback(_)) => self.tx_rollback(ctx)?,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.confirm_select(ctx, s.nowait)?
            }
            AMQPClass::Access(_) => {
                // access.request is obsolete; RabbitMQ answers it for old clients.
                ctx.send_method(
                    self.id,
                    AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::RequestOk(
                        amq_protocol::protocol::access::RequestOk {},
                    )),
                );
            }
            other => {
                return Err(AmqpError::command_invalid(format!(
                    "method {}/{} is not valid from a client on a channel",
                    other.get_amqp_class_id(),
                    other.get_amqp_method_id()
                )));
            }
        }
        Ok(After::Continue)
    }

    fn flow(&mut self, ctx: &mut ConnCtx, active: bool) {
        self.gate
            .active
            .store(active, std::sync::atomic::Ordering::Release);
        ctx.send_method(
            self.id,
            AMQPClass::Channel(chm::AMQPMethod::FlowOk(chm::FlowOk { active })),
        );
        if active {
            self.wake_all();
        }
    }

    /// Asks every queue this channel consumes from to dispatch (credit or flow opened up).
    fn wake_all(&self) {
        let mut seen: Vec<&Arc<Queue>> = Vec::new();
        for c in self.consumers.values() {
            if !seen.iter().any(|q| Arc::ptr_eq(q, &c.queue)) {
                seen.push(&c.queue);
                c.queue.dispatch();
            }
        }
    }

    /// Takes a consumer (already removed from `self.consumers`) off its queue; an auto-delete
    /// queue left without consumers goes, and its other consumers are told.
    fn detach(&self, ctx: &ConnCtx, tag: &str, c: &ChanConsumer) {
        if c.queue.remove_consumer(ctx.id, self.id, tag) {
            let (_, consumers) = ctx.vhost.remove_queue(&c.queue);
            notify_cancelled(consumers);
        }
    }

    /// Releases everything the channel holds: consumers leave their queues (auto-delete
    /// applies), unacked and tx-held deliveries go back to their queues.
    pub fn release(&mut self, ctx: &mut ConnCtx) {
        for (tag, c) in std::mem::take(&mut self.consumers) {
            self.detach(ctx, &tag, &c);
        }
        let mut back: Vec<Unacked> = self.unacked.take_all();
        if let Some(tx) = self.tx.take() {
            back.extend(tx.settles.into_iter().map(|(u, _)| u));
        }
        requeue_grouped(back);
        self.reply = None;
        self.assembler = Assembler::default();
    }

    /// A delivery pushed by a queue to one of our consumers.
    pub fn deliver(
        &mut self,
        ctx: &mut ConnCtx,
        tag: Arc<str>,
        queue: Arc<Queue>,
        message: QueuedMessage,
        no_ack: bool,
    ) {
        let Some(c) = self.consumers.get(&tag) else {
            // Cancelled while the delivery was in flight.
            if !no_ack {
                queue.requeue([message]);
            }
            return;
        };
        let delivery_tag = self.next_tag;
        self.next_tag += 1;
        let counters = &ctx.counters;
        crate::stats::bump(
            if no_ack {
                &counters.deliver_no_ack
            } else {
                &counters.deliver
            },
            1,
        );
        if message.redelivered {
            crate::stats::bump(&counters.redeliver, 1);
        }
        let m = &message.msg;
        codec::encode_deliver(
            &mut ctx.out,
            self.id,
            &tag,
            delivery_tag,
            message.redelivered,
            &m.exchange,
            &m.routing_key,
        );
        codec::encode_content(
            &mut ctx.out,
            self.id,
            &m.raw_properties,
            &m.body,
            ctx.frame_max,
        );
        if no_ack {
            ctx.return_no_ack_credit(&c.credit, &queue);
        } else {
            if message.stored {
                ctx.mark_delivered(&queue);
            }
            let credit = Some(c.credit.clone());
            let delivered_at = ctx.now;
            let deadline = delivered_at + consumer_timeout(&queue, ctx);
            if self.next_timeout.is_none_or(|t| deadline < t) {
                self.next_timeout = Some(deadline);
            }
            self.unacked.insert(Unacked {
                tag: delivery_tag,
                queue,
                message,
                credit,
                consumer: Some((tag.clone(), delivered_at)),
            });
        }
    }

    /// A queue's consumer timeout changed (policy): deadlines are recomputed at the next check,
    /// which is made due now.
    pub fn consumer_timeout_changed(&mut self) {
        if self.next_timeout.is_some() {
            self.next_timeout = Some(std::time::Instant::now());
        }
    }

    /// Consumer timeout: deliveries unacked past their deadline go back to their queue and
    /// their consumer is cancelled (basic.cancel), or, for clients that cannot take a
    /// server-side cancel, the channel is closed with 406 as RabbitMQ does.
    pub fn check_timeouts(&mut self, ctx: &mut ConnCtx, now: std::time::Instant) -> AmqpResult<()> {
        if self.next_timeout.is_none_or(|t| t > now) {
            return Ok(());
        }
        let deadline = |u: &Unacked| {
            u.consumer
                .as_ref()
                .map(|(_, at)| *at + consumer_timeout(&u.queue, ctx))
        };
        let expired: Vec<u64> = self
            .unacked
            .iter()
            .filter(|u| deadline(u).is_some_and(|d| d <= now))
            .map(|u| u.tag)
            .collect();
        self.next_timeout = self
            .unacked
            .iter()
            .filter_map(deadline)
            .filter(|d| *d > now)
            .min();
        if expired.is_empty() {
            return Ok(());
        }
        let mut cancelled: Vec<Arc<str>> = Vec::new();
        let mut items = Vec::new();
        let mut timeout_ms = 0;
        for tag in expired {
            if let Some(u) = self.unacked.remove(tag) {
                timeout_ms = consumer_timeout(&u.queue, ctx).as_millis();
                if let Some((ctag, _)) = &u.consumer
                    && !cancelled.contains(ctag)
                {
                    cancelled.push(ctag.clone());
                }
                items.push((u, Settle::Requeue));
            }
        }
        tracing::warn!(
            channel = self.id,
            timeout_ms,
            "consumer delivery acknowledgement timed out"
        );
        if !ctx.caps.consumer_cancel_notify {
            self.apply_settles(items);
            return Err(AmqpError::precondition(format!(
                "delivery acknowledgement on channel {} timed out. Timeout value used: {timeout_ms} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more",
                self.id
            )));
        }
        for ctag in &cancelled {
            if let Some(c) = self.consumers.remove(ctag) {
                self.detach(ctx, ctag, &c);
                ctx.send_method(
                    self.id,
                    AMQPClass::Basic(bm::AMQPMethod::Cancel(bm::Cancel {
                        consumer_tag: ctag.as_ref().into(),
                        nowait: true,
                    })),
                );
            }
        }
        self.apply_settles(items);
        Ok(())
    }

    /// The queue behind a consumer was deleted.
    pub fn consumer_cancelled(&mut self, ctx: &mut ConnCtx, tag: &str) {
        if self.consumers.remove(tag).is_some() && ctx.caps.consumer_cancel_notify {
            ctx.send_method(
                self.id,
                AMQPClass::Basic(bm::AMQPMethod::Cancel(bm::Cancel {
                    consumer_tag: tag.into(),
                    nowait: true,
                })),
            );
        }
    }

    /// A reply addressed to our direct reply-to consumer.
    pub fn direct_reply(&mut self, ctx: &mut ConnCtx, secret: u64, msg: Arc<Message>) {
        let Some(reply) = &self.reply else { return };
        if reply.secret != secret {
            return;
        }
        let delivery_tag = self.next_tag;
        self.next_tag += 1;
        codec::encode_deliver(
            &mut ctx.out,
            self.id,
            &reply.tag,
            delivery_tag,
            false,
            &msg.exchange,
            &msg.routing_key,
        );
        codec::encode_content(
            &mut ctx.out,
            self.id,
            &msg.raw_properties,
            &msg.body,
            ctx.frame_max,
        );
    }

    /// Sends the confirms that are due, coalescing runs of acks into one `multiple` ack.
    pub fn flush_confirms(&mut self, ctx: &mut ConnCtx, synced: SyncState) {
        let Some(c) = self.confirms.as_mut() else {
            return;
        };
        let mut run: Option<(u64, u32)> = None;
        let emit_ack = |ctx: &mut ConnCtx, run: Option<(u64, u32)>| {
            if let Some((upto, n)) = run {
                crate::stats::bump(&ctx.counters.confirm, u64::from(n));
                ctx.send_method(
                    self.id,
                    AMQPClass::Basic(bm::AMQPMethod::Ack(bm::Ack {
                        delivery_tag: upto,
                        multiple: n > 1,
                    })),
                );
            }
        };
        while let Some(&(seq, epoch, nack)) = c.pending.front() {
            let (due, failed) = match synced {
                _ if epoch == 0 => (true, false),
                SyncState::Synced(n) => (n >= epoch, false),
                SyncState::Failed => (true, true),
            };
            if !due {
                break;
            }
            c.pending.pop_front();
            if epoch != 0 {
                c.waiting_sync -= 1;
            }
            if epoch >= UNSEALED_ACCEPTED {
                // Only a failed store makes a placeholder due: it is nacked below.
                c.unsealed -= 1;
            }
            if nack || failed {
                emit_ack(ctx, run.take());
                ctx.send_method(
                    self.id,
                    AMQPClass::Basic(bm::AMQPMethod::Nack(bm::Nack {
                        delivery_tag: seq,
                        multiple: false,
                        requeue: false,
                    })),
                );
            } else {
                run = Some((seq, run.map_or(1, |(_, n)| n + 1)));
            }
        }
        emit_ack(ctx, run);
    }

    /// The connection's write batch ended: its records are written (`ok`) or not. Confirms of
    /// the batch wait for `epoch` (0: none) or, if the write failed, become nacks.
    pub fn seal_confirms(&mut self, epoch: u64, ok: bool) {
        if let Some(c) = self.confirms.as_mut() {
            c.seal(epoch, ok);
        }
    }

    /// True while a confirm waits for group commit.
    pub fn waits_for_sync(&self) -> bool {
        self.confirms.as_ref().is_some_and(|c| c.waiting_sync > 0)
    }

    /// The group commit a `WaitSync` asked for has happened (or failed).
    pub fn sync_done(&mut self, ctx: &mut ConnCtx, synced: SyncState) {
        if std::mem::take(&mut self.commit_pending) {
            if synced == SyncState::Failed {
                // The transaction's messages may not be durable: say so rather than commit-ok.
                self.commit_failed = true;
            }
            ctx.send_method(
                self.id,
                AMQPClass::Tx(amq_protocol::protocol::tx::AMQPMethod::CommitOk(
                    amq_protocol::protocol::tx::CommitOk {},
                )),
            );
        }
    }
}

/// Tells consumers of a deleted queue that they are cancelled.
pub fn notify_cancelled(consumers: Vec<Consumer>) {
    for c in consumers {
        let _ = c.tx.send(crate::connection::ConnEvent::ConsumerCancelled {
            channel: c.channel,
            consumer_tag: c.tag.clone(),
        });
    }
}

/// Requeues deliveries, one requeue (and one dispatch) per queue.
fn requeue_grouped(items: Vec<Unacked>) {
    let mut groups: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for u in items {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.message),
            None => groups.push((u.queue, vec![u.message])),
        }
    }
    for (q, msgs) in groups {
        q.requeue(msgs);
    }
}

/// The consumer timeout in force for deliveries from `queue`: its argument or policy, else the
/// broker's default.
fn consumer_timeout(queue: &Queue, ctx: &ConnCtx) -> std::time::Duration {
    std::time::Duration::from_millis(
        queue
            .args()
            .consumer_timeout
            .unwrap_or(ctx.state.config.consumer_timeout_ms),
    )
}

#[cfg(test)]
mod confirm_tests {
    use super::Confirms;

    #[test]
    fn batch_confirms_wait_for_the_seal_and_take_its_epoch_or_a_nack() {
        let mut c = Confirms::default();
        c.push_settled(false); // 1: unroutable, acked at once
        c.push_unsealed(true); // 2: written to disk
        c.push_settled(true); // 3: refused
        c.push_unsealed(false); // 4: held in memory
        assert_eq!((c.unsealed, c.waiting_sync), (2, 2));
        c.seal(7, true);
        let got: Vec<_> = c.pending.iter().copied().collect();
        assert_eq!(
            got,
            vec![(1, 0, false), (2, 7, false), (3, 0, true), (4, 0, false)]
        );
        assert_eq!((c.unsealed, c.waiting_sync), (0, 1));

        // The next batch's write fails: its confirms become nacks, earlier ones are untouched.
        c.push_unsealed(true);
        c.push_unsealed(false);
        c.seal(9, false);
        let got: Vec<_> = c.pending.iter().skip(4).copied().collect();
        assert_eq!(got, vec![(5, 0, true), (6, 0, true)]);
        assert_eq!((c.unsealed, c.waiting_sync), (0, 1));
        assert_eq!(c.pending[1], (2, 7, false));
    }
}
