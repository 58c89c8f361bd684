//! Access control and definitions: `/api/whoami`, `/api/vhosts`, `/api/users`,
//! `/api/permissions`, `/api/definitions`. Everything here except whoami and looking at visible
//! vhosts is administrator-only, as in RabbitMQ.

use super::Shared;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, parse_body};
use crate::store::definitions::{self as defs, DefOp, Definitions, SHA256_ALGORITHM};
use crate::vhost::VHost;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// `{"rate": 0.0}`: Warren keeps no rate history yet, and clients expect the key.
pub fn zero_rate() -> Value {
    json!({ "rate": 0.0 })
}

/// 201 when the PUT created the object, 204 when it replaced one (RabbitMQ's answers).
pub fn created_or_updated(created: bool) -> Response {
    if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

// --- whoami -----------------------------------------------------------------------------------

pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({ "name": caller.name, "tags": caller.tags }))
}

// --- vhosts -----------------------------------------------------------------------------------

/// Ready and unacked totals over a vhost's queues.
pub fn vhost_totals(vh: &VHost) -> (u64, u64) {
    let queues: Vec<_> = vh.queues.iter().map(|q| q.value().clone()).collect();
    queues.iter().fold((0, 0), |(r, u), q| {
        (r + u64::from(q.counts().0), u + q.unacked() as u64)
    })
}

fn vhost_json(vh: &VHost) -> Value {
    let (ready, unacked) = vhost_totals(vh);
    json!({
        "name": vh.name,
        "description": "",
        "tags": [],
        "default_queue_type": "classic",
        "metadata": { "description": "", "tags": [] },
        "tracing": false,
        "cluster_state": { super::node_name(): "running" },
        "messages": ready + unacked,
        "messages_details": zero_rate(),
        "messages_ready": ready,
        "messages_ready_details": zero_rate(),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": zero_rate(),
    })
}

/// The vhost named `name`, or 404.
pub fn vhost(st: &Shared, name: &str) -> ApiResult<Arc<VHost>> {
    st.vhosts
        .get(name)
        .map(|v| v.value().clone())
        .ok_or_else(ApiError::not_found)
}

/// Every vhost the caller may see, sorted by name.
pub fn visible_vhosts(st: &Shared, caller: &Caller) -> Vec<Arc<VHost>> {
    let mut all: Vec<Arc<VHost>> = st.vhosts.iter().map(|v| v.value().clone()).collect();
    all.retain(|v| caller.can_see(st, &v.name));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

pub async fn list_vhosts(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    Json(Value::Array(
        visible_vhosts(&st, &caller)
            .iter()
            .map(|v| vhost_json(v))
            .collect(),
    ))
}

pub async fn get_vhost(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let vh = vhost(&st, &name)?;
    caller.check_visible(&st, &name)?;
    Ok(Json(vhost_json(&vh)))
}

/// Creates a vhost and, as RabbitMQ's API does, gives its creator full permissions in it.
pub async fn put_vhost(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_admin()?;
    // Description, tags and tracing are accepted and not kept yet.
    let _: Value = parse_body(&body)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("vhost name must not be empty"));
    }
    let created = !st.vhosts.contains_key(&name);
    st.add_vhost(&name);
    if created {
        st.set_permissions(&caller.name, &name, ".*", ".*", ".*")
            .map_err(ApiError::bad_request)?;
    }
    Ok(created_or_updated(created))
}

/// Removes a vhost with everything in it: its connections are closed (320), its queues deleted
/// (their consumers cancelled) and the permissions on it dropped.
pub fn remove_vhost(st: &Shared, name: &str) -> bool {
    let Some((_, vh)) = st.vhosts.remove(name) else {
        return false;
    };
    st.store.log(&DefOp::DeleteVhost {
        name: name.to_owned(),
    });
    st.permissions.retain(|(_, v), _| v != name);
    for c in st.connections.iter().filter(|c| c.vhost == name) {
        let _ = c.tx.send(crate::connection::ConnEvent::Close {
            code: crate::error::codes::CONNECTION_FORCED,
            text: format!("vhost '{name}' is deleted"),
        });
    }
    let queues: Vec<_> = vh.queues.iter().map(|q| q.value().clone()).collect();
    for q in queues {
        let (_, consumers) = vh.remove_queue(&q);
        crate::channel::notify_cancelled(consumers);
    }
    true
}

