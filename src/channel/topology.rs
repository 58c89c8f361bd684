//! exchange.* and queue.* methods, with RabbitMQ's permission checks (configure to declare or
//! delete, write to bind into a queue, read to bind from an exchange) and name rules.

use super::{Channel, notify_cancelled};
use crate::connection::ConnCtx;
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{ExchangeKind, ExchangeOptions};
use crate::queue::{Queue, QueueOptions};
use crate::vhost::DEFAULT_EXCHANGE;
use amq_protocol::protocol::{AMQPClass, exchange as ex, queue as qm};
use amq_protocol::types::FieldTable;
use std::sync::Arc;

/// Which of RabbitMQ's three permissions an operation needs.
#[derive(Clone, Copy)]
pub(super) enum Perm {
    Configure,
    Write,
    Read,
}

pub(super) fn check(ctx: &ConnCtx, perm: Perm, kind: &str, name: &str) -> AmqpResult<()> {
    let name = if kind == "exchange" && name.is_empty() {
        DEFAULT_EXCHANGE
    } else {
        name
    };
    let ok = match perm {
        Perm::Configure => ctx.perms.can_configure(name),
        Perm::Write => ctx.perms.can_write(name),
        Perm::Read => ctx.perms.can_read(name),
    };
    if ok {
        Ok(())
    } else {
        Err(AmqpError::access_refused(format!(
            "access to {kind} '{name}' in vhost '{}' refused for user '{}'",
            ctx.vhost.name, ctx.user
        )))
    }
}

