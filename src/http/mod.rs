//! The operator's view of the broker over HTTP: a management API shaped like RabbitMQ's
//! (`/api/...`, default port 15672) and Prometheus metrics named like rabbitmq_prometheus's
//! (`/metrics`, default port 15692), so RabbitMQ's tools and dashboards work unchanged.
//!
//! Responsibilities:
//! - [`serve`]: the management API. Every request is authenticated with HTTP basic auth against
//!   the broker's users; only users tagged `administrator`, `management`, `monitoring` or
//!   `policymaker` get in (RabbitMQ's rule), and administrator-only endpoints (users,
//!   permissions, vhost changes, definitions) refuse the others (see [`auth`]). Policies need
//!   `administrator`, or `policymaker` with permissions in the vhost; operator policies need
//!   `administrator` (see [`policies`]).
//! - The web management UI at `/` (see [`ui`]), whose files load without credentials.
//! - [`serve_metrics`]: Prometheus text exposition, unauthenticated as in RabbitMQ (see
//!   [`metrics`]).
//!
//! Invariants:
//! - Handlers only read and change the broker through the same registries and methods AMQP
//!   channels use (`BrokerState`, `VHost`, `Queue`), so the API cannot create a state a client
//!   could not; changes to durable topology are logged by those methods.
//! - No DashMap guard is held across another map access or an `.await`: handlers clone the
//!   `Arc`s out first (see vhost/mod.rs).
//! - Errors are JSON `{"error": ..., "reason": ...}` with RabbitMQ's status codes; nothing a
//!   client sends can panic a handler.
//! - Names in paths are percent-decoded exactly once (the default vhost is `%2F`).

mod access;
mod auth;
mod error;
pub mod metrics;
mod policies;
pub mod runtime;
mod topology;
mod ui;

use crate::broker::BrokerState;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ApiError;
pub use metrics::serve_metrics;

/// The RabbitMQ release whose management API Warren's mirrors. Reported as
/// `rabbitmq_version`/`management_version` because HTTP clients branch on it.
pub const RABBITMQ_COMPAT_VERSION: &str = "3.10.0";

/// What every handler gets: the broker.
pub type Shared = Arc<BrokerState>;

/// Serves the management API on `listener` until `shutdown` becomes true; in-flight requests
/// finish first.
pub async fn serve(
    listener: TcpListener,
    state: Arc<BrokerState>,
    shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "management API listening");
    }
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(until_shutdown(shutdown))
        .await
    {
        tracing::error!(error = %e, "management API server failed");
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub(crate) async fn until_shutdown(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The management API's routes, behind basic auth. Public so embedders can mount it elsewhere.
pub fn router(state: Arc<BrokerState>) -> Router {
    use access as a;
    use runtime as r;
    use topology as t;
    let api = Router::new()
        .route("/api/overview", get(r::overview))
        .route("/api/cluster-name", get(r::cluster_name))
        .route("/api/nodes", get(r::nodes))
        .route("/api/extensions", get(r::extensions))
        .route("/api/whoami", get(a::whoami))
        .route("/api/vhosts", get(a::list_vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(a::get_vhost).put(a::put_vhost).delete(a::delete_vhost),
        )
        .route("/api/vhosts/{vhost}/permissions", get(a::vhost_permissions))
        .route("/api/vhosts/{vhost}/connections", get(r::vhost_connections))
        .route("/api/vhosts/{vhost}/channels", get(r::vhost_channels))
        .route("/api/users", get(a::list_users))
        .route(
            "/api/users/{user}",
            get(a::get_user).put(a::put_user).delete(a::delete_user),
        )
        .route("/api/users/{user}/permissions", get(a::user_permissions))
        .route("/api/permissions", get(a::list_permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(a::get_permissions)
                .put(a::put_permissions)
                .delete(a::delete_permissions),
        )
        .route("/api/definitions", get(a::export_all).post(a::import_all))
        .route(
            "/api/definitions/{vhost}",
            get(a::export_vhost).post(a::import_vhost),
        )
        .route("/api/policies", get(policies::list_all::<false>))
        .route("/api/policies/{vhost}", get(policies::list_vhost::<false>))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::get_policy::<false>)
                .put(policies::put_policy::<false>)
                .delete(policies::delete_policy::<false>),
        )
        .route("/api/operator-policies", get(policies::list_all::<true>))
        .route(
            "/api/operator-policies/{vhost}",
            get(policies::list_vhost::<true>),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::get_policy::<true>)
                .put(policies::put_policy::<true>)
                .delete(policies::delete_policy::<true>),
        )
        .route("/api/connections", get(r::list_connections))
        .route(
            "/api/connections/{name}",
            get(r::get_connection).delete(r::close_connection),
        )
        .route(
            "/api/connections/{name}/channels",
            get(r::connection_channels),
        )
        .route("/api/channels", get(r::list_channels))
        .route("/api/channels/{name}", get(r::get_channel))
        .route("/api/consumers", get(r::list_consumers))
        .route("/api/consumers/{vhost}", get(r::vhost_consumers))
        .route("/api/exchanges", get(t::list_exchanges))
        .route("/api/exchanges/{vhost}", get(t::vhost_exchanges))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(t::get_exchange)
                .put(t::put_exchange)
                .delete(t::delete_exchange),
        )
        .route("/api/exchanges/{vhost}/{name}/publish", post(t::publish))
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(t::exchange_bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(t::exchange_bindings_destination),
        )
        .route("/api/queues", get(t::list_queues))
        .route("/api/queues/{vhost}", get(t::vhost_queues))
        .route(
            "/api/queues/{vhost}/{name}",
            get(t::get_queue).put(t::put_queue).delete(t::delete_queue),
        )
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(t::queue_bindings),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(t::purge_queue),
        )
        .route("/api/queues/{vhost}/{name}/get", post(t::get_messages))
        .route("/api/bindings", get(t::list_bindings))
        .route("/api/bindings/{vhost}", get(t::vhost_bindings))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(t::bindings_between).post(t::create_binding),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(t::get_binding).delete(t::delete_binding),
        )
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    // The web UI's files load without credentials; only its API calls are authenticated.
    api.merge(ui::routes())
        .layer(axum::middleware::from_fn(ui::no_prompt_for_scripts))
        .with_state(state)
}

/// This node's name in API responses and metrics labels, RabbitMQ-style (`warren@host`).
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("warren@{host}")
}