pub async fn delete_vhost(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if remove_vhost(&st, &name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

// --- users ------------------------------------------------------------------------------------

fn user_json(name: &str, u: &crate::broker::User) -> Value {
    json!({
        "name": name,
        "password_hash": u.password_hash,
        "hashing_algorithm": SHA256_ALGORITHM,
        "tags": u.tags,
        "limits": {},
    })
}

pub async fn list_users(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let mut users: Vec<(String, crate::broker::User)> = st
        .users
        .iter()
        .map(|u| (u.key().clone(), u.value().clone()))
        .collect();
    users.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(Value::Array(
        users.iter().map(|(n, u)| user_json(n, u)).collect(),
    )))
}

pub async fn get_user(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let u = st
        .users
        .get(&name)
        .map(|u| u.value().clone())
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(&name, &u)))
}

/// Body of `PUT /api/users/{name}`.
#[derive(Deserialize)]
struct PutUser {
    password: Option<String>,
    password_hash: Option<String>,
    hashing_algorithm: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
}

/// Tags as RabbitMQ accepts them: a comma-separated string or a list of strings.
fn parse_tags(v: Option<&Value>) -> ApiResult<Vec<String>> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split(s)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request("tags must be a string or a list")),
    }
}

/// Creates or replaces a user. `tags` is required (may be empty), as in RabbitMQ 3.x; without
/// `password` or `password_hash` the user cannot log in with a password.
pub async fn put_user(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let req: PutUser = parse_body(&body)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("user name must not be empty"));
    }
    if req.tags.is_none() {
        return Err(ApiError::bad_request("tags_not_present"));
    }
    let tags = parse_tags(req.tags.as_ref())?;
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let created = !st.users.contains_key(&name);
    match (req.password, req.password_hash) {
        (Some(p), _) => st.add_user(&name, &p, &tags),
        (None, Some(h)) => {
            if let Some(alg) = req.hashing_algorithm.as_deref()
                && alg != SHA256_ALGORITHM
            {
                return Err(ApiError::bad_request(format!(
                    "password hashing algorithm '{alg}' is not supported; Warren implements \
                     only {SHA256_ALGORITHM}"
                )));
            }
            if !h.is_empty() && !hash_is_well_formed(&h) {
                return Err(ApiError::bad_request("invalid password_hash"));
            }
            st.put_user_hash(&name, &h, &tags);
        }
        (None, None) => st.put_user_hash(&name, "", &tags),
    }
    Ok(created_or_updated(created))
}

/// Whether `h` has the layout of a RabbitMQ SHA-256 hash (base64 of 4 + 32 bytes).
fn hash_is_well_formed(h: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(h)
        .is_ok_and(|raw| raw.len() == 36)
}

pub async fn delete_user(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if st.delete_user(&name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

// --- permissions ------------------------------------------------------------------------------

fn permissions_list(st: &Shared, keep: impl Fn(&str, &str) -> bool) -> Value {
    let mut rows: Vec<Value> = st
        .permissions
        .iter()
        .filter(|p| keep(&p.key().0, &p.key().1))
        .map(|p| {
            let (user, vhost) = p.key();
            let (configure, write, read) = p.value().patterns();
            json!({
                "user": user, "vhost": vhost,
                "configure": configure, "write": write, "read": read,
            })
        })
        .collect();
    let key = |v: &Value| {
        (
            v["user"].as_str().map(str::to_owned),
            v["vhost"].as_str().map(str::to_owned),
        )
    };
    rows.sort_by_key(key);
    Value::Array(rows)
}

pub async fn list_permissions(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(permissions_list(&st, |_, _| true)))
}

pub async fn vhost_permissions(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    vhost(&st, &name)?;
    Ok(Json(permissions_list(&st, |_, v| v == name)))
}

pub async fn user_permissions(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    if !st.users.contains_key(&name) {
        return Err(ApiError::not_found());
    }
    Ok(Json(permissions_list(&st, |u, _| u == name)))
}

pub async fn get_permissions(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let (c, w, r) = st
        .permissions
        .get(&(user.clone(), vhost.clone()))
        .map(|p| {
            let (c, w, r) = p.value().patterns();
            (c.to_owned(), w.to_owned(), r.to_owned())
        })
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({
        "user": user, "vhost": vhost, "configure": c, "write": w, "read": r,
    })))
}

