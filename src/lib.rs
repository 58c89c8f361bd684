//! Warren: an AMQP 0-9-1 message broker.
//!
//! Layout (where a line belongs):
//! - `protocol/`: wire bytes (frame codec, content reassembly).
//! - `connection/`: handshake, the connection task, coalesced writes.
//! - `channel/`: what a method means for this client (topology, publish, consume, confirms, tx).
//! - `vhost/` + `exchange/`: where a message goes.
//! - `queue/`: what happens to a message inside a queue.
//! - `store/`: where queued messages are kept.
//! - `auth`: users, password hashes, permissions.
//! - `ctl`: the `warren ctl` command line, a client of the management API.
//! - `policy`: RabbitMQ-style policies (validation, selection, precedence over x-arguments).
//!
//! [`Broker::start`] runs a broker in-process (the binary and the tests both use it).

pub mod alarm;
pub mod auth;
pub mod broker;
pub mod channel;
pub mod config;
pub mod connection;
pub mod ctl;
pub mod dedup;
pub mod error;
pub mod exchange;
pub mod http;
pub mod message;
pub mod policy;
pub mod protocol;
pub mod queue;
pub mod server;
pub mod stats;
pub mod store;
pub mod tls;
pub mod vhost;

pub use config::Config;

/// The hasher of the maps looked up per message (channels, consumers, exchanges, queues,
/// bindings). SipHash cost ~10% of the broker's instructions per message; foldhash is several
/// times cheaper and still seeded per process, so clients cannot pick colliding names offline.
pub type FastHash = foldhash::fast::RandomState;
/// A `HashMap` with [`FastHash`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;

use broker::BrokerState;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    state: Arc<BrokerState>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Broker {
    /// Binds the listener and starts accepting connections.
    pub async fn start(mut config: Config) -> std::io::Result<Broker> {
        // Bad certificate files stop the start, before anything is bound.
        let acceptor = tls::acceptor(&config)?;
        let listener = tokio::net::TcpListener::bind((config.bind.as_str(), config.port)).await?;
        let local_addr = listener.local_addr()?;
        // The management API reports the real port and names connections by it.
        config.port = local_addr.port();
        let tls = match acceptor {
            Some(acceptor) => {
                let listener =
                    tokio::net::TcpListener::bind((config.bind.as_str(), config.tls_port)).await?;
                config.tls_port = listener.local_addr()?.port();
                Some(server::TlsListener { listener, acceptor })
            }
            None => None,
        };
        let tls_addr = tls.as_ref().map(|t| t.listener.local_addr()).transpose()?;
        let http = bind_optional(&config.http_bind, config.http_port).await?;
        let metrics = bind_optional(&config.http_bind, config.metrics_port).await?;
        let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
        let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
        // A data dir the user cannot write (a root-owned bind mount under the Docker image's
        // non-root USER) would otherwise be reported as a bare "Permission denied".
        let in_data_dir = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("data dir {}: {e}", config.data_dir.display()),
            )
        };
        std::fs::create_dir_all(&config.data_dir).map_err(in_data_dir)?;
        let store =
            store::StoreEnv::new(config.data_dir.clone(), config.fsync).map_err(in_data_dir)?;
        let store = Arc::new(store);
        let state = Arc::new(BrokerState::new(config, store.clone()));
        restore_definitions(&state)?;
        let (shutdown, rx) = watch::channel(false);
        state.alarms.check_disk(&state.config.data_dir);
        tokio::spawn(
            state
                .alarms
                .clone()
                .run(state.config.data_dir.clone(), rx.clone()),
        );
        if let Some(l) = http {
            tokio::spawn(http::serve(l, state.clone(), rx.clone()));
            // Rates are only shown by the API, so only its presence pays for sampling.
            let every = std::time::Duration::from_millis(state.config.stats_interval_ms.max(100));
            tokio::spawn(http::runtime::sample_rates(
                state.clone(),
                every,
                rx.clone(),
            ));
        }
        if let Some(l) = metrics {
            tokio::spawn(http::serve_metrics(l, state.clone(), rx.clone()));
        }
        let server = tokio::spawn(server::serve(listener, tls, state.clone(), rx));
        if let Some(addr) = tls_addr {
            tracing::info!(%addr, "ready to accept AMQPS connections");
        }
        tracing::info!(%local_addr, "ready to accept connections");
        Ok(Broker {
            local_addr,
            tls_addr,
            http_addr,
            metrics_addr,
            state,
            shutdown,
            server,
        })
    }

    /// The address the AMQP listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the AMQPS listener, when TLS is configured (useful with port 0).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Where the management API listens, if enabled (useful with port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where Prometheus metrics are served, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Shared state, for embedding and inspection.
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Creates or replaces a user; `tags` like RabbitMQ's ("administrator", "management").
    pub fn add_user(&self, name: &str, password: &str, tags: &[&str]) {
        self.state.add_user(name, password, tags)
    }

    /// Removes a user; open connections of that user stay open, as in RabbitMQ.
    pub fn delete_user(&self, name: &str) -> bool {
        self.state.delete_user(name)
    }

    /// Creates a virtual host (no-op if it exists).
    pub fn add_vhost(&self, name: &str) {
        self.state.add_vhost(name)
    }

    /// Grants a user access to a vhost with RabbitMQ's three permission regexes.
    pub fn set_permissions(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), String> {
        self.state
            .set_permissions(user, vhost, configure, write, read)
    }

    /// Changes the free-disk limit at run time and re-evaluates the alarm at once.
    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.state
            .alarms
            .disk_free_limit
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        self.state.alarms.check_disk(&self.state.config.data_dir);
    }

    /// Changes the resident-memory limit (bytes, 0 = none) and re-evaluates the alarm.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.state
            .alarms
            .memory_limit
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        self.state.alarms.check_memory();
    }

    /// Closes every connection with 320 CONNECTION_FORCED and stops accepting; returns once
    /// connections have finished (bounded).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }
}

/// Binds `host:port` when a port is configured.
async fn bind_optional(
    host: &str,
    port: Option<u16>,
) -> std::io::Result<Option<tokio::net::TcpListener>> {
    match port {
        Some(port) => Ok(Some(tokio::net::TcpListener::bind((host, port)).await?)),
        None => Ok(None),
    }
}

/// Replays the durable definitions log into a fresh state, starts logging, and removes the
/// files of durable queues that no longer exist.
fn restore_definitions(state: &BrokerState) -> std::io::Result<()> {
    use store::definitions;
    let seed = definitions::export(state);
    let (log, model) = definitions::DefinitionsLog::open_seeded(&state.config.data_dir, &seed)?;
    if let Err(e) = definitions::restore(state, &model) {
        tracing::error!(error = %e, "some durable definitions could not be restored");
    }
    state.store.set_definitions_log(log);
    let mut live = std::collections::HashSet::new();
    for vhost in state.vhosts.iter() {
        for q in vhost.queues.iter() {
            if definitions::is_persistent_queue(&q) {
                live.insert(state.store.queue_dir(&vhost.name, &q.name));
            }
        }
        for ex in vhost.exchanges.iter() {
            if ex.is_delayed() && ex.options.durable {
                let name = exchange::delayed::store_name(&ex.name);
                live.insert(state.store.queue_dir(&vhost.name, &name));
            }
        }
    }
    state.store.remove_orphans(&live);
    Ok(())
}
