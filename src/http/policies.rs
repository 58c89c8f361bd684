//! `/api/policies` and `/api/operator-policies`: listing, reading, setting and clearing
//! policies of either kind, with RabbitMQ's bodies, statuses and permission rules:
//! - listings are open to every management user, showing the vhosts they may see;
//! - reading, setting or clearing one policy needs the `administrator` tag, or `policymaker`
//!   with permissions in its vhost (401 "User not authorised to access object" otherwise);
//!   one operator policy needs `administrator` (401 "Not administrator user").
//!
//! Each handler takes the kind as a const parameter, `OP` (true: operator policies), so one
//! body serves both routes.

use super::Shared;
use super::access::{created_or_updated, vhost as find_vhost, visible_vhosts};
use super::auth::Caller;
use super::error::{ApiError, ApiResult, parse_body};
use crate::policy::{Kind, Policy};
use crate::vhost::VHost;
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

/// The kind a handler's `OP` parameter names.
const fn kind(op: bool) -> Kind {
    if op { Kind::Operator } else { Kind::Policy }
}

/// Policies as RabbitMQ lists them: by ascending priority, then vhost and name.
fn list(vhosts: &[Arc<VHost>], kind: Kind) -> Value {
    let mut all: Vec<Arc<Policy>> = vhosts.iter().flat_map(|v| v.policies(kind)).collect();
    all.sort_by(|a, b| (a.priority, &a.vhost, &a.name).cmp(&(b.priority, &b.vhost, &b.name)));
    Value::Array(all.iter().map(|p| p.to_json()).collect())
}

pub async fn list_all<const OP: bool>(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    Json(list(&visible_vhosts(&st, &caller), kind(OP)))
}

pub async fn list_vhost<const OP: bool>(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    let vh = find_vhost(&st, &vhost)?;
    if !caller.can_see(&st, &vhost) {
        return Err(ApiError::not_authorised(
            "User not authorised to access virtual host",
        ));
    }
    Ok(Json(list(&[vh], kind(OP))))
}

/// Refuses callers who may not manage policies of `kind` in `vhost`: operator policies are
/// for administrators only, as in RabbitMQ ("Not administrator user").
fn check_policymaker(st: &Shared, caller: &Caller, kind: Kind, vhost: &str) -> ApiResult<()> {
    if kind == Kind::Operator {
        return caller.require_admin();
    }
    if caller.may_manage_policies(st, vhost) {
        Ok(())
    } else {
        Err(ApiError::not_authorised(
            "User not authorised to access object",
        ))
    }
}

pub async fn get_policy<const OP: bool>(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    check_policymaker(&st, &caller, kind(OP), &vhost)?;
    let vh = find_vhost(&st, &vhost)?;
    let p = vh.policy(kind(OP), &name).ok_or_else(ApiError::not_found)?;
    Ok(Json(p.to_json()))
}

/// Creates (201) or replaces (204) a policy. Body as RabbitMQ takes it:
/// `{"pattern": .., "definition": {..}, "priority": N, "apply-to": ..}`.
pub async fn put_policy<const OP: bool>(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    check_policymaker(&st, &caller, kind(OP), &vhost)?;
    let Some(vh) = st.vhosts.get(&vhost).map(|v| v.value().clone()) else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: "vhost_not_found".into(),
        });
    };
    let req: Value = parse_body(&body)?;
    let Some(req) = req.as_object() else {
        return Err(ApiError::bad_request("body must be a JSON object"));
    };
    if name.is_empty() {
        return Err(ApiError::bad_request("policy name must not be empty"));
    }
    let pattern = match req.get("pattern") {
        None => return Err(ApiError::bad_request("[{key_missing,pattern}]")),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Validation failed\n\npattern should be a string, actually was {other}\n"
            )));
        }
    };
    let definition = match req.get("definition") {
        None => return Err(ApiError::bad_request("[{key_missing,definition}]")),
        Some(Value::Object(d)) => d,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Validation failed\n\ndefinition should be a JSON object, actually was {other}\n"
            )));
        }
    };
    let policy = Policy::new(
        kind(OP),
        &vhost,
        &name,
        pattern,
        definition,
        req.get("priority"),
        req.get("apply-to"),
    )
    .map_err(ApiError::bad_request)?;
    Ok(created_or_updated(vh.set_policy(policy)))
}

pub async fn delete_policy<const OP: bool>(
    State(st): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    check_policymaker(&st, &caller, kind(OP), &vhost)?;
    let vh = find_vhost(&st, &vhost)?;
    if vh.clear_policy(kind(OP), &name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}
