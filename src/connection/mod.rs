//! The connection task: one per client socket. It owns the connection's channels as plain
//! structs, reads and dispatches frames, and turns events pushed by queues (deliveries, consumer
//! cancellations, direct replies, forced closes) into frames. Writes go through `writer`.
//!
//! Invariants: a hard error sends connection.close once and then only close-ok is awaited
//! (bounded); a soft error closes only its channel; nothing received from the peer can panic this
//! task or touch another connection's state.

pub mod handshake;
pub mod writer;

use crate::auth::Permissions;
use crate::broker::{BrokerState, ConnInfo};
use crate::channel::Channel;
use crate::error::AmqpError;
use crate::message::Message;
use crate::protocol::codec::{self, FRAME_MIN_SIZE, Frame, PROTOCOL_HEADER};
use crate::queue::{Credit, Queue};
use crate::store::QueuedMessage;
use crate::store::sync::SyncState;
use crate::vhost::VHost;
use amq_protocol::protocol::{AMQPClass, connection};
use bytes::BytesMut;
use handshake::ClientCaps;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

/// Events other tasks push to a connection. Unbounded: every producer is bounded by protocol
/// credit (prefetch, the no-ack budget) or is a rare control event.
pub enum ConnEvent {
    Deliver {
        channel: u16,
        consumer_tag: Arc<str>,
        queue: Arc<Queue>,
        message: QueuedMessage,
        no_ack: bool,
    },
    /// The queue behind a consumer went away (basic.cancel to clients that support it).
    ConsumerCancelled {
        channel: u16,
        consumer_tag: Arc<str>,
    },
    /// A reply published to this connection's direct reply-to pseudo-queue.
    DirectReply {
        channel: u16,
        secret: u64,
        message: Arc<Message>,
    },
    /// Close the connection (broker shutdown, operator request).
    Close { code: u16, text: String },
    /// The management API asks for the open channels.
    Inspect(tokio::sync::oneshot::Sender<Vec<crate::channel::ChannelInfo>>),
    /// A queue this connection consumes from got a new consumer timeout (policy change).
    ConsumerTimeoutChanged,
}

/// Sending half of a connection's event queue.
pub type ConnSender = mpsc::UnboundedSender<ConnEvent>;

/// How long we wait for close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A client's byte stream: plain TCP, or TLS over TCP. The connection code is generic over it
/// (not boxed) so plain TCP keeps its lock-free owned halves and static dispatch; only TLS,
/// whose reads and writes share one session, pays for `tokio::io::split`'s lock.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn split(self) -> (Self::Read, Self::Write);
    /// Where the connection's frames go once split.
    fn output(write: Self::Write) -> writer::Output;
    /// The negotiated TLS version as RabbitMQ names it, `None` for plain TCP.
    fn tls_protocol(&self) -> Option<&'static str>;
}

impl Transport for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn split(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
    fn output(write: Self::Write) -> writer::Output {
        writer::Output::direct(write)
    }
    fn tls_protocol(&self) -> Option<&'static str> {
        None
    }
}

impl Transport for crate::tls::TlsStream {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
    fn output(write: Self::Write) -> writer::Output {
        writer::Output::task(write)
    }
    fn tls_protocol(&self) -> Option<&'static str> {
        Some(crate::tls::protocol_name(self))
    }
}

/// Reads whole frames off the socket.
pub struct FrameReader<R> {
    socket: R,
    buf: BytesMut,
}

/// Why reading stopped.
pub enum ReadError {
    Amqp(AmqpError),
    Io,
    Eof,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Next complete frame (cancel-safe: partial input stays in the buffer).
    pub async fn next(&mut self, frame_max: u32) -> Result<Frame, ReadError> {
        loop {
            if let Some(f) = codec::decode(&mut self.buf, frame_max).map_err(ReadError::Amqp)? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes (cancel-safe).
    async fn fill(&mut self) -> Result<(), ReadError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            // Grow with demand: a busy publisher's reads reach 64 KiB, an idle connection's
            // buffer stays small (memory per idle connection is a target).
            let want = if self.buf.capacity() >= 16 * 1024 {
                64 * 1024
            } else {
                16 * 1024
            };
            self.buf.reserve(want);
        }
        match self.socket.read_buf(&mut self.buf).await {
            Ok(0) => Err(ReadError::Eof),
            Ok(_) => Ok(()),
            Err(_) => Err(ReadError::Io),
        }
    }
}

