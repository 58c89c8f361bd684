//! Policies, as RabbitMQ defines them: a named, per-vhost rule whose `pattern` (a regex on the
//! object's name) selects queues and/or exchanges (`apply-to`) and whose `definition` supplies
//! settings those objects would otherwise take from their x-arguments.
//!
//! Responsibilities:
//! - Validating a policy with RabbitMQ's rules and reasons ([`Policy::new`]).
//! - Choosing the one policy that applies to an object ([`select`]): the highest priority among
//!   the matching ones, as in RabbitMQ (policies are not merged).
//! - Combining a policy with the arguments a client declared ([`QueueArgs::with_policy`]),
//!   following RabbitMQ's classic-queue rules: for `expires`, `message-ttl`, `max-length`,
//!   `max-length-bytes`, `delivery-limit` and `consumer-timeout` the lower of the two values
//!   wins; for `dead-letter-exchange`, `dead-letter-routing-key`, `overflow` and (on exchanges)
//!   `alternate-exchange` the argument wins over the policy.
//!
//! Operator policies ([`Kind::Operator`]) are RabbitMQ's second kind: set by the operator to cap
//! what users' policies and arguments may ask for. One of each kind can apply to a queue at
//! once; an operator policy may only set `message-ttl`, `expires`, `max-length`,
//! `max-length-bytes` and `delivery-limit`, and for each the lowest of argument, policy and
//! operator policy wins.
//!
//! The vhost owns its policies (`VHost::policies`) and re-applies them to its queues and
//! exchanges whenever one changes; queues and exchanges hold the effective result.

