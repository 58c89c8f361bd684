//! The write half of a connection. The connection task encodes frames into one buffer per loop
//! turn, so a batch of frames costs one write.
//!
//! Plain TCP is written by the connection task itself: a `try_write` straight from its buffer,
//! with no hand-over to another task. That saves a task wake-up and a buffer swap per batch,
//! which is most of a delivery's latency at low rates. What the socket does not take stays as a
//! backlog that the connection task drains when the socket is writable, while it goes on
//! reading; past `BACKLOG_LIMIT` the task waits for the socket, so a client that does not read
//! stops its connection instead of growing memory.
//!
//! TLS keeps a writer task: its stream has no `try_write`, and a rustls session may hold
//! ciphertext that only a later poll pushes out.

use std::io;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Buffers queued towards a writer task before the connection task waits.
pub const QUEUED_BUFFERS: usize = 4;

/// Unwritten bytes a direct writer keeps before the connection task waits for the socket
/// (about what `QUEUED_BUFFERS` busy buffers hold).
const BACKLOG_LIMIT: usize = 256 * 1024;

/// How long closing waits for the client to take what is still unwritten.
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Buffers larger than this (a large message went through) are not kept for reuse.
const KEEP_CAPACITY: usize = 1 << 20;

/// The socket failed or the writer is gone: the connection ends.
#[derive(Debug)]
pub struct Closed;

/// Where a connection's output goes.
pub enum Output {
    Direct {
        socket: OwnedWriteHalf,
        /// Bytes the socket has not taken yet, in order, before anything newer.
        backlog: Vec<u8>,
    },
    Task {
        tx: mpsc::Sender<Vec<u8>>,
        recycle: mpsc::UnboundedReceiver<Vec<u8>>,
        task: JoinHandle<()>,
    },
}

impl Output {
    pub fn direct(socket: OwnedWriteHalf) -> Self {
        Output::Direct {
            socket,
            backlog: Vec::new(),
        }
    }

    /// Spawns a writer task for a stream without `try_write`.
    pub fn task<W: AsyncWrite + Unpin + Send + 'static>(socket: W) -> Self {
        let (tx, rx) = mpsc::channel(QUEUED_BUFFERS);
        let (recycle_tx, recycle) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(socket, rx, recycle_tx));
        Output::Task { tx, recycle, task }
    }

    /// Sends everything in `out` (or takes it as backlog) and leaves `out` empty for the next
    /// batch. Waits only when the backlog is over its limit (or the writer task's queue full).
    pub async fn send(&mut self, out: &mut Vec<u8>) -> Result<(), Closed> {
        match self {
            Output::Direct { socket, backlog } => {
                if backlog.is_empty() {
                    let n = write_now(socket, out)?;
                    if n < out.len() {
                        backlog.extend_from_slice(&out[n..]);
                    }
                } else {
                    backlog.extend_from_slice(out);
                }
                out.clear();
                if out.capacity() > KEEP_CAPACITY {
                    *out = Vec::new();
                }
                while backlog.len() > BACKLOG_LIMIT {
                    socket.writable().await.map_err(|_| Closed)?;
                    drain(socket, backlog)?;
                }
                Ok(())
            }
            Output::Task { tx, recycle, .. } => {
                let next = recycle.try_recv().unwrap_or_default();
                let buf = std::mem::replace(out, next);
                tx.send(buf).await.map_err(|_| Closed)
            }
        }
    }

    /// Bytes are waiting for the socket to become writable.
    pub fn has_backlog(&self) -> bool {
        matches!(self, Output::Direct { backlog, .. } if !backlog.is_empty())
    }

    /// Waits until the socket is writable and writes what it takes of the backlog
    /// (cancel-safe: nothing is written until the wait is over).
    pub async fn progress(&mut self) -> Result<(), Closed> {
        if let Output::Direct { socket, backlog } = self
            && !backlog.is_empty()
        {
            socket.writable().await.map_err(|_| Closed)?;
            drain(socket, backlog)?;
        }
        Ok(())
    }

    /// Idle: gives back buffers a burst grew.
    pub fn trim(&mut self) {
        match self {
            Output::Direct { backlog, .. } => {
                if backlog.is_empty() {
                    *backlog = Vec::new();
                }
            }
            Output::Task { recycle, .. } => while recycle.try_recv().is_ok() {},
        }
    }

    /// Writes what is left (bounded in time) and shuts the socket down.
    pub async fn close(self) {
        match self {
            Output::Direct {
                mut socket,
                backlog,
            } => {
                let _ = tokio::time::timeout(CLOSE_DRAIN, async {
                    if socket.write_all(&backlog).await.is_ok() {
                        let _ = socket.shutdown().await;
                    }
                })
                .await;
            }
            Output::Task { tx, task, .. } => {
                drop(tx);
                let _ = task.await;
            }
        }
    }
}

/// Writes as much of `buf` as the socket takes without waiting.
fn write_now(socket: &OwnedWriteHalf, buf: &[u8]) -> Result<usize, Closed> {
    let mut done = 0;
    while done < buf.len() {
        match socket.try_write(&buf[done..]) {
            Ok(0) => return Err(Closed),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "write failed");
                return Err(Closed);
            }
        }
    }
    Ok(done)
}

fn drain(socket: &OwnedWriteHalf, backlog: &mut Vec<u8>) -> Result<(), Closed> {
    let n = write_now(socket, backlog)?;
    backlog.drain(..n);
    Ok(())
}

/// A writer task: writes buffers until the sender is dropped or the socket fails, returning
/// emptied buffers for reuse.
async fn run<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    recycle: mpsc::UnboundedSender<Vec<u8>>,
) {
    while let Some(mut buf) = rx.recv().await {
        // A rustls stream may accept the last bytes into its session and return before their
        // records reach the socket (when the socket is full); only a flush pushes them out.
        // Without it they waited for the connection's next output, possibly forever.
        let written = match socket.write_all(&buf).await {
            Ok(()) => socket.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "write failed");
            break;
        }
        buf.clear();
        if buf.capacity() <= KEEP_CAPACITY {
            let _ = recycle.send(buf);
        }
    }
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    /// A stream that, like a TLS session, takes bytes on write and sends them on only when
    /// flushed.
    #[derive(Default)]
    struct Session {
        held: Vec<u8>,
        sent: Arc<Mutex<Vec<u8>>>,
    }

    impl AsyncWrite for Session {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.held.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let held = std::mem::take(&mut self.held);
            self.sent.lock().unwrap().extend_from_slice(&held);
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.poll_flush(cx)
        }
    }

    #[tokio::test]
    async fn a_writer_task_pushes_each_buffer_out_without_waiting_for_the_next() {
        let session = Session::default();
        let sent = session.sent.clone();
        let mut out = Output::task(session);
        let mut buf = b"frames".to_vec();
        out.send(&mut buf).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while sent.lock().unwrap().as_slice() != b"frames" {
            assert!(
                std::time::Instant::now() < deadline,
                "the buffer stayed in the session"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        out.close().await;
    }
}