/// Per-connection context handed to channel handlers.
pub struct ConnCtx {
    pub id: u64,
    pub state: Arc<BrokerState>,
    pub vhost: Arc<VHost>,
    pub user: String,
    pub perms: Permissions,
    pub frame_max: u32,
    pub caps: ClientCaps,
    /// Frames encoded since the last flush.
    pub out: Vec<u8>,
    /// Our own event sender, given to queues for deliveries.
    pub tx: ConnSender,
    /// Exclusive queues declared here; deleted when the connection ends.
    pub exclusive_queues: Vec<Arc<Queue>>,
    /// The client has published: resource alarms block it.
    pub published: bool,
    /// Message counters, shared read-only with the management API.
    pub counters: Arc<crate::stats::MsgCounters>,
    /// When the current batch of queue events started: deliveries are stamped with it for the
    /// consumer timeout (minutes), instead of reading the clock per message.
    pub now: std::time::Instant,
    /// Queues published to during the current socket read, flushed at its end.
    pub batch: crate::queue::WriteBatch,
    /// Queues whose stored messages were delivered here since the last write: their
    /// delivered marks are written before the deliveries reach the socket.
    pub marks: Vec<Arc<Queue>>,
    /// No-ack credit freed by deliveries encoded since the last write, per consumer. It goes
    /// back in one update and one dispatch per batch: returned per message, every delivery to
    /// a consumer whose budget ran out cost a queue lock and a dispatch of one message.
    pub no_ack_returns: Vec<(Arc<Credit>, Arc<Queue>, u32)>,
}

impl ConnCtx {
    pub fn mark_delivered(&mut self, q: &Arc<Queue>) {
        if !self.marks.iter().any(|m| Arc::ptr_eq(m, q)) {
            self.marks.push(q.clone());
        }
    }

    pub fn return_no_ack_credit(&mut self, credit: &Arc<Credit>, q: &Arc<Queue>) {
        match self
            .no_ack_returns
            .iter_mut()
            .find(|(c, _, _)| Arc::ptr_eq(c, credit))
        {
            Some((_, _, n)) => *n += 1,
            None => self.no_ack_returns.push((credit.clone(), q.clone(), 1)),
        }
    }

    fn give_back_no_ack_credit(&mut self) {
        for (credit, q, n) in self.no_ack_returns.drain(..) {
            if credit.release_n(n) {
                q.dispatch();
            }
        }
    }

    /// One mark write per queue per socket write, instead of one per dispatch: a crash after
    /// the client saw a delivery still finds it marked, and recovery flags it redelivered.
    fn write_marks(&mut self) {
        for q in self.marks.drain(..) {
            q.write_delivered();
        }
    }

    pub fn send_method(&mut self, channel: u16, method: AMQPClass) {
        codec::encode_method(&mut self.out, channel, method);
    }
}

/// Serves one client socket to completion.
pub async fn run<S: Transport>(
    socket: S,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    shutdown: watch::Receiver<bool>,
) {
    let id = state.next_conn_id();
    let span = tracing::info_span!("conn", id, %peer, user = tracing::field::Empty, vhost = tracing::field::Empty);
    serve(socket, peer, state, shutdown, id)
        .instrument(span)
        .await
}

