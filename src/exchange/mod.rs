//! Exchanges and their bindings. Each exchange owns its bindings behind one `RwLock` (read on
//! every publish, written on bind/unbind; never held across `.await` or while locking a queue).
//! Matching is per type: direct (hash map), fanout (all), topic (word trie), headers (scan).

pub mod delayed;
pub mod headers;
pub mod topic;

use crate::policy::Policy;
use crate::queue::Queue;
use amq_protocol::types::FieldTable;
use arc_swap::ArcSwapOption;
use parking_lot::RwLock;
use std::sync::Arc;
use topic::TopicTrie;

/// The delayed-message exchange type name.
pub const DELAYED_TYPE: &str = "x-delayed-message";

/// Exchange types Warren implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }

    /// The kind a declaration asks for: `x-delayed-message` routes like its `x-delayed-type`
    /// (the delayed-message plugin's convention), the others are themselves.
    pub fn from_declared(type_name: &str, args: &FieldTable) -> Result<Self, String> {
        if type_name == DELAYED_TYPE {
            return match args
                .inner()
                .get("x-delayed-type")
                .and_then(crate::vhost::value_as_str)
            {
                Some(inner) if inner != DELAYED_TYPE => ExchangeKind::parse(inner)
                    .ok_or_else(|| format!("Invalid argument, 'x-delayed-type' must be an existing exchange type, got '{inner}'")),
                _ => Err("Invalid argument, 'x-delayed-type' must be an existing exchange type".into()),
            };
        }
        ExchangeKind::parse(type_name).ok_or_else(|| format!("unknown exchange type '{type_name}'"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Where a binding sends matching messages. Exchanges are referred to by name (e2e bindings are
/// rare and resolved per publish); queues by handle, so the hot path does no name lookup.
#[derive(Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(String),
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => a == b,
            _ => false,
        }
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Queue(q) => write!(f, "queue:{}", q.name),
            Destination::Exchange(e) => write!(f, "exchange:{e}"),
        }
    }
}

/// One binding; its identity is all three fields, as in RabbitMQ.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: FieldTable,
}

#[derive(Default)]
struct Bindings {
    /// Source of truth (listing, unbind, headers and fanout matching).
    all: Vec<Binding>,
    direct: crate::FastMap<String, Vec<Destination>>,
    topic: TopicTrie<Destination>,
}

/// Declared properties of an exchange, compared on redeclaration.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeOptions {
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// An exchange.
pub struct Exchange {
    pub name: String,
    pub options: ExchangeOptions,
    /// Where unroutable messages go: the alternate-exchange argument, else the policy's
    /// (RabbitMQ: the argument wins). Swapped when a policy changes.
    alternate: ArcSwapOption<String>,
    /// The policy applied to this exchange, if any.
    policy: ArcSwapOption<Policy>,
    bindings: RwLock<Bindings>,
    /// x-message-deduplication on the exchange: duplicates are not routed.
    pub dedup: Option<parking_lot::Mutex<crate::dedup::Dedup>>,
    /// Held messages of an x-delayed-message exchange (set by the vhost when declared).
    pub delayed: std::sync::OnceLock<Arc<delayed::Delayed>>,
    /// Set once it is removed from its vhost, so handles cached by publishing channels go stale.
    deleted: std::sync::atomic::AtomicBool,
}

