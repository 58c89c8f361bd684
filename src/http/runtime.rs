//! What is running: `/api/overview`, `/api/nodes`, `/api/connections`, `/api/channels`,
//! `/api/consumers`.
//!
//! Warren does not yet keep per-connection channel lists, client properties, connect times or
//! message counters, so those fields read as zero or empty; the keys are present because
//! RabbitMQ's clients require them.

use super::Shared;
use super::access::{vhost, vhost_totals, visible_vhosts, zero_rate};
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::broker::ConnInfo;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

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
        "connected_at": 0,
        "client_properties": {},
        "recv_oct": 0, "recv_oct_details": zero_rate(),
        "send_oct": 0, "send_oct_details": zero_rate(),
    })
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

pub async fn list_connections(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    Json(Value::Array(
        connections(&st, &caller, None)
            .into_iter()
            .map(|c| c.1)
            .collect(),
    ))
}

pub async fn vhost_connections(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    vhost(&st, &name)?;
    caller.check_visible(&st, &name)?;
    Ok(Json(Value::Array(
        connections(&st, &caller, Some(&name))
            .into_iter()
            .map(|c| c.1)
            .collect(),
    )))
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
    Ok(Json(find_connection(&st, &caller, &name)?.1))
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

/// Channels are not tracked outside their connection task yet: an empty list.
pub async fn list_channels(Extension(_caller): Extension<Caller>) -> Json<Value> {
    Json(json!([]))
}

pub async fn vhost_channels(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    vhost(&st, &name)?;
    caller.check_visible(&st, &name)?;
    Ok(Json(json!([])))
}

/// Queues keep their consumers private: an empty list until they expose them.
pub async fn list_consumers(Extension(_caller): Extension<Caller>) -> Json<Value> {
    Json(json!([]))
}

pub async fn vhost_consumers(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    vhost(&st, &name)?;
    caller.check_visible(&st, &name)?;
    Ok(Json(json!([])))
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
            "channels": 0,
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
        "message_stats": {},
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