async fn serve<S: Transport>(
    mut socket: S,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    id: u64,
) {
    let tls = socket.tls_protocol();
    let mut header = [0u8; 8];
    match tokio::time::timeout(Duration::from_secs(10), socket.read_exact(&mut header)).await {
        Ok(Ok(_)) if &header == PROTOCOL_HEADER => {}
        Ok(Ok(_)) => {
            tracing::info!("unsupported protocol header {:?}", header);
            let _ = socket.write_all(PROTOCOL_HEADER).await;
            let _ = socket.shutdown().await;
            return;
        }
        _ => return,
    }
    let (read_half, write_half) = socket.split();
    let mut output = S::output(write_half);
    let mut reader = FrameReader {
        socket: read_half,
        buf: BytesMut::with_capacity(4096),
    };

    let opened = match handshake::run(&mut reader, &mut output, &state, peer).await {
        Ok(o) => o,
        Err(handshake::Failed::Close(err)) => {
            let mut buf = Vec::new();
            codec::encode_method(&mut buf, 0, close_method(&err));
            let _ = output.send(&mut buf).await;
            // Give the client a moment to read the close before the socket goes.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, reader.next(FRAME_MIN_SIZE)).await;
            output.close().await;
            return;
        }
        Err(handshake::Failed::Gone) => {
            output.close().await;
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("user", opened.user.as_str());
    span.record("vhost", opened.vhost.name.as_str());
    tracing::info!(client = %opened.client_name, tls = tls.unwrap_or("no"), "connection open");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let counters = Arc::new(crate::stats::MsgCounters::default());
    state.connections.insert(
        id,
        ConnInfo {
            tx: tx.clone(),
            user: opened.user.clone(),
            vhost: opened.vhost.name.clone(),
            peer,
            counters: counters.clone(),
            connected_at: crate::queue::now_ms(),
            client_name: opened.client_name.clone(),
            client_properties: opened.client_properties,
            tls,
        },
    );
    let mut sync_rx = state.store.coord.subscribe();
    let mut conn = Connection {
        ctx: ConnCtx {
            id,
            state: state.clone(),
            vhost: opened.vhost,
            user: opened.user,
            perms: opened.perms,
            frame_max: opened.frame_max,
            caps: opened.caps,
            out: Vec::new(),
            tx,
            exclusive_queues: Vec::new(),
            published: false,
            counters,
            now: std::time::Instant::now(),
            batch: Default::default(),
            marks: Vec::new(),
            no_ack_returns: Vec::new(),
        },
        channels: crate::FastMap::default(),
        channel_max: opened.channel_max,
        closing: None,
        done: false,
        wait_sync: None,
        client_closed: false,
        blocked_sent: false,
    };
    let heartbeat = Duration::from_secs(u64::from(opened.heartbeat));
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut ticker = tokio::time::interval(if heartbeat.is_zero() {
        Duration::from_secs(3600)
    } else {
        (heartbeat / 2).max(Duration::from_millis(500))
    });
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut alarm_rx = state.alarms.subscribe();
    // Frames that arrived in the same read as connection.open are already buffered.
    conn.process_buffer(&mut reader.buf);

    loop {
        // A publishing connection is not read while an alarm is raised (RabbitMQ's flow
        // control for resource alarms); consumers keep being served.
        let blocked = conn.ctx.published && alarm_rx.borrow().any();
        let timeout_at = conn
            .channels
            .values()
            .filter_map(|c| c.next_timeout)
            .min()
            .filter(|_| conn.closing.is_none());
        tokio::select! {
            biased;
            _ = shutdown.changed(), if conn.closing.is_none() => {
                conn.close_with(AmqpError::new(
                    crate::error::codes::CONNECTION_FORCED,
                    "broker forced connection closure with reason 'shutdown'",
                ));
            }
            _ = alarm_rx.changed() => {}
            _ = tokio::time::sleep_until(timeout_at.map(Instant::from_std).unwrap_or_else(Instant::now)), if timeout_at.is_some() => {
                conn.check_timeouts();
            }
            res = reader.fill(), if conn.wait_sync.is_none() && !blocked => {
                match res {
                    Ok(()) => last_read = Instant::now(),
                    Err(_) => break,
                }
                conn.quiet_self_wakes(&mut rx);
                conn.process_buffer(&mut reader.buf);
                conn.flush_confirms(*sync_rx.borrow());
            }
            res = sync_rx.changed(), if conn.sync_pending() => {
                if res.is_err() {
                    break;
                }
                let synced = *sync_rx.borrow_and_update();
                conn.flush_confirms(synced);
                if let Some((channel, epoch)) = conn.wait_sync {
                    let due = match synced {
                        SyncState::Synced(n) => n >= epoch,
                        SyncState::Failed => true,
                    };
                    if due {
                        conn.wait_sync = None;
                        if let Some(ch) = conn.channels.get_mut(&channel) {
                            ch.sync_done(&mut conn.ctx, synced);
                        }
                        // Frames that arrived meanwhile are still buffered.
                        conn.quiet_self_wakes(&mut rx);
                        conn.process_buffer(&mut reader.buf);
                        conn.flush_confirms(synced);
                    }
                }
            }
            res = output.progress(), if output.has_backlog() => {
                if res.is_err() {
                    break;
                }
            }
            Some(ev) = rx.recv() => {
                conn.ctx.now = std::time::Instant::now();
                conn.handle_event(ev);
                // Drain what is already queued so it goes out in the same write.
                for _ in 0..256 {
                    match rx.try_recv() {
                        Ok(ev) => conn.handle_event(ev),
                        Err(_) => break,
                    }
                }
            }
            _ = ticker.tick() => {
                // Give back buffers a burst grew: the read buffer of a publisher, the output
                // buffer of a consumer (a busy connection just grows them again).
                if reader.buf.is_empty() && reader.buf.capacity() > 16 * 1024 {
                    reader.buf = BytesMut::new();
                }
                if conn.ctx.out.is_empty() && conn.ctx.out.capacity() > 16 * 1024 {
                    conn.ctx.out = Vec::new();
                }
                output.trim();
                if blocked {
                    // Heartbeats are not read while blocked, so silence proves nothing.
                    last_read = Instant::now();
                }
                if !heartbeat.is_zero() {
                    if last_read.elapsed() > heartbeat * 2 {
                        tracing::warn!("missed heartbeats from client, timeout: {}s", heartbeat.as_secs());
                        break;
                    }
                    if last_write.elapsed() >= heartbeat / 2 && conn.ctx.out.is_empty() {
                        codec::encode_heartbeat(&mut conn.ctx.out);
                    }
                }
                if let Some(deadline) = conn.closing && Instant::now() >= deadline {
                    break;
                }
            }
        }
        let alarms = *alarm_rx.borrow();
        conn.notify_blocked(conn.ctx.published && alarms.any(), &alarms);
        conn.ctx.give_back_no_ack_credit();
        conn.ctx.write_marks();
        if !conn.ctx.out.is_empty() {
            if output.send(&mut conn.ctx.out).await.is_err() {
                break;
            }
            last_write = Instant::now();
        }
        if conn.done() {
            break;
        }
        if conn.closing.is_some() {
            // While closing, wake up for the deadline even without heartbeats.
            ticker.reset_after(CLOSE_TIMEOUT.min(Duration::from_millis(500)));
        }
    }
    conn.cleanup();
    // Deliveries queued for us after the loop's last turn: with the channels gone, handling
    // them puts acking ones back in their queues instead of dropping them with the channel.
    rx.close();
    while let Ok(ev) = rx.try_recv() {
        if matches!(ev, ConnEvent::Deliver { .. }) {
            conn.handle_event(ev);
        }
    }
    state.stats.retire(&conn.ctx.counters, || {
        state.connections.remove(&id);
    });
    if conn.client_closed {
        // After close-ok the client closes the socket; closing first can make it see a reset
        // before it has read close-ok. Wait briefly for its EOF, as RabbitMQ does.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while reader.fill().await.is_ok() {
                reader.buf.clear();
            }
        })
        .await;
    }
    output.close().await;
    tracing::info!("connection closed");
}

