//! Broker-wide state: users, vhosts, permissions and live connections. One `Arc<BrokerState>` is
//! shared by every connection task; each registry is a concurrent map owned here and nowhere else.

use crate::auth::{self, Permissions};
use crate::config::Config;
use crate::connection::ConnSender;
use crate::store::definitions::DefOp;
use crate::vhost::VHost;
use dashmap::DashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A broker user.
#[derive(Clone, Debug)]
pub struct User {
    /// RabbitMQ-format salted SHA-256 hash, so definitions move between brokers unchanged.
    pub password_hash: String,
    /// Tags such as "administrator" (used by the management API).
    pub tags: Vec<String>,
}

/// What the broker knows about a live connection, for direct reply-to and forced closes.
pub struct ConnInfo {
    pub tx: ConnSender,
    pub user: String,
    pub vhost: String,
    pub peer: SocketAddr,
    /// The connection's message counters (written by its task only).
    pub counters: Arc<crate::stats::MsgCounters>,
    /// When the connection opened, ms since the epoch.
    pub connected_at: u64,
    /// The client's name (client_properties.connection_name, else product).
    pub client_name: String,
    /// The client's client_properties, still encoded as a field table.
    pub client_properties: Box<[u8]>,
    /// The TLS version (RabbitMQ's spelling) for AMQPS connections, `None` for plain TCP.
    pub tls: Option<&'static str>,
}

/// Shared broker state.
pub struct BrokerState {
    pub config: Config,
    /// Message storage shared by every queue (and its group-commit thread).
    pub store: Arc<crate::store::StoreEnv>,
    /// Resource alarms (free disk) that block publishers.
    pub alarms: Arc<crate::alarm::AlarmMonitor>,
    pub users: DashMap<String, User>,
    pub vhosts: DashMap<String, Arc<VHost>>,
    /// Keyed by (user, vhost).
    pub permissions: DashMap<(String, String), Permissions>,
    pub connections: DashMap<u64, ConnInfo>,
    /// Message counters of closed connections, and the lock that keeps totals monotonic.
    pub stats: crate::stats::BrokerStats,
    next_conn_id: AtomicU64,
}

impl BrokerState {
    /// Message counters over the broker's lifetime: closed connections plus live ones.
    pub fn message_totals(&self) -> crate::stats::Counts {
        self.stats.total(|f| {
            for c in self.connections.iter() {
                f(&c.counters);
            }
        })
    }

    /// Messages dead-lettered and dropped, per reason, over all vhosts:
    /// (reason, dead-lettered, dropped).
    pub fn losses(&self) -> Vec<(&'static str, u64, u64)> {
        let mut out: Vec<(&'static str, u64, u64)> = Vec::new();
        for vh in self.vhosts.iter() {
            for (reason, d, x) in vh.losses.losses() {
                match out.iter_mut().find(|r| r.0 == reason) {
                    Some(r) => {
                        r.1 += d;
                        r.2 += x;
                    }
                    None => out.push((reason, d, x)),
                }
            }
        }
        out
    }

    /// Fresh state with the default vhost "/" and the default user with full rights on it.
    pub fn new(config: Config, store: Arc<crate::store::StoreEnv>) -> Self {
        let available = crate::alarm::total_memory().unwrap_or(0);
        let memory_limit = (available as f64 * config.vm_memory_high_watermark) as u64;
        tracing::info!(
            limit_bytes = memory_limit,
            available_bytes = available,
            "memory high watermark (of physical memory or the cgroup limit, the lower)"
        );
        let st = BrokerState {
            store,
            alarms: crate::alarm::AlarmMonitor::new(config.disk_free_limit, memory_limit),
            users: DashMap::new(),
            vhosts: DashMap::new(),
            permissions: DashMap::new(),
            connections: DashMap::new(),
            stats: Default::default(),
            next_conn_id: AtomicU64::new(1),
            config,
        };
        st.add_vhost("/");
        let (u, p) = (
            st.config.default_user.clone(),
            st.config.default_pass.clone(),
        );
        st.add_user(&u, &p, &["administrator"]);
        st.permissions.insert((u, "/".into()), Permissions::full());
        st
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add_user(&self, name: &str, password: &str, tags: &[&str]) {
        self.put_user_hash(name, &auth::hash_password(password), tags);
    }

    /// Creates or replaces a user from an existing RabbitMQ-format hash (definitions import).
    pub fn put_user_hash(&self, name: &str, password_hash: &str, tags: &[&str]) {
        let user = User {
            password_hash: password_hash.to_owned(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        self.store.log(&DefOp::user(name, &user));
        self.users.insert(name.to_owned(), user);
    }

    pub fn delete_user(&self, name: &str) -> bool {
        self.permissions.retain(|(u, _), _| u != name);
        let removed = self.users.remove(name).is_some();
        if removed {
            self.store.log(&DefOp::DeleteUser {
                name: name.to_owned(),
            });
        }
        removed
    }

    pub fn add_vhost(&self, name: &str) {
        let mut created = false;
        self.vhosts.entry(name.to_owned()).or_insert_with(|| {
            created = true;
            Arc::new(VHost::new(name, self.store.clone()))
        });
        if created {
            self.store.log(&DefOp::vhost(name));
        }
    }

    pub fn set_permissions(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), String> {
        if !self.users.contains_key(user) {
            return Err(format!("no such user '{user}'"));
        }
        if !self.vhosts.contains_key(vhost) {
            return Err(format!("no such vhost '{vhost}'"));
        }
        let p = Permissions::new(configure, write, read).map_err(|e| e.to_string())?;
        self.store.log(&DefOp::permissions(user, vhost, &p));
        self.permissions
            .insert((user.to_owned(), vhost.to_owned()), p);
        Ok(())
    }

    /// Checks credentials; `None` when refused.
    pub fn authenticate(&self, user: &str, password: &str) -> Option<User> {
        let u = self.users.get(user)?.clone();
        auth::check_password(&u.password_hash, password).then_some(u)
    }
}
