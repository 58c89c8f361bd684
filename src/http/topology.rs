//! Topology: `/api/exchanges`, `/api/queues` (with purge and get), `/api/bindings`.
//!
//! The default exchange is "amq.default" in paths, as in RabbitMQ. Declarations and deletions
//! go through the same `VHost` methods as queue.declare / exchange.delete, with the caller's
//! configure permission; purging and getting need read, binding needs write on the destination
//! and read on the source.

use super::Shared;
use super::access::{created_or_updated, vhost, visible_vhosts, zero_rate};
use super::auth::{Caller, Perm};
use super::error::{ApiError, ApiResult, parse_body};
use crate::exchange::{Destination, ExchangeKind, ExchangeOptions};
use crate::queue::{Queue, QueueOptions};
use crate::store::definitions::{field_table_to_json, json_to_field_table};
use crate::vhost::{DEFAULT_EXCHANGE, VHost};
use amq_protocol::types::FieldTable;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The exchange name behind a path segment ("amq.default" is the default exchange).
fn exchange_name(segment: &str) -> &str {
    if segment == DEFAULT_EXCHANGE {
        ""
    } else {
        segment
    }
}

/// `if-unused=true` style flags of DELETE requests.
#[derive(Deserialize, Default)]
pub struct DeleteFlags {
    #[serde(rename = "if-unused", default)]
    if_unused: Option<String>,
    #[serde(rename = "if-empty", default)]
    if_empty: Option<String>,
}

fn flag(v: Option<&String>) -> bool {
    v.is_some_and(|s| s == "true")
}

/// JSON `arguments` (absent or null reads as empty) to an AMQP table.
fn arguments(v: Option<&Value>) -> ApiResult<FieldTable> {
    match v {
        None | Some(Value::Null) => Ok(FieldTable::default()),
        Some(Value::Object(m)) => json_to_field_table(m).map_err(ApiError::bad_request),
        Some(_) => Err(ApiError::bad_request("arguments must be an object")),
    }
}

/// Clones a vhost's map values out, so no guard outlives the call.
fn values<V: Clone, S: std::hash::BuildHasher + Clone>(
    m: &dashmap::DashMap<String, V, S>,
) -> Vec<V> {
    m.iter().map(|e| e.value().clone()).collect()
}

// --- exchanges --------------------------------------------------------------------------------

fn exchange_json(vh: &str, ex: &crate::exchange::Exchange) -> Value {
    let o = &ex.options;
    let mut v = json!({
        "name": ex.name,
        "vhost": vh,
        "type": o.kind.as_str(),
        "durable": o.durable,
        "auto_delete": o.auto_delete,
        "internal": o.internal,
        "arguments": field_table_to_json(&o.arguments),
        "user_who_performed_action": "",
    });
    // RabbitMQ shows the key only while a policy applies.
    if let (Some(p), Some(obj)) = (ex.policy(), v.as_object_mut()) {
        obj.insert("policy".into(), Value::String(p.name.clone()));
    }
    v
}

fn exchanges_of(vh: &VHost) -> Vec<Value> {
    let mut exs = values(&vh.exchanges);
    exs.sort_by(|a, b| a.name.cmp(&b.name));
    exs.iter().map(|e| exchange_json(&vh.name, e)).collect()
}

pub async fn list_exchanges(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let all = visible_vhosts(&st, &caller)
        .iter()
        .flat_map(|v| exchanges_of(v))
        .collect();
    Json(Value::Array(all))
}

/// The vhost at `name`, 404 if missing and 401 if the caller may not see it.
fn visible_vhost(st: &Shared, caller: &Caller, name: &str) -> ApiResult<Arc<VHost>> {
    let vh = vhost(st, name)?;
    caller.check_visible(st, name)?;
    Ok(vh)
}

pub async fn vhost_exchanges(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(v): Path<String>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    Ok(Json(Value::Array(exchanges_of(&vh))))
}

pub async fn get_exchange(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    let ex = vh
        .exchanges
        .get(exchange_name(&name))
        .map(|e| e.value().clone())
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(exchange_json(&vh.name, &ex)))
}

/// Body of `PUT /api/exchanges/{vhost}/{name}`.
#[derive(Deserialize)]
struct PutExchange {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    internal: bool,
    arguments: Option<Value>,
}