fn close_method(err: &AmqpError) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: err.code,
        reply_text: err.text.as_str().into(),
        class_id: err.class_id,
        method_id: err.method_id,
    }))
}

/// A connection after its handshake.
pub struct Connection {
    pub ctx: ConnCtx,
    channels: crate::FastMap<u16, Channel>,
    channel_max: u16,
    /// Set once we sent connection.close: the deadline for the peer's close-ok.
    closing: Option<Instant>,
    /// The connection is finished (close handshake complete or unrecoverable).
    done: bool,
    /// A tx.commit on this channel waits for this group-commit epoch; no frames are read
    /// until it completes, so replies stay in order.
    wait_sync: Option<(u16, u64)>,
    /// The client started the close handshake (we sent close-ok, so it closes the socket).
    client_closed: bool,
    /// connection.blocked was sent and not yet followed by connection.unblocked.
    blocked_sent: bool,
}

impl Connection {
    fn done(&self) -> bool {
        self.done
    }

    /// Sends connection.close for a hard error and stops processing anything but close-ok.
    /// Channels are released at once so their messages go back to their queues.
    fn close_with(&mut self, err: AmqpError) {
        if self.closing.is_some() {
            return;
        }
        if err.code == crate::error::codes::CONNECTION_FORCED {
            tracing::info!(code = err.code, text = %err.text, "closing connection");
        } else {
            tracing::warn!(code = err.code, text = %err.text, "connection error");
        }
        self.release_channels();
        self.ctx.out.clear();
        codec::encode_method(&mut self.ctx.out, 0, close_method(&err));
        self.closing = Some(Instant::now() + CLOSE_TIMEOUT);
    }

