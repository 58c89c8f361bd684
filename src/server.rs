//! Accept loops and shutdown: one task per connection; on shutdown every connection is told to
//! close with 320 CONNECTION_FORCED and the loop waits (bounded) for them to finish.

use crate::broker::BrokerState;
use crate::connection;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// The AMQPS listener and the acceptor its sockets are handed to.
pub struct TlsListener {
    pub listener: TcpListener,
    pub acceptor: TlsAcceptor,
}

async fn accept_tls(tls: Option<&TlsListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match tls {
        Some(t) => t.listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Runs the accept loops (plain AMQP, and AMQPS when configured) until `shutdown` flips to
/// true, then drains connections.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsListener>,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Each connection task holds a clone of `alive`; the drain completes when all are dropped.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    loop {
        let (res, is_tls) = tokio::select! {
            res = listener.accept() => (res, false),
            res = accept_tls(tls.as_ref()) => (res, true),
            _ = shutdown.changed() => break,
        };
        let (socket, peer) = match res {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, tls = is_tls, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        let alive = alive.clone();
        match (is_tls, &tls) {
            (true, Some(t)) => {
                let acceptor = t.acceptor.clone();
                // The handshake runs in the connection's own task: a slow or hostile client
                // must not hold up the accept loop.
                tokio::spawn(async move {
                    let stream = tokio::select! {
                        s = crate::tls::handshake(&acceptor, socket, peer) => s,
                        _ = shutdown.changed() => None,
                    };
                    if let Some(stream) = stream {
                        connection::run(stream, peer, state, shutdown).await;
                    }
                    drop(alive);
                });
            }
            _ => {
                tokio::spawn(async move {
                    connection::run(socket, peer, state, shutdown).await;
                    drop(alive);
                });
            }
        }
    }
    drop(listener);
    drop(tls);
    drop(alive);
    let _ = tokio::time::timeout(Duration::from_secs(5), drained.recv()).await;
}