/// Body of `PUT /api/permissions/{vhost}/{user}`.
#[derive(Deserialize)]
struct PutPermissions {
    configure: Option<String>,
    write: Option<String>,
    read: Option<String>,
}

pub async fn put_permissions(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let req: PutPermissions = parse_body(&body)?;
    if !st.vhosts.contains_key(&vhost) || !st.users.contains_key(&user) {
        return Err(ApiError::not_found());
    }
    let (Some(c), Some(w), Some(r)) = (req.configure, req.write, req.read) else {
        return Err(ApiError::bad_request(
            "configure, write and read are all required",
        ));
    };
    let created = !st.permissions.contains_key(&(user.clone(), vhost.clone()));
    st.set_permissions(&user, &vhost, &c, &w, &r)
        .map_err(ApiError::bad_request)?;
    Ok(created_or_updated(created))
}

/// Drops a user's permissions in a vhost; true if there were any.
pub fn clear_permissions(st: &Shared, user: &str, vhost: &str) -> bool {
    let removed = st
        .permissions
        .remove(&(user.to_owned(), vhost.to_owned()))
        .is_some();
    if removed {
        st.store.log(&DefOp::ClearPermissions {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
        });
    }
    removed
}

pub async fn delete_permissions(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if clear_permissions(&st, &user, &vhost) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

// --- definitions ------------------------------------------------------------------------------

/// The whole broker's definitions, RabbitMQ-shaped, with Warren's version fields.
fn export_document(st: &Shared) -> Value {
    let mut d = defs::export(st);
    d.rabbit_version = Some(super::RABBITMQ_COMPAT_VERSION.into());
    d.rabbitmq_version = Some(super::RABBITMQ_COMPAT_VERSION.into());
    serde_json::to_value(&d).unwrap_or_else(|_| json!({}))
}

pub async fn export_all(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(export_document(&st)))
}

/// One vhost's definitions as RabbitMQ exports them: topology only, without `vhost` keys.
pub async fn export_vhost(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    vhost(&st, &name)?;
    let all = export_document(&st);
    let section = |key: &str| -> Value {
        let items = all
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| item.get("vhost").and_then(Value::as_str) == Some(name.as_str()))
            .map(|item| {
                let mut item = item.clone();
                if let Some(o) = item.as_object_mut() {
                    o.remove("vhost");
                }
                item
            })
            .collect();
        Value::Array(items)
    };
    // Unlike the topology, RabbitMQ keeps the `vhost` key on policies and parameters (where
    // operator policies are) in a per-vhost export.
    let with_vhost = |key: &str| -> Vec<Value> {
        all.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p.get("vhost").and_then(Value::as_str) == Some(name.as_str()))
            .cloned()
            .collect()
    };
    Ok(Json(json!({
        "rabbit_version": super::RABBITMQ_COMPAT_VERSION,
        "parameters": with_vhost("parameters"),
        "policies": with_vhost("policies"),
        "queues": section("queues"),
        "exchanges": section("exchanges"),
        "bindings": section("bindings"),
    })))
}

/// Applies a definitions document; RabbitMQ answers 204 on success.
fn import(st: &Shared, d: &Definitions) -> ApiResult<StatusCode> {
    defs::apply(st, d).map_err(ApiError::bad_request)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn import_all(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let d: Definitions = parse_body(&body)?;
    import(&st, &d)
}

/// Imports topology into one vhost: every policy, operator policy, queue, exchange and binding is
/// placed in `name` whatever its own `vhost` says (RabbitMQ's per-vhost import).
pub async fn import_vhost(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    vhost(&st, &name)?;
    let mut doc: Value = parse_body(&body)?;
    for key in ["queues", "exchanges", "bindings", "policies", "parameters"] {
        if let Some(items) = doc.get_mut(key).and_then(Value::as_array_mut) {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                item.insert("vhost".into(), Value::String(name.clone()));
            }
        }
    }
    let mut d: Definitions =
        serde_json::from_value(doc).map_err(|e| ApiError::bad_request(e.to_string()))?;
    d.users.clear();
    d.vhosts.clear();
    d.permissions.clear();
    import(&st, &d)
}