pub async fn put_exchange(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let vh = vhost(&st, &v)?;
    let req: PutExchange = parse_body(&body)?;
    let name = exchange_name(&name).to_owned();
    caller.check(&st, &v, Perm::Configure, &name)?;
    let kind_name = req.kind.as_deref().unwrap_or("direct");
    let kind = ExchangeKind::parse(kind_name)
        .ok_or_else(|| ApiError::bad_request(format!("unknown exchange type '{kind_name}'")))?;
    let exists = vh.exchanges.contains_key(&name);
    if name.is_empty() || (!exists && name.starts_with("amq.")) {
        return Err(ApiError::access_refused());
    }
    let opts = ExchangeOptions {
        kind,
        durable: req.durable,
        auto_delete: req.auto_delete,
        internal: req.internal,
        arguments: arguments(req.arguments.as_ref())?,
    };
    vh.declare_exchange(&name, opts)?;
    Ok(created_or_updated(!exists))
}

pub async fn delete_exchange(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
    Query(flags): Query<DeleteFlags>,
) -> ApiResult<StatusCode> {
    let vh = vhost(&st, &v)?;
    let name = exchange_name(&name).to_owned();
    caller.check(&st, &v, Perm::Configure, &name)?;
    if name.is_empty() || name.starts_with("amq.") {
        return Err(ApiError::access_refused());
    }
    if !vh.exchanges.contains_key(&name) {
        return Err(ApiError::not_found());
    }
    vh.delete_exchange(&name, flag(flags.if_unused.as_ref()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A refusal the AMQP side would close the channel with. RabbitMQ's publish endpoint runs on a
/// channel and reports these as 400 with the whole reply text ("404 NOT_FOUND - ...").
fn channel_refusal(e: crate::error::AmqpError) -> ApiError {
    ApiError::bad_request(format!("{} {}", e.code, e.text))
}

/// A required key of a JSON body, or RabbitMQ's `key_missing` error.
fn required<'a>(body: &'a Map<String, Value>, key: &str) -> ApiResult<&'a Value> {
    body.get(key)
        .ok_or_else(|| ApiError::bad_request(format!("[{{key_missing,{key}}}]")))
}

/// Message properties from their JSON form (as `properties_json` writes them); unknown keys are
/// ignored as RabbitMQ ignores them.
fn properties_from_json(v: &Value) -> ApiResult<amq_protocol::protocol::BasicProperties> {
    use amq_protocol::types::ShortString;
    let Value::Object(m) = v else {
        return Err(ApiError::bad_request("properties must be an object"));
    };
    let text = |k: &str| -> ApiResult<Option<ShortString>> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= 255 => Ok(Some(s.as_str().into())),
            Some(Value::String(_)) => Err(ApiError::bad_request(format!("{k} is too long"))),
            Some(_) => Err(ApiError::bad_request(format!("not_string: {k}"))),
        }
    };
    let int = |k: &str| -> ApiResult<Option<u64>> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("not_int: {k}"))),
        }
    };
    let small = |k: &str| -> ApiResult<Option<u8>> {
        int(k)?
            .map(|n| u8::try_from(n).map_err(|_| ApiError::bad_request(format!("not_int: {k}"))))
            .transpose()
    };
    let mut p = amq_protocol::protocol::BasicProperties::default();
    if let Some(s) = text("content_type")? {
        p = p.with_content_type(s);
    }
    if let Some(s) = text("content_encoding")? {
        p = p.with_content_encoding(s);
    }
    match m.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            p = p.with_headers(json_to_field_table(h).map_err(ApiError::bad_request)?);
        }
        Some(_) => return Err(ApiError::bad_request("headers must be an object")),
    }
    if let Some(n) = small("delivery_mode")? {
        p = p.with_delivery_mode(n);
    }
    if let Some(n) = small("priority")? {
        p = p.with_priority(n);
    }
    if let Some(s) = text("correlation_id")? {
        p = p.with_correlation_id(s);
    }
    if let Some(s) = text("reply_to")? {
        p = p.with_reply_to(s);
    }
    if let Some(s) = text("expiration")? {
        p = p.with_expiration(s);
    }
    if let Some(s) = text("message_id")? {
        p = p.with_message_id(s);
    }
    if let Some(n) = int("timestamp")? {
        p = p.with_timestamp(n);
    }
    if let Some(s) = text("type")? {
        p = p.with_type(s);
    }
    if let Some(s) = text("user_id")? {
        p = p.with_user_id(s);
    }
    if let Some(s) = text("app_id")? {
        p = p.with_app_id(s);
    }
    if let Some(s) = text("cluster_id")? {
        p = p.with_cluster_id(s);
    }
    Ok(p)
}

