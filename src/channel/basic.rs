//! basic.*, tx.* and confirm.*: publishing (routing, mandatory returns, CC/BCC, direct
//! reply-to), consuming with prefetch credit, get, settlement, transactions and confirms.

use super::topology::{Perm, check, generated_name};
use super::{After, ChanConsumer, Channel, Confirms, ReplyConsumer, Settle, Tx, Unacked};
use crate::connection::{ConnCtx, ConnEvent};
use crate::error::{AmqpError, AmqpResult};
use crate::message::Message;
use crate::protocol::assembler::Content;
use crate::protocol::codec;
use crate::queue::{Consumer, Credit, NO_ACK_BUDGET, Published, Queue, WriteBatch};
use crate::stats::bump;
use amq_protocol::protocol::{AMQPClass, basic as bm, confirm, tx};
use amq_protocol::types::{AMQPValue, FieldTable};
use std::sync::Arc;

/// What routing did with a message, for its publisher confirm and mandatory flag.
#[derive(Default)]
pub struct RouteOutcome {
    /// It reached a queue, was refused by one, or was held or dropped by its exchange
    /// (delayed, deduplicated): a mandatory publish is not returned.
    pub routed: bool,
    /// Some queue wrote it to disk: the confirm waits for group commit.
    pub stored: bool,
    /// Some queue refused it: the confirm is a nack.
    pub refused: bool,
}

/// The checks basic.publish makes on properties a publisher may not set freely: `user_id` must
/// be the authenticated user, `expiration` a non-negative integer, and `reply_to` the direct
/// reply-to pseudo-queue only with a reply consumer (`has_reply_consumer`).
pub fn check_properties(
    p: &amq_protocol::protocol::BasicProperties,
    user: &str,
    has_reply_consumer: bool,
) -> AmqpResult<()> {
    if let Some(uid) = p.user_id()
        && uid.as_str() != user
    {
        return Err(AmqpError::precondition(format!(
            "user_id property set to '{uid}' but authenticated user was '{user}'"
        )));
    }
    if let Some(exp) = p.expiration()
        && exp.as_str().parse::<u64>().is_err()
    {
        let why = match exp.as_str().parse::<i64>() {
            Ok(n) => format!("{{value_negative,{n}}}"),
            Err(_) => "no_integer".to_owned(),
        };
        return Err(AmqpError::precondition(format!(
            "invalid expiration '{exp}': {why}"
        )));
    }
    if p.reply_to().as_ref().map(|r| r.as_str()) == Some(REPLY_TO) && !has_reply_consumer {
        return Err(AmqpError::precondition(
            "fast reply consumer does not exist",
        ));
    }
    Ok(())
}

/// The sender-selected routing keys (CC and BCC headers) of a message; BCC is taken out of
/// `properties` so no receiver sees it. Returns the keys and whether `properties` changed.
pub fn sender_selected_keys(
    properties: &mut amq_protocol::protocol::BasicProperties,
) -> (Vec<String>, bool) {
    let mut keys = Vec::new();
    let mut changed = false;
    if let Some(h) = properties.headers().as_ref() {
        header_keys(h, "CC", &mut keys);
        if header_keys(h, "BCC", &mut keys) {
            let mut inner = h.inner().clone();
            inner.remove("BCC");
            *properties = properties.clone().with_headers(FieldTable::from(inner));
            changed = true;
        }
    }
    (keys, changed)
}