    fn release_channels(&mut self) {
        for (_, mut ch) in self.channels.drain() {
            ch.release(&mut self.ctx);
        }
    }

    /// Final cleanup: channels, then the connection's exclusive queues.
    fn cleanup(&mut self) {
        self.release_channels();
        for q in std::mem::take(&mut self.ctx.exclusive_queues) {
            if !q.is_deleted() {
                let (_, consumers) = self.ctx.vhost.remove_queue(&q);
                crate::channel::notify_cancelled(consumers);
            }
        }
    }

    /// Runs the consumer-timeout check of every channel; a channel whose client cannot take a
    /// server-side cancel is closed with the 406 it returns.
    fn check_timeouts(&mut self) {
        use amq_protocol::protocol::channel as chm;
        let now = std::time::Instant::now();
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(ch) = self.channels.get_mut(&id) else {
                continue;
            };
            if ch.closing {
                continue;
            }
            if let Err(e) = ch.check_timeouts(&mut self.ctx, now) {
                ch.release(&mut self.ctx);
                ch.closing = true;
                ch.next_timeout = None;
                self.ctx.send_method(
                    id,
                    AMQPClass::Channel(chm::AMQPMethod::Close(chm::Close {
                        reply_code: e.code,
                        reply_text: e.text.as_str().into(),
                        class_id: 0,
                        method_id: 0,
                    })),
                );
            }
        }
    }

    /// Tells a client that announced connection.blocked when it becomes blocked or unblocked.
    fn notify_blocked(&mut self, blocked: bool, alarms: &crate::alarm::Alarms) {
        if !self.ctx.caps.connection_blocked || self.closing.is_some() {
            return;
        }
        if blocked && !self.blocked_sent {
            self.blocked_sent = true;
            self.ctx.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: alarms.reason().into(),
                })),
            );
        } else if !blocked && self.blocked_sent {
            self.blocked_sent = false;
            self.ctx.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(connection::Unblocked {})),
            );
        }
    }

    /// Takes what is queued for this connection and leaves a no-op waker in its channel, so
    /// that deliveries the connection sends itself while it handles input (an ack frees
    /// credit and the dispatch after it serves this very connection) do not wake its own
    /// task. Tokio treats such a wake as a yield: it polls the task again for nothing and
    /// wakes an idle worker to steal it. The loop polls the channel with its real waker
    /// before it sleeps again, so nothing sent meanwhile is missed.
    fn quiet_self_wakes(&mut self, rx: &mut mpsc::UnboundedReceiver<ConnEvent>) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // One clock reading for the batch, as in the loop's own drain.
        self.ctx.now = std::time::Instant::now();
        while let std::task::Poll::Ready(Some(ev)) = rx.poll_recv(&mut cx) {
            self.handle_event(ev);
        }
    }

    /// Decodes and handles every complete frame in `buf` (stopping early while a commit
    /// waits for group commit).
    fn process_buffer(&mut self, buf: &mut BytesMut) {
        while self.wait_sync.is_none() && !self.done {
            match codec::decode(buf, self.ctx.frame_max) {
                Ok(Some(frame)) => self.handle_frame(frame),
                Ok(None) => break,
                Err(e) => {
                    buf.clear();
                    if self.closing.is_some() {
                        self.done = true;
                    } else {
                        self.close_with(e);
                    }
                    break;
                }
            }
        }
        self.end_batch();
    }

    /// Writes what this read's publishes left buffered (one write per queue), then gives their
    /// confirms the group-commit epoch requested only now, after the writes, or nacks them if
    /// a write failed.
    fn end_batch(&mut self) {
        let Some((ok, stored)) = self.ctx.batch.finish() else {
            return;
        };
        let coord = &self.ctx.state.store.coord;
        let epoch = if ok && stored && coord.fsync_enabled() {
            coord.request()
        } else {
            0
        };
        for ch in self.channels.values_mut() {
            ch.seal_confirms(epoch, ok);
        }
    }

    /// Something waits for the sync thread: a confirm or a commit.
    fn sync_pending(&self) -> bool {
        self.wait_sync.is_some() || self.channels.values().any(|c| c.waits_for_sync())
    }

    fn handle_frame(&mut self, frame: Frame) {
        if self.closing.is_some() {
            if let Frame::Method(0, AMQPClass::Connection(m)) = frame {
                match m {
                    connection::AMQPMethod::CloseOk(_) => self.done = true,
                    connection::AMQPMethod::Close(_) => {
                        self.ctx.send_method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                connection::CloseOk {},
                            )),
                        );
                        self.done = true;
                    }
                    _ => {}
                }
            }
            return;
        }
        let res = match frame {
            Frame::Heartbeat(0) => Ok(()),
            Frame::Heartbeat(_) => Err(AmqpError::frame_error(
                "heartbeat frame on a non-zero channel",
            )),
            Frame::Method(0, m) => self.connection_method(m),
            Frame::Method(ch, m) => self.channel_input(ch, crate::channel::Input::Method(m)),
            Frame::Header(0, _) | Frame::Body(0, _) => {
                Err(AmqpError::unexpected_frame("content frame on channel 0"))
            }
            Frame::Header(ch, h) => self.channel_input(ch, crate::channel::Input::Header(h)),
            Frame::Body(ch, b) => self.channel_input(ch, crate::channel::Input::Body(b)),
        };
        if let Err(e) = res {
            self.close_with(e);
        }
    }

    fn connection_method(&mut self, m: AMQPClass) -> Result<(), AmqpError> {
        match m {
            AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                tracing::debug!(code = c.reply_code, text = %c.reply_text, "client closed connection");
                self.release_channels();
                self.ctx.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.client_closed = true;
                self.done = true;
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(()),
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                self.ctx.send_method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                );
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::Blocked(_))
            | AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)) => Ok(()),
            other @ AMQPClass::Connection(_) => Err(AmqpError::command_invalid(format!(
                "unexpected method 10/{} on channel 0",
                other.get_amqp_method_id()
            ))
            .on(10, other.get_amqp_method_id())),
            other => Err(AmqpError::channel_error(format!(
                "unexpected method {}/{} on channel 0",
                other.get_amqp_class_id(),
                other.get_amqp_method_id()
            ))
            .on(other.get_amqp_class_id(), other.get_amqp_method_id())),
        }
    }

    fn channel_input(&mut self, id: u16, input: crate::channel::Input) -> Result<(), AmqpError> {
        use amq_protocol::protocol::channel as chm;
        if id > self.channel_max {
            return Err(AmqpError::not_allowed(format!(
                "channel {id} exceeds the negotiated channel_max ({})",
                self.channel_max
            )));
        }
        let Some(ch) = self.channels.get_mut(&id) else {
            return match input {
                crate::channel::Input::Method(AMQPClass::Channel(chm::AMQPMethod::Open(_))) => {
                    self.channels.insert(id, Channel::new(id));
                    self.ctx.send_method(
                        id,
                        AMQPClass::Channel(chm::AMQPMethod::OpenOk(chm::OpenOk {})),
                    );
                    Ok(())
                }
                crate::channel::Input::Method(m) => Err(AmqpError::channel_error(format!(
                    "expected 'channel.open' on channel {id}"
                ))
                .on(m.get_amqp_class_id(), m.get_amqp_method_id())),
                _ => Err(AmqpError::channel_error(format!(
                    "expected 'channel.open' on channel {id}"
                ))),
            };
        };
        if ch.closing {
            match input {
                crate::channel::Input::Method(AMQPClass::Channel(chm::AMQPMethod::CloseOk(_))) => {
                    self.channels.remove(&id);
                }
                crate::channel::Input::Method(AMQPClass::Channel(chm::AMQPMethod::Close(_))) => {
                    self.ctx.send_method(
                        id,
                        AMQPClass::Channel(chm::AMQPMethod::CloseOk(chm::CloseOk {})),
                    );
                    self.channels.remove(&id);
                }
                _ => {}
            }
            return Ok(());
        }
        if let crate::channel::Input::Method(AMQPClass::Channel(chm::AMQPMethod::Open(_))) = input {
            return Err(AmqpError::channel_error(format!(
                "second 'channel.open' seen on channel {id}"
            ))
            .on(20, 10));
        }
        match ch.input(&mut self.ctx, input) {
            Ok(crate::channel::After::Continue) => Ok(()),
            Ok(crate::channel::After::Closed) => {
                self.channels.remove(&id);
                Ok(())
            }
            Ok(crate::channel::After::WaitSync(epoch)) => {
                self.wait_sync = Some((id, epoch));
                Ok(())
            }
            Err(e) if e.is_hard() => Err(e),
            Err(e) => {
                tracing::info!(channel = id, code = e.code, text = %e.text, "channel error");
                ch.release(&mut self.ctx);
                ch.closing = true;
                self.ctx.send_method(
                    id,
                    AMQPClass::Channel(chm::AMQPMethod::Close(chm::Close {
                        reply_code: e.code,
                        reply_text: e.text.as_str().into(),
                        class_id: e.class_id,
                        method_id: e.method_id,
                    })),
                );
                Ok(())
            }
        }
    }

    fn handle_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Deliver {
                channel,
                consumer_tag,
                queue,
                message,
                no_ack,
            } => match self.channels.get_mut(&channel) {
                Some(ch) if !ch.closing && self.closing.is_none() => {
                    ch.deliver(&mut self.ctx, consumer_tag, queue, message, no_ack)
                }
                _ => {
                    if !no_ack {
                        queue.requeue([message]);
                    }
                }
            },
            ConnEvent::ConsumerCancelled {
                channel,
                consumer_tag,
            } => {
                if let Some(ch) = self.channels.get_mut(&channel)
                    && !ch.closing
                {
                    ch.consumer_cancelled(&mut self.ctx, &consumer_tag);
                }
            }
            ConnEvent::DirectReply {
                channel,
                secret,
                message,
            } => {
                if let Some(ch) = self.channels.get_mut(&channel)
                    && !ch.closing
                    && self.closing.is_none()
                {
                    ch.direct_reply(&mut self.ctx, secret, message);
                }
            }
            ConnEvent::Close { code, text } => self.close_with(AmqpError::new(code, text)),
            ConnEvent::Inspect(reply) => {
                let mut infos: Vec<_> = self
                    .channels
                    .values()
                    .filter(|c| !c.closing)
                    .map(|c| c.info())
                    .collect();
                infos.sort_by_key(|c| c.number);
                let _ = reply.send(infos);
            }
            ConnEvent::ConsumerTimeoutChanged => {
                for ch in self.channels.values_mut() {
                    ch.consumer_timeout_changed();
                }
            }
        }
    }

    /// Sends the publisher confirms that are due.
    fn flush_confirms(&mut self, synced: SyncState) {
        if self.closing.is_some() {
            return;
        }
        for ch in self.channels.values_mut() {
            ch.flush_confirms(&mut self.ctx, synced);
        }
    }
}
