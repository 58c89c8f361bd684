//! Accept loop and shutdown: one task per connection; on shutdown every connection is told to
//! close with 320 CONNECTION_FORCED and the loop waits (bounded) for them to finish.

use crate::broker::BrokerState;
use crate::connection;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Runs the accept loop until `shutdown` flips to true, then drains connections.
pub async fn serve(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Each connection task holds a clone of `alive`; the drain completes when all are dropped.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, peer)) => {
                    let state = state.clone();
                    let shutdown = shutdown.clone();
                    let alive = alive.clone();
                    tokio::spawn(async move {
                        connection::run(socket, peer, state, shutdown).await;
                        drop(alive);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    drop(alive);
    let _ = tokio::time::timeout(Duration::from_secs(5), drained.recv()).await;
}
