//! The write half of a connection. The connection task encodes frames into a buffer and hands
//! whole buffers over here, so a batch of frames costs one write; the bounded hand-over queue is
//! what makes a slow-reading client stop the connection task instead of growing memory.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Buffers queued towards the socket before the connection task waits.
pub const QUEUED_BUFFERS: usize = 4;

/// Writes buffers until the sender is dropped or the socket fails, returning emptied buffers
/// for reuse.
pub async fn run<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    recycle: mpsc::UnboundedSender<Vec<u8>>,
) {
    while let Some(mut buf) = rx.recv().await {
        if let Err(e) = socket.write_all(&buf).await {
            tracing::debug!(error = %e, "write failed");
            break;
        }
        buf.clear();
        // Oversized buffers (a large message went through) are not worth keeping around.
        if buf.capacity() <= 1 << 20 {
            let _ = recycle.send(buf);
        }
    }
    let _ = socket.shutdown().await;
}
