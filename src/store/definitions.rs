//! Durable topology: RabbitMQ's definitions JSON (Warren's import/export format) and the
//! append-only definitions log that makes exchanges, queues, bindings, users, vhosts,
//! permissions and policies survive a restart.
//!
//! Responsibilities:
//! - serde types for the JSON that `rabbitmqctl export_definitions` and `GET /api/definitions`
//!   produce, lenient on input (unknown fields ignored, missing ones defaulted, user tags as a
//!   comma-separated string or a list) and RabbitMQ-shaped on output.
//! - Conversions between x-argument JSON and AMQP field values, as RabbitMQ maps them.
//! - [`export`], [`apply`] and [`restore`] between a [`BrokerState`] and [`Definitions`].
//! - [`DefinitionsLog`]: `<data_dir>/definitions.log`, one JSON [`DefOp`] per line, replayed into
//!   a [`Definitions`] model and compacted every time it is opened.
//!
//! Invariants:
//! - The log is only appended to, one `write` per op, and [`DefinitionsLog::append`] never
//!   fsyncs: the group-commit thread fsyncs [`DefinitionsLog::file`] before confirming anything
//!   that depends on the op.
//! - After a failed append the log refuses every later append: a partial line followed by more
//!   lines would corrupt the next op as well, and Warren never pretends a write succeeded.
//! - Opening never fails on content: an unterminated last line that does not parse (crash
//!   mid-append) is dropped with a warning (one that parses is kept: nothing confirmed can depend
//!   on it either way), a corrupt line in the middle is reported with its line number and
//!   skipped, and the model is rewritten as a fresh snapshot (tmp file, fsync, rename, fsync of
//!   the directory), so the damage and the history are gone by the next start. The rename is
//!   atomic: a crash during compaction leaves either the old log or the new one.
//! - Replay cascades deletes like the broker does (a deleted queue or exchange takes the bindings
//!   that refer to it, a deleted vhost everything in it, a deleted user its permissions) and
//!   tolerates the op order that racing channels can produce (a `Bind` logged before its
//!   `DeclareQueue` still yields both). Bindings left dangling at the end are dropped.
//! - Only persistent things belong in the log: durable exchanges other than "" and `amq.*`,
//!   durable non-exclusive queues, bindings whose source and destination are both persistent
//!   (see [`is_persistent_queue`], [`is_persistent_exchange`], [`is_persistent_binding`]).
//! - x-arguments keep their exact AMQP types across a restart. JSON cannot tell `LongInt` from
//!   `LongLongInt`, yet queue equivalence and binding identity compare types, so when the JSON
//!   form would not convert back to the same table the log also carries the typed table
//!   (`x-warren-typed-arguments`). [`export`] never writes it, so exports stay RabbitMQ-clean.

use crate::auth::Permissions;
use crate::broker::{BrokerState, User};
use crate::exchange::{Binding, Destination, Exchange, ExchangeKind, ExchangeOptions};
use crate::policy::{Kind, Policy};
use crate::queue::{Queue, QueueOptions};
use crate::vhost::VHost;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The only password hashing algorithm Warren implements (RabbitMQ's default since 3.6).
pub const SHA256_ALGORITHM: &str = "rabbit_password_hashing_sha256";
/// File name of the log inside the data directory.
pub const LOG_FILE: &str = "definitions.log";
/// Compaction writes here first, then renames over [`LOG_FILE`].
const TMP_FILE: &str = "definitions.log.tmp";

/// RabbitMQ's definitions document. Field names and shapes follow RabbitMQ 3.x exports. The
/// sections Warren does not act on (topic permissions, global parameters, runtime parameters
/// other than operator policies) are parsed and written back verbatim within one document, but
/// an import does not keep them: the broker's next export leaves them out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Definitions {
    /// RabbitMQ's own version key (older exports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    /// RabbitMQ's own version key (newer exports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    /// "Warren" in Warren's exports; RabbitMQ puts its product name here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Version of the exporting product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    pub users: Vec<UserDef>,
    pub vhosts: Vec<VhostDef>,
    pub permissions: Vec<PermissionDef>,
    /// Kept verbatim; Warren has no topic authorisation yet.
    pub topic_permissions: Vec<Value>,
    /// Runtime parameters. Operator policies are read from here (component
    /// `operator_policy`, where RabbitMQ exports them); the rest (vhost limits, shovels,
    /// federation upstreams...) is not applied.
    pub parameters: Vec<Value>,
    /// Kept verbatim (cluster name...).
    pub global_parameters: Vec<Value>,
    pub policies: Vec<PolicyDef>,
    pub queues: Vec<QueueDef>,
    pub exchanges: Vec<ExchangeDef>,
    pub bindings: Vec<BindingDef>,
}

/// A user as RabbitMQ exports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserDef {
    pub name: String,
    /// `base64(salt ++ hash(salt ++ password))`; empty for a password-less user.
    pub password_hash: String,
    /// `None` when the field is absent, which RabbitMQ reads as legacy MD5 (pre-3.6 exports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashing_algorithm: Option<String>,
    /// Read from a comma-separated string (older exports) or a list; always written as a list.
    #[serde(deserialize_with = "de_tags")]
    pub tags: Vec<String>,
    /// Per-user limits, kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
}

/// A virtual host as RabbitMQ exports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VhostDef {
    pub name: String,
    /// Description and tags, kept verbatim (shapes differ between RabbitMQ versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A policy as RabbitMQ exports it (and as `PUT /api/policies/{vhost}/{name}` takes it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    /// "queues", "exchanges" or "all".
    #[serde(rename = "apply-to")]
    pub apply_to: String,
    pub definition: Map<String, Value>,
    pub priority: i64,
}

impl Default for PolicyDef {
    fn default() -> Self {
        PolicyDef {
            vhost: String::new(),
            name: String::new(),
            pattern: String::new(),
            apply_to: "all".into(),
            definition: Map::new(),
            priority: 0,
        }
    }
}

impl PolicyDef {
    /// The definition of a live policy.
    pub fn from_policy(p: &Policy) -> Self {
        PolicyDef {
            vhost: p.vhost.clone(),
            name: p.name.clone(),
            pattern: p.pattern.clone(),
            apply_to: p.apply_to.as_str().into(),
            definition: p.definition.clone(),
            priority: p.priority,
        }
    }

    /// Validates it into a policy of `kind`.
    ///
    /// # Errors
    ///
    /// RabbitMQ's validation reason (bad regex, apply-to, definition key or value).
    pub fn to_policy(&self, kind: Kind) -> Result<Policy, String> {
        Policy::new(
            kind,
            &self.vhost,
            &self.name,
            &self.pattern,
            &self.definition,
            Some(&Value::from(self.priority)),
            Some(&Value::String(self.apply_to.clone())),
        )
    }
}

/// The `component` of a runtime parameter that holds an operator policy.
const OPERATOR_POLICY_COMPONENT: &str = "operator_policy";

impl PolicyDef {
    /// An operator policy as RabbitMQ exports it: a runtime parameter.
    pub fn to_parameter(&self) -> Value {
        serde_json::json!({
            "value": {
                "pattern": self.pattern,
                "definition": self.definition,
                "priority": self.priority,
                "apply-to": self.apply_to,
            },
            "vhost": self.vhost,
            "component": OPERATOR_POLICY_COMPONENT,
            "name": self.name,
        })
    }

    /// The operator policy in runtime parameter `v`: `None` for other components, an error
    /// for an operator policy that is not shaped as RabbitMQ exports one.
    fn from_parameter(v: &Value) -> Option<Result<PolicyDef, String>> {
        if v.get("component").and_then(Value::as_str) != Some(OPERATOR_POLICY_COMPONENT) {
            return None;
        }
        let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        let parsed = (|| {
            let value = v.get("value")?;
            Some(PolicyDef {
                vhost: text(v, "vhost")?,
                name: text(v, "name")?,
                pattern: text(value, "pattern")?,
                apply_to: text(value, "apply-to").unwrap_or_else(|| "all".into()),
                definition: value.get("definition")?.as_object()?.clone(),
                priority: value.get("priority").map_or(Some(0), Value::as_i64)?,
            })
        })();
        Some(parsed.ok_or_else(|| format!("operator policy parameter {v} is malformed")))
    }
}

/// A user's three permission regexes in one vhost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// A queue as RabbitMQ exports it. `exclusive` is absent because exclusive queues are never
/// exported; RabbitMQ's `type` field is ignored (Warren has classic queues only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueDef {
    pub name: String,
    pub vhost: String,
    pub durable: bool,
    pub auto_delete: bool,
    /// x-arguments in RabbitMQ's JSON form.
    pub arguments: Map<String, Value>,
    /// The exact AMQP table when `arguments` would not convert back to it (log only).
    #[serde(
        rename = "x-warren-typed-arguments",
        skip_serializing_if = "Option::is_none"
    )]
    pub typed_arguments: Option<FieldTable>,
}

/// An exchange as RabbitMQ exports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExchangeDef {
    pub name: String,
    pub vhost: String,
    /// "direct", "fanout", "topic" or "headers" (others are refused by [`apply`]).
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    /// x-arguments in RabbitMQ's JSON form.
    pub arguments: Map<String, Value>,
    /// The exact AMQP table when `arguments` would not convert back to it (log only).
    #[serde(
        rename = "x-warren-typed-arguments",
        skip_serializing_if = "Option::is_none"
    )]
    pub typed_arguments: Option<FieldTable>,
}

/// What a binding's destination is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    #[default]
    Queue,
    Exchange,
}

/// A binding as RabbitMQ exports it; its identity is every field, as in the broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BindingDef {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: DestinationType,
    pub routing_key: String,
    /// Binding arguments in RabbitMQ's JSON form.
    pub arguments: Map<String, Value>,
    /// The exact AMQP table when `arguments` would not convert back to it (log only).
    #[serde(
        rename = "x-warren-typed-arguments",
        skip_serializing_if = "Option::is_none"
    )]
    pub typed_arguments: Option<FieldTable>,
}

// Hand-written defaults: a definitions file describes durable topology, so a queue or exchange
// whose `durable` is left out is durable, and a missing vhost is the default one.
impl Default for QueueDef {
    fn default() -> Self {
        QueueDef {
            name: String::new(),
            vhost: "/".into(),
            durable: true,
            auto_delete: false,
            arguments: Map::new(),
            typed_arguments: None,
        }
    }
}

impl Default for ExchangeDef {
    fn default() -> Self {
        ExchangeDef {
            name: String::new(),
            vhost: "/".into(),
            kind: "direct".into(),
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: Map::new(),
            typed_arguments: None,
        }
    }
}

impl Default for BindingDef {
    fn default() -> Self {
        BindingDef {
            source: String::new(),
            vhost: "/".into(),
            destination: String::new(),
            destination_type: DestinationType::Queue,
            routing_key: String::new(),
            arguments: Map::new(),
            typed_arguments: None,
        }
    }
}

/// Accepts `"a,b"`, `["a","b"]`, `""`, `[]` and `null`; trims and drops empty tags.
fn de_tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Csv(String),
    }
    let tags = match Option::<Tags>::deserialize(d)? {
        None => Vec::new(),
        Some(Tags::List(list)) => list,
        Some(Tags::Csv(s)) => s.split(',').map(str::to_owned).collect(),
    };
    Ok(tags
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect())
}

// ---------------------------------------------------------------------------------------------
// x-arguments: JSON <-> AMQP
// ---------------------------------------------------------------------------------------------

