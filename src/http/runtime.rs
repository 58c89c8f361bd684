//! What is running: `/api/overview`, `/api/nodes`, `/api/connections`, `/api/channels`,
//! `/api/consumers`.
//!
//! Channels are owned by their connection's task, so listing them asks each connection over
//! its event queue (`ConnEvent::Inspect`) rather than sharing channel state. Consumers are
//! read from the queues. Client properties and byte counters are not kept (memory per idle
//! connection is a target), so those fields read as empty or zero; the keys are present
//! because RabbitMQ's clients require them.

use super::Shared;
use super::access::{vhost, vhost_totals, visible_vhosts, zero_rate};
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::broker::ConnInfo;
use crate::channel::ChannelInfo;
use crate::stats::Counts;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Exchange types Warren implements, as `/api/overview` lists them.
const EXCHANGE_TYPES: &[(&str, &str)] = &[
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
];

/// The AMQP listener's host as connection names show it.
fn server_host(st: &Shared, info: &ConnInfo) -> String {
    match st.config.bind.as_str() {
        "0.0.0.0" | "::" | "" => info.peer.ip().to_string(),
        b => b.to_owned(),
    }
}

/// RabbitMQ's connection name, `"peer -> server"`, which `DELETE /api/connections/{name}` takes.
fn connection_name(st: &Shared, info: &ConnInfo) -> String {
    format!(
        "{} -> {}:{}",
        info.peer,
        server_host(st, info),
        server_port(st, info)
    )
}

/// The port of the listener the connection came in on.
fn server_port(st: &Shared, info: &ConnInfo) -> u16 {
    if info.tls.is_some() {
        st.config.tls_port
    } else {
        st.config.port
    }
}

fn connection_json(st: &Shared, info: &ConnInfo, node: &str) -> Value {
    json!({
        "name": connection_name(st, info),
        "node": node,
        "type": "network",
        "state": "running",
        "protocol": "AMQP 0-9-1",
        "user": info.user,
        "user_who_performed_action": info.user,
        "vhost": info.vhost,
        "host": server_host(st, info),
        "port": server_port(st, info),
        "peer_host": info.peer.ip().to_string(),
        "peer_port": info.peer.port(),
        "ssl": info.tls.is_some(),
        "ssl_protocol": info.tls,
        // Keys RabbitMQ always sends; Warren does not report these details yet.
        "ssl_key_exchange": null, "ssl_cipher": null, "ssl_hash": null,
        "peer_cert_subject": null, "peer_cert_issuer": null, "peer_cert_validity": null,
        "auth_mechanism": "PLAIN",
        "channels": 0,
        "channel_max": st.config.channel_max,
        "frame_max": st.config.frame_max,
        "timeout": st.config.heartbeat,
        "connected_at": info.connected_at,
        "client_properties": client_properties_json(&info.client_properties),
        "recv_oct": 0, "recv_oct_details": zero_rate(),
        "send_oct": 0, "send_oct_details": zero_rate(),
    })
}

/// A connection's client_properties as RabbitMQ shows them: the table, in JSON.
fn client_properties_json(raw: &[u8]) -> Value {
    match amq_protocol::types::parsing::parse_field_table(raw) {
        Ok((_, t)) => Value::Object(crate::store::definitions::field_table_to_json(&t)),
        Err(_) => Value::Object(Default::default()),
    }
}

/// Live connections the caller may see (its own, or all for monitoring/administrator), as
/// `(id, json)` sorted by name.
fn connections(st: &Shared, caller: &Caller, only_vhost: Option<&str>) -> Vec<(u64, Value)> {
    let node = super::node_name();
    let mut out: Vec<(u64, Value)> = st
        .connections
        .iter()
        .filter(|c| caller.sees_all() || c.user == caller.name)
        .filter(|c| only_vhost.is_none_or(|v| c.vhost == v))
        .map(|c| (*c.key(), connection_json(st, c.value(), &node)))
        .collect();
    out.sort_by(|a, b| a.1["name"].as_str().cmp(&b.1["name"].as_str()));
    out
}

/// Fills each connection's channel count (only its task knows it).
async fn with_channel_counts(st: &Shared, list: Vec<(u64, Value)>) -> Vec<Value> {
    let ids: Vec<u64> = list.iter().map(|c| c.0).collect();
    let found = inspect(st, &ids).await;
    list.into_iter()
        .map(|(id, mut v)| {
            v["channels"] = json!(found.get(&id).map_or(0, Vec::len));
            v
        })
        .collect()
}

