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
//!
//! [`Broker::start`] runs a broker in-process (the binary and the tests both use it).

pub mod config;
pub use config::Config;

use std::net::SocketAddr;

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    local_addr: SocketAddr,
}

impl Broker {
    /// Binds the listener and starts accepting connections.
    pub async fn start(_config: Config) -> std::io::Result<Broker> {
        todo!()
    }

    /// The address the AMQP listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Creates or replaces a user; `tags` like RabbitMQ's ("administrator", "management").
    pub fn add_user(&self, _name: &str, _password: &str, _tags: &[&str]) {
        todo!()
    }

    /// Removes a user; open connections of that user stay open, as in RabbitMQ.
    pub fn delete_user(&self, _name: &str) -> bool {
        todo!()
    }

    /// Creates a virtual host (no-op if it exists).
    pub fn add_vhost(&self, _name: &str) {
        todo!()
    }

    /// Grants a user access to a vhost with RabbitMQ's three permission regexes.
    pub fn set_permissions(
        &self,
        _user: &str,
        _vhost: &str,
        _configure: &str,
        _write: &str,
        _read: &str,
    ) -> Result<(), String> {
        todo!()
    }

    /// Closes every connection with 320 CONNECTION_FORCED and stops accepting.
    pub async fn shutdown(self) {
        todo!()
    }
}