/// Converts RabbitMQ's JSON for an x-argument value to an AMQP field value: integers become
/// `LongLongInt`, other numbers `Double`, strings `LongString`, arrays `FieldArray`, objects
/// `FieldTable`, null `Void`.
///
/// # Errors
///
/// An integer above `i64::MAX`, or a table key longer than 255 bytes.
pub fn json_to_amqp(v: &Value) -> Result<AMQPValue, String> {
    Ok(match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                AMQPValue::LongLongInt(i)
            } else if n.is_u64() {
                return Err(format!("integer {n} does not fit a signed 64-bit field"));
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items
                .iter()
                .map(json_to_amqp)
                .collect::<Result<Vec<_>, _>>()?,
        )),
        Value::Object(m) => AMQPValue::FieldTable(json_to_field_table(m)?),
    })
}

/// Converts a JSON object of x-arguments to a field table (see [`json_to_amqp`]).
///
/// # Errors
///
/// As [`json_to_amqp`], naming the offending key.
pub fn json_to_field_table(m: &Map<String, Value>) -> Result<FieldTable, String> {
    let mut table = FieldTable::default();
    for (k, v) in m {
        let key =
            ShortString::try_new(k.as_str()).map_err(|e| format!("argument key '{k}': {e}"))?;
        let value = json_to_amqp(v).map_err(|e| format!("argument '{k}': {e}"))?;
        table.insert(key, value);
    }
    Ok(table)
}

/// Converts an AMQP field value to RabbitMQ's JSON: numbers of every width (and timestamps) as
/// numbers, strings and byte arrays as strings (lossily for non-UTF-8), void as null.
pub fn amqp_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Timestamp(t) => Value::from(*t),
        // serde_json maps non-finite floats to null, which is what RabbitMQ's JSON can say.
        AMQPValue::Float(f) => Value::from(f64::from(*f)),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::DecimalValue(d) => {
            Value::from(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b.as_slice()).into()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_to_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(field_table_to_json(t)),
        AMQPValue::Void => Value::Null,
    }
}

/// Converts a field table to RabbitMQ's JSON object (see [`amqp_to_json`]).
pub fn field_table_to_json(t: &FieldTable) -> Map<String, Value> {
    t.into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), amqp_to_json(v)))
        .collect()
}

/// The typed table to log beside its JSON form, or `None` when the JSON converts back to it
/// exactly (the common case: strings, 64-bit integers, booleans).
fn typed_if_lossy(table: &FieldTable, json: &Map<String, Value>) -> Option<FieldTable> {
    if json_to_field_table(json).as_ref() == Ok(table) {
        return None;
    }
    // serde_json writes a non-finite float as null, which would not read back as a typed
    // value: such a table falls back to its (lossy) JSON form rather than make the line
    // unreadable.
    all_finite_table(table).then(|| table.clone())
}

fn all_finite_table(t: &FieldTable) -> bool {
    t.into_iter().all(|(_, v)| all_finite(v))
}

fn all_finite(v: &AMQPValue) -> bool {
    match v {
        AMQPValue::Float(f) => f.is_finite(),
        AMQPValue::Double(f) => f.is_finite(),
        AMQPValue::FieldArray(a) => a.as_slice().iter().all(all_finite),
        AMQPValue::FieldTable(t) => all_finite_table(t),
        _ => true,
    }
}

/// The table to declare with: the typed one when logged, else the JSON converted.
fn effective_args(
    json: &Map<String, Value>,
    typed: Option<&FieldTable>,
) -> Result<FieldTable, String> {
    match typed {
        Some(t) => Ok(t.clone()),
        None => json_to_field_table(json),
    }
}

impl QueueDef {
    /// The definition of a live queue (typed arguments attached when JSON would lose types).
    pub fn from_queue(q: &Queue) -> Self {
        let arguments = field_table_to_json(&q.options.arguments);
        QueueDef {
            name: q.name.clone(),
            vhost: q.vhost.clone(),
            durable: q.options.durable,
            auto_delete: q.options.auto_delete,
            typed_arguments: typed_if_lossy(&q.options.arguments, &arguments),
            arguments,
        }
    }

    /// The x-arguments as the queue must be declared with them.
    ///
    /// # Errors
    ///
    /// JSON arguments that do not fit an AMQP table (see [`json_to_amqp`]).
    pub fn arguments_table(&self) -> Result<FieldTable, String> {
        effective_args(&self.arguments, self.typed_arguments.as_ref())
    }
}

impl ExchangeDef {
    /// The definition of a live exchange in `vhost`.
    pub fn from_exchange(ex: &Exchange, vhost: &str) -> Self {
        let o = &ex.options;
        let arguments = field_table_to_json(&o.arguments);
        ExchangeDef {
            name: ex.name.clone(),
            vhost: vhost.to_owned(),
            kind: ex.type_name().to_owned(),
            durable: o.durable,
            auto_delete: o.auto_delete,
            internal: o.internal,
            typed_arguments: typed_if_lossy(&o.arguments, &arguments),
            arguments,
        }
    }

    /// The arguments as the exchange must be declared with them.
    ///
    /// # Errors
    ///
    /// JSON arguments that do not fit an AMQP table (see [`json_to_amqp`]).
    pub fn arguments_table(&self) -> Result<FieldTable, String> {
        effective_args(&self.arguments, self.typed_arguments.as_ref())
    }
}

impl BindingDef {
    /// The definition of a live binding from exchange `source` in `vhost`.
    pub fn from_binding(vhost: &str, source: &str, b: &Binding) -> Self {
        let (destination_type, destination) = match &b.destination {
            Destination::Queue(q) => (DestinationType::Queue, q.name.clone()),
            Destination::Exchange(name) => (DestinationType::Exchange, name.clone()),
        };
        let arguments = field_table_to_json(&b.arguments);
        BindingDef {
            source: source.to_owned(),
            vhost: vhost.to_owned(),
            destination,
            destination_type,
            routing_key: b.routing_key.clone(),
            typed_arguments: typed_if_lossy(&b.arguments, &arguments),
            arguments,
        }
    }

    /// The binding arguments as the binding must be created with them.
    ///
    /// # Errors
    ///
    /// JSON arguments that do not fit an AMQP table (see [`json_to_amqp`]).
    pub fn arguments_table(&self) -> Result<FieldTable, String> {
        effective_args(&self.arguments, self.typed_arguments.as_ref())
    }

    /// Identity within the log model: every field, with the arguments compared as the broker
    /// compares them (exact AMQP table).
    fn key(&self) -> BindingKey {
        let args = match self.arguments_table() {
            Ok(t) => serde_json::to_string(&t).unwrap_or_default(),
            // Unconvertible arguments never reach the broker; key them by their JSON.
            Err(_) => canonical_json(&Value::Object(self.arguments.clone())).to_string(),
        };
        (
            self.vhost.clone(),
            self.source.clone(),
            self.destination_type,
            self.destination.clone(),
            self.routing_key.clone(),
            args,
        )
    }
}