pub async fn list_connections(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let list = connections(&st, &caller, None);
    Json(Value::Array(with_channel_counts(&st, list).await))
}

pub async fn vhost_connections(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    vhost(&st, &name)?;
    caller.check_visible(&st, &name)?;
    let list = connections(&st, &caller, Some(&name));
    Ok(Json(Value::Array(with_channel_counts(&st, list).await)))
}

fn find_connection(st: &Shared, caller: &Caller, name: &str) -> ApiResult<(u64, Value)> {
    connections(st, caller, None)
        .into_iter()
        .find(|c| c.1["name"].as_str() == Some(name))
        .ok_or_else(ApiError::not_found)
}

pub async fn get_connection(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let found = find_connection(&st, &caller, &name)?;
    let mut list = with_channel_counts(&st, vec![found]).await;
    Ok(Json(list.pop().unwrap_or_default()))
}

/// Closes a connection with 320 CONNECTION_FORCED; the `X-Reason` header, if any, is the text
/// the client sees (RabbitMQ's convention).
pub async fn close_connection(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let (id, _) = find_connection(&st, &caller, &name)?;
    let text = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin")
        .to_owned();
    if let Some(c) = st.connections.get(&id) {
        let _ = c.tx.send(crate::connection::ConnEvent::Close {
            code: crate::error::codes::CONNECTION_FORCED,
            text,
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Asks each connection in `ids` for its channels; a connection that does not answer within
/// the deadline (busy, or closing) is left out rather than holding the request.
async fn inspect(st: &Shared, ids: &[u64]) -> HashMap<u64, Vec<ChannelInfo>> {
    let mut waiting = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = st.connections.get(id) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if c.tx.send(crate::connection::ConnEvent::Inspect(tx)).is_ok() {
                waiting.push((*id, rx));
            }
        }
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut out = HashMap::with_capacity(waiting.len());
    for (id, rx) in waiting {
        if let Ok(Ok(infos)) = tokio::time::timeout_at(deadline, rx).await {
            out.insert(id, infos);
        }
    }
    out
}

fn channel_json(st: &Shared, info: &ConnInfo, ch: &ChannelInfo, node: &str) -> Value {
    let conn_name = connection_name(st, info);
    json!({
        "name": format!("{conn_name} ({})", ch.number),
        "number": ch.number,
        "node": node,
        "user": info.user,
        "user_who_performed_action": info.user,
        "vhost": info.vhost,
        "connection_details": {
            "name": conn_name,
            "peer_host": info.peer.ip().to_string(),
            "peer_port": info.peer.port(),
        },
        "state": if ch.flow_blocked { "flow" } else { "running" },
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "consumer_count": ch.consumer_count,
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
    })
}

/// The channels of the connections the caller may see, sorted by name.
async fn channels(st: &Shared, caller: &Caller, only_vhost: Option<&str>) -> Vec<Value> {
    let ids: Vec<u64> = connections(st, caller, only_vhost)
        .into_iter()
        .map(|c| c.0)
        .collect();
    let mut out = channels_of(st, &ids).await;
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

/// The channels of the connections `ids`, in that order.
async fn channels_of(st: &Shared, ids: &[u64]) -> Vec<Value> {
    let found = inspect(st, ids).await;
    let node = super::node_name();
    let mut out = Vec::new();
    for id in ids {
        if let (Some(info), Some(chs)) = (st.connections.get(id), found.get(id)) {
            out.extend(chs.iter().map(|ch| channel_json(st, &info, ch, &node)));
        }
    }
    out
}

/// How many channels the connections `ids` have open.
pub(crate) async fn channel_total(st: &Shared, ids: &[u64]) -> usize {
    inspect(st, ids).await.values().map(Vec::len).sum()
}

pub async fn list_channels(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    Json(Value::Array(channels(&st, &caller, None).await))
}

pub async fn vhost_channels(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    vhost(&st, &name)?;
    caller.check_visible(&st, &name)?;
    Ok(Json(Value::Array(
        channels(&st, &caller, Some(&name)).await,
    )))
}

pub async fn get_channel(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    channels(&st, &caller, None)
        .await
        .into_iter()
        .find(|c| c["name"].as_str() == Some(name.as_str()))
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

pub async fn connection_channels(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, _) = find_connection(&st, &caller, &name)?;
    Ok(Json(Value::Array(channels_of(&st, &[id]).await)))
}

/// Consumers of the visible vhosts' queues (or one vhost's), as RabbitMQ lists them.
fn consumers(st: &Shared, caller: &Caller, only_vhost: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    for vh in visible_vhosts(st, caller) {
        if only_vhost.is_some_and(|v| v != vh.name) {
            continue;
        }
        let queues: Vec<_> = vh.queues.iter().map(|q| q.value().clone()).collect();
        for q in queues {
            for c in q.consumer_infos() {
                let Some(info) = st.connections.get(&c.conn_id) else {
                    continue;
                };
                if !caller.sees_all() && info.user != caller.name {
                    continue;
                }
                let conn_name = connection_name(st, &info);
                let mut arguments = serde_json::Map::new();
                if c.priority != 0 {
                    arguments.insert("x-priority".into(), json!(c.priority));
                }
                out.push(json!({
                    "consumer_tag": &*c.tag,
                    "queue": { "name": q.name, "vhost": q.vhost },
                    "channel_details": {
                        "name": format!("{conn_name} ({})", c.channel),
                        "number": c.channel,
                        "connection_name": conn_name,
                        "peer_host": info.peer.ip().to_string(),
                        "peer_port": info.peer.port(),
                        "user": info.user,
                        "node": super::node_name(),
                    },
                    "ack_required": c.ack_required,
                    "exclusive": c.exclusive,
                    "prefetch_count": c.prefetch_count,
                    "active": c.active,
                    "activity_status": if c.active { "up" } else { "waiting" },
                    "arguments": arguments,
                }));
            }
        }
    }
    out
}

pub async fn list_consumers(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    Json(Value::Array(consumers(&st, &caller, None)))
}

pub async fn vhost_consumers(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    vhost(&st, &name)?;
    caller.check_visible(&st, &name)?;
    Ok(Json(Value::Array(consumers(&st, &caller, Some(&name)))))
}

/// RabbitMQ's message_stats object from `(name, count, rate per second)` rows.
pub fn message_stats_json(rows: &[(&str, u64, f64)]) -> Value {
    let mut m = serde_json::Map::new();
    for (name, count, rate) in rows {
        m.insert((*name).into(), json!(count));
        m.insert(format!("{name}_details"), json!({ "rate": rate }));
    }
    Value::Object(m)
}

/// Per-second rate of one counter over a sampling window (0 until two samples exist).
pub fn rate<T>(window: &Option<(T, T, f64)>, f: impl Fn(&T) -> u64) -> f64 {
    match window {
        Some((a, b, secs)) => f(b).saturating_sub(f(a)) as f64 / secs,
        None => 0.0,
    }
}

/// The broker's message_stats for /api/overview: live counts, rates over the last sampling
/// window.
fn overview_stats(st: &Shared) -> Value {
    let now = st.message_totals();
    let window = st.stats.samples.lock().window();
    type Field = fn(&Counts) -> u64;
    let rows: [(&str, Field); 11] = [
        ("publish", |c| c.publish),
        ("confirm", |c| c.confirm),
        ("return_unroutable", |c| c.return_unroutable),
        ("drop_unroutable", |c| c.drop_unroutable),
        ("deliver", |c| c.deliver),
        ("deliver_no_ack", |c| c.deliver_no_ack),
        ("get", |c| c.get),
        ("get_no_ack", |c| c.get_no_ack),
        ("deliver_get", |c| c.deliver_get()),
        ("redeliver", |c| c.redeliver),
        ("ack", |c| c.ack),
    ];
    let rows: Vec<(&str, u64, f64)> = rows
        .iter()
        .map(|(name, f)| (*name, f(&now), rate(&window, f)))
        .collect();
    message_stats_json(&rows)
}

/// Samples the broker's and every queue's counters each `interval`, for rates.
pub async fn sample_rates(
    st: Shared,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let at = std::time::Instant::now();
        let totals = st.message_totals();
        st.stats.samples.lock().push(at, totals);
        let vhosts: Vec<_> = st.vhosts.iter().map(|v| v.value().clone()).collect();
        for vh in vhosts {
            let queues: Vec<_> = vh.queues.iter().map(|q| q.value().clone()).collect();
            for q in queues {
                q.sample_rates(at);
            }
        }
    }
}

/// Broker-wide object counts: (connections, consumers, exchanges, queues, ready, unacked).
pub struct Totals {
    pub connections: u64,
    pub consumers: u64,
    pub exchanges: u64,
    pub queues: u64,
    pub ready: u64,
    pub unacked: u64,
}

/// Counts over the vhosts the caller may see.
pub fn totals(st: &Shared, caller: &Caller) -> Totals {
    let mut t = Totals {
        connections: connections(st, caller, None).len() as u64,
        consumers: 0,
        exchanges: 0,
        queues: 0,
        ready: 0,
        unacked: 0,
    };
    for vh in visible_vhosts(st, caller) {
        t.exchanges += vh.exchanges.len() as u64;
        let queues: Vec<_> = vh.queues.iter().map(|q| q.value().clone()).collect();
        t.queues += queues.len() as u64;
        t.consumers += queues.iter().map(|q| u64::from(q.counts().1)).sum::<u64>();
        let (r, u) = vhost_totals(&vh);
        t.ready += r;
        t.unacked += u;
    }
    t
}

/// The AMQP listeners, named as RabbitMQ names them ("amqp", "amqp/ssl").
fn listeners(st: &Shared, node: &str) -> Vec<Value> {
    let listener = |protocol: &str, port: u16| json!({"node": node, "protocol": protocol, "ip_address": st.config.bind, "port": port});
    let mut out = vec![listener("amqp", st.config.port)];
    if st.config.tls_cert.is_some() {
        out.push(listener("amqp/ssl", st.config.tls_port));
    }
    out
}

pub async fn overview(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let node = super::node_name();
    let t = totals(&st, &caller);
    let ids: Vec<u64> = connections(&st, &caller, None)
        .iter()
        .map(|c| c.0)
        .collect();
    let channels = channel_total(&st, &ids).await;
    let version = env!("CARGO_PKG_VERSION");
    let compat = super::RABBITMQ_COMPAT_VERSION;
    Json(json!({
        "management_version": compat,
        "rabbitmq_version": compat,
        "product_name": "Warren",
        "product_version": version,
        "erlang_version": "none",
        "erlang_full_version": format!("Warren {version} (Rust)"),
        "rates_mode": "none",
        "disable_stats": false,
        "enable_queue_totals": true,
        "cluster_name": node,
        "node": node,
        "statistics_db_event_queue": 0,
        "exchange_types": EXCHANGE_TYPES.iter().map(|(name, description)| json!({
            "name": name, "description": description, "enabled": true,
        })).collect::<Vec<_>>(),
        "object_totals": {
            "connections": t.connections,
            "channels": channels,
            "consumers": t.consumers,
            "exchanges": t.exchanges,
            "queues": t.queues,
        },
        "queue_totals": {
            "messages": t.ready + t.unacked,
            "messages_details": zero_rate(),
            "messages_ready": t.ready,
            "messages_ready_details": zero_rate(),
            "messages_unacknowledged": t.unacked,
            "messages_unacknowledged_details": zero_rate(),
        },
        "message_stats": overview_stats(&st),
        "churn_rates": {
            "connection_created": 0, "connection_closed": 0,
            "channel_created": 0, "channel_closed": 0,
            "queue_declared": 0, "queue_created": 0, "queue_deleted": 0,
        },
        "listeners": listeners(&st, &node),
        "contexts": [{
            "node": node,
            "description": "Warren Management",
            "path": "/",
        }],
    }))
}

pub async fn cluster_name(Extension(_caller): Extension<Caller>) -> Json<Value> {
    Json(json!({ "name": super::node_name() }))
}

/// This single node, with the resource figures RabbitMQ's node listing carries.
pub async fn nodes(State(st): State<Shared>, Extension(_caller): Extension<Caller>) -> Json<Value> {
    let alarms = st.alarms.current();
    let disk_free = crate::alarm::free_bytes(&st.config.data_dir).unwrap_or(0);
    let limit = st
        .alarms
        .disk_free_limit
        .load(std::sync::atomic::Ordering::Relaxed);
    Json(json!([{
        "name": super::node_name(),
        "type": "disc",
        "running": true,
        "being_drained": false,
        "mem_used": super::metrics::resident_memory_bytes(),
        "mem_limit": st.alarms.memory_limit.load(std::sync::atomic::Ordering::Relaxed),
        "mem_alarm": alarms.memory,
        "disk_free": disk_free,
        "disk_free_limit": limit,
        "disk_free_alarm": alarms.disk,
        "fd_used": super::metrics::open_fds(),
        "uptime": 0,
    }]))
}

/// No plugins: the web UI asks for this list.
pub async fn extensions(Extension(_caller): Extension<Caller>) -> Json<Value> {
    Json(json!([]))
}
