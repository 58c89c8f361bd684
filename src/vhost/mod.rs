//! A virtual host: its exchanges, queues and bindings, and routing between them.
//!
//! The registries are `DashMap`s: read on every publish, written on declare/delete. No map guard
//! is held while another map of the vhost is touched (clone the `Arc` out first), which is what
//! keeps DashMap's shard locks from deadlocking.
//!
//! The vhost also owns its policies. A policy change and a declaration both run under the
//! topology mutex, so a queue or exchange is either created after the change (and picks the new
//! policy up at creation) or is already in its map when the change re-applies policies.

use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{Binding, Destination, Exchange, ExchangeKind, ExchangeOptions};
use crate::policy::{self, Kind, Policy};
use crate::queue::{Queue, QueueOptions};
use crate::store::definitions::{self as defs, DefOp};
use amq_protocol::types::{AMQPValue, FieldTable};
use dashmap::DashMap;
use std::sync::Arc;

/// String content of a string-typed field value.
pub fn value_as_str(v: &AMQPValue) -> Option<&str> {
    match v {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Queue arguments RabbitMQ compares on redeclaration; others are ignored, as there.
const EQUIVALENT_QUEUE_ARGS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
];

/// The default exchange's name in permission checks and messages.
pub const DEFAULT_EXCHANGE: &str = "amq.default";

/// A virtual host.
pub struct VHost {
    pub name: String,
    /// Where this vhost's queues keep their messages.
    pub store: Arc<crate::store::StoreEnv>,
    pub exchanges: DashMap<String, Arc<Exchange>, crate::FastHash>,
    pub queues: DashMap<String, Arc<Queue>, crate::FastHash>,
    /// Serialises topology changes with their log appends, so the definitions log records
    /// them in the order they took effect.
    topology: parking_lot::Mutex<()>,
    /// Messages dead-lettered or dropped by this vhost's queues.
    pub losses: crate::stats::Losses,
    /// Policies by name; changed only under `topology`.
    policies: parking_lot::RwLock<Vec<Arc<Policy>>>,
    /// Operator policies by name; changed only under `topology`.
    operator_policies: parking_lot::RwLock<Vec<Arc<Policy>>>,
}

impl VHost {
    /// A vhost with the default and `amq.*` exchanges predeclared.
    pub fn new(name: &str, store: Arc<crate::store::StoreEnv>) -> Self {
        let vh = VHost {
            name: name.to_owned(),
            store,
            exchanges: DashMap::default(),
            queues: DashMap::default(),
            topology: parking_lot::Mutex::new(()),
            losses: Default::default(),
            policies: parking_lot::RwLock::new(Vec::new()),
            operator_policies: parking_lot::RwLock::new(Vec::new()),
        };
        for (n, k) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            let opts = ExchangeOptions {
                kind: k,
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::default(),
            };
            vh.exchanges
                .insert(n.to_owned(), Arc::new(Exchange::new(n.to_owned(), opts)));
        }
        vh
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    pub fn exchange(&self, name: &str) -> AmqpResult<Arc<Exchange>> {
        self.exchanges
            .get(name)
            .map(|e| e.clone())
            .ok_or_else(|| self.no_exchange(name))
    }

    /// Looks up a queue, refusing exclusive queues of other connections (405).
    pub fn queue(&self, name: &str, conn_id: u64) -> AmqpResult<Arc<Queue>> {
        let q = self
            .queues
            .get(name)
            .map(|q| q.clone())
            .ok_or_else(|| self.no_queue(name))?;
        self.check_owner(&q, conn_id)?;
        Ok(q)
    }

    fn check_owner(&self, q: &Queue, conn_id: u64) -> AmqpResult<()> {
        match q.owner {
            Some(owner) if owner != conn_id => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
                 originally declared on another connection or the exclusive property value does \
                 not match that of the original declaration.",
                q.name, self.name
            ))),
            _ => Ok(()),
        }
    }

    /// exchange.declare (non-passive): creates or checks equivalence.
    pub fn declare_exchange(self: &Arc<Self>, name: &str, opts: ExchangeOptions) -> AmqpResult<()> {
        if let Some(existing) = self.exchanges.get(name).map(|e| e.clone()) {
            return self.exchange_equivalent(&existing, &opts);
        }
        let _t = self.topology.lock();
        let mut created = false;
        let entry = self
            .exchanges
            .entry(name.to_owned())
            .or_insert_with(|| {
                created = true;
                let ex = Exchange::new(name.to_owned(), opts.clone());
                ex.set_policy(self.policy_for(name, false));
                Arc::new(ex)
            })
            .clone();
        if created && defs::is_persistent_exchange(&entry) {
            self.store.log(&DefOp::exchange(&entry, &self.name));
        }
        if created && entry.is_delayed() {
            let d = crate::exchange::delayed::Delayed::open(
                &self.store,
                &self.name,
                name,
                entry.options.durable,
            );
            let _ = entry.delayed.set(d.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(crate::exchange::delayed::run(
                    Arc::downgrade(&entry),
                    Arc::downgrade(self),
                    d,
                ));
            }
        }
        self.exchange_equivalent(&entry, &opts)
    }

    fn exchange_equivalent(&self, ex: &Exchange, opts: &ExchangeOptions) -> AmqpResult<()> {
        let o = &ex.options;
        let diff = |arg: &str, got: &dyn std::fmt::Display, cur: &dyn std::fmt::Display| {
            Err(AmqpError::precondition(format!(
                "inequivalent arg '{arg}' for exchange '{}' in vhost '{}': received '{got}' but \
                 current is '{cur}'",
                ex.name, self.name
            )))
        };
        if o.kind != opts.kind {
            return diff("type", &opts.kind.as_str(), &o.kind.as_str());
        }
        if o.durable != opts.durable {
            return diff("durable", &opts.durable, &o.durable);
        }
        if o.auto_delete != opts.auto_delete {
            return diff("auto_delete", &opts.auto_delete, &o.auto_delete);
        }
        if o.internal != opts.internal {
            return diff("internal", &opts.internal, &o.internal);
        }
        let a = o.arguments.inner().get("alternate-exchange");
        let b = opts.arguments.inner().get("alternate-exchange");
        if a != b {
            return Err(AmqpError::precondition(format!(
                "inequivalent arg 'alternate-exchange' for exchange '{}' in vhost '{}'",
                ex.name, self.name
            )));
        }
        Ok(())
    }

    /// exchange.delete. Deleting a missing exchange succeeds, as in RabbitMQ 3.x.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> AmqpResult<()> {
        let Some(ex) = self.exchanges.get(name).map(|e| e.clone()) else {
            return Ok(());
        };
        if if_unused && ex.binding_count() > 0 {
            return Err(AmqpError::precondition(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        let _t = self.topology.lock();
        if self.exchanges.remove(name).is_none() {
            return Ok(());
        }
        ex.mark_deleted();
        if let Some(d) = ex.delayed.get() {
            d.destroy();
        }
        if ex.options.durable {
            self.store.log(&DefOp::DeleteExchange {
                vhost: self.name.clone(),
                name: name.to_owned(),
            });
        }
        drop(_t);
        // Bindings where it is the destination go with it.
        let dest = Destination::Exchange(name.to_owned());
        let sources: Vec<Arc<Exchange>> = self.exchanges.iter().map(|e| e.clone()).collect();
        for src in sources {
            if src.unbind_destination(&dest) > 0 {
                self.maybe_auto_delete_exchange(&src);
            }
        }
        Ok(())
    }

    fn maybe_auto_delete_exchange(&self, ex: &Exchange) {
        if ex.options.auto_delete && ex.binding_count() == 0 {
            let _ = self.delete_exchange(&ex.name, true);
        }
    }

    /// queue.declare (non-passive): creates or checks equivalence.
    pub fn declare_queue(
        self: &Arc<Self>,
        name: &str,
        opts: QueueOptions,
        conn_id: u64,
    ) -> AmqpResult<Arc<Queue>> {
        if let Some(q) = self.queues.get(name).map(|q| q.clone()) {
            self.check_owner(&q, conn_id)?;
            self.queue_equivalent(&q, &opts)?;
            q.touch();
            return Ok(q);
        }
        crate::dedup::Dedup::from_args(&opts.arguments)
            .map(|_| ())
            .and(crate::queue::QueueArgs::parse(&opts.arguments).map(|_| ()))
            .map_err(|(arg, why)| {
                AmqpError::precondition(format!(
                    "invalid arg '{arg}' for queue '{name}' in vhost '{}': {why}",
                    self.name
                ))
            })?;
        let owner = opts.exclusive.then_some(conn_id);
        let _t = self.topology.lock();
        let mut created = false;
        // Created under the map entry so two racing declares cannot both open the store.
        let mut old_args = None;
        let q = self
            .queues
            .entry(name.to_owned())
            .or_insert_with(|| {
                created = true;
                let durable = opts.durable && !opts.exclusive;
                let max_priority = crate::queue::QueueArgs::parse(&opts.arguments)
                    .ok()
                    .and_then(|a| a.max_priority);
                let (store, next_seq) =
                    self.store
                        .open_queue(&self.name, name, durable, max_priority);
                let q = Queue::new(
                    name.to_owned(),
                    self.name.clone(),
                    opts.clone(),
                    owner,
                    store,
                    next_seq,
                    Arc::downgrade(self),
                );
                old_args = Some(
                    q.set_policies(self.policy_for(name, true), self.operator_policy_for(name)),
                );
                q
            })
            .clone();
        if created && defs::is_persistent_queue(&q) {
            self.store.log(&DefOp::queue(&q));
        }
        // Outside the map entry: a recovered queue over a policy's length limit dead-letters,
        // which routes through the maps.
        if let Some(old) = old_args {
            q.policy_applied(&old);
        }
        drop(_t);
        self.check_owner(&q, conn_id)?;
        self.queue_equivalent(&q, &opts)?;
        Ok(q)
    }

    fn queue_equivalent(&self, q: &Queue, opts: &QueueOptions) -> AmqpResult<()> {
        let o = &q.options;
        for (arg, got, cur) in [
            ("durable", opts.durable, o.durable),
            ("exclusive", opts.exclusive, o.exclusive),
            ("auto_delete", opts.auto_delete, o.auto_delete),
        ] {
            if got != cur {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg '{arg}' for queue '{}' in vhost '{}': received '{got}' but \
                     current is '{cur}'",
                    q.name, self.name
                )));
            }
        }
        for arg in EQUIVALENT_QUEUE_ARGS {
            let got = opts.arguments.inner().get(*arg);
            let cur = o.arguments.inner().get(*arg);
            if !equivalent_values(got, cur) {
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg '{arg}' for queue '{}' in vhost '{}': received {} but \
                     current is {}",
                    q.name,
                    self.name,
                    describe(got),
                    describe(cur)
                )));
            }
        }
        Ok(())
    }

    /// queue.delete: removes the queue and its bindings; returns the consumers to notify and the
    /// ready count. A missing queue succeeds with 0, as in RabbitMQ 3.x.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        conn_id: u64,
    ) -> AmqpResult<(u32, Vec<crate::queue::Consumer>)> {
        let Some(q) = self.queues.get(name).map(|q| q.clone()) else {
            return Ok((0, Vec::new()));
        };
        self.check_owner(&q, conn_id)?;
        let (ready, consumers) = q.counts();
        if if_unused && consumers > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        if if_empty && ready > 0 {
            return Err(AmqpError::precondition(format!(
                "queue '{name}' in vhost '{}' not empty",
                self.name
            )));
        }
        Ok(self.remove_queue(&q))
    }

    /// Unconditionally removes a queue (delete, auto-delete, exclusive owner gone).
    pub fn remove_queue(&self, q: &Arc<Queue>) -> (u32, Vec<crate::queue::Consumer>) {
        {
            let _t = self.topology.lock();
            let removed = self
                .queues
                .remove_if(&q.name, |_, v| Arc::ptr_eq(v, q))
                .is_some();
            if removed && defs::is_persistent_queue(q) {
                self.store.log(&DefOp::DeleteQueue {
                    vhost: self.name.clone(),
                    name: q.name.clone(),
                });
            }
        }
        let dest = Destination::Queue(q.clone());
        let sources: Vec<Arc<Exchange>> = self.exchanges.iter().map(|e| e.clone()).collect();
        for src in sources {
            if src.unbind_destination(&dest) > 0 {
                self.maybe_auto_delete_exchange(&src);
            }
        }
        q.mark_deleted()
    }

    /// queue.bind.
    pub fn bind_queue(
        &self,
        queue: &Arc<Queue>,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> AmqpResult<()> {
        if exchange.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let ex = self.exchange(exchange)?;
        if ex.kind() == ExchangeKind::Headers {
            crate::exchange::headers::validate_binding_args(&arguments)
                .map_err(AmqpError::precondition)?;
        }
        let binding = Binding {
            destination: Destination::Queue(queue.clone()),
            routing_key: routing_key.to_owned(),
            arguments,
        };
        self.add_binding(&ex, binding);
        Ok(())
    }

    /// queue.unbind. Unbinding a missing binding succeeds, as in RabbitMQ.
    pub fn unbind_queue(
        &self,
        queue: &Arc<Queue>,
        exchange: &str,
        routing_key: &str,
        arguments: FieldTable,
    ) -> AmqpResult<()> {
        if exchange.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let ex = self.exchange(exchange)?;
        let binding = Binding {
            destination: Destination::Queue(queue.clone()),
            routing_key: routing_key.to_owned(),
            arguments,
        };
        if self.remove_binding(&ex, &binding) {
            self.maybe_auto_delete_exchange(&ex);
        }
        Ok(())
    }

    /// exchange.bind / exchange.unbind.
    pub fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: FieldTable,
        bind: bool,
    ) -> AmqpResult<()> {
        if destination.is_empty() || source.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.exchange(destination)?;
        let src = self.exchange(source)?;
        let binding = Binding {
            destination: Destination::Exchange(destination.to_owned()),
            routing_key: routing_key.to_owned(),
            arguments,
        };
        if bind {
            if src.kind() == ExchangeKind::Headers {
                crate::exchange::headers::validate_binding_args(&binding.arguments)
                    .map_err(AmqpError::precondition)?;
            }
            self.add_binding(&src, binding);
        } else if self.remove_binding(&src, &binding) {
            self.maybe_auto_delete_exchange(&src);
        }
        Ok(())
    }

    fn add_binding(&self, source: &Exchange, binding: Binding) {
        let _t = self.topology.lock();
        let log = defs::is_persistent_binding(self, source, &binding);
        let op = log.then(|| DefOp::binding(&self.name, &source.name, &binding));
        if source.bind(binding)
            && let Some(op) = op
        {
            self.store.log(&op);
        }
    }

    fn remove_binding(&self, source: &Exchange, binding: &Binding) -> bool {
        let _t = self.topology.lock();
        let removed = source.unbind(binding);
        if removed && source.options.durable {
            self.store
                .log(&DefOp::unbinding(&self.name, &source.name, binding));
        }
        removed
    }

    /// The policy for the queue (`queue`) or exchange called `name`, if one matches. The
    /// default exchange takes none: it routes by queue name alone.
    fn policy_for(&self, name: &str, queue: bool) -> Option<Arc<Policy>> {
        if !queue && name.is_empty() {
            return None;
        }
        policy::select(&self.policies.read(), name, queue)
    }

    /// The operator policy for the queue called `name`, if one matches. Exchanges take none:
    /// no key an operator policy may set applies to them.
    fn operator_policy_for(&self, name: &str) -> Option<Arc<Policy>> {
        policy::select(&self.operator_policies.read(), name, true)
    }

    /// The list that holds policies of `kind`.
    fn list(&self, kind: Kind) -> &parking_lot::RwLock<Vec<Arc<Policy>>> {
        match kind {
            Kind::Policy => &self.policies,
            Kind::Operator => &self.operator_policies,
        }
    }

    /// The vhost's policies of `kind`, sorted by name.
    pub fn policies(&self, kind: Kind) -> Vec<Arc<Policy>> {
        let mut all = self.list(kind).read().clone();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The policy of `kind` called `name`.
    pub fn policy(&self, kind: Kind, name: &str) -> Option<Arc<Policy>> {
        self.list(kind)
            .read()
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// Creates or replaces a policy (of its kind), logs it, and re-applies policies to every
    /// queue and exchange. Returns true when it was created.
    pub fn set_policy(&self, policy: Policy) -> bool {
        let _t = self.topology.lock();
        let policy = Arc::new(policy);
        let created = {
            let mut all = self.list(policy.kind).write();
            let before = all.len();
            all.retain(|p| p.name != policy.name);
            let created = all.len() == before;
            all.push(policy.clone());
            created
        };
        self.store.log(&DefOp::set_policy(&policy));
        self.reapply_policies();
        created
    }

    /// Removes a policy of `kind` (objects it applied to fall back to their arguments or
    /// another matching policy); false if there was none.
    pub fn clear_policy(&self, kind: Kind, name: &str) -> bool {
        let _t = self.topology.lock();
        let removed = {
            let mut all = self.list(kind).write();
            let before = all.len();
            all.retain(|p| p.name != name);
            all.len() != before
        };
        if removed {
            self.store.log(&DefOp::clear_policy(kind, &self.name, name));
            self.reapply_policies();
        }
        removed
    }

    /// Selects and applies the policies of every queue and exchange (called under
    /// `topology`). Objects whose policies are the very same as before are left alone.
    fn reapply_policies(&self) {
        let same = |a: &Option<Arc<Policy>>, b: &Option<Arc<Policy>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        let exchanges: Vec<Arc<Exchange>> = self.exchanges.iter().map(|e| e.clone()).collect();
        for ex in exchanges {
            let policy = self.policy_for(&ex.name, false);
            if !same(&policy, &ex.policy()) {
                ex.set_policy(policy);
            }
        }
        let queues: Vec<Arc<Queue>> = self.queues.iter().map(|q| q.clone()).collect();
        for q in queues {
            let policy = self.policy_for(&q.name, true);
            let operator = self.operator_policy_for(&q.name);
            if !same(&policy, &q.policy()) || !same(&operator, &q.operator_policy()) {
                let old = q.set_policies(policy, operator);
                q.policy_applied(&old);
            }
        }
    }

    /// Resolves the queues a message published to `exchange` reaches: through e2e bindings
    /// (each exchange visited once, so cycles terminate), alternate exchanges, and every routing
    /// key in `keys` (the publish key plus CC/BCC). Each queue appears once.
    pub fn route(
        &self,
        exchange: &Arc<Exchange>,
        keys: &[&str],
        headers: Option<&FieldTable>,
        out: &mut Vec<Arc<Queue>>,
    ) {
        // Fast path, the common case: one exchange whose bindings lead only to queues. No
        // allocation beyond `out`.
        if !exchange.name.is_empty() {
            let start = out.len();
            let mut needs_graph = false;
            for key in keys {
                exchange.route_queues(key, headers, out, &mut needs_graph);
            }
            if !needs_graph && (out.len() > start || !exchange.has_alternate()) {
                if out.len() - start > 1 {
                    // A queue bound twice (two patterns, two keys) gets the message once.
                    out[start..].sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
                    out.dedup_by(|a, b| Arc::ptr_eq(a, b));
                }
                return;
            }
            out.truncate(start);
        } else if keys.len() == 1 {
            if let Some(q) = self.queues.get(keys[0]) {
                out.push(q.clone());
            }
            return;
        }
        let mut visited: Vec<String> = Vec::new();
        let mut stack: Vec<Arc<Exchange>> = vec![exchange.clone()];
        let mut dests: Vec<Destination> = Vec::new();
        while let Some(ex) = stack.pop() {
            if visited.iter().any(|v| v == &ex.name) {
                continue;
            }
            visited.push(ex.name.clone());
            dests.clear();
            if ex.name.is_empty() {
                for key in keys {
                    if let Some(q) = self.queues.get(*key) {
                        dests.push(Destination::Queue(q.clone()));
                    }
                }
            } else {
                for key in keys {
                    ex.route(key, headers, &mut dests);
                }
            }
            if dests.is_empty() {
                if let Some(ae) = ex.alternate().and_then(|a| self.exchanges.get(a.as_str())) {
                    stack.push(ae.clone());
                }
                continue;
            }
            for d in dests.drain(..) {
                match d {
                    Destination::Queue(q) => {
                        if !out.iter().any(|x| Arc::ptr_eq(x, &q)) {
                            out.push(q);
                        }
                    }
                    Destination::Exchange(name) => {
                        if let Some(e) = self.exchanges.get(&name) {
                            stack.push(e.clone());
                        }
                    }
                }
            }
        }
    }
}

/// RabbitMQ compares arguments by type family: an x-message-ttl sent as a 32-bit int by one
/// client and a 64-bit int by another (or restored from JSON) is the same value.
fn equivalent_values(a: Option<&AMQPValue>, b: Option<&AMQPValue>) -> bool {
    fn int(v: &AMQPValue) -> Option<i128> {
        Some(match v {
            AMQPValue::ShortShortInt(x) => i128::from(*x),
            AMQPValue::ShortShortUInt(x) => i128::from(*x),
            AMQPValue::ShortInt(x) => i128::from(*x),
            AMQPValue::ShortUInt(x) => i128::from(*x),
            AMQPValue::LongInt(x) => i128::from(*x),
            AMQPValue::LongUInt(x) => i128::from(*x),
            AMQPValue::LongLongInt(x) => i128::from(*x),
            AMQPValue::Timestamp(x) => i128::from(*x),
            _ => return None,
        })
    }
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => match (int(x), int(y)) {
            (Some(i), Some(j)) => i == j,
            _ => match (value_as_str(x), value_as_str(y)) {
                (Some(s), Some(t)) => s == t,
                _ => x == y,
            },
        },
        _ => false,
    }
}

fn describe(v: Option<&AMQPValue>) -> String {
    match v {
        None => "none".into(),
        Some(AMQPValue::LongString(s)) => format!("'{}'", String::from_utf8_lossy(s.as_bytes())),
        Some(AMQPValue::ShortString(s)) => format!("'{s}'"),
        Some(AMQPValue::LongLongInt(i)) => format!("'{i}'"),
        Some(AMQPValue::LongInt(i)) => format!("'{i}'"),
        Some(AMQPValue::ShortInt(i)) => format!("'{i}'"),
        Some(AMQPValue::Boolean(b)) => format!("'{b}'"),
        Some(other) => format!("'{other:?}'"),
    }
}