/// JSON with object keys sorted at every level, so equal values print equal whatever map order
/// serde_json was built with.
fn canonical_json(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// What is persistent
// ---------------------------------------------------------------------------------------------

/// "" and `amq.*`: predeclared in every vhost, never declared by clients, never exported.
fn is_reserved_exchange(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

/// Whether a queue belongs in the log and in exports: durable and not exclusive.
pub fn is_persistent_queue(q: &Queue) -> bool {
    q.options.durable && !q.options.exclusive
}

/// Whether an exchange belongs in the log and in exports: durable, and neither the default
/// exchange nor a predeclared `amq.*` one.
pub fn is_persistent_exchange(ex: &Exchange) -> bool {
    ex.options.durable && !is_reserved_exchange(&ex.name)
}

/// Whether a binding from `source` in `vhost` belongs in the log and in exports: not from the
/// default exchange, from a durable exchange (user-declared or `amq.*`), to a persistent queue
/// or a durable exchange. Call it without holding a guard on `vhost.exchanges`.
pub fn is_persistent_binding(vhost: &VHost, source: &Exchange, b: &Binding) -> bool {
    if source.name.is_empty() || !source.options.durable {
        return false;
    }
    match &b.destination {
        Destination::Queue(q) => is_persistent_queue(q),
        Destination::Exchange(name) => vhost.exchanges.get(name).is_some_and(|e| e.options.durable),
    }
}

// ---------------------------------------------------------------------------------------------
// Export / apply / restore
// ---------------------------------------------------------------------------------------------

/// The broker's persistent topology and its users, vhosts and permissions, as RabbitMQ would
/// export them: durable exchanges except "" and `amq.*`, durable non-exclusive queues, bindings
/// whose both ends are persistent (none from the default exchange), every user with its SHA-256
/// hash. Internal exchanges are included (RabbitMQ leaves them out, which orphans their
/// bindings). Sorted, so equal states export equal documents.
pub fn export(state: &BrokerState) -> Definitions {
    let mut defs = Definitions {
        product_name: Some("Warren".into()),
        product_version: Some(env!("CARGO_PKG_VERSION").into()),
        ..Definitions::default()
    };
    defs.users = state
        .users
        .iter()
        .map(|u| UserDef {
            name: u.key().clone(),
            password_hash: u.password_hash.clone(),
            hashing_algorithm: Some(SHA256_ALGORITHM.into()),
            tags: u.tags.clone(),
            limits: None,
        })
        .collect();
    defs.permissions = state
        .permissions
        .iter()
        .map(|p| {
            let (user, vhost) = p.key().clone();
            let (configure, write, read) = p.patterns();
            PermissionDef {
                user,
                vhost,
                configure: configure.into(),
                write: write.into(),
                read: read.into(),
            }
        })
        .collect();
    // Clone the Arcs out before touching a vhost's maps: no DashMap guard is held across
    // another map access (see vhost/mod.rs).
    let vhosts: Vec<Arc<VHost>> = state.vhosts.iter().map(|v| v.value().clone()).collect();
    for vh in vhosts {
        defs.vhosts.push(VhostDef {
            name: vh.name.clone(),
            metadata: None,
        });
        defs.policies.extend(
            vh.policies(Kind::Policy)
                .iter()
                .map(|p| PolicyDef::from_policy(p)),
        );
        defs.parameters.extend(
            vh.policies(Kind::Operator)
                .iter()
                .map(|p| PolicyDef::from_policy(p).to_parameter()),
        );
        let exchanges: Vec<Arc<Exchange>> =
            vh.exchanges.iter().map(|e| e.value().clone()).collect();
        let queues: Vec<Arc<Queue>> = vh.queues.iter().map(|q| q.value().clone()).collect();
        for q in queues.iter().filter(|q| is_persistent_queue(q)) {
            defs.queues.push(QueueDef {
                typed_arguments: None,
                ..QueueDef::from_queue(q)
            });
        }
        for ex in &exchanges {
            if is_persistent_exchange(ex) {
                defs.exchanges.push(ExchangeDef {
                    typed_arguments: None,
                    ..ExchangeDef::from_exchange(ex, &vh.name)
                });
            }
            for b in ex.bindings() {
                if is_persistent_binding(&vh, ex, &b) {
                    defs.bindings.push(BindingDef {
                        typed_arguments: None,
                        ..BindingDef::from_binding(&vh.name, &ex.name, &b)
                    });
                }
            }
        }
    }
    defs.sort();
    defs
}

/// Whether `u`'s hash is one Warren can verify; the error says what to do otherwise.
fn check_hashing_algorithm(u: &UserDef) -> Result<(), String> {
    // A password-less user (empty hash) can never log in by password whatever the algorithm.
    if u.password_hash.is_empty() {
        return Ok(());
    }
    match u.hashing_algorithm.as_deref() {
        Some(SHA256_ALGORITHM) => Ok(()),
        Some(other) => Err(format!(
            "user '{}': password hashing algorithm '{other}' is not supported; Warren \
             implements only {SHA256_ALGORITHM} (re-hash or reset the password)",
            u.name
        )),
        None => Err(format!(
            "user '{}': no hashing_algorithm, which RabbitMQ reads as legacy MD5; Warren \
             implements only {SHA256_ALGORITHM} (re-hash or reset the password)",
            u.name
        )),
    }
}

/// Refuses a document that could only be half applied: unsupported password hashes, invalid
/// permission regexes, unknown exchange types, arguments that do not fit AMQP tables.
fn validate(defs: &Definitions) -> Result<(), String> {
    for v in &defs.vhosts {
        if v.name.is_empty() {
            return Err("vhost with an empty name".into());
        }
    }
    for u in &defs.users {
        if u.name.is_empty() {
            return Err("user with an empty name".into());
        }
        check_hashing_algorithm(u)?;
    }
    for p in &defs.permissions {
        Permissions::new(&p.configure, &p.write, &p.read).map_err(|e| {
            format!(
                "permissions of user '{}' in vhost '{}': {e}",
                p.user, p.vhost
            )
        })?;
    }
    for p in &defs.policies {
        p.to_policy(Kind::Policy)
            .map_err(|e| format!("policy '{}' in vhost '{}': {e}", p.name, p.vhost))?;
    }
    for p in defs.operator_policies() {
        let p = p?;
        p.to_policy(Kind::Operator)
            .map_err(|e| format!("operator policy '{}' in vhost '{}': {e}", p.name, p.vhost))?;
    }
    for e in defs
        .exchanges
        .iter()
        .filter(|e| !is_reserved_exchange(&e.name))
    {
        let args = e.arguments_table().unwrap_or_default();
        if ExchangeKind::from_declared(&e.kind, &args).is_err() {
            return Err(format!(
                "exchange '{}' in vhost '{}': exchange type '{}' is not supported",
                e.name, e.vhost, e.kind
            ));
        }
        e.arguments_table()
            .map_err(|err| format!("exchange '{}' in vhost '{}': {err}", e.name, e.vhost))?;
    }
    for q in &defs.queues {
        if q.name.is_empty() {
            return Err(format!("queue with an empty name in vhost '{}'", q.vhost));
        }
        q.arguments_table()
            .map_err(|err| format!("queue '{}' in vhost '{}': {err}", q.name, q.vhost))?;
    }
    for b in &defs.bindings {
        b.arguments_table().map_err(|err| {
            format!(
                "binding from '{}' to '{}' in vhost '{}': {err}",
                b.source, b.destination, b.vhost
            )
        })?;
    }
    Ok(())
}

fn vhost_of(state: &BrokerState, name: &str) -> Result<Arc<VHost>, String> {
    state
        .vhosts
        .get(name)
        .map(|v| v.value().clone())
        .ok_or_else(|| format!("no such vhost '{name}'"))
}

/// Creates what `defs` describes in `state`: vhosts, users (keeping their password hashes),
/// permissions, exchanges (skipping "" and `amq.*`), queues (non-exclusive, owned by no
/// connection) and bindings. Additive, like RabbitMQ's import, and idempotent: applying the same
/// document twice changes nothing the second time.
///
/// The document is validated first (unsupported hashing algorithm, bad regex, unknown exchange
/// type, unconvertible arguments), so those refuse it before anything changes. Bindings whose
/// source or destination does not exist are skipped with a warning: RabbitMQ's own exports
/// contain such bindings (it leaves internal exchanges out). Other failures (a declaration
/// inequivalent to an existing one) do not stop the rest; they are all reported in the error.
///
/// # Errors
///
/// The validation failure, or every failed item joined with "; ".
pub fn apply(state: &BrokerState, defs: &Definitions) -> Result<(), String> {
    validate(defs)?;
    apply_items(state, defs)
}

/// Applies each item on its own: one that fails is reported and the rest still go in.
fn apply_items(state: &BrokerState, defs: &Definitions) -> Result<(), String> {
    let mut errors: Vec<String> = Vec::new();
    for v in defs.vhosts.iter().filter(|v| !v.name.is_empty()) {
        state.add_vhost(&v.name);
    }
    for u in &defs.users {
        if let Err(e) = check_hashing_algorithm(u) {
            errors.push(e);
            continue;
        }
        let tags: Vec<&str> = u.tags.iter().map(String::as_str).collect();
        state.put_user_hash(&u.name, &u.password_hash, &tags);
    }
    for p in &defs.permissions {
        if let Err(e) = state.set_permissions(&p.user, &p.vhost, &p.configure, &p.write, &p.read) {
            errors.push(format!(
                "permissions of user '{}' in vhost '{}': {e}",
                p.user, p.vhost
            ));
        }
    }
    // Before the topology, so queues and exchanges are created with their policy.
    for p in &defs.policies {
        if let Err(err) = apply_policy(state, Kind::Policy, p) {
            errors.push(format!("policy '{}' in vhost '{}': {err}", p.name, p.vhost));
        }
    }
    for p in defs.operator_policies().filter_map(Result::ok) {
        if let Err(err) = apply_policy(state, Kind::Operator, &p) {
            errors.push(format!(
                "operator policy '{}' in vhost '{}': {err}",
                p.name, p.vhost
            ));
        }
    }
    for e in defs
        .exchanges
        .iter()
        .filter(|e| !is_reserved_exchange(&e.name))
    {
        if let Err(err) = apply_exchange(state, e) {
            errors.push(format!(
                "exchange '{}' in vhost '{}': {err}",
                e.name, e.vhost
            ));
        }
    }
    for q in &defs.queues {
        if let Err(err) = apply_queue(state, q) {
            errors.push(format!("queue '{}' in vhost '{}': {err}", q.name, q.vhost));
        }
    }
    for b in &defs.bindings {
        if let Err(err) = apply_binding(state, b) {
            errors.push(format!(
                "binding from '{}' to {:?} '{}' in vhost '{}': {err}",
                b.source, b.destination_type, b.destination, b.vhost
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn apply_policy(state: &BrokerState, kind: Kind, p: &PolicyDef) -> Result<(), String> {
    let vh = vhost_of(state, &p.vhost)?;
    let policy = p.to_policy(kind)?;
    // Re-applying an unchanged policy would only append a redundant line to the log.
    if vh
        .policy(kind, &p.name)
        .is_some_and(|cur| PolicyDef::from_policy(&cur) == *p)
    {
        return Ok(());
    }
    vh.set_policy(policy);
    Ok(())
}

fn apply_exchange(state: &BrokerState, e: &ExchangeDef) -> Result<(), String> {
    let vh = vhost_of(state, &e.vhost)?;
    let kind = ExchangeKind::from_declared(&e.kind, &e.arguments_table()?)
        .map_err(|err| format!("exchange type '{}' is not supported: {err}", e.kind))?;
    let opts = ExchangeOptions {
        kind,
        durable: e.durable,
        auto_delete: e.auto_delete,
        internal: e.internal,
        arguments: e.arguments_table()?,
    };
    vh.declare_exchange(&e.name, opts).map_err(|err| err.text)
}

fn apply_queue(state: &BrokerState, q: &QueueDef) -> Result<(), String> {
    if q.name.is_empty() {
        return Err("empty queue name".into());
    }
    let vh = vhost_of(state, &q.vhost)?;
    let opts = QueueOptions {
        durable: q.durable,
        exclusive: false,
        auto_delete: q.auto_delete,
        arguments: q.arguments_table()?,
    };
    // Connection 0 is no connection: the queue is not exclusive, so it is never checked.
    vh.declare_queue(&q.name, opts, 0)
        .map(|_| ())
        .map_err(|err| err.text)
}

fn apply_binding(state: &BrokerState, b: &BindingDef) -> Result<(), String> {
    // Bindings from the default exchange are implicit; RabbitMQ never exports them.
    if b.source.is_empty() {
        return Ok(());
    }
    let vh = vhost_of(state, &b.vhost)?;
    let args = b.arguments_table()?;
    let source_exists = vh.exchanges.contains_key(&b.source);
    let destination_exists = match b.destination_type {
        DestinationType::Queue => vh.queues.contains_key(&b.destination),
        DestinationType::Exchange => vh.exchanges.contains_key(&b.destination),
    };
    if !source_exists || !destination_exists {
        tracing::warn!(
            vhost = %b.vhost,
            source = %b.source,
            destination = %b.destination,
            destination_type = ?b.destination_type,
            "skipping a definitions binding whose source or destination does not exist"
        );
        return Ok(());
    }
    match b.destination_type {
        DestinationType::Queue => {
            let q = vh.queue(&b.destination, 0).map_err(|err| err.text)?;
            vh.bind_queue(&q, &b.source, &b.routing_key, args)
        }
        DestinationType::Exchange => {
            vh.bind_exchange(&b.destination, &b.source, &b.routing_key, args, true)
        }
    }
    .map_err(|err| err.text)
}

/// Makes a freshly constructed `state` exactly what the log says: drops the users, vhosts and
/// permissions [`BrokerState::new`] created that `model` does not have (the default user may
/// have been deleted or its permissions changed since first start), then [`apply`]s `model`.
///
/// Only for a model from [`DefinitionsLog::open_seeded`] seeded with [`export`] of the fresh
/// state, which makes the model authoritative for users and vhosts; call it once at boot,
/// before any connection is accepted.
///
/// Unlike [`apply`] it does not refuse the whole model for one bad item: the log only holds
/// what was valid when it was written, and a boot should bring back everything it can. The
/// caller should log the error and carry on.
///
/// # Errors
///
/// Every item that could not be applied, joined with "; ".
pub fn restore(state: &BrokerState, model: &Definitions) -> Result<(), String> {
    let users: HashSet<&str> = model.users.iter().map(|u| u.name.as_str()).collect();
    let vhosts: HashSet<&str> = model.vhosts.iter().map(|v| v.name.as_str()).collect();
    let permissions: HashSet<(&str, &str)> = model
        .permissions
        .iter()
        .map(|p| (p.user.as_str(), p.vhost.as_str()))
        .collect();
    state.users.retain(|name, _| users.contains(name.as_str()));
    state
        .vhosts
        .retain(|name, _| vhosts.contains(name.as_str()));
    state
        .permissions
        .retain(|(u, v), _| permissions.contains(&(u.as_str(), v.as_str())));
    apply_items(state, model)
}

impl Definitions {
    /// Sorts every section by identity, so equal contents compare and print equal.
    pub fn sort(&mut self) {
        self.users.sort_by(|a, b| a.name.cmp(&b.name));
        self.vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        self.permissions
            .sort_by(|a, b| (&a.user, &a.vhost).cmp(&(&b.user, &b.vhost)));
        self.policies
            .sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        let key = |p: &Value| {
            let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            (text("component"), text("vhost"), text("name"))
        };
        self.parameters.sort_by_key(key);
        self.queues
            .sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        self.exchanges
            .sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        self.bindings.sort_by_key(BindingDef::key);
    }

    /// The operator policies among the runtime parameters, each parsed or refused.
    pub fn operator_policies(&self) -> impl Iterator<Item = Result<PolicyDef, String>> + '_ {
        self.parameters.iter().filter_map(PolicyDef::from_parameter)
    }

    /// The log ops that recreate this document's users, vhosts, permissions, policies of both
    /// kinds and topology, in dependency order (vhosts, users, permissions, policies, operator
    /// policies, exchanges, queues, bindings). This is the
    /// compacted log; after an import, append `export(&state).ops()` to make it durable.
    pub fn ops(&self) -> Vec<DefOp> {
        let mut ops = Vec::with_capacity(
            self.vhosts.len()
                + self.users.len()
                + self.permissions.len()
                + self.policies.len()
                + self.parameters.len()
                + self.exchanges.len()
                + self.queues.len()
                + self.bindings.len(),
        );
        ops.extend(self.vhosts.iter().cloned().map(DefOp::PutVhost));
        ops.extend(self.users.iter().cloned().map(DefOp::PutUser));
        ops.extend(self.permissions.iter().cloned().map(DefOp::SetPermissions));
        ops.extend(self.policies.iter().cloned().map(DefOp::SetPolicy));
        ops.extend(
            self.operator_policies()
                .filter_map(Result::ok)
                .map(DefOp::SetOperatorPolicy),
        );
        ops.extend(self.exchanges.iter().cloned().map(DefOp::DeclareExchange));
        ops.extend(self.queues.iter().cloned().map(DefOp::DeclareQueue));
        ops.extend(self.bindings.iter().cloned().map(DefOp::Bind));
        ops
    }
}

// ---------------------------------------------------------------------------------------------
// The log
// ---------------------------------------------------------------------------------------------

/// One change to durable definitions: a line of `definitions.log`, tagged by `"op"`.
/// Put/Declare create or replace; Delete/Clear/Unbind of something absent are no-ops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum DefOp {
    PutVhost(VhostDef),
    /// Also drops everything in the vhost and every permission on it.
    DeleteVhost {
        name: String,
    },
    PutUser(UserDef),
    /// Also drops the user's permissions.
    DeleteUser {
        name: String,
    },
    SetPermissions(PermissionDef),
    ClearPermissions {
        user: String,
        vhost: String,
    },
    DeclareExchange(ExchangeDef),
    /// Also drops the bindings from and to the exchange.
    DeleteExchange {
        vhost: String,
        name: String,
    },
    DeclareQueue(QueueDef),
    /// Also drops the bindings to the queue.
    DeleteQueue {
        vhost: String,
        name: String,
    },
    Bind(BindingDef),
    Unbind(BindingDef),
    SetPolicy(PolicyDef),
    ClearPolicy {
        vhost: String,
        name: String,
    },
    SetOperatorPolicy(PolicyDef),
    ClearOperatorPolicy {
        vhost: String,
        name: String,
    },
}

impl DefOp {
    /// `DeclareQueue` for a live queue (log it only if [`is_persistent_queue`]).
    pub fn queue(q: &Queue) -> Self {
        DefOp::DeclareQueue(QueueDef::from_queue(q))
    }

    /// `DeclareExchange` for a live exchange (log it only if [`is_persistent_exchange`]).
    pub fn exchange(ex: &Exchange, vhost: &str) -> Self {
        DefOp::DeclareExchange(ExchangeDef::from_exchange(ex, vhost))
    }

    /// `Bind` for a live binding from `source` (log it only if [`is_persistent_binding`]).
    pub fn binding(vhost: &str, source: &str, b: &Binding) -> Self {
        DefOp::Bind(BindingDef::from_binding(vhost, source, b))
    }

    /// `Unbind` for a binding being removed from `source`.
    pub fn unbinding(vhost: &str, source: &str, b: &Binding) -> Self {
        DefOp::Unbind(BindingDef::from_binding(vhost, source, b))
    }

    /// `PutUser` for a broker user (after `add_user` / `put_user_hash`).
    pub fn user(name: &str, u: &User) -> Self {
        DefOp::PutUser(UserDef {
            name: name.to_owned(),
            password_hash: u.password_hash.clone(),
            hashing_algorithm: Some(SHA256_ALGORITHM.into()),
            tags: u.tags.clone(),
            limits: None,
        })
    }

    /// `SetPolicy` or `SetOperatorPolicy` for a live policy.
    pub fn set_policy(p: &Policy) -> Self {
        match p.kind {
            Kind::Policy => DefOp::SetPolicy(PolicyDef::from_policy(p)),
            Kind::Operator => DefOp::SetOperatorPolicy(PolicyDef::from_policy(p)),
        }
    }

    /// `ClearPolicy` or `ClearOperatorPolicy`.
    pub fn clear_policy(kind: Kind, vhost: &str, name: &str) -> Self {
        let (vhost, name) = (vhost.to_owned(), name.to_owned());
        match kind {
            Kind::Policy => DefOp::ClearPolicy { vhost, name },
            Kind::Operator => DefOp::ClearOperatorPolicy { vhost, name },
        }
    }

    /// `PutVhost` for a vhost without metadata (after `add_vhost`).
    pub fn vhost(name: &str) -> Self {
        DefOp::PutVhost(VhostDef {
            name: name.to_owned(),
            metadata: None,
        })
    }

    /// `SetPermissions` from compiled permissions (after `set_permissions`).
    pub fn permissions(user: &str, vhost: &str, p: &Permissions) -> Self {
        let (configure, write, read) = p.patterns();
        DefOp::SetPermissions(PermissionDef {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        })
    }
}

/// (vhost, source, destination type, destination, routing key, exact arguments).
type BindingKey = (String, String, DestinationType, String, String, String);
/// (vhost, name) of a queue or exchange; (user, vhost) of permissions.
type Key2 = (String, String);

/// The replay model: [`Definitions`] indexed by identity, so each op costs a map operation
/// instead of a scan of everything logged.
#[derive(Default)]
struct Model {
    vhosts: BTreeMap<String, VhostDef>,
    users: BTreeMap<String, UserDef>,
    permissions: BTreeMap<Key2, PermissionDef>,
    /// Keyed by (vhost, name).
    policies: BTreeMap<Key2, PolicyDef>,
    /// Keyed by (vhost, name).
    operator_policies: BTreeMap<Key2, PolicyDef>,
    exchanges: BTreeMap<Key2, ExchangeDef>,
    queues: BTreeMap<Key2, QueueDef>,
    bindings: BTreeMap<BindingKey, BindingDef>,
}

impl Model {
    fn from_definitions(defs: &Definitions) -> Self {
        let mut m = Model::default();
        for op in defs.ops() {
            m.apply(op);
        }
        m
    }

    fn apply(&mut self, op: DefOp) {
        match op {
            DefOp::PutVhost(v) => {
                self.vhosts.insert(v.name.clone(), v);
            }
            DefOp::DeleteVhost { name } => {
                self.vhosts.remove(&name);
                self.permissions.retain(|(_, vh), _| vh != &name);
                self.policies.retain(|(vh, _), _| vh != &name);
                self.operator_policies.retain(|(vh, _), _| vh != &name);
                self.exchanges.retain(|(vh, _), _| vh != &name);
                self.queues.retain(|(vh, _), _| vh != &name);
                self.bindings.retain(|k, _| k.0 != name);
            }
            DefOp::PutUser(u) => {
                self.users.insert(u.name.clone(), u);
            }
            DefOp::DeleteUser { name } => {
                self.users.remove(&name);
                self.permissions.retain(|(u, _), _| u != &name);
            }
            DefOp::SetPermissions(p) => {
                self.permissions
                    .insert((p.user.clone(), p.vhost.clone()), p);
            }
            DefOp::ClearPermissions { user, vhost } => {
                self.permissions.remove(&(user, vhost));
            }
            DefOp::DeclareExchange(e) => {
                if !is_reserved_exchange(&e.name) {
                    self.exchanges.insert((e.vhost.clone(), e.name.clone()), e);
                }
            }
            DefOp::DeleteExchange { vhost, name } => {
                self.exchanges.remove(&(vhost.clone(), name.clone()));
                self.bindings.retain(|k, _| {
                    !(k.0 == vhost
                        && (k.1 == name || (k.2 == DestinationType::Exchange && k.3 == name)))
                });
            }
            DefOp::DeclareQueue(q) => {
                self.queues.insert((q.vhost.clone(), q.name.clone()), q);
            }
            DefOp::DeleteQueue { vhost, name } => {
                self.queues.remove(&(vhost.clone(), name.clone()));
                self.bindings
                    .retain(|k, _| !(k.0 == vhost && k.2 == DestinationType::Queue && k.3 == name));
            }
            DefOp::Bind(b) => {
                if !b.source.is_empty() {
                    self.bindings.insert(b.key(), b);
                }
            }
            DefOp::Unbind(b) => {
                self.bindings.remove(&b.key());
            }
            DefOp::SetPolicy(p) => {
                self.policies.insert((p.vhost.clone(), p.name.clone()), p);
            }
            DefOp::ClearPolicy { vhost, name } => {
                self.policies.remove(&(vhost, name));
            }
            DefOp::SetOperatorPolicy(p) => {
                self.operator_policies
                    .insert((p.vhost.clone(), p.name.clone()), p);
            }
            DefOp::ClearOperatorPolicy { vhost, name } => {
                self.operator_policies.remove(&(vhost, name));
            }
        }
    }

    fn has_exchange(&self, vhost: &str, name: &str) -> bool {
        // Predeclared exchanges exist in every vhost without being logged.
        is_reserved_exchange(name)
            || self
                .exchanges
                .contains_key(&(vhost.to_owned(), name.to_owned()))
    }

    /// The model as a sorted document. Bindings whose source or destination is gone are
    /// dropped: a channel can log a `Bind` just after another logged the `DeleteQueue` that
    /// removed its queue, and such a binding must not outlive compaction.
    fn into_definitions(self) -> Definitions {
        let dangling: Vec<BindingKey> = self
            .bindings
            .iter()
            .filter(|(_, b)| {
                let destination_exists = match b.destination_type {
                    DestinationType::Queue => self
                        .queues
                        .contains_key(&(b.vhost.clone(), b.destination.clone())),
                    DestinationType::Exchange => self.has_exchange(&b.vhost, &b.destination),
                };
                !destination_exists || !self.has_exchange(&b.vhost, &b.source)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut bindings = self.bindings;
        for k in dangling {
            if let Some(b) = bindings.remove(&k) {
                tracing::warn!(
                    vhost = %b.vhost,
                    source = %b.source,
                    destination = %b.destination,
                    "dropping a logged binding whose source or destination no longer exists"
                );
            }
        }
        Definitions {
            users: self.users.into_values().collect(),
            vhosts: self.vhosts.into_values().collect(),
            permissions: self.permissions.into_values().collect(),
            policies: self.policies.into_values().collect(),
            parameters: self
                .operator_policies
                .values()
                .map(PolicyDef::to_parameter)
                .collect(),
            exchanges: self.exchanges.into_values().collect(),
            queues: self.queues.into_values().collect(),
            bindings: bindings.into_values().collect(),
            ..Definitions::default()
        }
    }
}

/// Replays log bytes into a model. Never fails: see the module invariants.
fn replay(bytes: &[u8], path: &Path) -> Model {
    let mut model = Model::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // After the last '\n' comes the unterminated remainder (empty for a clean log).
    let tail = lines.pop().unwrap_or_default();
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<DefOp>(line) {
            Ok(op) => model.apply(op),
            Err(e) => tracing::error!(
                path = %path.display(),
                line = i + 1,
                error = %e,
                "skipping a corrupt line of the definitions log"
            ),
        }
    }
    if !tail.is_empty() {
        let line = lines.len() + 1;
        // A complete op whose '\n' was not written is kept: it is what was appended, and
        // nothing confirmed can depend on it either way (confirms wait for the fsync).
        match serde_json::from_slice::<DefOp>(tail) {
            Ok(op) => {
                tracing::warn!(
                    path = %path.display(),
                    line,
                    "definitions log ends without a newline; last op kept"
                );
                model.apply(op);
            }
            Err(_) => tracing::warn!(
                path = %path.display(),
                line,
                bytes = tail.len(),
                "dropping the torn last line of the definitions log (crash during an append)"
            ),
        }
    }
    model
}

/// Creates (or truncates) a file readable by the owner only: the log holds password hashes.
fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Atomically replaces the log with `defs` as a snapshot of ops.
fn compact(dir: &Path, defs: &Definitions) -> io::Result<()> {
    let mut buf = Vec::new();
    for op in defs.ops() {
        serde_json::to_writer(&mut buf, &op)?;
        buf.push(b'\n');
    }
    let tmp = dir.join(TMP_FILE);
    let mut f = create_private(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(LOG_FILE))?;
    sync_dir(dir)
}

/// The append-only log of durable definitions, `<data_dir>/definitions.log`.
pub struct DefinitionsLog {
    path: PathBuf,
    /// Opened with O_APPEND; shared with the sync thread, which fsyncs it.
    file: Arc<File>,
    /// Keeps two appends from interleaving if a write is ever split.
    append_lock: Mutex<()>,
    /// Set by a failed write: the file may end in a partial line, so nothing may follow it.
    failed: AtomicBool,
}

impl DefinitionsLog {
    /// Opens (creating if absent) the log in `data_dir`, replays it and compacts it; returns
    /// the log and the replayed model for [`apply`]/[`restore`]. See [`Self::open_seeded`].
    ///
    /// # Errors
    ///
    /// I/O errors reading, compacting or reopening the log. Corrupt content is not an error.
    pub fn open(data_dir: &Path) -> io::Result<(DefinitionsLog, Definitions)> {
        Self::open_seeded(data_dir, &Definitions::default())
    }

    /// As [`Self::open`], but when no log exists yet (first start) the model starts as `seed`,
    /// written atomically as the first snapshot. Seeding with [`export`] of a fresh
    /// [`BrokerState`] records the default user and vhost, so deleting them later is durable.
    ///
    /// # Errors
    ///
    /// I/O errors reading, compacting or reopening the log. Corrupt content is not an error.
    pub fn open_seeded(
        data_dir: &Path,
        seed: &Definitions,
    ) -> io::Result<(DefinitionsLog, Definitions)> {
        fs::create_dir_all(data_dir)?;
        let path = data_dir.join(LOG_FILE);
        let model = match fs::read(&path) {
            Ok(bytes) => replay(&bytes, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::info!(
                    path = %path.display(),
                    "no definitions log yet; starting from the seed"
                );
                Model::from_definitions(seed)
            }
            Err(e) => return Err(e),
        };
        let defs = model.into_definitions();
        compact(data_dir, &defs)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        tracing::info!(
            path = %path.display(),
            users = defs.users.len(),
            vhosts = defs.vhosts.len(),
            exchanges = defs.exchanges.len(),
            queues = defs.queues.len(),
            bindings = defs.bindings.len(),
            policies = defs.policies.len(),
            "definitions log replayed and compacted"
        );
        let log = DefinitionsLog {
            path,
            file: Arc::new(file),
            append_lock: Mutex::new(()),
            failed: AtomicBool::new(false),
        };
        Ok((log, defs))
    }

    /// Appends one op as a JSON line with a single write. Not durable until [`Self::file`] is
    /// fsynced (the group-commit thread's job). After a failed write every later append fails
    /// too; a restart (replay drops the torn line) recovers.
    ///
    /// # Errors
    ///
    /// The write error, or an error saying an earlier append failed.
    pub fn append(&self, op: &DefOp) -> io::Result<()> {
        let mut line = serde_json::to_vec(op)?;
        line.push(b'\n');
        let _guard = self.append_lock.lock();
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other(format!(
                "definitions log {} failed earlier; restart to recover",
                self.path.display()
            )));
        }
        // O_APPEND: each write lands at the current end, so `&File` suffices.
        if let Err(e) = (&*self.file).write_all(&line) {
            self.failed.store(true, Ordering::Release);
            tracing::error!(
                path = %self.path.display(),
                error = %e,
                "definitions log append failed"
            );
            return Err(e);
        }
        Ok(())
    }

    /// The log file, for the sync thread to `sync_data()` before confirming dependent work.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::StoreEnv;
    use amq_protocol::types::{ByteArray, DecimalValue};
    use serde_json::json;

    /// Field name of the typed x-arguments (the serde renames spell it out).
    const TYPED_ARGS_FIELD: &str = "x-warren-typed-arguments";

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/definitions/rabbitmq-3.10.8-export.json"
    );

    /// A fresh broker state whose message store lives in a temporary directory (kept alive by
    /// the returned guard).
    fn state() -> (tempfile::TempDir, BrokerState) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            data_dir: dir.path().to_owned(),
            fsync: false,
            ..Config::default()
        };
        let store = Arc::new(StoreEnv::new(config.data_dir.clone(), false).expect("store"));
        (dir, BrokerState::new(config, store))
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn ls(s: &str) -> AMQPValue {
        AMQPValue::LongString(s.into())
    }

    fn qdef(vhost: &str, name: &str) -> QueueDef {
        QueueDef {
            name: name.into(),
            vhost: vhost.into(),
            ..QueueDef::default()
        }
    }

    fn xdef(vhost: &str, name: &str, kind: &str) -> ExchangeDef {
        ExchangeDef {
            name: name.into(),
            vhost: vhost.into(),
            kind: kind.into(),
            ..ExchangeDef::default()
        }
    }

    fn bdef(vhost: &str, source: &str, dt: DestinationType, dest: &str, rk: &str) -> BindingDef {
        BindingDef {
            source: source.into(),
            vhost: vhost.into(),
            destination: dest.into(),
            destination_type: dt,
            routing_key: rk.into(),
            ..BindingDef::default()
        }
    }

    fn user(name: &str, password: &str) -> UserDef {
        UserDef {
            name: name.into(),
            password_hash: crate::auth::hash_password(password),
            hashing_algorithm: Some(SHA256_ALGORITHM.into()),
            tags: vec!["management".into()],
            limits: None,
        }
    }

    fn perm(user: &str, vhost: &str) -> PermissionDef {
        PermissionDef {
            user: user.into(),
            vhost: vhost.into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: "^q".into(),
        }
    }

    fn write_log(dir: &Path, ops: &[DefOp]) -> Definitions {
        let (log, model) = DefinitionsLog::open(dir).expect("open");
        for op in ops {
            log.append(op).expect("append");
        }
        log.file().sync_data().expect("sync");
        model
    }

    fn log_text(dir: &Path) -> String {
        fs::read_to_string(dir.join(LOG_FILE)).expect("read log")
    }

    #[test]
    fn definitions_json_round_trip() {
        let defs = Definitions {
            rabbit_version: Some("3.10.8".into()),
            product_name: Some("Warren".into()),
            users: vec![UserDef {
                limits: Some(json!({"max-connections": 10})),
                ..user("alice", "pw")
            }],
            vhosts: vec![VhostDef {
                name: "v".into(),
                metadata: Some(json!({"description": "d", "tags": ["a"]})),
            }],
            permissions: vec![perm("alice", "v")],
            topic_permissions: vec![
                json!({"user": "alice", "vhost": "v", "exchange": "amq.topic"}),
            ],
            parameters: vec![json!({"component": "vhost-limits", "name": "limits"})],
            global_parameters: vec![json!({"name": "cluster_name", "value": "c"})],
            policies: vec![PolicyDef {
                vhost: "v".into(),
                name: "p".into(),
                pattern: ".*".into(),
                definition: obj(json!({"max-length": 1})),
                ..PolicyDef::default()
            }],
            queues: vec![QueueDef {
                arguments: obj(json!({"x-message-ttl": 1000, "x-dead-letter-exchange": "dlx"})),
                ..qdef("v", "q")
            }],
            exchanges: vec![ExchangeDef {
                internal: true,
                arguments: obj(json!({"alternate-exchange": "ae"})),
                ..xdef("v", "x", "topic")
            }],
            bindings: vec![BindingDef {
                arguments: obj(json!({"x-match": "any", "n": 1.5, "l": [1, "a", true, null]})),
                ..bdef("v", "x", DestinationType::Exchange, "y", "a.#")
            }],
            ..Definitions::default()
        };
        let text = serde_json::to_string_pretty(&defs).expect("serialize");
        assert!(!text.contains(TYPED_ARGS_FIELD));
        assert!(text.contains("\"type\": \"topic\""));
        assert!(text.contains("\"destination_type\": \"exchange\""));
        let back: Definitions = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, defs);
    }

    #[test]
    fn lenient_parsing_defaults_and_tags() {
        let text = r#"{
            "rabbit_version": "3.6.6", "unknown_top": {"x": 1},
            "users": [
                {"name": "a", "password_hash": "h",
                 "hashing_algorithm": "rabbit_password_hashing_sha256",
                 "tags": "administrator, management"},
                {"name": "b", "password_hash": "h", "tags": ""},
                {"name": "c", "password_hash": "h", "tags": ["monitoring"], "extra": 1},
                {"name": "d", "password_hash": "h", "tags": null},
                {"name": "e"}
            ],
            "queues": [{"name": "q"}],
            "exchanges": [{"name": "x", "vhost": "v", "type": "fanout"}],
            "bindings": [{"source": "x", "destination": "q", "destination_type": "queue"}]
        }"#;
        let d: Definitions = serde_json::from_str(text).expect("parse");
        let tags: Vec<&Vec<String>> = d.users.iter().map(|u| &u.tags).collect();
        assert_eq!(
            tags[0],
            &vec!["administrator".to_owned(), "management".to_owned()]
        );
        assert!(tags[1].is_empty() && tags[3].is_empty() && tags[4].is_empty());
        assert_eq!(tags[2], &vec!["monitoring".to_owned()]);
        assert_eq!(d.users[1].hashing_algorithm, None);
        assert_eq!(d.queues[0], qdef("/", "q"));
        assert!(d.queues[0].durable);
        assert!(d.exchanges[0].durable && !d.exchanges[0].internal);
        assert_eq!(d.bindings[0].vhost, "/");
        assert!(d.policies.is_empty() && d.vhosts.is_empty());
        // Tags are always written back as a list.
        let out = serde_json::to_value(&d.users[0]).expect("serialize");
        assert_eq!(out["tags"], json!(["administrator", "management"]));
        // An empty document is valid.
        let empty: Definitions = serde_json::from_str("{}").expect("parse");
        assert_eq!(empty, Definitions::default());
    }

    #[test]
    fn json_amqp_conversions() {
        let j = obj(json!({
            "s": "str", "i": -5, "big": 9_000_000_000_i64, "f": 2.5, "b": true, "n": null,
            "a": [1, "x", [false]], "t": {"inner": {"k": "v"}}
        }));
        let t = json_to_field_table(&j).expect("convert");
        let inner = table(&[("inner", AMQPValue::FieldTable(table(&[("k", ls("v"))])))]);
        let expected = table(&[
            ("s", ls("str")),
            ("i", AMQPValue::LongLongInt(-5)),
            ("big", AMQPValue::LongLongInt(9_000_000_000)),
            ("f", AMQPValue::Double(2.5)),
            ("b", AMQPValue::Boolean(true)),
            ("n", AMQPValue::Void),
            (
                "a",
                AMQPValue::FieldArray(FieldArray::from(vec![
                    AMQPValue::LongLongInt(1),
                    ls("x"),
                    AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(false)])),
                ])),
            ),
            ("t", AMQPValue::FieldTable(inner)),
        ]);
        assert_eq!(t, expected);
        assert_eq!(field_table_to_json(&t), j);

        assert!(json_to_amqp(&json!(u64::MAX)).is_err());
        let long_key = "k".repeat(256);
        assert!(json_to_field_table(&obj(json!({ long_key: 1 }))).is_err());

        for (v, j) in [
            (AMQPValue::ShortShortInt(-1), json!(-1)),
            (AMQPValue::ShortShortUInt(255), json!(255)),
            (AMQPValue::ShortInt(-300), json!(-300)),
            (AMQPValue::ShortUInt(60000), json!(60000)),
            (AMQPValue::LongInt(-70000), json!(-70000)),
            (AMQPValue::LongUInt(4_000_000_000), json!(4_000_000_000_u32)),
            (AMQPValue::Timestamp(1_700_000_000), json!(1_700_000_000)),
            (AMQPValue::Float(0.5), json!(0.5)),
            (AMQPValue::Double(f64::NAN), Value::Null),
            (
                AMQPValue::DecimalValue(DecimalValue {
                    scale: 2,
                    value: 1234,
                }),
                json!(12.34),
            ),
            (AMQPValue::ShortString("ss".into()), json!("ss")),
            (
                AMQPValue::ByteArray(ByteArray::from(&b"ab"[..])),
                json!("ab"),
            ),
            (AMQPValue::Void, Value::Null),
        ] {
            assert_eq!(amqp_to_json(&v), j, "{v:?}");
        }
    }

    /// A durable queue "q" in "/" of `st`, declared with `args`.
    fn live_queue(st: &BrokerState, args: FieldTable) -> Arc<Queue> {
        let root = st.vhosts.get("/").map(|v| v.value().clone()).expect("/");
        let opts = QueueOptions {
            durable: true,
            exclusive: false,
            auto_delete: false,
            arguments: args,
        };
        // Delete any earlier "q" so each call declares afresh with its own arguments.
        root.delete_queue("q", false, false, 1).expect("delete");
        root.declare_queue("q", opts, 1).expect("declare")
    }

    #[test]
    fn typed_arguments_only_when_json_is_lossy() {
        let (_dir, st) = state();
        let plain = table(&[
            ("x-dead-letter-exchange", ls("dlx")),
            ("x-max-length", AMQPValue::LongLongInt(5)),
        ]);
        let def = QueueDef::from_queue(&live_queue(&st, plain.clone()));
        assert_eq!(def.typed_arguments, None);
        assert_eq!(def.arguments_table().expect("table"), plain);

        // pika and the Java client send 32-bit ints: the type must survive a restart.
        let typed = table(&[("x-message-ttl", AMQPValue::LongInt(60000))]);
        let op = DefOp::queue(&live_queue(&st, typed.clone()));
        let line = serde_json::to_string(&op).expect("serialize");
        assert!(line.contains(TYPED_ARGS_FIELD), "{line}");
        let back: DefOp = serde_json::from_str(&line).expect("parse");
        let DefOp::DeclareQueue(q) = back else {
            panic!("wrong op {back:?}")
        };
        assert_eq!(q.arguments["x-message-ttl"], json!(60000));
        assert_eq!(q.arguments_table().expect("table"), typed);

        // Every AMQP type survives the log.
        let all = table(&[
            ("a", AMQPValue::ShortShortInt(-1)),
            ("b", AMQPValue::ShortUInt(7)),
            ("c", AMQPValue::Float(1.5)),
            (
                "d",
                AMQPValue::DecimalValue(DecimalValue { scale: 1, value: 5 }),
            ),
            ("e", AMQPValue::ShortString("s".into())),
            ("f", AMQPValue::ByteArray(ByteArray::from(&[0u8, 255][..]))),
            ("g", AMQPValue::Timestamp(9)),
            ("h", AMQPValue::LongString(b"\xff\x00".to_vec().into())),
            (
                "i",
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongUInt(3)])),
            ),
        ]);
        let op = DefOp::queue(&live_queue(&st, all.clone()));
        let back: DefOp =
            serde_json::from_str(&serde_json::to_string(&op).expect("ser")).expect("parse");
        assert_eq!(back, op);
        let DefOp::DeclareQueue(q) = back else {
            panic!("wrong op")
        };
        assert_eq!(q.arguments_table().expect("table"), all);

        // A NaN cannot be written typed; it falls back to JSON instead of an unreadable line.
        let nan = table(&[("x", AMQPValue::Double(f64::NAN))]);
        assert_eq!(
            QueueDef::from_queue(&live_queue(&st, nan)).typed_arguments,
            None
        );
    }

    #[test]
    fn def_op_lines_round_trip() {
        let ops = vec![
            DefOp::vhost("v"),
            DefOp::DeleteVhost { name: "v".into() },
            DefOp::PutUser(user("u", "p")),
            DefOp::DeleteUser { name: "u".into() },
            DefOp::SetPermissions(perm("u", "v")),
            DefOp::ClearPermissions {
                user: "u".into(),
                vhost: "v".into(),
            },
            DefOp::DeclareExchange(xdef("v", "x", "headers")),
            DefOp::DeleteExchange {
                vhost: "v".into(),
                name: "x".into(),
            },
            DefOp::DeclareQueue(qdef("v", "q")),
            DefOp::DeleteQueue {
                vhost: "v".into(),
                name: "q".into(),
            },
            DefOp::Bind(bdef("v", "x", DestinationType::Queue, "q", "k")),
            DefOp::Unbind(bdef("v", "x", DestinationType::Queue, "q", "k")),
        ];
        for op in ops {
            let line = serde_json::to_string(&op).expect("serialize");
            assert!(line.starts_with("{\"op\":"), "{line}");
            assert!(!line.contains('\n'));
            let back: DefOp = serde_json::from_str(&line).expect("parse");
            assert_eq!(back, op, "{line}");
        }
    }

    /// A queue policy on "^q" with a max-length.
    fn max_length_policy(vhost: &str, name: &str, max: u64, priority: i64) -> PolicyDef {
        PolicyDef {
            vhost: vhost.into(),
            name: name.into(),
            pattern: "^q".into(),
            apply_to: "queues".into(),
            definition: obj(json!({ "max-length": max })),
            priority,
        }
    }

    #[test]
    fn policy_ops_replay_and_go_with_their_vhost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pol = |vhost: &str, name: &str, max: u64| max_length_policy(vhost, name, max, 3);
        write_log(
            dir.path(),
            &[
                DefOp::vhost("a"),
                DefOp::vhost("b"),
                DefOp::SetPolicy(pol("a", "p1", 1)),
                DefOp::SetPolicy(pol("a", "p2", 2)),
                DefOp::SetPolicy(pol("b", "p1", 3)),
                // Replaced, then cleared, then the other vhost deleted.
                DefOp::SetPolicy(pol("a", "p1", 10)),
                DefOp::ClearPolicy {
                    vhost: "a".into(),
                    name: "p2".into(),
                },
                DefOp::DeleteVhost { name: "b".into() },
            ],
        );
        let (_, model) = DefinitionsLog::open(dir.path()).expect("reopen");
        assert_eq!(model.policies, vec![pol("a", "p1", 10)]);
        // Compaction kept it, in RabbitMQ's layout.
        let text = log_text(dir.path());
        assert!(text.contains(r#""apply-to":"queues""#), "{text}");
        let (_, again) = DefinitionsLog::open(dir.path()).expect("reopen again");
        assert_eq!(again.policies, model.policies);
    }

    #[test]
    fn operator_policy_ops_replay_apart_from_policies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pol = |vhost: &str, name: &str, max: u64| max_length_policy(vhost, name, max, 1);
        write_log(
            dir.path(),
            &[
                DefOp::vhost("a"),
                DefOp::vhost("b"),
                DefOp::SetPolicy(pol("a", "same-name", 1)),
                DefOp::SetOperatorPolicy(pol("a", "same-name", 2)),
                DefOp::SetOperatorPolicy(pol("a", "other", 3)),
                DefOp::SetOperatorPolicy(pol("b", "gone", 4)),
                // Clearing one kind leaves the other kind's namesake alone.
                DefOp::clear_policy(Kind::Operator, "a", "other"),
                DefOp::clear_policy(Kind::Policy, "a", "never-set"),
                DefOp::DeleteVhost { name: "b".into() },
            ],
        );
        let (_, model) = DefinitionsLog::open(dir.path()).expect("reopen");
        assert_eq!(model.policies, vec![pol("a", "same-name", 1)]);
        let ops: Vec<PolicyDef> = model
            .operator_policies()
            .collect::<Result<_, _>>()
            .expect("well formed");
        assert_eq!(ops, vec![pol("a", "same-name", 2)]);
        // The parameter is RabbitMQ's shape, and compaction keeps it.
        assert_eq!(
            model.parameters,
            vec![
                json!({"value": {"pattern": "^q", "definition": {"max-length": 2},
                                  "priority": 1, "apply-to": "queues"},
                        "vhost": "a", "component": "operator_policy", "name": "same-name"})
            ]
        );
        let (_, again) = DefinitionsLog::open(dir.path()).expect("reopen again");
        assert_eq!(again.parameters, model.parameters);
        // Other parameters are not operator policies; a malformed one is refused by name.
        let mut doc = Definitions {
            parameters: vec![
                json!({"component": "vhost-limits", "vhost": "a", "name": "limits"}),
                json!({"component": "operator_policy", "vhost": "a", "name": "x"}),
            ],
            ..Definitions::default()
        };
        let parsed: Vec<_> = doc.operator_policies().collect();
        assert_eq!(parsed.len(), 1);
        assert!(parsed[0].as_ref().is_err_and(|e| e.contains("malformed")));
        assert!(validate(&doc).is_err());
        doc.parameters.truncate(1);
        assert!(validate(&doc).is_ok());
    }

    #[test]
    fn replay_applies_ops_and_cascades_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        use DestinationType::{Exchange as E, Queue as Q};
        write_log(
            dir.path(),
            &[
                DefOp::vhost("a"),
                DefOp::vhost("b"),
                DefOp::PutUser(user("u1", "p")),
                DefOp::PutUser(user("u2", "p")),
                DefOp::SetPermissions(perm("u1", "a")),
                DefOp::SetPermissions(perm("u1", "b")),
                DefOp::SetPermissions(perm("u2", "a")),
                DefOp::SetPermissions(perm("guest", "a")),
                DefOp::DeclareExchange(xdef("a", "x1", "topic")),
                DefOp::DeclareExchange(xdef("a", "x2", "fanout")),
                DefOp::DeclareQueue(qdef("a", "q1")),
                DefOp::DeclareQueue(qdef("a", "q2")),
                DefOp::DeclareQueue(qdef("b", "q1")),
                DefOp::DeclareExchange(xdef("b", "x1", "direct")),
                DefOp::Bind(bdef("a", "x1", Q, "q1", "k")),
                DefOp::Bind(bdef("a", "x1", Q, "q2", "k")),
                DefOp::Bind(bdef("a", "x1", E, "x2", "#")),
                DefOp::Bind(bdef("a", "x2", Q, "q2", "")),
                DefOp::Bind(bdef("a", "amq.topic", Q, "q1", "legacy")),
                DefOp::Bind(bdef("b", "x1", Q, "q1", "k")),
                // Duplicate bind and redeclare are idempotent.
                DefOp::Bind(bdef("b", "x1", Q, "q1", "k")),
                DefOp::DeclareQueue(qdef("b", "q1")),
                // Default-exchange and amq.* declarations are never kept.
                DefOp::Bind(bdef("a", "", Q, "q1", "q1")),
                DefOp::DeclareExchange(xdef("a", "amq.direct", "direct")),
                // Cascades.
                DefOp::DeleteQueue {
                    vhost: "a".into(),
                    name: "q1".into(),
                },
                DefOp::DeleteExchange {
                    vhost: "a".into(),
                    name: "x2".into(),
                },
                DefOp::DeleteUser { name: "u2".into() },
                DefOp::ClearPermissions {
                    user: "u1".into(),
                    vhost: "a".into(),
                },
                DefOp::DeleteVhost { name: "b".into() },
                // Deleting what is absent is a no-op.
                DefOp::DeleteQueue {
                    vhost: "a".into(),
                    name: "nope".into(),
                },
                DefOp::Unbind(bdef("a", "x1", Q, "nope", "k")),
            ],
        );
        let (_log, m) = DefinitionsLog::open(dir.path()).expect("reopen");
        let vhosts: Vec<&str> = m.vhosts.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(vhosts, vec!["a"]);
        let users: Vec<&str> = m.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(users, vec!["u1"]);
        let perms: Vec<(&str, &str)> = m
            .permissions
            .iter()
            .map(|p| (p.user.as_str(), p.vhost.as_str()))
            .collect();
        // guest is not in the model (created by BrokerState::new) but its grant is kept.
        assert_eq!(perms, vec![("guest", "a")]);
        assert_eq!(m.exchanges, vec![xdef("a", "x1", "topic")]);
        assert_eq!(m.queues, vec![qdef("a", "q2")]);
        assert_eq!(m.bindings, vec![bdef("a", "x1", Q, "q2", "k")]);

        // Unbind removes exactly the matching binding (arguments are part of its identity).
        let with_args = BindingDef {
            arguments: obj(json!({"x-match": "all", "k": 1})),
            ..bdef("a", "x1", Q, "q2", "k")
        };
        write_log(
            dir.path(),
            &[
                DefOp::Bind(with_args.clone()),
                DefOp::Unbind(bdef("a", "x1", Q, "q2", "k")),
            ],
        );
        let (_log, m) = DefinitionsLog::open(dir.path()).expect("reopen");
        assert_eq!(m.bindings, vec![with_args]);
    }

    #[test]
    fn bind_logged_before_its_declare_survives_and_dangling_bindings_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        use DestinationType::Queue as Q;
        write_log(
            dir.path(),
            &[
                DefOp::Bind(bdef("/", "x", Q, "q", "k")),
                DefOp::DeclareQueue(qdef("/", "q")),
                DefOp::DeclareExchange(xdef("/", "x", "direct")),
                // A Bind racing a DeleteQueue: logged after it, dangling.
                DefOp::Bind(bdef("/", "x", Q, "gone", "k")),
            ],
        );
        let (_log, m) = DefinitionsLog::open(dir.path()).expect("reopen");
        assert_eq!(m.bindings, vec![bdef("/", "x", Q, "q", "k")]);
        assert_eq!(m.queues.len(), 1);
    }

    #[test]
    fn torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_log(
            dir.path(),
            &[DefOp::vhost("a"), DefOp::DeclareQueue(qdef("a", "q"))],
        );
        let torn = serde_json::to_string(&DefOp::DeclareQueue(qdef("a", "torn"))).expect("ser");
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .expect("open");
        f.write_all(&torn.as_bytes()[..torn.len() / 2])
            .expect("write");
        drop(f);

        let (log, m) = DefinitionsLog::open(dir.path()).expect("reopen");
        assert_eq!(m.queues, vec![qdef("a", "q")]);
        // Compaction removed the torn bytes: the file is whole lines again.
        let text = log_text(dir.path());
        assert!(text.ends_with('\n') && !text.contains("torn"));
        // Appends after recovery start on a fresh line.
        log.append(&DefOp::DeclareQueue(qdef("a", "after")))
            .expect("append");
        drop(log);
        let (_log, m) = DefinitionsLog::open(dir.path()).expect("reopen");
        assert_eq!(m.queues, vec![qdef("a", "after"), qdef("a", "q")]);

        // A complete op that only lacks its newline is kept.
        let whole = serde_json::to_string(&DefOp::DeclareQueue(qdef("a", "whole"))).expect("ser");
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .expect("open");
        f.write_all(whole.as_bytes()).expect("write");
        drop(f);
        let (_log, m) = DefinitionsLog::open(dir.path()).expect("reopen");
        assert_eq!(m.queues.len(), 3);
    }

    #[test]
    fn corrupt_middle_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good1 = serde_json::to_string(&DefOp::DeclareQueue(qdef("/", "q1"))).expect("ser");
        let good2 = serde_json::to_string(&DefOp::DeclareQueue(qdef("/", "q2"))).expect("ser");
        // A torn op, an empty line, binary garbage and an unknown op between good ones.
        let text = format!(
            "{good1}\n{{\"op\":\"DeclareQueue\",\"name\":\n\n\u{0}garbage\u{7f}\n\
             {{\"op\":\"NoSuchOp\"}}\n{good2}\n"
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
        fs::write(dir.path().join(LOG_FILE), bytes).expect("write");
        let (_log, m) = DefinitionsLog::open(dir.path()).expect("open");
        assert_eq!(m.queues, vec![qdef("/", "q1"), qdef("/", "q2")]);
        assert_eq!(log_text(dir.path()).lines().count(), 2);
    }

    #[test]
    fn compaction_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store_dir, st) = state();
        let typed = table(&[("x-message-ttl", AMQPValue::LongInt(1000))]);
        write_log(
            dir.path(),
            &[
                DefOp::vhost("v"),
                DefOp::PutUser(user("u", "pw")),
                DefOp::SetPermissions(perm("u", "v")),
                DefOp::DeclareExchange(xdef("v", "x", "topic")),
                DefOp::queue(&live_queue(&st, typed)),
                DefOp::Bind(bdef("v", "x", DestinationType::Exchange, "amq.fanout", "#")),
                DefOp::Bind(bdef("/", "amq.topic", DestinationType::Queue, "q", "a")),
                DefOp::DeclareQueue(qdef("v", "tmp")),
                DefOp::DeleteQueue {
                    vhost: "v".into(),
                    name: "tmp".into(),
                },
            ],
        );
        let (log1, m1) = DefinitionsLog::open(dir.path()).expect("open 1");
        drop(log1);
        let text1 = log_text(dir.path());
        let (_log2, m2) = DefinitionsLog::open(dir.path()).expect("open 2");
        assert_eq!(m1, m2);
        assert_eq!(
            (m1.vhosts.len(), m1.users.len(), m1.permissions.len()),
            (1, 1, 1)
        );
        assert_eq!(
            (m1.exchanges.len(), m1.queues.len(), m1.bindings.len()),
            (1, 1, 2)
        );
        assert!(m1.queues[0].typed_arguments.is_some());
        assert_eq!(text1, log_text(dir.path()));
        assert_eq!(text1.lines().count(), m1.ops().len());
        assert!(!dir.path().join(TMP_FILE).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(LOG_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "log holds password hashes: owner-only");
        }
    }

    #[test]
    fn append_refuses_after_a_failed_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = DefinitionsLog::open(dir.path()).expect("open");
        drop(log);
        // A read-only handle makes the write fail like a full disk would.
        let log = DefinitionsLog {
            path: dir.path().join(LOG_FILE),
            file: Arc::new(File::open(dir.path().join(LOG_FILE)).expect("open ro")),
            append_lock: Mutex::new(()),
            failed: AtomicBool::new(false),
        };
        assert!(log.append(&DefOp::vhost("a")).is_err());
        let err = log.append(&DefOp::vhost("b")).expect_err("poisoned");
        assert!(err.to_string().contains("failed earlier"), "{err}");
    }

    fn fixture() -> Definitions {
        let text = fs::read_to_string(FIXTURE).expect("fixture");
        serde_json::from_str(&text).expect("fixture parses")
    }

    #[test]
    fn rabbitmq_3_10_export_applies_and_exports_back() {
        let fx = fixture();
        assert_eq!(fx.rabbit_version.as_deref(), Some("3.10.8"));
        assert_eq!(fx.users.len(), 2);
        assert_eq!(fx.queues.len(), 6);
        assert_eq!(fx.exchanges.len(), 6);
        assert_eq!(fx.bindings.len(), 9);
        assert_eq!(fx.policies.len(), 1);
        assert_eq!(fx.topic_permissions.len(), 1);
        assert_eq!(fx.parameters.len(), 1);
        let orders = fx
            .queues
            .iter()
            .find(|q| q.name == "fx.orders")
            .expect("fx.orders");
        let args = orders.arguments_table().expect("args");
        assert_eq!(
            args.inner().get("x-message-ttl"),
            Some(&AMQPValue::LongLongInt(60000))
        );
        assert_eq!(
            args.inner().get("x-dead-letter-exchange"),
            Some(&ls("fx.dlx"))
        );

        let (_dir, st) = state();
        apply(&st, &fx).expect("apply");
        // A second application changes nothing and does not fail.
        let first = export(&st);
        apply(&st, &fx).expect("apply again");
        assert_eq!(export(&st), first);

        let out = export(&st);
        let vh = "warren-fixture";
        // Durable exchanges and queues come back exactly; transient ones are not exported.
        let mut want_x: Vec<ExchangeDef> =
            fx.exchanges.iter().filter(|e| e.durable).cloned().collect();
        want_x.sort_by(|a, b| a.name.cmp(&b.name));
        let got_x: Vec<ExchangeDef> = out
            .exchanges
            .iter()
            .filter(|e| e.vhost == vh)
            .cloned()
            .collect();
        assert_eq!(got_x, want_x);
        let mut want_q: Vec<QueueDef> = fx.queues.iter().filter(|q| q.durable).cloned().collect();
        want_q.sort_by(|a, b| a.name.cmp(&b.name));
        let got_q: Vec<QueueDef> = out
            .queues
            .iter()
            .filter(|q| q.vhost == vh)
            .cloned()
            .collect();
        assert_eq!(got_q, want_q);
        // Bindings: all but the one to the internal exchange RabbitMQ left out of its export
        // and the one to the transient queue.
        let mut want_b: Vec<BindingDef> = fx
            .bindings
            .iter()
            .filter(|b| b.destination != "fx.internal" && b.destination != "fx.transient-q")
            .cloned()
            .collect();
        want_b.sort_by_key(BindingDef::key);
        assert_eq!(want_b.len(), 7);
        let got_b: Vec<BindingDef> = out
            .bindings
            .iter()
            .filter(|b| b.vhost == vh)
            .cloned()
            .collect();
        assert_eq!(got_b, want_b);
        // Transient topology was still applied to the live broker.
        let live = st.vhosts.get(vh).map(|v| v.value().clone()).expect("vhost");
        assert!(live.queues.contains_key("fx.transient-q"));
        assert!(live.exchanges.contains_key("fx.transient"));

        // Users keep their RabbitMQ hashes and tags, and can log in with their passwords.
        for u in &fx.users {
            let got = out.users.iter().find(|x| x.name == u.name).expect("user");
            assert_eq!(got.password_hash, u.password_hash);
            assert_eq!(got.tags, u.tags);
            assert_eq!(got.hashing_algorithm.as_deref(), Some(SHA256_ALGORITHM));
        }
        let admin = st
            .authenticate("warren-fixture-admin", "fixture-secret-1")
            .expect("admin logs in with the password set in RabbitMQ");
        assert_eq!(admin.tags, vec!["administrator", "management"]);
        assert!(
            st.authenticate("warren-fixture-app", "app-pässword")
                .is_some()
        );
        assert!(st.authenticate("warren-fixture-app", "wrong").is_none());
        // Permissions, including an empty (grant nothing) pattern.
        let mut want_p = fx.permissions.clone();
        want_p.sort_by(|a, b| a.user.cmp(&b.user));
        let got_p: Vec<PermissionDef> = out
            .permissions
            .iter()
            .filter(|p| p.vhost == vh)
            .cloned()
            .collect();
        assert_eq!(got_p, want_p);
        assert!(out.vhosts.iter().any(|v| v.name == vh));
        // The policy is live on the queue it matches and exports back unchanged.
        let got_pol: Vec<PolicyDef> = out
            .policies
            .iter()
            .filter(|p| p.vhost == vh)
            .cloned()
            .collect();
        assert_eq!(got_pol, fx.policies);
        let dead = live
            .queues
            .get("fx.dead")
            .map(|q| q.clone())
            .expect("fx.dead");
        assert_eq!(dead.args().max_length, Some(100));
        assert_eq!(
            dead.policy().map(|p| p.name.clone()).as_deref(),
            Some("fx-dead-limit")
        );
        // The export is valid input for RabbitMQ-shaped readers: no Warren-only fields.
        let text = serde_json::to_string(&out).expect("serialize");
        assert!(!text.contains(TYPED_ARGS_FIELD));
    }

    #[test]
    fn apply_refuses_unsupported_hashes_before_changing_anything() {
        let (_dir, st) = state();
        for (alg, needle) in [
            (
                Some("rabbit_password_hashing_sha512"),
                "rabbit_password_hashing_sha512",
            ),
            (None, "MD5"),
        ] {
            let defs = Definitions {
                vhosts: vec![VhostDef {
                    name: "new".into(),
                    metadata: None,
                }],
                users: vec![UserDef {
                    hashing_algorithm: alg.map(str::to_owned),
                    ..user("old", "pw")
                }],
                ..Definitions::default()
            };
            let err = apply(&st, &defs).expect_err("refused");
            assert!(err.contains(needle) && err.contains("'old'"), "{err}");
            assert!(!st.vhosts.contains_key("new") && !st.users.contains_key("old"));
        }
        // A password-less user needs no algorithm.
        let defs = Definitions {
            users: vec![UserDef {
                name: "nopw".into(),
                ..UserDef::default()
            }],
            ..Definitions::default()
        };
        apply(&st, &defs).expect("password-less user");
        assert!(st.authenticate("nopw", "").is_none());

        let bad_type = Definitions {
            exchanges: vec![xdef("/", "d", "x-delayed-message")],
            ..Definitions::default()
        };
        assert!(
            apply(&st, &bad_type)
                .expect_err("type")
                .contains("x-delayed-message")
        );
        let bad_regex = Definitions {
            permissions: vec![PermissionDef {
                configure: "(".into(),
                ..perm("guest", "/")
            }],
            ..Definitions::default()
        };
        assert!(apply(&st, &bad_regex).is_err());
    }

    #[test]
    fn restore_brings_back_what_it_can() {
        let (_dir, st) = state();
        let model = Definitions {
            vhosts: vec![VhostDef {
                name: "/".into(),
                metadata: None,
            }],
            users: vec![
                UserDef {
                    hashing_algorithm: Some("rabbit_password_hashing_sha512".into()),
                    ..user("legacy", "pw")
                },
                user("ok", "pw"),
            ],
            queues: vec![qdef("/", "q")],
            ..Definitions::default()
        };
        let err = restore(&st, &model).expect_err("one bad user");
        assert!(err.contains("legacy"), "{err}");
        assert!(st.authenticate("ok", "pw").is_some());
        // The default user is not in the model, so it is gone.
        assert!(!st.users.contains_key("guest") && !st.users.contains_key("legacy"));
        let root = st.vhosts.get("/").map(|v| v.value().clone()).expect("/");
        assert!(root.queues.contains_key("q"));
    }

    #[test]
    fn apply_reports_inequivalent_declarations_and_continues() {
        let (_dir, st) = state();
        apply(
            &st,
            &Definitions {
                queues: vec![qdef("/", "q")],
                ..Definitions::default()
            },
        )
        .expect("apply");
        let defs = Definitions {
            queues: vec![
                QueueDef {
                    auto_delete: true,
                    ..qdef("/", "q")
                },
                qdef("/", "q2"),
            ],
            permissions: vec![perm("nobody", "/")],
            ..Definitions::default()
        };
        let err = apply(&st, &defs).expect_err("inequivalent");
        assert!(
            err.contains("auto_delete") && err.contains("nobody"),
            "{err}"
        );
        let root = st.vhosts.get("/").map(|v| v.value().clone()).expect("/");
        assert!(root.queues.contains_key("q2"));
    }

    #[test]
    fn export_keeps_only_persistent_topology() {
        let (_dir, st) = state();
        let vh = st.vhosts.get("/").map(|v| v.value().clone()).expect("/");
        let qopts = |durable, exclusive| QueueOptions {
            durable,
            exclusive,
            auto_delete: false,
            arguments: FieldTable::default(),
        };
        let xopts = |kind, durable| ExchangeOptions {
            kind,
            durable,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::default(),
        };
        let durable = vh
            .declare_queue("durable", qopts(true, false), 1)
            .expect("q");
        let transient = vh
            .declare_queue("transient", qopts(false, false), 1)
            .expect("q");
        let exclusive = vh
            .declare_queue("exclusive", qopts(true, true), 1)
            .expect("q");
        vh.declare_exchange("dx", xopts(ExchangeKind::Direct, true))
            .expect("x");
        vh.declare_exchange("tx", xopts(ExchangeKind::Fanout, false))
            .expect("x");
        for q in [&durable, &transient, &exclusive] {
            vh.bind_queue(q, "dx", "k", FieldTable::default())
                .expect("bind");
        }
        vh.bind_queue(&durable, "amq.direct", "k", FieldTable::default())
            .expect("bind");
        vh.bind_queue(&durable, "tx", "k", FieldTable::default())
            .expect("bind");
        vh.bind_exchange("tx", "dx", "e", FieldTable::default(), true)
            .expect("bind");
        vh.bind_exchange("amq.fanout", "dx", "e", FieldTable::default(), true)
            .expect("bind");

        let out = export(&st);
        let qs: Vec<&str> = out.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(qs, vec!["durable"]);
        let xs: Vec<&str> = out.exchanges.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(xs, vec!["dx"]);
        let bs: Vec<(&str, &str)> = out
            .bindings
            .iter()
            .map(|b| (b.source.as_str(), b.destination.as_str()))
            .collect();
        assert_eq!(
            bs,
            // Sorted by source, then queues before exchanges.
            vec![
                ("amq.direct", "durable"),
                ("dx", "durable"),
                ("dx", "amq.fanout")
            ]
        );
        let users: Vec<&str> = out.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(users, vec!["guest"]);
        assert_eq!(
            out.permissions,
            vec![PermissionDef {
                user: "guest".into(),
                vhost: "/".into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            }]
        );
        assert_eq!(out.product_name.as_deref(), Some("Warren"));
    }

    /// What the broker hooks do: each change to live state appends the op built from the live
    /// object; after a restart, `restore` on a fresh state reproduces the same export, argument
    /// types included.
    #[test]
    fn live_changes_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_dir, st) = state();
        let (log, model) =
            DefinitionsLog::open_seeded(dir.path(), &export(&st)).expect("first start");
        restore(&st, &model).expect("restore on first start");
        assert!(st.authenticate("guest", "guest").is_some());

        st.add_vhost("app");
        log.append(&DefOp::vhost("app")).expect("append");
        st.add_user("alice", "secret", &["management"]);
        let alice = st
            .users
            .get("alice")
            .map(|u| u.value().clone())
            .expect("alice");
        log.append(&DefOp::user("alice", &alice)).expect("append");
        st.set_permissions("alice", "app", "^a", ".*", "")
            .expect("perm");
        let p = st
            .permissions
            .get(&("alice".to_owned(), "app".to_owned()))
            .map(|p| p.value().clone())
            .expect("perm");
        log.append(&DefOp::permissions("alice", "app", &p))
            .expect("append");
        // The default user is deleted: it must not come back after the restart.
        st.delete_user("guest");
        log.append(&DefOp::DeleteUser {
            name: "guest".into(),
        })
        .expect("append");

        let vh = st
            .vhosts
            .get("app")
            .map(|v| v.value().clone())
            .expect("app");
        let args = table(&[
            ("x-message-ttl", AMQPValue::LongInt(60000)),
            ("x-dead-letter-exchange", ls("dlx")),
        ]);
        let q = vh
            .declare_queue(
                "orders",
                QueueOptions {
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    arguments: args.clone(),
                },
                7,
            )
            .expect("declare");
        assert!(is_persistent_queue(&q));
        log.append(&DefOp::queue(&q)).expect("append");
        let xopts = ExchangeOptions {
            kind: ExchangeKind::Headers,
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: table(&[("alternate-exchange", ls("amq.fanout"))]),
        };
        vh.declare_exchange("hx", xopts).expect("declare");
        let hx = vh.exchange("hx").expect("hx");
        assert!(is_persistent_exchange(&hx));
        log.append(&DefOp::exchange(&hx, "app")).expect("append");
        let bargs = table(&[("x-match", ls("all")), ("prio", AMQPValue::ShortInt(5))]);
        vh.bind_queue(&q, "hx", "", bargs.clone()).expect("bind");
        for b in hx.bindings() {
            assert!(is_persistent_binding(&vh, &hx, &b));
            log.append(&DefOp::binding("app", "hx", &b))
                .expect("append");
        }
        // A binding made then removed leaves no trace.
        vh.bind_queue(&q, "amq.topic", "t", FieldTable::default())
            .expect("bind");
        let topic = vh.exchange("amq.topic").expect("amq.topic");
        let tb = topic.bindings().pop().expect("binding");
        log.append(&DefOp::binding("app", "amq.topic", &tb))
            .expect("append");
        vh.unbind_queue(&q, "amq.topic", "t", FieldTable::default())
            .expect("unbind");
        log.append(&DefOp::unbinding("app", "amq.topic", &tb))
            .expect("append");
        log.file().sync_data().expect("fsync");
        let before = export(&st);
        drop(log);

        let (_fresh_dir, fresh) = state();
        let (_log, model) =
            DefinitionsLog::open_seeded(dir.path(), &export(&fresh)).expect("restart");
        restore(&fresh, &model).expect("restore");
        assert_eq!(export(&fresh), before);
        assert!(fresh.authenticate("guest", "guest").is_none());
        assert!(fresh.authenticate("alice", "secret").is_some());
        let vh = fresh
            .vhosts
            .get("app")
            .map(|v| v.value().clone())
            .expect("app");
        let q = vh.queue("orders", 0).expect("orders");
        // Exact types: a client redeclaring with its 32-bit TTL is still equivalent.
        assert_eq!(q.options.arguments, args);
        assert!(
            vh.declare_queue(
                "orders",
                QueueOptions {
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    arguments: args,
                },
                9,
            )
            .is_ok()
        );
        let hx = vh.exchange("hx").expect("hx");
        assert_eq!(
            hx.alternate().as_deref().map(String::as_str),
            Some("amq.fanout")
        );
        let bindings = hx.bindings();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].arguments, bargs);
        assert!(
            vh.exchange("amq.topic")
                .expect("topic")
                .bindings()
                .is_empty()
        );
    }
}