/// Server-generated names: a prefix plus 22 random url-safe base64 characters, as RabbitMQ.
pub(super) fn generated_name(prefix: &str) -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Channel {
    /// Resolves "" to the channel's last declared queue.
    pub(super) fn queue_name(&self, name: &str) -> AmqpResult<String> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    pub(super) fn exchange_declare(&mut self, ctx: &mut ConnCtx, d: ex::Declare) -> AmqpResult<()> {
        let name = d.exchange.as_str();
        if d.passive {
            ctx.vhost.exchange(name)?;
        } else {
            let kind = match ExchangeKind::from_declared(d.kind.as_str(), &d.arguments) {
                Ok(k) => k,
                Err(_) if d.kind.as_str() == crate::exchange::DELAYED_TYPE => {
                    return Err(AmqpError::precondition(
                        "Invalid argument, 'x-delayed-type' must be an existing exchange type",
                    ));
                }
                Err(e) => return Err(AmqpError::command_invalid(e)),
            };
            if let Err((arg, why)) = crate::dedup::Dedup::from_args(&d.arguments) {
                return Err(AmqpError::precondition(format!(
                    "invalid arg '{arg}' for exchange '{name}' in vhost '{}': {why}",
                    ctx.vhost.name
                )));
            }
            if name.is_empty() {
                return Err(AmqpError::access_refused(
                    "operation not permitted on the default exchange",
                ));
            }
            check(ctx, Perm::Configure, "exchange", name)?;
            if name.starts_with("amq.") && ctx.vhost.exchanges.get(name).is_none() {
                return Err(AmqpError::access_refused(format!(
                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                )));
            }
            if let Some(ae) = d.arguments.inner().get("alternate-exchange")
                && crate::vhost::value_as_str(ae).is_none()
            {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'alternate-exchange' for exchange '{name}' in vhost '{}'",
                    ctx.vhost.name
                )));
            }
            ctx.vhost.declare_exchange(
                name,
                ExchangeOptions {
                    kind,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                },
            )?;
        }
        if !d.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Exchange(ex::AMQPMethod::DeclareOk(ex::DeclareOk {})),
            );
        }
        Ok(())
    }

    pub(super) fn exchange_delete(&mut self, ctx: &mut ConnCtx, d: ex::Delete) -> AmqpResult<()> {
        let name = d.exchange.as_str();
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        check(ctx, Perm::Configure, "exchange", name)?;
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                ctx.vhost.name
            )));
        }
        ctx.vhost.delete_exchange(name, d.if_unused)?;
        if !d.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Exchange(ex::AMQPMethod::DeleteOk(ex::DeleteOk {})),
            );
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn exchange_bind(
        &mut self,
        ctx: &mut ConnCtx,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
        bind: bool,
        nowait: bool,
    ) -> AmqpResult<()> {
        check(ctx, Perm::Write, "exchange", destination)?;
        check(ctx, Perm::Read, "exchange", source)?;
        ctx.vhost
            .bind_exchange(destination, source, routing_key, arguments, bind)?;
        if !nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Exchange(if bind {
                    ex::AMQPMethod::BindOk(ex::BindOk {})
                } else {
                    ex::AMQPMethod::UnbindOk(ex::UnbindOk {})
                }),
            );
        }
        Ok(())
    }

    pub(super) fn queue_declare(&mut self, ctx: &mut ConnCtx, d: qm::Declare) -> AmqpResult<()> {
        let (queue, ready, consumers) = if d.passive {
            let name = self.queue_name(d.queue.as_str())?;
            let q = ctx.vhost.queue(&name, ctx.id)?;
            let (ready, consumers) = q.counts();
            (name, ready, consumers)
        } else {
            let name = if d.queue.as_str().is_empty() {
                generated_name("amq.gen-")
            } else {
                d.queue.as_str().to_owned()
            };
            check(ctx, Perm::Configure, "queue", &name)?;
            if !d.queue.as_str().is_empty() && name.starts_with("amq.") {
                return Err(AmqpError::access_refused(format!(
                    "queue name '{name}' contains reserved prefix 'amq.*'"
                )));
            }
            let existed = ctx.vhost.queues.contains_key(&name);
            let q = ctx.vhost.declare_queue(
                &name,
                QueueOptions {
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    arguments: d.arguments,
                },
                ctx.id,
            )?;
            if !existed && q.owner == Some(ctx.id) {
                ctx.exclusive_queues.push(q.clone());
            }
            let (ready, consumers) = q.counts();
            (name, ready, consumers)
        };
        self.last_queue = Some(queue.clone());
        if !d.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Queue(qm::AMQPMethod::DeclareOk(qm::DeclareOk {
                    queue: queue.into(),
                    message_count: ready,
                    consumer_count: consumers,
                })),
            );
        }
        Ok(())
    }

    fn bindable_queue(&self, ctx: &ConnCtx, name: &str) -> AmqpResult<Arc<Queue>> {
        let name = self.queue_name(name)?;
        ctx.vhost.queue(&name, ctx.id)
    }

    pub(super) fn queue_bind(&mut self, ctx: &mut ConnCtx, b: qm::Bind) -> AmqpResult<()> {
        let q = self.bindable_queue(ctx, b.queue.as_str())?;
        check(ctx, Perm::Write, "queue", &q.name)?;
        check(ctx, Perm::Read, "exchange", b.exchange.as_str())?;
        let key = if b.routing_key.as_str().is_empty() && b.queue.as_str().is_empty() {
            // RabbitMQ: an empty queue name *and* key binds with the queue's name as key.
            q.name.clone()
        } else {
            b.routing_key.as_str().to_owned()
        };
        ctx.vhost
            .bind_queue(&q, b.exchange.as_str(), &key, b.arguments)?;
        if !b.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Queue(qm::AMQPMethod::BindOk(qm::BindOk {})),
            );
        }
        Ok(())
    }

    pub(super) fn queue_unbind(&mut self, ctx: &mut ConnCtx, u: qm::Unbind) -> AmqpResult<()> {
        let q = self.bindable_queue(ctx, u.queue.as_str())?;
        check(ctx, Perm::Write, "queue", &q.name)?;
        check(ctx, Perm::Read, "exchange", u.exchange.as_str())?;
        ctx.vhost
            .unbind_queue(&q, u.exchange.as_str(), u.routing_key.as_str(), u.arguments)?;
        ctx.send_method(
            self.id,
            AMQPClass::Queue(qm::AMQPMethod::UnbindOk(qm::UnbindOk {})),
        );
        Ok(())
    }

    pub(super) fn queue_purge(&mut self, ctx: &mut ConnCtx, p: qm::Purge) -> AmqpResult<()> {
        let q = self.bindable_queue(ctx, p.queue.as_str())?;
        check(ctx, Perm::Read, "queue", &q.name)?;
        let n = q.purge();
        if !p.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Queue(qm::AMQPMethod::PurgeOk(qm::PurgeOk { message_count: n })),
            );
        }
        Ok(())
    }

    pub(super) fn queue_delete(&mut self, ctx: &mut ConnCtx, d: qm::Delete) -> AmqpResult<()> {
        let name = self.queue_name(d.queue.as_str())?;
        check(ctx, Perm::Configure, "queue", &name)?;
        let (n, consumers) = ctx
            .vhost
            .delete_queue(&name, d.if_unused, d.if_empty, ctx.id)?;
        notify_cancelled(consumers);
        if !d.nowait {
            ctx.send_method(
                self.id,
                AMQPClass::Queue(qm::AMQPMethod::DeleteOk(qm::DeleteOk { message_count: n })),
            );
        }
        Ok(())
    }
}