impl Exchange {
    pub fn new(name: String, options: ExchangeOptions) -> Self {
        let alternate = options
            .arguments
            .inner()
            .get("alternate-exchange")
            .and_then(crate::vhost::value_as_str)
            .map(str::to_owned);
        let dedup = crate::dedup::Dedup::from_args(&options.arguments)
            .ok()
            .flatten()
            .map(parking_lot::Mutex::new);
        Exchange {
            name,
            options,
            alternate: ArcSwapOption::from_pointee(alternate),
            policy: ArcSwapOption::empty(),
            bindings: RwLock::new(Bindings::default()),
            dedup,
            delayed: std::sync::OnceLock::new(),
            deleted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether it was deleted (a handle kept past the deletion must be looked up again).
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks it deleted; called by the vhost once it is out of the map.
    pub fn mark_deleted(&self) {
        self.deleted
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Where unroutable messages go, if anywhere.
    pub fn alternate(&self) -> Option<Arc<String>> {
        self.alternate.load_full()
    }

    /// Whether unroutable messages go anywhere (one atomic load, for the routing fast path).
    pub fn has_alternate(&self) -> bool {
        self.alternate.load().is_some()
    }

    /// The policy applied to this exchange, if any.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.load_full()
    }

    /// Applies `policy` (None: back to the declared arguments).
    pub fn set_policy(&self, policy: Option<Arc<Policy>>) {
        let declared = self
            .options
            .arguments
            .inner()
            .get("alternate-exchange")
            .and_then(crate::vhost::value_as_str)
            .map(str::to_owned);
        let alternate = declared.or_else(|| {
            policy
                .as_ref()
                .and_then(|p| p.settings.alternate_exchange.clone())
        });
        self.policy.store(policy);
        self.alternate.store(alternate.map(Arc::new));
    }

    pub fn kind(&self) -> ExchangeKind {
        self.options.kind
    }

    /// Whether this is an x-delayed-message exchange.
    pub fn is_delayed(&self) -> bool {
        self.options.arguments.contains_key("x-delayed-type")
    }

    /// The declared type name (what definitions export and the API report).
    pub fn type_name(&self) -> &'static str {
        if self.is_delayed() {
            DELAYED_TYPE
        } else {
            self.options.kind.as_str()
        }
    }

    /// Adds a binding; false if it already existed.
    pub fn bind(&self, binding: Binding) -> bool {
        let mut b = self.bindings.write();
        if b.all.contains(&binding) {
            return false;
        }
        match self.options.kind {
            ExchangeKind::Direct => b
                .direct
                .entry(binding.routing_key.clone())
                .or_default()
                .push(binding.destination.clone()),
            ExchangeKind::Topic => {
                b.topic
                    .insert(&binding.routing_key, binding.destination.clone());
            }
            _ => {}
        }
        b.all.push(binding);
        true
    }

    /// Removes a binding; false if it did not exist.
    pub fn unbind(&self, binding: &Binding) -> bool {
        let mut b = self.bindings.write();
        let Some(pos) = b.all.iter().position(|x| x == binding) else {
            return false;
        };
        b.all.remove(pos);
        Self::unindex(&mut b, self.options.kind, binding);
        true
    }

    fn unindex(b: &mut Bindings, kind: ExchangeKind, binding: &Binding) {
        match kind {
            ExchangeKind::Direct => {
                // The same destination may be bound twice with the same key but different
                // arguments: remove one index entry only when no such binding remains.
                let still = b.all.iter().any(|x| {
                    x.routing_key == binding.routing_key && x.destination == binding.destination
                });
                if !still && let Some(v) = b.direct.get_mut(&binding.routing_key) {
                    v.retain(|d| d != &binding.destination);
                    if v.is_empty() {
                        b.direct.remove(&binding.routing_key);
                    }
                }
            }
            ExchangeKind::Topic => {
                let still = b.all.iter().any(|x| {
                    x.routing_key == binding.routing_key && x.destination == binding.destination
                });
                if !still {
                    b.topic.remove(&binding.routing_key, &binding.destination);
                }
            }
            _ => {}
        }
    }

    /// Removes every binding to `dest`; returns how many were removed.
    pub fn unbind_destination(&self, dest: &Destination) -> usize {
        let mut b = self.bindings.write();
        let removed: Vec<Binding> = b
            .all
            .iter()
            .filter(|x| &x.destination == dest)
            .cloned()
            .collect();
        b.all.retain(|x| &x.destination != dest);
        for binding in &removed {
            Self::unindex(&mut b, self.options.kind, binding);
        }
        removed.len()
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.read().all.len()
    }

    /// Snapshot of the bindings (for listing and definitions).
    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings.read().all.clone()
    }

    /// Appends matching queues to `out`; sets `graph` when an exchange destination matched
    /// (the caller then routes through the full graph instead).
    pub fn route_queues(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<Arc<Queue>>,
        graph: &mut bool,
    ) {
        let b = self.bindings.read();
        let mut push = |d: &Destination| match d {
            Destination::Queue(q) => out.push(q.clone()),
            Destination::Exchange(_) => *graph = true,
        };
        match self.options.kind {
            ExchangeKind::Direct => {
                if let Some(v) = b.direct.get(routing_key) {
                    v.iter().for_each(&mut push);
                }
            }
            ExchangeKind::Fanout => b.all.iter().for_each(|x| push(&x.destination)),
            ExchangeKind::Topic => b.topic.for_each_match(routing_key, |d| push(d)),
            ExchangeKind::Headers => b
                .all
                .iter()
                .filter(|x| headers::headers_match(&x.arguments, headers))
                .for_each(|x| push(&x.destination)),
        }
    }

    /// Appends the destinations matching `routing_key` / `headers` to `out`.
    pub fn route(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<Destination>,
    ) {
        let b = self.bindings.read();
        match self.options.kind {
            ExchangeKind::Direct => {
                if let Some(v) = b.direct.get(routing_key) {
                    out.extend(v.iter().cloned());
                }
            }
            ExchangeKind::Fanout => out.extend(b.all.iter().map(|x| x.destination.clone())),
            ExchangeKind::Topic => b.topic.for_each_match(routing_key, |d| out.push(d.clone())),
            ExchangeKind::Headers => out.extend(
                b.all
                    .iter()
                    .filter(|x| headers::headers_match(&x.arguments, headers))
                    .map(|x| x.destination.clone()),
            ),
        }
    }
}