/// Delivers a checked message published to `exchange` in `vhost`: deduplication and delay
/// first, then every queue its routing key and `extra_keys` reach. One `Arc<Message>` is shared.
/// With a `batch`, queues may keep the durable copy buffered until the batch is flushed (see
/// [`WriteBatch`]); without one it is written before this returns. `last_queue` remembers the
/// queue the default exchange last routed to, for a publisher that keeps sending there.
pub fn deliver(
    vhost: &crate::vhost::VHost,
    exchange: &Arc<crate::exchange::Exchange>,
    msg: &Arc<Message>,
    extra_keys: &[String],
    mut batch: Option<&mut WriteBatch>,
    last_queue: Option<&mut Option<Arc<Queue>>>,
) -> RouteOutcome {
    let mut outcome = RouteOutcome::default();
    if let Some(d) = &exchange.dedup
        && d.lock().is_duplicate(msg, crate::queue::now_ms())
    {
        // A duplicate is dropped and still confirmed; it is not "unroutable".
        outcome.routed = true;
        return outcome;
    }
    if let Some(d) = exchange.delayed.get()
        && let Some(delay) = msg
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delay"))
            .and_then(crate::queue::args::int_value)
            .filter(|d| *d > 0)
    {
        match d.hold(msg.clone(), delay as u64) {
            Published::Stored => outcome.stored = true,
            Published::Refused => outcome.refused = true,
            _ => {}
        }
        // Where it will go is only known when due, so it is never returned as unroutable.
        outcome.routed = true;
        return outcome;
    }
    let key = msg.routing_key.as_str();
    // Without CC/BCC keys (the usual case) the routing key alone needs no vector.
    let with_extra: Vec<&str>;
    let keys: &[&str] = if extra_keys.is_empty() {
        std::slice::from_ref(&key)
    } else {
        with_extra = std::iter::once(key)
            .chain(extra_keys.iter().map(String::as_str))
            .collect();
        &with_extra
    };
    // A queue list per publish would be an allocation per message; this thread's list is
    // reused (taken out while in use, since routing can re-enter through dead-lettering).
    let mut queues = ROUTE_SCRATCH.with(|s| s.take());
    let headers = msg.properties.headers();
    match last_queue {
        // The queue map's lookup (hash, shard lock, compare) was a few percent of a publish.
        // A deleted queue is looked up again, so a re-declared one is found.
        Some(slot) if exchange.name.is_empty() && extra_keys.is_empty() => {
            match slot.as_ref().filter(|q| q.name == key && !q.is_deleted()) {
                Some(q) => queues.push(q.clone()),
                None => {
                    vhost.route(exchange, keys, headers.as_ref(), &mut queues);
                    *slot = queues.first().cloned();
                }
            }
        }
        _ => vhost.route(exchange, keys, headers.as_ref(), &mut queues),
    }
    let mut any = false;
    for q in queues.drain(..) {
        let published = match batch.as_deref_mut() {
            Some(b) => {
                let p = q.publish_deferred(msg.clone());
                if matches!(p, Published::Accepted | Published::Stored) {
                    b.add(&q);
                }
                p
            }
            None => q.publish(msg.clone()),
        };
        match published {
            Published::Accepted => any = true,
            Published::Stored => {
                any = true;
                outcome.stored = true;
            }
            Published::Refused => outcome.refused = true,
            Published::Dropped => {}
        }
    }
    ROUTE_SCRATCH.with(|s| s.set(queues));
    outcome.routed = any || outcome.refused;
    outcome
}