/// `POST /api/exchanges/{vhost}/{name}/publish`: publishes one message as a basic.publish with
/// `mandatory` set and publisher confirms on would, answering `{"routed": bool}` once the
/// message is as safe as a confirm would make it (fsynced when it was stored). Refusals the
/// channel would close with are 400s carrying the AMQP reply text, as in RabbitMQ.
pub async fn publish(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let vh = vhost(&st, &v)?;
    if !st
        .permissions
        .contains_key(&(caller.name.clone(), v.clone()))
    {
        return Err(ApiError::access_refused());
    }
    let req: Map<String, Value> = parse_body(&body)?;
    let properties = properties_from_json(required(&req, "properties")?)?;
    let Value::String(routing_key) = required(&req, "routing_key")? else {
        return Err(ApiError::bad_request("routing_key_not_string"));
    };
    if routing_key.len() > 255 {
        return Err(ApiError::bad_request("routing_key is too long"));
    }
    let Value::String(payload) = required(&req, "payload")? else {
        return Err(ApiError::bad_request("payload_not_string"));
    };
    let payload = match required(&req, "payload_encoding")?.as_str() {
        Some("string") => Bytes::from(payload.clone().into_bytes()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_request(format!("not_base64: {payload}")))?,
        other => {
            return Err(ApiError::bad_request(format!(
                "unsupported_encoding: {}",
                other.map_or_else(|| req["payload_encoding"].to_string(), str::to_owned)
            )));
        }
    };
    let name = exchange_name(&name).to_owned();
    let exchange = vh.exchange(&name).map_err(channel_refusal)?;
    if exchange.options.internal {
        return Err(channel_refusal(crate::error::AmqpError::access_refused(
            format!("cannot publish to internal exchange '{name}' in vhost '{v}'"),
        )));
    }
    if caller.check(&st, &v, Perm::Write, &name).is_err() {
        let shown = if name.is_empty() {
            DEFAULT_EXCHANGE
        } else {
            &name
        };
        return Err(channel_refusal(crate::error::AmqpError::access_refused(
            format!(
                "access to exchange '{shown}' in vhost '{v}' refused for user '{}'",
                caller.name
            ),
        )));
    }
    crate::channel::check_properties(&properties, &caller.name, false).map_err(channel_refusal)?;
    let alarms = st.alarms.current();
    if alarms.any() {
        // An AMQP publisher would be blocked until the alarm clears; an HTTP request is
        // refused instead of left hanging.
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "resource_alarm",
            reason: format!("publishing is blocked: {}", alarms.reason()),
        });
    }
    let mut properties = properties;
    let (extra_keys, _) = crate::channel::sender_selected_keys(&mut properties);
    let msg = Arc::new(crate::message::Message {
        exchange: exchange.name.clone(),
        routing_key: routing_key.clone(),
        raw_properties: crate::protocol::codec::encode_properties(&properties),
        properties: Box::new(properties),
        body: payload,
    });
    let outcome = crate::channel::deliver(&vh, &exchange, &msg, &extra_keys, None, None);
    st.stats.count_api_publish(outcome.routed);
    if outcome.stored && st.store.coord.fsync_enabled() {
        wait_synced(&st, st.store.coord.request()).await?;
    }
    if outcome.refused {
        return Err(ApiError::bad_request(
            "rejected Unable to publish message. Check queue limits.",
        ));
    }
    Ok(Json(json!({ "routed": outcome.routed })))
}

