//! Exchanges and their bindings. Each exchange owns its bindings behind one `RwLock` (read on
//! every publish, written on bind/unbind; never held across `.await` or while locking a queue).
//! Matching is per type: direct (hash map), fanout (all), topic (word trie), headers (scan).

pub mod headers;
pub mod topic;

use crate::queue::Queue;
use amq_protocol::types::FieldTable;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use topic::TopicTrie;

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
    direct: HashMap<String, Vec<Destination>>,
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
    /// From the alternate-exchange argument: where unroutable messages go.
    pub alternate: Option<String>,
    bindings: RwLock<Bindings>,
}

impl Exchange {
    pub fn new(name: String, options: ExchangeOptions) -> Self {
        let alternate = options
            .arguments
            .inner()
            .get("alternate-exchange")
            .and_then(crate::vhost::value_as_str)
            .map(str::to_owned);
        Exchange {
            name,
            options,
            alternate,
            bindings: RwLock::new(Bindings::default()),
        }
    }

    pub fn kind(&self) -> ExchangeKind {
        self.options.kind
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