thread_local! {
    static ROUTE_SCRATCH: std::cell::Cell<Vec<Arc<Queue>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `a == b` without a `memcmp` call for the default exchange's empty name: profiles put a
/// surprising share of publish time in that call.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// The direct reply-to pseudo-queue.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Routing keys listed in a CC or BCC header (an array of strings).
fn header_keys(headers: &FieldTable, name: &str, out: &mut Vec<String>) -> bool {
    match headers.inner().get(name) {
        Some(AMQPValue::FieldArray(a)) => {
            out.extend(
                a.as_slice()
                    .iter()
                    .filter_map(crate::vhost::value_as_str)
                    .map(str::to_owned),
            );
            true
        }
        Some(v) => {
            if let Some(s) = crate::vhost::value_as_str(v) {
                out.push(s.to_owned());
            }
            true
        }
        None => false,
    }
}

/// "amq.rabbitmq.reply-to.<conn>.<channel>.<secret>" -> its parts.
fn parse_reply_token(key: &str) -> Option<(u64, u16, u64)> {
    let rest = key.strip_prefix(REPLY_PREFIX)?;
    let mut it = rest.split('.');
    let conn = it.next()?.parse().ok()?;
    let channel = it.next()?.parse().ok()?;
    let secret = u64::from_str_radix(it.next()?, 16).ok()?;
    it.next().is_none().then_some((conn, channel, secret))
}

impl Channel {
    pub(super) fn publish(&mut self, ctx: &mut ConnCtx, content: Content) -> AmqpResult<()> {
        ctx.published = true;
        let p = &content.publish;
        if p.immediate {
            return Err(AmqpError::not_implemented("immediate=true").on(60, 40));
        }
        let (exchange, allowed) = match &self.publish_to {
            Some((ex, ok)) if same_name(&ex.name, p.exchange.as_str()) && !ex.is_deleted() => {
                (ex.clone(), *ok)
            }
            _ => {
                let ex = ctx
                    .vhost
                    .exchange(p.exchange.as_str())
                    .map_err(|e| e.on(60, 40))?;
                let ok = check(ctx, Perm::Write, "exchange", p.exchange.as_str()).is_ok();
                self.publish_to = Some((ex.clone(), ok));
                (ex, ok)
            }
        };
        if exchange.options.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                exchange.name, ctx.vhost.name
            ))
            .on(60, 40));
        }
        if !allowed {
            return Err(check(ctx, Perm::Write, "exchange", p.exchange.as_str())
                .err()
                .unwrap_or_else(|| AmqpError::access_refused("write access refused"))
                .on(60, 40));
        }
        check_properties(&content.properties, &ctx.user, self.reply.is_some())
            .map_err(|e| e.on(60, 40))?;
        if let Some(tx) = self.tx.as_mut() {
            tx.publishes.push(content);
            return Ok(());
        }
        let outcome = self.route(ctx, &exchange, content);
        if let Some(c) = self.confirms.as_mut() {
            bump(&ctx.counters.publish_confirm, 1);
            if outcome.routed && !outcome.refused {
                // Its record may still be buffered: the confirm gets its epoch (or a nack, if
                // the write fails) when the connection ends the batch (`seal_confirms`).
                c.push_unsealed(outcome.stored);
                ctx.batch.add_confirm(outcome.stored);
            } else {
                c.push_settled(outcome.refused);
            }
        }
        Ok(())
    }

    /// Routes a checked publish to its queues (or returns it), sharing one `Arc<Message>`.
    fn route(
        &mut self,
        ctx: &mut ConnCtx,
        exchange: &Arc<crate::exchange::Exchange>,
        content: Content,
    ) -> RouteOutcome {
        let Content {
            publish,
            mut properties,
            mut raw_properties,
            body,
        } = content;
        bump(&ctx.counters.publish, 1);
        let bm::Publish {
            exchange: _,
            routing_key,
            mandatory,
            immediate: _,
        } = publish;
        let routing_key = String::from(routing_key);
        let (extra_keys, mut rewrite) = sender_selected_keys(&mut properties);
        if properties.reply_to().as_ref().map(|r| r.as_str()) == Some(REPLY_TO)
            && let Some(reply) = &self.reply
        {
            let token = format!("{REPLY_PREFIX}{}.{}.{:x}", ctx.id, self.id, reply.secret);
            *properties = std::mem::take(&mut *properties).with_reply_to(token.into());
            rewrite = true;
        }
        if rewrite {
            raw_properties = codec::encode_properties(&properties);
        }
        let msg = Arc::new(Message {
            exchange: exchange.name.clone(),
            routing_key,
            properties,
            raw_properties,
            body,
        });
        // The default exchange has neither deduplication nor a delay, so direct replies can be
        // told apart before those.
        let (routed, outcome) =
            if exchange.name.is_empty() && msg.routing_key.starts_with(REPLY_PREFIX) {
                (self.send_direct_reply(ctx, &msg), RouteOutcome::default())
            } else {
                let outcome = deliver(
                    &ctx.vhost,
                    exchange,
                    &msg,
                    &extra_keys,
                    Some(&mut ctx.batch),
                    Some(&mut self.publish_queue),
                );
                (outcome.routed, outcome)
            };
        let counters = &ctx.counters;
        if routed {
            bump(&counters.routed, 1);
        } else if mandatory {
            bump(&counters.return_unroutable, 1);
        } else {
            bump(&counters.drop_unroutable, 1);
        }
        if !routed && mandatory {
            ctx.send_method(
                self.id,
                AMQPClass::Basic(bm::AMQPMethod::Return(bm::Return {
                    reply_code: crate::error::codes::NO_ROUTE,
                    reply_text: "NO_ROUTE".into(),
                    exchange: msg.exchange.as_str().into(),
                    routing_key: msg.routing_key.as_str().into(),
                })),
            );
            codec::encode_content(
                &mut ctx.out,
                self.id,
                &msg.raw_properties,
                &msg.body,
                ctx.frame_max,
            );
        }
        outcome
    }

    fn send_direct_reply(&self, ctx: &ConnCtx, msg: &Arc<Message>) -> bool {
        let Some((conn, channel, secret)) = parse_reply_token(&msg.routing_key) else {
            return false;
        };
        let Some(target) = ctx.state.connections.get(&conn) else {
            return false;
        };
        target
            .tx
            .send(ConnEvent::DirectReply {
                channel,
                secret,
                message: msg.clone(),
            })
            .is_ok()
    }

    pub(super) fn qos(&mut self, ctx: &mut ConnCtx, q: bm::Qos) -> AmqpResult<()> {
        // basic.qos carries prefetch_size too, but amq-protocol's struct omits it (RabbitMQ
        // rejects non-zero values anyway), so only the count is honoured.
        if q.global {
            self.gate.credit.set_limit(u32::from(q.prefetch_count));
        } else {
            self.prefetch = u32::from(q.prefetch_count);
        }
        ctx.send_method(
            self.id,
            AMQPClass::Basic(bm::AMQPMethod::QosOk(bm::QosOk {})),
        );
        self.wake_all();
        Ok(())
    }

    pub(super) fn consume(&mut self, ctx: &mut ConnCtx, c: bm::Consume) -> AmqpResult<()> {
        let tag: Arc<str> = if c.consumer_tag.as_str().is_empty() {
            generated_name("amq.ctag-").into()
        } else {
            c.consumer_tag.as_str().into()
        };
        if self.consumers.contains_key(&tag) || self.reply.as_ref().is_some_and(|r| *r.tag == *tag)
        {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        if c.queue.as_str() == REPLY_TO {
            if !c.no_ack {
                return Err(AmqpError::precondition("reply consumer cannot acknowledge"));
            }
            if self.reply.is_some() {
                return Err(AmqpError::precondition("reply consumer already set"));
            }
            self.reply = Some(ReplyConsumer {
                tag: tag.to_string(),
                secret: rand::random(),
            });
            if !c.nowait {
                ctx.send_method(
                    self.id,
                    AMQPClass::Basic(bm::AMQPMethod::ConsumeOk(bm::ConsumeOk {
                        consumer_tag: tag.as_ref().into(),
                    })),
                );
            }
            return Ok(());
        }
        let name = self.queue_name(c.queue.as_str())?;
        let queue = ctx.vhost.queue(&name, ctx.id)?;
        check(ctx, Perm::Read, "queue", &name)?;
        let credit = Arc::new(Credit::new(if c.no_ack {
            NO_ACK_BUDGET
        } else {
            self.prefetch
        }));
        self.consumers.insert(
            tag.clone(),
            ChanConsumer {
                queue: queue.clone(),
                credit: credit.clone(),
            },
        );
        // Deliveries this triggers arrive as events on our own queue, handled after this
        // method returns, so consume-ok below still precedes the first basic.deliver.
        let res = queue.add_consumer(Consumer {
            tag: tag.clone(),
            conn_id: ctx.id,
            channel: self.id,
            tx: ctx.tx.clone(),
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            priority: c
                .arguments
                .inner()
                .get("x-priority")
                .and_then(crate::queue::args::int_value)
                .unwrap_or(0),
            credit,
            gate: self.gate.clone(),
        });
        if let Err(e) = res {
            self.consumers.remove(&tag);
            return Err(e);
        }
        if !c.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Basic(bm::AMQPMethod::ConsumeOk(bm::ConsumeOk {
                    consumer_tag: tag.as_ref().into(),
                })),
            );
        }
        Ok(())
    }

    pub(super) fn cancel(&mut self, ctx: &mut ConnCtx, c: bm::Cancel) {
        let tag = c.consumer_tag.as_str();
        if let Some(cons) = self.consumers.remove(tag) {
            self.detach(ctx, tag, &cons);
        } else if self.reply.as_ref().is_some_and(|r| r.tag == tag) {
            self.reply = None;
        }
        if !c.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Basic(bm::AMQPMethod::CancelOk(bm::CancelOk {
                    consumer_tag: c.consumer_tag,
                })),
            );
        }
    }

    pub(super) fn get(&mut self, ctx: &mut ConnCtx, g: bm::Get) -> AmqpResult<()> {
        let name = self.queue_name(g.queue.as_str())?;
        let queue = ctx.vhost.queue(&name, ctx.id)?;
        check(ctx, Perm::Read, "queue", &name)?;
        let Some((message, left)) = queue.get(g.no_ack) else {
            bump(&ctx.counters.get_empty, 1);
            ctx.send_method(
                self.id,
                AMQPClass::Basic(bm::AMQPMethod::GetEmpty(bm::GetEmpty {})),
            );
            return Ok(());
        };
        let delivery_tag = self.next_tag;
        self.next_tag += 1;
        let counters = &ctx.counters;
        bump(
            if g.no_ack {
                &counters.get_no_ack
            } else {
                &counters.get
            },
            1,
        );
        if message.redelivered {
            bump(&counters.redeliver, 1);
        }
        let m = &message.msg;
        ctx.send_method(
            self.id,
            AMQPClass::Basic(bm::AMQPMethod::GetOk(bm::GetOk {
                delivery_tag,
                redelivered: message.redelivered,
                exchange: m.exchange.as_str().into(),
                routing_key: m.routing_key.as_str().into(),
                message_count: left,
            })),
        );
        codec::encode_content(
            &mut ctx.out,
            self.id,
            &m.raw_properties,
            &m.body,
            ctx.frame_max,
        );
        if !g.no_ack {
            self.unacked.insert(Unacked {
                tag: delivery_tag,
                queue,
                message,
                credit: None,
                consumer: None,
            });
        }
        Ok(())
    }

    /// ack / nack / reject, single or multiple (tag 0 + multiple = everything outstanding).
    pub(super) fn settle(
        &mut self,
        ctx: &mut ConnCtx,
        tag: u64,
        multiple: bool,
        how: Settle,
    ) -> AmqpResult<()> {
        let taken: Vec<Unacked> = if multiple {
            // Tag 0 means everything outstanding; otherwise the tag itself must be
            // outstanding (RabbitMQ refuses the whole settle when it is not).
            if tag != 0 && !self.unacked.contains(tag) {
                return Err(AmqpError::precondition(format!(
                    "unknown delivery tag {tag}"
                )));
            }
            if tag == 0 {
                self.unacked.take_all()
            } else {
                self.unacked.take_upto(tag)
            }
        } else {
            match self.unacked.remove(tag) {
                Some(u) => vec![u],
                None => {
                    return Err(AmqpError::precondition(format!(
                        "unknown delivery tag {tag}"
                    )));
                }
            }
        };
        if let Some(tx) = self.tx.as_mut() {
            tx.settles.extend(taken.into_iter().map(|u| (u, how)));
            return Ok(());
        }
        if how == Settle::Ack {
            bump(&ctx.counters.ack, taken.len() as u64);
        }
        self.apply_settles(taken.into_iter().map(|u| (u, how)));
        Ok(())
    }

    /// Carries out settlements: credit back to consumers, then ack or requeue at the queues.
    pub(super) fn apply_settles(&mut self, items: impl IntoIterator<Item = (Unacked, Settle)>) {
        let mut wake: Vec<Arc<Queue>> = Vec::new();
        let mut wake_all = false;
        let mut requeue: Vec<Unacked> = Vec::new();
        let mut acks: Vec<(Arc<Queue>, Vec<crate::store::QueuedMessage>)> = Vec::new();
        let mut rejects: Vec<(Arc<Queue>, Vec<crate::store::QueuedMessage>)> = Vec::new();
        // Credit goes back per consumer in one update each (see `Credit::release_n`).
        let mut credits: Vec<(Arc<Credit>, Arc<Queue>, u32)> = Vec::new();
        let mut gate_units = 0u32;
        for (mut u, how) in items {
            if let Some(c) = u.credit.take() {
                match credits.iter_mut().find(|(x, _, _)| Arc::ptr_eq(x, &c)) {
                    Some((_, _, n)) => *n += 1,
                    None => credits.push((c, u.queue.clone(), 1)),
                }
                gate_units += 1;
            }
            let group = match how {
                Settle::Ack => &mut acks,
                Settle::Drop => &mut rejects,
                Settle::Requeue => {
                    requeue.push(u);
                    continue;
                }
            };
            match group.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
                Some((_, v)) => v.push(u.message),
                None => group.push((u.queue, vec![u.message])),
            }
        }
        for (c, q, n) in credits {
            if c.release_n(n) && !wake.iter().any(|w| Arc::ptr_eq(w, &q)) {
                wake.push(q);
            }
        }
        if self.gate.credit.release_n(gate_units) {
            wake_all = true;
        }
        for (q, msgs) in &acks {
            let at = wake.iter().position(|w| Arc::ptr_eq(w, q));
            q.ack(msgs.iter(), at.is_some());
            if let Some(i) = at {
                wake.swap_remove(i);
            }
        }
        for (q, msgs) in rejects {
            q.reject(msgs);
        }
        super::requeue_grouped(requeue);
        for q in wake {
            q.dispatch();
        }
        if wake_all {
            self.wake_all();
        }
    }

    pub(super) fn recover(&mut self, _ctx: &mut ConnCtx, requeue: bool) -> AmqpResult<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let all: Vec<Unacked> = self.unacked.take_all();
        self.apply_settles(all.into_iter().map(|u| (u, Settle::Requeue)));
        Ok(())
    }

    pub(super) fn tx_select(&mut self, ctx: &mut ConnCtx) -> AmqpResult<()> {
        if self.confirms.is_some() {
            return Err(AmqpError::precondition(
                "cannot switch from confirm to tx mode",
            ));
        }
        if self.tx.is_none() {
            self.tx = Some(Tx::default());
        }
        ctx.send_method(
            self.id,
            AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        );
        Ok(())
    }

    pub(super) fn tx_commit(&mut self, ctx: &mut ConnCtx) -> AmqpResult<After> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(AmqpError::precondition("channel is not transactional"));
        };
        if self.commit_failed {
            return Err(AmqpError::internal(
                "message store failed; transactions cannot be committed",
            ));
        }
        let publishes = std::mem::take(&mut tx.publishes);
        let settles = std::mem::take(&mut tx.settles);
        let mut stored = false;
        for content in publishes {
            // The exchange may have gone since the publish was accepted; RabbitMQ then drops
            // the message.
            if let Ok(ex) = ctx.vhost.exchange(content.publish.exchange.as_str()) {
                stored |= self.route(ctx, &ex, content).stored;
            }
        }
        let acks = settles
            .iter()
            .filter(|(_, how)| *how == Settle::Ack)
            .count();
        bump(&ctx.counters.ack, acks as u64);
        self.apply_settles(settles);
        // The epoch below must cover the records routing may have left buffered.
        if !ctx.batch.flush() {
            self.commit_failed = true;
            return Err(AmqpError::internal(
                "message store failed; the transaction's messages may not be durable",
            ));
        }
        let coord = &ctx.state.store.coord;
        if stored && coord.fsync_enabled() {
            self.commit_pending = true;
            return Ok(After::WaitSync(coord.request()));
        }
        ctx.send_method(
            self.id,
            AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        );
        Ok(After::Continue)
    }

    pub(super) fn tx_rollback(&mut self, ctx: &mut ConnCtx) -> AmqpResult<()> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(AmqpError::precondition("channel is not transactional"));
        };
        tx.publishes.clear();
        for (u, _) in std::mem::take(&mut tx.settles) {
            self.unacked.insert(u);
        }
        ctx.send_method(
            self.id,
            AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        );
        Ok(())
    }

    pub(super) fn confirm_select(&mut self, ctx: &mut ConnCtx, nowait: bool) -> AmqpResult<()> {
        if self.tx.is_some() {
            return Err(AmqpError::precondition(
                "cannot switch from tx to confirm mode",
            ));
        }
        if self.confirms.is_none() {
            self.confirms = Some(Confirms::default());
        }
        if !nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
            );
        }
        Ok(())
    }
}