use crate::queue::{Overflow, QueueArgs};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Which objects a policy may apply to (`apply-to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyTo {
    Queues,
    Exchanges,
    All,
}

impl ApplyTo {
    /// RabbitMQ's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queues" => ApplyTo::Queues,
            "exchanges" => ApplyTo::Exchanges,
            "all" => ApplyTo::All,
            _ => return None,
        })
    }
}

/// Which of RabbitMQ's two kinds of policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Set by users with the `policymaker` tag: `/api/policies`.
    Policy,
    /// Set by the operator to cap the limits users may choose: `/api/operator-policies`.
    Operator,
}

/// The keys an operator policy may set. RabbitMQ 3.10 accepts exactly these; the last two are
/// quorum-queue settings that Warren keeps and shows but has no use for.
const OPERATOR_KEYS: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "delivery-limit",
    "max-in-memory-length",
    "max-in-memory-bytes",
];

/// The settings of a policy definition that Warren acts on, parsed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Option<Overflow>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub delivery_limit: Option<u64>,
    pub consumer_timeout: Option<u64>,
    pub alternate_exchange: Option<String>,
}

/// Definition keys RabbitMQ accepts that Warren has no use for (mirroring, federation, queue
/// modes, stream sizing...). They are kept and shown, so definitions exported from RabbitMQ
/// import unchanged, but have no effect.
const INERT_KEYS: &[&str] = &[
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "queue-mode",
    "queue-version",
    "queue-master-locator",
    "queue-leader-locator",
    "federation-upstream",
    "federation-upstream-set",
    "max-age",
    "stream-max-segment-size-bytes",
    "initial-cluster-size",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "dead-letter-strategy",
];

/// A validated policy.
#[derive(Debug)]
pub struct Policy {
    pub kind: Kind,
    pub vhost: String,
    pub name: String,
    /// The regex as given (what the API and definitions show).
    pub pattern: String,
    regex: regex::Regex,
    pub apply_to: ApplyTo,
    /// Highest wins when several policies match one object.
    pub priority: i64,
    /// The definition as given, key order and inert keys included.
    pub definition: Map<String, Value>,
    /// What Warren acts on.
    pub settings: Settings,
}

/// Renders a JSON value in an error text.
fn show(v: &Value) -> String {
    v.to_string()
}

/// RabbitMQ's framing of every validation error ("Validation failed\n\n<reason>\n").
fn failed(reason: impl std::fmt::Display) -> String {
    format!("Validation failed\n\n{reason}\n")
}

impl Policy {
    /// Validates a policy of `kind` as RabbitMQ does; the error is RabbitMQ's reason text.
    ///
    /// `priority` and `apply_to` are JSON values because clients send what they like there;
    /// absent ones default to 0 and "all".
    pub fn new(
        kind: Kind,
        vhost: &str,
        name: &str,
        pattern: &str,
        definition: &Map<String, Value>,
        priority: Option<&Value>,
        apply_to: Option<&Value>,
    ) -> Result<Policy, String> {
        let regex = regex::Regex::new(pattern).map_err(|e| {
            failed(format!(
                "pattern should be regular expression but is invalid: {}",
                e.to_string().lines().last().unwrap_or_default().trim()
            ))
        })?;
        let apply_to = match apply_to {
            None | Some(Value::Null) => ApplyTo::All,
            Some(Value::String(s)) => ApplyTo::parse(s).ok_or_else(|| {
                failed(format!(
                    "apply-to '{s}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                ))
            })?,
            Some(other) => {
                return Err(failed(format!(
                    "apply-to {} unrecognised; should be 'queues', 'exchanges' or 'all'",
                    show(other)
                )));
            }
        };
        let priority = match priority {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or(0),
            Some(other) => {
                return Err(failed(format!(
                    "priority should be a number, actually was {}",
                    show(other)
                )));
            }
        };
        if definition.is_empty() {
            return Err(failed("no policy provided"));
        }
        let settings = parse_settings(kind, definition).map_err(failed)?;
        Ok(Policy {
            kind,
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            pattern: pattern.to_owned(),
            regex,
            apply_to,
            priority,
            definition: definition.clone(),
            settings,
        })
    }

    /// Whether this policy applies to the queue (or exchange) called `name`.
    pub fn matches(&self, name: &str, queue: bool) -> bool {
        let kind_ok = match self.apply_to {
            ApplyTo::All => true,
            ApplyTo::Queues => queue,
            ApplyTo::Exchanges => !queue,
        };
        kind_ok && self.regex.is_match(name)
    }

    /// The policy as the management API and definitions show it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to.as_str(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }
}

/// Parses and validates the definition keys, with RabbitMQ's reasons.
fn parse_settings(kind: Kind, def: &Map<String, Value>) -> Result<Settings, String> {
    let mut s = Settings::default();
    let mut unknown: Vec<String> = Vec::new();
    let int = |v: &Value, min: u64, what: &str| -> Result<u64, String> {
        v.as_u64()
            .filter(|n| *n >= min)
            .ok_or_else(|| format!("{} is not a valid {what}", show(v)))
    };
    let string = |v: &Value, what: &str| -> Result<String, String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{} is not a valid {what}", show(v)))
    };
    // RabbitMQ lists refused keys as Erlang tuples; Warren writes `{"key",value}`.
    let unrecognised = |k: &str, v: &Value| format!("{{{},{}}}", show(&Value::String(k.into())), v);
    for (k, v) in def {
        match k.as_str() {
            key if kind == Kind::Operator && !OPERATOR_KEYS.contains(&key) => {
                unknown.push(unrecognised(key, v))
            }
            "message-ttl" => s.message_ttl = Some(int(v, 0, "message TTL")?),
            "expires" => s.expires = Some(int(v, 1, "queue expiry")?),
            "max-length" => s.max_length = Some(int(v, 0, "maximum length")?),
            "max-length-bytes" => s.max_length_bytes = Some(int(v, 0, "maximum length in bytes")?),
            "delivery-limit" => s.delivery_limit = Some(int(v, 0, "delivery limit")?),
            "consumer-timeout" => s.consumer_timeout = Some(int(v, 1, "consumer timeout")?),
            "overflow" => {
                s.overflow = Some(match v.as_str() {
                    Some("drop-head") => Overflow::DropHead,
                    Some("reject-publish") => Overflow::RejectPublish,
                    Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                    _ => return Err(format!("{} is not a valid overflow value", show(v))),
                })
            }
            "dead-letter-exchange" => {
                s.dead_letter_exchange = Some(string(v, "dead letter exchange name")?)
            }
            "dead-letter-routing-key" => {
                s.dead_letter_routing_key = Some(string(v, "dead letter routing key")?)
            }
            "alternate-exchange" => {
                s.alternate_exchange = Some(string(v, "alternate exchange name")?)
            }
            other if INERT_KEYS.contains(&other) => {}
            other => unknown.push(unrecognised(other, v)),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        ));
    }
    Ok(s)
}

/// The policy that applies to `name`: the highest priority among those matching, ties going to
/// the first name in sort order so the choice never depends on insertion order.
pub fn select(policies: &[Arc<Policy>], name: &str, queue: bool) -> Option<Arc<Policy>> {
    policies
        .iter()
        .filter(|p| p.matches(name, queue))
        .max_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| b.name.cmp(&a.name))
        })
        .cloned()
}

/// The definition in force on an object with `policy` and `operator` applied, as RabbitMQ's
/// `effective_policy_definition` shows it: the union of both, and for a key in both (only
/// numeric limits can be) the lower value.
pub fn effective_definition(
    policy: Option<&Policy>,
    operator: Option<&Policy>,
) -> Map<String, Value> {
    let mut out = policy.map(|p| p.definition.clone()).unwrap_or_default();
    for (k, v) in operator.map(|o| &o.definition).into_iter().flatten() {
        let lower = match (out.get(k).and_then(Value::as_u64), v.as_u64()) {
            (Some(mine), Some(op)) if mine < op => continue,
            _ => v.clone(),
        };
        out.insert(k.clone(), lower);
    }
    out
}

/// `Some(min)` of two optional limits, where either alone stands.
fn lower(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

impl QueueArgs {
    /// The arguments a queue runs with: its declared ones combined with `policy` and then
    /// `operator` (see the module doc for which side wins per key). An operator policy holds
    /// only limits, so applying it second leaves the lowest of the three.
    pub fn with_policies(&self, policy: Option<&Policy>, operator: Option<&Policy>) -> QueueArgs {
        self.with_policy(policy).with_policy(operator)
    }

    /// Its declared arguments combined with one `policy`.
    pub fn with_policy(&self, policy: Option<&Policy>) -> QueueArgs {
        let Some(p) = policy.map(|p| &p.settings) else {
            return self.clone();
        };
        QueueArgs {
            max_length: lower(self.max_length, p.max_length),
            max_length_bytes: lower(self.max_length_bytes, p.max_length_bytes),
            overflow: if self.overflow_declared {
                self.overflow
            } else {
                p.overflow.unwrap_or(self.overflow)
            },
            dead_letter_exchange: self
                .dead_letter_exchange
                .clone()
                .or_else(|| p.dead_letter_exchange.clone()),
            dead_letter_routing_key: self
                .dead_letter_routing_key
                .clone()
                .or_else(|| p.dead_letter_routing_key.clone()),
            message_ttl: lower(self.message_ttl, p.message_ttl),
            expires: lower(self.expires, p.expires),
            delivery_limit: lower(self.delivery_limit, p.delivery_limit),
            consumer_timeout: lower(self.consumer_timeout, p.consumer_timeout),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn policy(name: &str, pattern: &str, prio: i64, apply: &str, d: Value) -> Arc<Policy> {
        Arc::new(
            Policy::new(
                Kind::Policy,
                "/",
                name,
                pattern,
                &def(d),
                Some(&json!(prio)),
                Some(&json!(apply)),
            )
            .expect("valid"),
        )
    }

    #[test]
    fn validation_reasons() {
        let err = |pattern: &str, d: Value, prio: Value, apply: Value| {
            Policy::new(
                Kind::Policy,
                "/",
                "p",
                pattern,
                &def(d),
                Some(&prio),
                Some(&apply),
            )
            .expect_err("invalid")
        };
        let ok = json!({"max-length": 1});
        assert!(err("(", ok.clone(), json!(0), json!("all")).contains("pattern should be"));
        assert!(err("x", ok.clone(), json!(0), json!("foo")).contains("apply-to 'foo'"));
        assert!(err("x", ok.clone(), json!("high"), json!("all")).contains("priority should"));
        assert!(err("x", json!({}), json!(0), json!("all")).contains("no policy provided"));
        assert!(
            err("x", json!({"foo": 2}), json!(0), json!("all"))
                .contains("are not recognised policy settings")
        );
        assert!(
            err("x", json!({"max-length": "a"}), json!(0), json!("all"))
                .contains("not a valid maximum length")
        );
        assert!(err("x", json!({"expires": 0}), json!(0), json!("all")).contains("queue expiry"));
        assert!(
            err("x", json!({"overflow": "nope"}), json!(0), json!("all"))
                .contains("overflow value")
        );
        assert!(
            err("x", json!({"message-ttl": -1}), json!(0), json!("all")).contains("message TTL")
        );
        let p = policy(
            "p",
            "^a",
            0,
            "all",
            json!({"ha-mode": "all", "max-length": 3}),
        );
        assert_eq!(p.settings.max_length, Some(3));
    }

    #[test]
    fn operator_policies_take_only_limits_and_cap_the_rest() {
        let op = |d: Value| Policy::new(Kind::Operator, "/", "op", "^q", &def(d), None, None);
        for refused in [
            json!({"dead-letter-exchange": "x"}),
            json!({"overflow": "drop-head"}),
            json!({"consumer-timeout": 5000}),
            json!({"ha-mode": "all"}),
        ] {
            let err = op(refused.clone()).expect_err("not an operator key");
            assert!(
                err.contains("are not recognised policy settings"),
                "{refused}: {err}"
            );
        }
        assert!(
            op(json!({"max-length": "a"}))
                .expect_err("bad value")
                .contains("not a valid maximum length")
        );
        let cap = op(json!({"max-length": 2, "message-ttl": 5000, "max-in-memory-length": 1}))
            .expect("valid");
        assert_eq!(cap.kind, Kind::Operator);
        let pol = policy(
            "p",
            "^q",
            0,
            "queues",
            json!({"max-length": 5, "message-ttl": 1000, "dead-letter-exchange": "dlx",
                   "expires": 60000}),
        );
        // The effective definition: the union, with the lower value for keys in both.
        assert_eq!(
            Value::Object(effective_definition(Some(&pol), Some(&cap))),
            json!({"dead-letter-exchange": "dlx", "expires": 60000, "max-length": 2,
                   "max-in-memory-length": 1, "message-ttl": 1000})
        );
        assert_eq!(
            Value::Object(effective_definition(None, Some(&cap))),
            Value::Object(cap.definition.clone())
        );
        assert!(effective_definition(None, None).is_empty());
        // Arguments: the lowest of the three wins; what only the policy sets stays.
        let mut t = amq_protocol::types::FieldTable::default();
        t.insert(
            "x-max-length".into(),
            amq_protocol::types::AMQPValue::LongInt(4),
        );
        let declared = QueueArgs::parse(&t).expect("valid");
        let eff = declared.with_policies(Some(&pol), Some(&cap));
        assert_eq!(eff.max_length, Some(2));
        assert_eq!(eff.message_ttl, Some(1000));
        assert_eq!(eff.expires, Some(60000));
        assert_eq!(eff.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(declared.with_policies(Some(&pol), None).max_length, Some(4));
    }

    #[test]
    fn highest_priority_wins_and_apply_to_filters() {
        let ps = vec![
            policy("low", "^q", 1, "all", json!({"max-length": 1})),
            policy("high", "^q", 5, "queues", json!({"max-length": 5})),
            policy(
                "ex",
                "^q",
                9,
                "exchanges",
                json!({"alternate-exchange": "ae"}),
            ),
        ];
        assert_eq!(
            select(&ps, "q1", true).map(|p| p.name.clone()).as_deref(),
            Some("high")
        );
        assert_eq!(
            select(&ps, "q1", false).map(|p| p.name.clone()).as_deref(),
            Some("ex")
        );
        assert!(select(&ps, "other", true).is_none());
        let tie = vec![
            policy("b", "^q", 1, "all", json!({"max-length": 1})),
            policy("a", "^q", 1, "all", json!({"max-length": 2})),
        ];
        assert_eq!(
            select(&tie, "q", true).map(|p| p.name.clone()).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn lower_limit_wins_and_arguments_win_for_the_rest() {
        let mut t = amq_protocol::types::FieldTable::default();
        use amq_protocol::types::AMQPValue;
        t.insert("x-max-length".into(), AMQPValue::LongInt(10));
        t.insert("x-message-ttl".into(), AMQPValue::LongInt(100));
        t.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("arg-dlx".into()),
        );
        let declared = QueueArgs::parse(&t).expect("valid");
        let p = policy(
            "p",
            ".*",
            0,
            "queues",
            json!({"max-length": 3, "message-ttl": 1000, "dead-letter-exchange": "pol-dlx",
                   "overflow": "reject-publish", "expires": 5000}),
        );
        let eff = declared.with_policy(Some(&p));
        assert_eq!(eff.max_length, Some(3));
        assert_eq!(eff.message_ttl, Some(100));
        assert_eq!(eff.dead_letter_exchange.as_deref(), Some("arg-dlx"));
        assert_eq!(eff.overflow, Overflow::RejectPublish);
        assert_eq!(eff.expires, Some(5000));
        t.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
        let declared = QueueArgs::parse(&t).expect("valid");
        assert_eq!(declared.with_policy(Some(&p)).overflow, Overflow::DropHead);
        assert_eq!(declared.with_policy(None).max_length, Some(10));
    }
}