/// Waits until group commit has made everything written before `epoch` durable.
async fn wait_synced(st: &Shared, epoch: u64) -> ApiResult<()> {
    use crate::store::sync::SyncState;
    let mut rx = st.store.coord.subscribe();
    let synced = rx
        .wait_for(|s| match s {
            SyncState::Synced(n) => *n >= epoch,
            SyncState::Failed => true,
        })
        .await
        .map(|s| *s);
    match synced {
        Ok(SyncState::Synced(_)) => Ok(()),
        _ => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal_error",
            reason: "the message store has failed; the message may not be durable".into(),
        }),
    }
}

// --- queues -----------------------------------------------------------------------------------

/// Rough per-message bookkeeping a queue holds in memory; the body itself lives in the store
/// (disk or the page cache) or is shared with other queues.
const MEMORY_PER_MESSAGE: u64 = 64;
/// Fixed cost of an idle queue (state, maps, store handle), an estimate.
const MEMORY_PER_QUEUE: u64 = 2048;

fn queue_json(q: &Queue, node: &str) -> Value {
    let (ready, consumers) = q.counts();
    let (ready, unacked) = (u64::from(ready), q.unacked() as u64);
    let o = &q.options;
    let (policy, operator) = (q.policy(), q.operator_policy());
    json!({
        "name": q.name,
        "vhost": q.vhost,
        "type": "classic",
        "durable": o.durable,
        "auto_delete": o.auto_delete,
        "exclusive": o.exclusive,
        "arguments": field_table_to_json(&o.arguments),
        "node": node,
        "state": "running",
        "consumers": consumers,
        "exclusive_consumer_tag": null,
        "policy": policy.as_ref().map(|p| p.name.clone()),
        "operator_policy": operator.as_ref().map(|p| p.name.clone()),
        "effective_policy_definition": crate::policy::effective_definition(policy.as_deref(), operator.as_deref()),
        "messages": ready + unacked,
        "messages_details": zero_rate(),
        "messages_ready": ready,
        "messages_ready_details": zero_rate(),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": zero_rate(),
        "memory": MEMORY_PER_QUEUE + MEMORY_PER_MESSAGE * (ready + unacked),
        "message_stats": queue_stats(q),
    })
}

/// A queue's message_stats: counts since declaration, rates over the last sampling window.
fn queue_stats(q: &Queue) -> Value {
    use super::runtime::rate;
    let (c, window) = q.message_stats();
    super::runtime::message_stats_json(&[
        ("publish", c.publish, rate(&window, |c| c.publish)),
        (
            "deliver_get",
            c.deliver_get,
            rate(&window, |c| c.deliver_get),
        ),
        ("redeliver", c.redeliver, rate(&window, |c| c.redeliver)),
        ("ack", c.ack, rate(&window, |c| c.ack)),
    ])
}

fn queues_of(vh: &VHost, node: &str) -> Vec<Value> {
    let mut qs = values(&vh.queues);
    qs.sort_by(|a, b| a.name.cmp(&b.name));
    qs.iter().map(|q| queue_json(q, node)).collect()
}

pub async fn list_queues(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let node = super::node_name();
    let all = visible_vhosts(&st, &caller)
        .iter()
        .flat_map(|v| queues_of(v, &node))
        .collect();
    Json(Value::Array(all))
}

pub async fn vhost_queues(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(v): Path<String>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    Ok(Json(Value::Array(queues_of(&vh, &super::node_name()))))
}

fn find_queue(vh: &VHost, name: &str) -> ApiResult<Arc<Queue>> {
    vh.queues
        .get(name)
        .map(|q| q.value().clone())
        .ok_or_else(ApiError::not_found)
}

pub async fn get_queue(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    let q = find_queue(&vh, &name)?;
    Ok(Json(queue_json(&q, &super::node_name())))
}

/// Body of `PUT /api/queues/{vhost}/{name}`.
#[derive(Deserialize)]
struct PutQueue {
    #[serde(default)]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    arguments: Option<Value>,
}

pub async fn put_queue(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let vh = vhost(&st, &v)?;
    let req: PutQueue = parse_body(&body)?;
    caller.check(&st, &v, Perm::Configure, &name)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("queue name must not be empty"));
    }
    let exists = vh.queues.contains_key(&name);
    if !exists && name.starts_with("amq.") {
        return Err(ApiError::access_refused());
    }
    let opts = QueueOptions {
        durable: req.durable,
        exclusive: false,
        auto_delete: req.auto_delete,
        arguments: arguments(req.arguments.as_ref())?,
    };
    // Connection 0 is no connection: the queue is not exclusive to anyone.
    vh.declare_queue(&name, opts, 0)?;
    Ok(created_or_updated(!exists))
}

