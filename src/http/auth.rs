//! Who is calling and what they may do: HTTP basic auth against the broker's users and
//! RabbitMQ's management rules.
//!
//! - Only users with a management-capable tag (`administrator`, `monitoring`, `policymaker`,
//!   `management`) get in; others get 401 "Not management user".
//! - Users in `loopback_users` (guest by default) may only log in from loopback, as over AMQP.
//! - `administrator` may use every endpoint; `monitoring` sees every vhost; other users see the
//!   vhosts they have permissions in.
//! - Declaring, deleting, purging and reading messages go through the caller's vhost
//!   permissions, for administrators too (RabbitMQ's API acts as the user).

use super::Shared;
use super::error::{ApiError, ApiResult};
use crate::auth::Permissions;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::net::SocketAddr;

/// Tags that admit a user to the management API.
const MANAGEMENT_TAGS: &[&str] = &["administrator", "monitoring", "policymaker", "management"];

/// The authenticated user behind a request, put in the request's extensions.
#[derive(Clone, Debug)]
pub struct Caller {
    /// User name.
    pub name: String,
    /// The user's tags at the time of the request.
    pub tags: Vec<String>,
}

/// Which of RabbitMQ's three permissions an operation needs.
#[derive(Clone, Copy, Debug)]
pub enum Perm {
    Configure,
    Write,
    Read,
}

impl Caller {
    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Tagged `administrator`.
    pub fn is_admin(&self) -> bool {
        self.has_tag("administrator")
    }

    /// Sees every vhost's objects (administrator or monitoring).
    pub fn sees_all(&self) -> bool {
        self.is_admin() || self.has_tag("monitoring")
    }

    /// May change policies in `vhost`: an administrator, or a policymaker with permissions
    /// there (RabbitMQ's rule).
    pub fn may_manage_policies(&self, st: &Shared, vhost: &str) -> bool {
        self.is_admin()
            || (self.has_tag("policymaker")
                && st
                    .permissions
                    .contains_key(&(self.name.clone(), vhost.to_owned())))
    }

    /// Refuses non-administrators, with RabbitMQ's reason text.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    /// Whether listings show `vhost` to this caller.
    pub fn can_see(&self, st: &Shared, vhost: &str) -> bool {
        self.sees_all()
            || st
                .permissions
                .contains_key(&(self.name.clone(), vhost.to_owned()))
    }

    /// Refuses a vhost the caller may not look at.
    pub fn check_visible(&self, st: &Shared, vhost: &str) -> ApiResult<()> {
        if self.can_see(st, vhost) {
            Ok(())
        } else {
            Err(ApiError::access_refused())
        }
    }

    /// The caller's permissions in `vhost`, cloned out of the map.
    fn permissions(&self, st: &Shared, vhost: &str) -> Option<Permissions> {
        st.permissions
            .get(&(self.name.clone(), vhost.to_owned()))
            .map(|p| p.value().clone())
    }

    /// Refuses an operation on `resource` (queue or exchange name, `amq.default` for "") that
    /// the caller's permissions in `vhost` do not allow.
    pub fn check(&self, st: &Shared, vhost: &str, perm: Perm, resource: &str) -> ApiResult<()> {
        let Some(p) = self.permissions(st, vhost) else {
            return Err(ApiError::access_refused());
        };
        let resource = if resource.is_empty() {
            crate::vhost::DEFAULT_EXCHANGE
        } else {
            resource
        };
        let ok = match perm {
            Perm::Configure => p.can_configure(resource),
            Perm::Write => p.can_write(resource),
            Perm::Read => p.can_read(resource),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::access_refused())
        }
    }
}

/// `(user, password)` from an `Authorization: Basic ...` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// RabbitMQ's answer to missing or wrong credentials (spelled "not_authorized" there).
fn login_failed() -> Response {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        error: "not_authorized",
        reason: "Login failed".into(),
    }
    .into_response()
}

/// Middleware: authenticates the request and attaches its [`Caller`], or answers 401.
pub async fn authenticate(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let Some((user, pass)) = basic_credentials(req.headers()) else {
        return login_failed();
    };
    let Some(found) = st.authenticate(&user, &pass) else {
        return login_failed();
    };
    if st.config.loopback_users.iter().any(|u| u == &user) {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if peer.is_some_and(|ip| !ip.is_loopback()) {
            return ApiError::not_authorised("User can only log in via localhost").into_response();
        }
    }
    if !found
        .tags
        .iter()
        .any(|t| MANAGEMENT_TAGS.contains(&t.as_str()))
    {
        return ApiError::not_authorised("Not management user").into_response();
    }
    req.extensions_mut().insert(Caller {
        name: user,
        tags: found.tags,
    });
    next.run(req).await
}