pub async fn delete_queue(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
    Query(flags): Query<DeleteFlags>,
) -> ApiResult<StatusCode> {
    let vh = vhost(&st, &v)?;
    caller.check(&st, &v, Perm::Configure, &name)?;
    let q = find_queue(&vh, &name)?;
    // An operator may delete an exclusive queue too: act as its owner.
    let (_, consumers) = vh.delete_queue(
        &name,
        flag(flags.if_unused.as_ref()),
        flag(flags.if_empty.as_ref()),
        q.owner.unwrap_or(0),
    )?;
    crate::channel::notify_cancelled(consumers);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn purge_queue(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let vh = vhost(&st, &v)?;
    let q = find_queue(&vh, &name)?;
    caller.check(&st, &v, Perm::Read, &name)?;
    q.purge();
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/queues/{vhost}/{name}/get`.
#[derive(Deserialize)]
struct GetRequest {
    #[serde(default = "one")]
    count: usize,
    ackmode: Option<String>,
    #[serde(default = "auto")]
    encoding: String,
    truncate: Option<usize>,
}

fn one() -> usize {
    1
}

fn auto() -> String {
    "auto".into()
}

/// Message properties as RabbitMQ's API shows them (absent ones left out).
fn properties_json(p: &amq_protocol::protocol::BasicProperties) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    let s = |v: &Option<amq_protocol::types::ShortString>| {
        v.as_ref().map(|s| Value::String(s.as_str().to_owned()))
    };
    put("content_type", s(p.content_type()));
    put("content_encoding", s(p.content_encoding()));
    put("priority", p.priority().map(Value::from));
    put("correlation_id", s(p.correlation_id()));
    put("reply_to", s(p.reply_to()));
    put("expiration", s(p.expiration()));
    put("message_id", s(p.message_id()));
    put("timestamp", p.timestamp().map(Value::from));
    put("type", s(p.kind()));
    put("user_id", s(p.user_id()));
    put("app_id", s(p.app_id()));
    put("cluster_id", s(p.cluster_id()));
    put("delivery_mode", p.delivery_mode().map(Value::from));
    put(
        "headers",
        p.headers()
            .as_ref()
            .map(|h| Value::Object(field_table_to_json(h))),
    );
    Value::Object(m)
}

/// Reads up to `count` messages. `ack_requeue_true` / `reject_requeue_true` put them back in
/// their original places (marked redelivered, as RabbitMQ does), so this is a peek; the
/// `*_requeue_false` modes consume them.
pub async fn get_messages(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let vh = vhost(&st, &v)?;
    let q = find_queue(&vh, &name)?;
    let req: GetRequest = parse_body(&body)?;
    caller.check(&st, &v, Perm::Read, &name)?;
    if q.owner.is_some() {
        return Err(ApiError::bad_request(format!(
            "cannot obtain exclusive access to locked queue '{name}' in vhost '{v}'"
        )));
    }
    let requeue = match req.ackmode.as_deref() {
        Some("ack_requeue_true" | "reject_requeue_true") => true,
        Some("ack_requeue_false" | "reject_requeue_false") => false,
        Some(other) => return Err(ApiError::bad_request(format!("bad ackmode '{other}'"))),
        None => return Err(ApiError::bad_request("ackmode is required")),
    };
    let base64_only = match req.encoding.as_str() {
        "auto" => false,
        "base64" => true,
        other => return Err(ApiError::bad_request(format!("bad encoding '{other}'"))),
    };
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..req.count {
        let Some((qm, left)) = q.get(!requeue) else {
            break;
        };
        let msg = &qm.msg;
        let body = &msg.body[..req
            .truncate
            .map_or(msg.body.len(), |t| t.min(msg.body.len()))];
        let (payload, encoding) = match std::str::from_utf8(body) {
            Ok(s) if !base64_only => (s.to_owned(), "string"),
            _ => (
                base64::engine::general_purpose::STANDARD.encode(body),
                "base64",
            ),
        };
        out.push(json!({
            "payload_bytes": msg.body.len(),
            "redelivered": qm.redelivered,
            "exchange": msg.exchange,
            "routing_key": msg.routing_key,
            "message_count": left,
            "properties": properties_json(&msg.properties),
            "payload": payload,
            "payload_encoding": encoding,
        }));
        if requeue {
            taken.push(qm);
        }
    }
    if !taken.is_empty() {
        q.requeue(taken);
    }
    Ok(Json(Value::Array(out)))
}

// --- bindings ---------------------------------------------------------------------------------

/// One binding of a vhost, implicit default-exchange bindings included.
struct Row {
    source: String,
    /// "queue" or "exchange".
    destination_type: &'static str,
    destination: String,
    routing_key: String,
    arguments: FieldTable,
    /// The queue handle, for unbinding.
    queue: Option<Arc<Queue>>,
}

/// Characters RabbitMQ leaves unescaped in a properties key.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

impl Row {
    /// RabbitMQ's `properties_key`: the escaped routing key, plus `~` and a hash of the
    /// arguments when there are any ("~" alone for an empty key without arguments). It
    /// identifies the binding in `/api/bindings/.../{props}`.
    fn properties_key(&self) -> String {
        let key = utf8_percent_encode(&self.routing_key, KEY_ESCAPE).to_string();
        if self.arguments.inner().is_empty() {
            if key.is_empty() { "~".to_owned() } else { key }
        } else {
            let canonical = Value::Object(field_table_to_json(&self.arguments)).to_string();
            let digest = Sha256::digest(canonical.as_bytes());
            let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..4]);
            format!("{key}~{hash}")
        }
    }

    fn json(&self, vhost: &str) -> Value {
        json!({
            "source": self.source,
            "vhost": vhost,
            "destination": self.destination,
            "destination_type": self.destination_type,
            "routing_key": self.routing_key,
            "arguments": Value::Object(field_table_to_json(&self.arguments)),
            "properties_key": self.properties_key(),
        })
    }
}

/// Every binding of `vh`: the default exchange's implicit ones first (by queue), then the
/// declared ones by source, destination and key.
fn rows(vh: &VHost) -> Vec<Row> {
    let mut queues = values(&vh.queues);
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<Row> = queues
        .into_iter()
        .map(|q| Row {
            source: String::new(),
            destination_type: "queue",
            destination: q.name.clone(),
            routing_key: q.name.clone(),
            arguments: FieldTable::default(),
            queue: Some(q),
        })
        .collect();
    let mut declared = Vec::new();
    for ex in values(&vh.exchanges) {
        for b in ex.bindings() {
            let (destination_type, destination, queue) = match b.destination {
                Destination::Queue(q) => ("queue", q.name.clone(), Some(q)),
                Destination::Exchange(e) => ("exchange", e, None),
            };
            declared.push(Row {
                source: ex.name.clone(),
                destination_type,
                destination,
                routing_key: b.routing_key,
                arguments: b.arguments,
                queue,
            });
        }
    }
    declared.sort_by(|a, b| {
        (
            &a.source,
            a.destination_type,
            &a.destination,
            &a.routing_key,
        )
            .cmp(&(
                &b.source,
                b.destination_type,
                &b.destination,
                &b.routing_key,
            ))
    });
    out.extend(declared);
    out
}

fn rows_json(vh: &VHost, keep: impl Fn(&Row) -> bool) -> Vec<Value> {
    rows(vh)
        .iter()
        .filter(|r| keep(r))
        .map(|r| r.json(&vh.name))
        .collect()
}

pub async fn list_bindings(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let all = visible_vhosts(&st, &caller)
        .iter()
        .flat_map(|v| rows_json(v, |_| true))
        .collect();
    Json(Value::Array(all))
}

pub async fn vhost_bindings(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(v): Path<String>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    Ok(Json(Value::Array(rows_json(&vh, |_| true))))
}

pub async fn queue_bindings(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    find_queue(&vh, &name)?;
    Ok(Json(Value::Array(rows_json(&vh, |r| {
        r.destination_type == "queue" && r.destination == name
    }))))
}

pub async fn exchange_bindings_source(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    let name = exchange_name(&name);
    if !vh.exchanges.contains_key(name) {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(rows_json(&vh, |r| r.source == name))))
}

pub async fn exchange_bindings_destination(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    let name = exchange_name(&name);
    if !vh.exchanges.contains_key(name) {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(rows_json(&vh, |r| {
        r.destination_type == "exchange" && r.destination == name
    }))))
}

/// "queue" or "exchange" for the `q` / `e` path segment.
fn destination_type(kind: &str) -> ApiResult<&'static str> {
    match kind {
        "q" => Ok("queue"),
        "e" => Ok("exchange"),
        _ => Err(ApiError::not_found()),
    }
}

/// Path of `/api/bindings/{vhost}/e/{source}/{kind}/{destination}`.
type BetweenPath = (String, String, String, String);

pub async fn bindings_between(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, source, kind, destination)): Path<BetweenPath>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &v)?;
    let dtype = destination_type(&kind)?;
    let source = exchange_name(&source);
    Ok(Json(Value::Array(rows_json(&vh, |r| {
        r.source == source && r.destination_type == dtype && r.destination == destination
    }))))
}

/// Body of `POST /api/bindings/...`.
#[derive(Deserialize)]
struct PostBinding {
    #[serde(default)]
    routing_key: String,
    arguments: Option<Value>,
}

/// Creates a binding; 201 with the new binding's properties key in `Location`.
pub async fn create_binding(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((v, source, kind, destination)): Path<BetweenPath>,
    body: Bytes,
) -> ApiResult<Response> {
    let vh = vhost(&st, &v)?;
    let dtype = destination_type(&kind)?;
    let req: PostBinding = parse_body(&body)?;
    let source = exchange_name(&source).to_owned();
    if source.is_empty() {
        return Err(ApiError::access_refused());
    }
    caller.check(&st, &v, Perm::Write, &destination)?;
    caller.check(&st, &v, Perm::Read, &source)?;
    let args = arguments(req.arguments.as_ref())?;
    let row = Row {
        source: source.clone(),
        destination_type: dtype,
        destination: destination.clone(),
        routing_key: req.routing_key.clone(),
        arguments: args.clone(),
        queue: None,
    };
    if dtype == "queue" {
        vh.exchange(&source)?;
        let q = vh.queue(&destination, 0)?;
        vh.bind_queue(&q, &source, &req.routing_key, args)?;
    } else {
        vh.bind_exchange(&destination, &source, &req.routing_key, args, true)?;
    }
    let location = format!(
        "{}/{}",
        utf8_percent_encode(&destination, KEY_ESCAPE),
        utf8_percent_encode(&row.properties_key(), KEY_ESCAPE)
    );
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// Path of `/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}`.
type BindingPath = (String, String, String, String, String);

/// The binding a full binding path names.
fn find_binding(vh: &VHost, path: &BindingPath) -> ApiResult<Row> {
    let (_, source, kind, destination, props) = path;
    let dtype = destination_type(kind)?;
    let source = exchange_name(source);
    rows(vh)
        .into_iter()
        .find(|r| {
            r.source == source
                && r.destination_type == dtype
                && &r.destination == destination
                && &r.properties_key() == props
        })
        .ok_or_else(ApiError::not_found)
}

pub async fn get_binding(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<BindingPath>,
) -> ApiResult<Json<Value>> {
    let vh = visible_vhost(&st, &caller, &path.0)?;
    Ok(Json(find_binding(&vh, &path)?.json(&vh.name)))
}

pub async fn delete_binding(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<BindingPath>,
) -> ApiResult<StatusCode> {
    let vh = vhost(&st, &path.0)?;
    let row = find_binding(&vh, &path)?;
    if row.source.is_empty() {
        return Err(ApiError::access_refused());
    }
    caller.check(&st, &vh.name, Perm::Write, &row.destination)?;
    caller.check(&st, &vh.name, Perm::Read, &row.source)?;
    match &row.queue {
        Some(q) => vh.unbind_queue(q, &row.source, &row.routing_key, row.arguments.clone())?,
        None => vh.bind_exchange(
            &row.destination,
            &row.source,
            &row.routing_key,
            row.arguments.clone(),
            false,
        )?,
    }
    Ok(StatusCode::NO_CONTENT)
}
