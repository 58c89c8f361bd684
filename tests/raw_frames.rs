//! Raw-byte AMQP 0-9-1 edge cases: frames are built by hand (or with amq-protocol's `gen_frame`) and
//! written straight to a `TcpStream`, so malformed and out-of-order input can be sent, and replies are
//! parsed with amq-protocol's `parse_frame`. Every read has a deadline: a broker that goes quiet fails
//! the test instead of hanging it.
//!
//! The expected reply codes are the ones RabbitMQ sends (checked by running this file with
//! `WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f`). Where RabbitMQ is looser than Warren's
//! contract, the test says so and asserts the contract.

mod common;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::{AMQPClass, basic, channel, connection, queue};
use amq_protocol::types::FieldTable;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// Deadline for any single expected reply.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

const FRAME_ERROR: u16 = 501;
const COMMAND_INVALID: u16 = 503;
const CHANNEL_ERROR: u16 = 504;
const UNEXPECTED_FRAME: u16 = 505;
const NOT_ALLOWED: u16 = 530;
const NOT_IMPLEMENTED: u16 = 540;

// ---------------------------------------------------------------------------------------------
// Frame building
// ---------------------------------------------------------------------------------------------

fn encode(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(Vec::new()))
        .expect("amq-protocol encodes the frame")
        .write
}

/// A frame with an arbitrary type, channel and payload (size field computed, correct frame-end).
fn raw_frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(frame_type);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(FRAME_END);
    out
}

fn method(channel: u16, class: AMQPClass) -> AMQPFrame {
    AMQPFrame::Method(channel, class)
}

fn channel_open(ch: u16) -> AMQPFrame {
    method(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
}

fn queue_declare(ch: u16, name: &str) -> AMQPFrame {
    method(
        ch,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.into(),
            passive: false,
            durable: false,
            exclusive: true,
            auto_delete: true,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
}

fn basic_publish(ch: u16, routing_key: &str) -> AMQPFrame {
    method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        })),
    )
}

fn content_header(ch: u16, body_size: u64) -> AMQPFrame {
    AMQPFrame::Header(
        ch,
        AMQPContentHeader {
            class_id: 60,
            body_size,
            properties: basic::AMQPProperties::default(),
        },
    )
}

fn body(ch: u16, bytes: &[u8]) -> AMQPFrame {
    AMQPFrame::Body(ch, bytes.to_vec())
}

fn close_ok() -> AMQPFrame {
    method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    )
}

/// Deterministic pseudo-random bytes (xorshift), so a failure is reproducible.
fn pseudo_random_bytes(mut seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn external() -> bool {
    std::env::var("WARREN_TEST_URI").is_ok()
}

/// The reply code Warren must send; against an external RabbitMQ, the one RabbitMQ sends instead.
/// Used only where RabbitMQ's code differs from Warren's contract (the spec); the note is printed
/// so the divergence stays visible.
fn code(warren: u16, rabbitmq: u16, note: &str) -> u16 {
    if external() {
        eprintln!("RabbitMQ differs from Warren's contract ({warren}): {note}");
        rabbitmq
    } else {
        warren
    }
}

// ---------------------------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------------------------

/// Why a read produced no frame.
#[derive(Debug)]
enum ReadEnd {
    /// EOF or reset: the peer closed the socket.
    Closed,
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// Bytes that amq-protocol could not parse as a frame.
    Malformed(String),
}

impl std::fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadEnd::Closed => f.write_str("socket closed"),
            ReadEnd::Timeout => write!(f, "nothing within the deadline"),
            ReadEnd::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

/// What the client asks for in tune-ok (`None` = accept the server's proposal).
#[derive(Clone, Copy, Debug, Default)]
struct Tuning {
    channel_max: Option<u16>,
    frame_max: Option<u32>,
    heartbeat: u16,
}

/// One raw AMQP connection.
struct Raw {
    stream: TcpStream,
    /// Bytes read but not yet consumed as frames.
    buf: Vec<u8>,
    /// What the server proposed in connection.tune (read by [`Raw::start_ok`]).
    proposed: Option<connection::Tune>,
    /// What we answered in tune-ok.
    negotiated: Option<connection::TuneOk>,
}

impl Raw {
    /// Opens the TCP connection only.
    async fn connect(addr: SocketAddr) -> Raw {
        let stream = tokio::time::timeout(READ_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
            proposed: None,
            negotiated: None,
        }
    }

    /// Full handshake up to connection.open-ok on vhost "/".
    async fn open(addr: SocketAddr, tuning: Tuning) -> Raw {
        let mut raw = Raw::start(addr).await;
        raw.start_ok().await;
        raw.tune(tuning).await;
        raw.open_vhost().await;
        raw
    }

    /// Protocol header, then reads connection.start.
    async fn start(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr).await;
        raw.send(PROTOCOL_HEADER)
            .await
            .expect("send protocol header");
        match raw.frame().await {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(start))) => {
                assert_eq!((start.version_major, start.version_minor), (0, 9));
                let mechanisms = start.mechanisms.to_string();
                assert!(
                    mechanisms.split(' ').any(|m| m == "PLAIN"),
                    "PLAIN not offered: {mechanisms}"
                );
            }
            other => panic!("expected connection.start, got {other:?}"),
        }
        raw
    }

    /// Sends start-ok (PLAIN guest/guest) and reads connection.tune.
    async fn start_ok(&mut self) {
        self.send_frame(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
        ))
        .await;
        match self.frame().await {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(tune))) => {
                self.proposed = Some(tune);
            }
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }

    /// Sends tune-ok with the requested values (or the server's proposal).
    async fn tune(&mut self, tuning: Tuning) {
        let proposed = self.proposed.clone().expect("tune received");
        let tune_ok = connection::TuneOk {
            channel_max: tuning.channel_max.unwrap_or(proposed.channel_max),
            frame_max: tuning.frame_max.unwrap_or(proposed.frame_max),
            heartbeat: tuning.heartbeat,
        };
        self.send_frame(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok.clone())),
        ))
        .await;
        self.negotiated = Some(tune_ok);
    }

    /// Sends connection.open "/" and reads open-ok.
    async fn open_vhost(&mut self) {
        self.send_frame(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ))
        .await;
        match self.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        tokio::time::timeout(READ_TIMEOUT, self.stream.write_all(bytes))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
    }

    async fn send_frame(&mut self, frame: &AMQPFrame) {
        let bytes = encode(frame);
        self.send(&bytes).await.expect("send frame");
    }

    /// Length of the first complete frame in `buf`, if there is one.
    fn complete_frame_len(&self) -> Option<usize> {
        match self.buf.first() {
            None => None,
            Some(b'A') => (self.buf.len() >= 8).then_some(8),
            Some(_) if self.buf.len() < 7 => None,
            Some(_) => {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
                let len = 7 + size as usize + 1;
                (self.buf.len() >= len).then_some(len)
            }
        }
    }

    /// Reads more bytes into `buf` before `deadline`.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> Result<(), ReadEnd> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(ReadEnd::Timeout),
            Ok(Ok(0)) => Err(ReadEnd::Closed),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                Err(ReadEnd::Closed)
            }
            Ok(Err(e)) => panic!("socket read failed: {e}"),
        }
    }

    /// The next frame, or why there is none, within `timeout`.
    async fn read_frame_within(&mut self, timeout: Duration) -> Result<AMQPFrame, ReadEnd> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(len) = self.complete_frame_len() {
                let bytes: Vec<u8> = self.buf.drain(..len).collect();
                return match parse_frame(&bytes[..]) {
                    Ok(([], frame)) => Ok(frame),
                    Ok((rest, frame)) => Err(ReadEnd::Malformed(format!(
                        "{frame:?} followed by {} unparsed bytes",
                        rest.len()
                    ))),
                    Err(e) => Err(ReadEnd::Malformed(format!("{e:?} in {bytes:02x?}"))),
                };
            }
            match self.fill(deadline).await {
                Ok(()) => {}
                Err(ReadEnd::Closed) if !self.buf.is_empty() => {
                    return Err(ReadEnd::Malformed(format!(
                        "socket closed mid-frame after {:02x?}",
                        self.buf
                    )));
                }
                Err(end) => return Err(end),
            }
        }
    }

    /// The next frame; panics if none arrives.
    async fn frame(&mut self) -> AMQPFrame {
        match self.read_frame_within(READ_TIMEOUT).await {
            Ok(frame) => frame,
            Err(end) => panic!("expected a frame, got {end}"),
        }
    }

    /// The next method frame, skipping heartbeats; panics on anything else.
    async fn method(&mut self) -> (u16, AMQPClass) {
        loop {
            match self.frame().await {
                AMQPFrame::Heartbeat => continue,
                AMQPFrame::Method(ch, class) => return (ch, class),
                other => panic!("expected a method frame, got {other:?}"),
            }
        }
    }

    /// What the server does next: a connection.close (skipping heartbeats), or how the read ended.
    async fn next_close(&mut self) -> Result<connection::Close, String> {
        loop {
            match self.read_frame_within(READ_TIMEOUT).await {
                Ok(AMQPFrame::Heartbeat) => continue,
                Ok(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(close)),
                )) => return Ok(close),
                Ok(other) => return Err(format!("expected connection.close, got {other:?}")),
                Err(end) => return Err(format!("expected connection.close, got {end}")),
            }
        }
    }

    /// Expects connection.close with `code`, answers close-ok and expects the server to close the
    /// socket. Returns the close for further checks.
    async fn expect_close(&mut self, code: u16) -> connection::Close {
        let close = match self.next_close().await {
            Ok(close) => close,
            Err(e) => panic!("wanted connection.close {code}: {e}"),
        };
        eprintln!(
            "connection.close {} {:?} (class {}, method {})",
            close.reply_code,
            close.reply_text.as_str(),
            close.class_id,
            close.method_id
        );
        assert_eq!(
            close.reply_code, code,
            "reply code (text {:?}, class {}, method {})",
            close.reply_text, close.class_id, close.method_id
        );
        // The server may legitimately have gone already; what matters is that it ends.
        let _ = self.send(&encode(&close_ok())).await;
        self.expect_eof().await;
        close
    }

    /// Expects the server to close the socket (heartbeats tolerated, any other frame is a failure).
    async fn expect_eof(&mut self) {
        loop {
            match self.read_frame_within(READ_TIMEOUT).await {
                Ok(AMQPFrame::Heartbeat) => continue,
                Err(ReadEnd::Closed) => return,
                Ok(other) => panic!("expected the socket to close, got {other:?}"),
                Err(end) => panic!("expected the socket to close, got {end}"),
            }
        }
    }

    async fn open_channel(&mut self, ch: u16) {
        self.send_frame(&channel_open(ch)).await;
        match self.method().await {
            (c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if c == ch => {}
            other => panic!("expected channel.open-ok on {ch}, got {other:?}"),
        }
    }

    /// Declares an exclusive, server-named queue and returns its name.
    async fn declare_queue(&mut self, ch: u16) -> String {
        self.send_frame(&queue_declare(ch, "")).await;
        match self.method().await {
            (c, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) if c == ch => {
                ok.queue.as_str().to_owned()
            }
            other => panic!("expected queue.declare-ok on {ch}, got {other:?}"),
        }
    }

    /// Publishes `payload` to the default exchange, split into body frames of at most `chunk` bytes.
    async fn publish(&mut self, ch: u16, routing_key: &str, payload: &[u8], chunk: usize) {
        let mut bytes = encode(&basic_publish(ch, routing_key));
        bytes.extend(encode(&content_header(ch, payload.len() as u64)));
        for part in payload.chunks(chunk.max(1)) {
            bytes.extend(encode(&body(ch, part)));
        }
        self.send(&bytes).await.expect("send publish");
    }

    /// basic.get with no-ack; the body, or `None` on get-empty.
    async fn get(&mut self, ch: u16, queue_name: &str) -> Option<Vec<u8>> {
        self.send_frame(&method(
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: queue_name.into(),
                no_ack: true,
            })),
        ))
        .await;
        match self.method().await {
            (c, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))) if c == ch => return None,
            (c, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))) if c == ch => {}
            other => panic!("expected basic.get-ok/get-empty on {ch}, got {other:?}"),
        }
        let size = match self.frame().await {
            AMQPFrame::Header(c, header) if c == ch => header.body_size,
            other => panic!("expected a content header on {ch}, got {other:?}"),
        };
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            match self.frame().await {
                AMQPFrame::Body(c, part) if c == ch => out.extend(part),
                other => panic!("expected a content body on {ch}, got {other:?}"),
            }
        }
        assert_eq!(out.len() as u64, size, "body longer than its header said");
        Some(out)
    }

    /// Publish + get on a fresh queue: proves the connection (and broker) still work.
    async fn round_trip(&mut self, ch: u16, payload: &[u8]) {
        let q = self.declare_queue(ch).await;
        self.publish(ch, &q, payload, 4096).await;
        assert_eq!(self.get(ch, &q).await.as_deref(), Some(payload));
    }
}

/// An opened connection with channel 1 open.
async fn open_with_channel(addr: SocketAddr) -> Raw {
    let mut raw = Raw::open(addr, Tuning::default()).await;
    raw.open_channel(1).await;
    raw
}

// ---------------------------------------------------------------------------------------------
// Protocol header
// ---------------------------------------------------------------------------------------------

/// RabbitMQ answers any header it does not speak with its own and closes the socket.
#[tokio::test]
async fn wrong_protocol_header_gets_supported_header_and_close() {
    let tb = common::start().await;
    for header in [
        b"AMQP\x00\x00\x09\x00".as_slice(),
        b"HTTP/1.1",
        b"AMQP\x01\x01\x00\x0a",
        b"AMQP\x00\x00\x08\x00",
    ] {
        let mut raw = Raw::connect(tb.addr).await;
        raw.send(header).await.expect("send header");
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        while raw.buf.len() < 8 {
            if let Err(end) = raw.fill(deadline).await {
                panic!(
                    "header {header:02x?}: wanted the 0-9-1 header back, got {end:?} after {:02x?}",
                    raw.buf
                );
            }
        }
        assert_eq!(
            &raw.buf[..8],
            PROTOCOL_HEADER,
            "reply to header {header:02x?}"
        );
        raw.buf.drain(..8);
        let end = raw.read_frame_within(READ_TIMEOUT).await;
        assert!(
            matches!(end, Err(ReadEnd::Closed)),
            "header {header:02x?}: wanted the socket closed, got {end:?}"
        );
    }
    tb.stop().await;
}

/// A valid header dribbled in one byte at a time is still a valid header.
#[tokio::test]
async fn protocol_header_split_across_writes_is_accepted() {
    let tb = common::start().await;
    let mut raw = Raw::connect(tb.addr).await;
    for byte in PROTOCOL_HEADER {
        raw.send(&[*byte]).await.expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match raw.frame().await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
        other => panic!("expected connection.start, got {other:?}"),
    }
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Framing errors
// ---------------------------------------------------------------------------------------------

/// The 7-byte header alone announces a payload above frame_max: the server must refuse it from the
/// header, without waiting for (or buffering) the payload.
/// RabbitMQ: 501 "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,1048576,131064}".
#[tokio::test]
async fn frame_larger_than_frame_max_is_refused_from_its_header() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let mut header = vec![FRAME_METHOD];
    header.extend_from_slice(&1u16.to_be_bytes());
    header.extend_from_slice(&(1u32 << 20).to_be_bytes());
    raw.send(&header).await.expect("send frame header");
    raw.expect_close(FRAME_ERROR).await;
    tb.stop().await;
}

/// The limit is the frame_max the client asked for in tune-ok (4096), not the server's proposal:
/// an 8 KiB frame is too large on this connection.
/// RabbitMQ: 501 "... {frame_too_large,8192,4088}".
#[tokio::test]
async fn frame_max_is_the_negotiated_value() {
    let tb = common::start().await;
    let mut raw = Raw::open(
        tb.addr,
        Tuning {
            frame_max: Some(4096),
            ..Default::default()
        },
    )
    .await;
    raw.open_channel(1).await;
    let mut header = vec![FRAME_BODY];
    header.extend_from_slice(&1u16.to_be_bytes());
    header.extend_from_slice(&8192u32.to_be_bytes());
    raw.send(&header).await.expect("send frame header");
    raw.expect_close(FRAME_ERROR).await;
    tb.stop().await;
}

/// A frame of exactly frame_max bytes (payload frame_max - 8) is legal and must be accepted.
#[tokio::test]
async fn frame_of_exactly_frame_max_is_accepted() {
    let tb = common::start().await;
    let frame_max = 4096u32;
    let mut raw = Raw::open(
        tb.addr,
        Tuning {
            frame_max: Some(frame_max),
            ..Default::default()
        },
    )
    .await;
    raw.open_channel(1).await;
    let q = raw.declare_queue(1).await;
    let payload = pseudo_random_bytes(7, frame_max as usize - 8);
    raw.publish(1, &q, &payload, payload.len()).await;
    assert_eq!(raw.get(1, &q).await, Some(payload));
    tb.stop().await;
}

#[tokio::test]
async fn bad_frame_end_octet_is_a_frame_error() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let mut frame = encode(&queue_declare(1, "bad-frame-end"));
    *frame.last_mut().expect("non-empty frame") = 0x00;
    raw.send(&frame).await.expect("send");
    raw.expect_close(FRAME_ERROR).await;
    tb.stop().await;
}

#[tokio::test]
async fn unknown_frame_type_is_a_frame_error() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send(&raw_frame(9, 0, b"")).await.expect("send");
    raw.expect_close(FRAME_ERROR).await;
    tb.stop().await;
}

/// The spec makes a heartbeat on a channel other than 0 a 501.
#[tokio::test]
async fn heartbeat_on_a_nonzero_channel_is_a_frame_error() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send(&raw_frame(FRAME_HEARTBEAT, 1, b""))
        .await
        .expect("send");
    raw.expect_close(code(
        FRAME_ERROR,
        UNEXPECTED_FRAME,
        "505 \"UNEXPECTED_FRAME - type 8, all octets = <<>>\"",
    ))
    .await;
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Content sequencing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn content_header_without_publish_is_unexpected() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&content_header(1, 3)).await;
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

#[tokio::test]
async fn body_without_publish_is_unexpected() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&body(1, b"abc")).await;
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

#[tokio::test]
async fn body_after_publish_without_header_is_unexpected() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let mut bytes = encode(&basic_publish(1, "nowhere"));
    bytes.extend(encode(&body(1, b"abc")));
    raw.send(&bytes).await.expect("send");
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

#[tokio::test]
async fn method_in_the_middle_of_content_is_unexpected() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let mut bytes = encode(&basic_publish(1, "nowhere"));
    bytes.extend(encode(&content_header(1, 10)));
    bytes.extend(encode(&body(1, b"12345")));
    bytes.extend(encode(&queue_declare(1, "mid-content")));
    raw.send(&bytes).await.expect("send");
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

/// Warren's contract: a body frame that overshoots the header's body_size is a 501.
/// RabbitMQ is looser: it says nothing, drops the message and keeps waiting for more body (the
/// next method frame then gets 505 "expected content body").
#[tokio::test]
async fn body_longer_than_declared_size_is_a_frame_error() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let mut bytes = encode(&basic_publish(1, "nowhere"));
    bytes.extend(encode(&content_header(1, 5)));
    bytes.extend(encode(&body(1, b"0123456789")));
    raw.send(&bytes).await.expect("send");
    if external() {
        let next = raw.read_frame_within(Duration::from_secs(2)).await;
        eprintln!("RabbitMQ is looser than Warren's contract (501): {next:?}");
        assert!(matches!(next, Err(ReadEnd::Timeout)), "{next:?}");
        return;
    }
    raw.expect_close(FRAME_ERROR).await;
    tb.stop().await;
}

/// A zero-length message has a header and no body frame; the next method starts a new command.
#[tokio::test]
async fn empty_body_needs_no_body_frame() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let q = raw.declare_queue(1).await;
    raw.publish(1, &q, b"", 1).await;
    assert_eq!(raw.get(1, &q).await, Some(Vec::new()));
    tb.stop().await;
}

/// Frames cut at arbitrary byte boundaries across TCP writes are reassembled.
#[tokio::test]
async fn frames_split_across_writes_are_reassembled() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let q = raw.declare_queue(1).await;
    let payload = pseudo_random_bytes(3, 300);
    let mut bytes = encode(&basic_publish(1, &q));
    bytes.extend(encode(&content_header(1, payload.len() as u64)));
    for part in payload.chunks(100) {
        bytes.extend(encode(&body(1, part)));
    }
    for piece in bytes.chunks(13) {
        raw.send(piece).await.expect("send");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(raw.get(1, &q).await, Some(payload));
    tb.stop().await;
}

/// A content header whose class is not the publish's (60) is out of sequence.
/// RabbitMQ: 505 "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50".
#[tokio::test]
async fn content_header_of_another_class_is_unexpected() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let mut bytes = encode(&basic_publish(1, "nowhere"));
    // class 50, weight 0, body size 0, property flags 0
    let mut header = vec![0, 50, 0, 0];
    header.extend_from_slice(&0u64.to_be_bytes());
    header.extend_from_slice(&[0, 0]);
    bytes.extend(raw_frame(FRAME_HEADER, 1, &header));
    raw.send(&bytes).await.expect("send");
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

/// A body split over many small frames is reassembled in order.
#[tokio::test]
async fn body_split_over_many_frames_is_reassembled() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let q = raw.declare_queue(1).await;
    let payload = pseudo_random_bytes(11, 1000);
    raw.publish(1, &q, &payload, 7).await;
    assert_eq!(raw.get(1, &q).await, Some(payload));
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------------

/// Sends a method frame with the given class/method ids and no arguments, and expects a hard close
/// with 540 NOT_IMPLEMENTED or 503 COMMAND_INVALID (DESIGN.md allows either).
/// RabbitMQ has no answer: its reader process crashes ({unknown_method_id,{C,M}} in the log) and
/// the socket is dropped without connection.close.
async fn unknown_method_is_rejected(class_id: u16, method_id: u16) {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let mut payload = class_id.to_be_bytes().to_vec();
    payload.extend_from_slice(&method_id.to_be_bytes());
    raw.send(&raw_frame(FRAME_METHOD, 1, &payload))
        .await
        .expect("send");
    let close = raw.next_close().await;
    if external() {
        eprintln!("RabbitMQ is looser than Warren's contract (540/503): {close:?}");
        assert!(close.is_err_and(|e| e.contains("socket closed")));
        return;
    }
    let close = close.unwrap_or_else(|e| panic!("wanted connection.close 540/503: {e}"));
    eprintln!(
        "connection.close {} {:?}",
        close.reply_code, close.reply_text
    );
    assert!(
        [NOT_IMPLEMENTED, COMMAND_INVALID].contains(&close.reply_code),
        "wanted 540 or 503, got {close:?}"
    );
    let _ = raw.send(&encode(&close_ok())).await;
    raw.expect_eof().await;
    tb.stop().await;
}

#[tokio::test]
async fn unknown_class_id_is_rejected() {
    unknown_method_is_rejected(99, 10).await;
}

#[tokio::test]
async fn unknown_method_id_is_rejected() {
    unknown_method_is_rejected(60, 99).await;
}

/// queue.declare whose frame ends inside the queue-name shortstr (length 10, 3 bytes present).
/// RabbitMQ: 501 "FRAME_ERROR - cannot decode <<0,0,10,97,98,99>>", class 50 method 10 (not 502).
#[tokio::test]
async fn truncated_method_arguments_are_a_frame_error() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    let payload = [0, 50, 0, 10, 0, 0, 10, b'a', b'b', b'c'];
    raw.send(&raw_frame(FRAME_METHOD, 1, &payload))
        .await
        .expect("send");
    let close = raw.expect_close(FRAME_ERROR).await;
    assert_eq!((close.class_id, close.method_id), (50, 10), "{close:?}");
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

/// RabbitMQ: 504 "CHANNEL_ERROR - expected 'channel.open'", class 50 method 10.
#[tokio::test]
async fn method_on_a_channel_that_is_not_open_is_a_channel_error() {
    let tb = common::start().await;
    let mut raw = Raw::open(tb.addr, Tuning::default()).await;
    raw.send_frame(&queue_declare(5, "never-opened")).await;
    let close = raw.expect_close(CHANNEL_ERROR).await;
    assert_eq!((close.class_id, close.method_id), (50, 10), "{close:?}");
    tb.stop().await;
}

/// RabbitMQ: 504 "CHANNEL_ERROR - second 'channel.open' seen", class 20 method 10.
#[tokio::test]
async fn opening_an_open_channel_is_a_channel_error() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&channel_open(1)).await;
    let close = raw.expect_close(CHANNEL_ERROR).await;
    assert_eq!((close.class_id, close.method_id), (20, 10), "{close:?}");
    tb.stop().await;
}

/// channel_max 10 negotiated and channels 1..=10 open: opening another is refused.
/// RabbitMQ: 530 "NOT_ALLOWED - number of channels opened (10) has reached the negotiated
/// channel_max (10)".
#[tokio::test]
async fn opening_more_channels_than_channel_max_is_not_allowed() {
    let tb = common::start().await;
    let mut raw = Raw::open(
        tb.addr,
        Tuning {
            channel_max: Some(10),
            ..Default::default()
        },
    )
    .await;
    for ch in 1..=10 {
        raw.open_channel(ch).await;
    }
    raw.send_frame(&channel_open(11)).await;
    raw.expect_close(NOT_ALLOWED).await;
    tb.stop().await;
}

/// The spec makes channel_max the highest usable channel number: channel.open on 11 with
/// channel_max 10 is refused, with RabbitMQ's code for channel_max violations (530).
/// RabbitMQ is looser: it only counts open channels and opens channel 11 (even 65535).
#[tokio::test]
async fn channel_number_above_channel_max_is_not_allowed() {
    let tb = common::start().await;
    let mut raw = Raw::open(
        tb.addr,
        Tuning {
            channel_max: Some(10),
            ..Default::default()
        },
    )
    .await;
    raw.open_channel(10).await;
    raw.send_frame(&channel_open(11)).await;
    if external() {
        let reply = raw.method().await;
        eprintln!("RabbitMQ is looser than Warren's contract (530): {reply:?}");
        assert!(matches!(
            reply,
            (11, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
        ));
        return;
    }
    raw.expect_close(NOT_ALLOWED).await;
    tb.stop().await;
}

/// RabbitMQ: 505 "UNEXPECTED_FRAME - type 2, all octets = <<...>>".
#[tokio::test]
async fn content_header_on_channel_zero_is_unexpected() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&content_header(0, 3)).await;
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

/// RabbitMQ: 505 "UNEXPECTED_FRAME - type 3, all octets = <<\"abc\">>".
#[tokio::test]
async fn content_body_on_channel_zero_is_unexpected() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&body(0, b"abc")).await;
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

/// A channel-class method on channel 0.
/// RabbitMQ: 504 "CHANNEL_ERROR - unexpected method in connection state running", class 50
/// method 10.
#[tokio::test]
async fn queue_method_on_channel_zero_is_a_channel_error() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&queue_declare(0, "on-channel-zero")).await;
    let close = raw.expect_close(CHANNEL_ERROR).await;
    assert_eq!((close.class_id, close.method_id), (50, 10), "{close:?}");
    tb.stop().await;
}

/// A connection-class method on a channel other than 0.
/// RabbitMQ: 503 "COMMAND_INVALID - unimplemented method", class 10 method 40.
#[tokio::test]
async fn connection_method_on_a_nonzero_channel_is_invalid() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&method(
        1,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
    ))
    .await;
    let close = raw.expect_close(COMMAND_INVALID).await;
    assert_eq!((close.class_id, close.method_id), (10, 40), "{close:?}");
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------------------------------

/// heartbeat=1 negotiated and then total silence: the server gives up after about two intervals.
#[tokio::test]
async fn silent_peer_is_disconnected_after_missed_heartbeats() {
    let tb = common::start().await;
    let mut raw = Raw::open(
        tb.addr,
        Tuning {
            heartbeat: 1,
            ..Default::default()
        },
    )
    .await;
    let since = Instant::now();
    let mut heartbeats = 0;
    let end = loop {
        match raw.read_frame_within(Duration::from_secs(6)).await {
            Ok(AMQPFrame::Heartbeat) => heartbeats += 1,
            Ok(other) => panic!("unexpected frame while silent: {other:?}"),
            Err(end) => break end,
        }
    };
    let elapsed = since.elapsed();
    eprintln!("silent peer: {end:?} after {elapsed:?}, {heartbeats} heartbeats received");
    assert!(
        matches!(end, ReadEnd::Closed),
        "wanted the socket closed, got {end:?} after {elapsed:?}"
    );
    // The spec: no traffic for two intervals. RabbitMQ closes at 3.0 s.
    assert!(
        elapsed >= Duration::from_millis(1800),
        "closed before two heartbeat intervals passed: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(4000),
        "closed too late: {elapsed:?}"
    );
    assert!(heartbeats >= 1, "no heartbeat was sent to the silent peer");
    tb.stop().await;
}

/// With heartbeat=1 the server sends heartbeats while it has nothing else to say, and a client that
/// heartbeats back stays connected.
#[tokio::test]
async fn server_heartbeats_an_idle_client() {
    let tb = common::start().await;
    let mut raw = Raw::open(
        tb.addr,
        Tuning {
            heartbeat: 1,
            ..Default::default()
        },
    )
    .await;
    let heartbeat = raw_frame(FRAME_HEARTBEAT, 0, b"");
    let until = Instant::now() + Duration::from_millis(4500);
    let mut received = 0;
    while Instant::now() < until {
        raw.send(&heartbeat).await.expect("send heartbeat");
        match raw.read_frame_within(Duration::from_millis(400)).await {
            Ok(AMQPFrame::Heartbeat) => received += 1,
            Ok(other) => panic!("unexpected frame: {other:?}"),
            Err(ReadEnd::Timeout) => {}
            Err(end) => panic!("connection ended while heartbeating: {end:?}"),
        }
    }
    eprintln!("received {received} heartbeats in 4.5 s");
    assert!(
        received >= 2,
        "wanted at least 2 heartbeats in 4.5 s, got {received}"
    );
    raw.open_channel(1).await;
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Connection lifecycle
// ---------------------------------------------------------------------------------------------

/// Warren answers close-ok and closes the socket. RabbitMQ answers close-ok but leaves the socket
/// to the client, closing it itself only after 30 s.
#[tokio::test]
async fn client_close_gets_close_ok_and_socket_close() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    ))
    .await;
    match raw.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }
    if external() {
        let next = raw.read_frame_within(Duration::from_secs(2)).await;
        eprintln!("RabbitMQ keeps the socket open after close-ok: {next:?}");
        return;
    }
    raw.expect_eof().await;
    tb.stop().await;
}

/// After a server-initiated connection.close, the server is the one receiving close-ok, and per the
/// spec it may then release the socket at once. RabbitMQ closes it within a few ms; a server that
/// lingers keeps clients that wait for EOF (and their file descriptors) hanging.
#[tokio::test]
async fn server_closes_the_socket_promptly_after_receiving_close_ok() {
    let tb = common::start().await;
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&channel_open(1)).await;
    let close = match raw.next_close().await {
        Ok(close) => close,
        Err(e) => panic!("wanted connection.close 504: {e}"),
    };
    assert_eq!(close.reply_code, CHANNEL_ERROR, "{close:?}");
    raw.send(&encode(&close_ok())).await.expect("send close-ok");
    let since = Instant::now();
    let end = raw.read_frame_within(Duration::from_secs(5)).await;
    let elapsed = since.elapsed();
    eprintln!("after close-ok: {end:?} in {elapsed:?}");
    assert!(matches!(end, Err(ReadEnd::Closed)), "{end:?}");
    assert!(
        elapsed <= Duration::from_millis(500),
        "socket closed {elapsed:?} after close-ok (RabbitMQ: ~4 ms)"
    );
    tb.stop().await;
}

/// channel.open after tune-ok but before connection.open.
/// RabbitMQ: 505 "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>".
#[tokio::test]
async fn channel_open_before_connection_open_is_unexpected() {
    let tb = common::start().await;
    let mut raw = Raw::start(tb.addr).await;
    raw.start_ok().await;
    raw.tune(Tuning::default()).await;
    raw.send_frame(&channel_open(1)).await;
    raw.expect_close(UNEXPECTED_FRAME).await;
    tb.stop().await;
}

/// channel.open instead of start-ok. RabbitMQ drops the socket without connection.close (nothing
/// is negotiated yet); a connection.close 503/504/505 first is also accepted.
#[tokio::test]
async fn channel_open_instead_of_start_ok_is_rejected() {
    let tb = common::start().await;
    let mut raw = Raw::start(tb.addr).await;
    raw.send_frame(&channel_open(1)).await;
    let end = raw.next_close().await;
    eprintln!("channel.open instead of start-ok: {end:?}");
    match end {
        Ok(close) => {
            assert!(
                [COMMAND_INVALID, CHANNEL_ERROR, UNEXPECTED_FRAME].contains(&close.reply_code),
                "{close:?}"
            );
            let _ = raw.send(&encode(&close_ok())).await;
            raw.expect_eof().await;
        }
        Err(e) => assert!(e.contains("socket closed"), "wanted a close, got {e}"),
    }
    tb.stop().await;
}

/// Random bytes after a good handshake end that connection, and only that one: a second connection
/// keeps working during and after.
#[tokio::test]
async fn garbage_after_handshake_never_harms_another_connection() {
    let tb = common::start().await;
    let mut good = open_with_channel(tb.addr).await;
    good.round_trip(1, b"before").await;

    let mut bad = open_with_channel(tb.addr).await;
    let mut garbage = vec![0x47];
    garbage.extend(pseudo_random_bytes(0x5eed, 4096));
    // The server may stop reading part-way; a failed write is fine.
    let _ = bad.send(&garbage).await;
    good.round_trip(1, b"during").await;
    match bad.next_close().await {
        Ok(close) => {
            eprintln!(
                "garbage: connection.close {} {:?}",
                close.reply_code, close.reply_text
            );
            assert_eq!(close.reply_code, FRAME_ERROR, "{close:?}");
        }
        Err(e) => assert!(
            e.contains("socket closed"),
            "wanted 501 or a closed socket, got {e}"
        ),
    }
    drop(bad);

    good.round_trip(1, b"after").await;
    let mut fresh = open_with_channel(tb.addr).await;
    fresh.round_trip(1, b"fresh").await;
    tb.stop().await;
}

/// A client that pipelines channel.open (and more) behind connection.open, in one write: the
/// frames that arrive in the same read as connection.open must be processed without waiting
/// for more input.
#[tokio::test]
async fn frames_pipelined_behind_connection_open_are_processed() {
    let tb = common::start().await;
    let mut raw = Raw::start(tb.addr).await;
    raw.start_ok().await;
    raw.tune(Tuning::default()).await;
    let mut bytes = encode(&method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
    ));
    bytes.extend(encode(&channel_open(1)));
    raw.send(&bytes).await.expect("send");
    let (ch, m) = raw.method().await;
    assert!(
        matches!(
            (ch, &m),
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))
        ),
        "{m:?}"
    );
    let (ch, m) = raw.method().await;
    assert!(
        matches!(
            (ch, &m),
            (1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
        ),
        "channel.open pipelined behind connection.open got no reply: {m:?}"
    );
    tb.stop().await;
}

/// Declares `queue` and fills it with `n` messages of `size` bytes (at least 4), each starting
/// with its number (u32, big-endian), confirmed in one pipelined run.
async fn numbered_messages(publisher: &lapin::Channel, queue: &str, n: u32, size: usize) {
    common::amqp::declare(
        publisher,
        queue,
        lapin::options::QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    common::within(publisher.confirm_select(lapin::options::ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let mut confirms = Vec::new();
    for i in 0..n {
        let mut body = vec![0u8; size.max(4)];
        body[..4].copy_from_slice(&i.to_be_bytes());
        confirms.push(
            common::within(publisher.basic_publish(
                "".into(),
                queue.into(),
                lapin::options::BasicPublishOptions::default(),
                &body,
                lapin::BasicProperties::default(),
            ))
            .await
            .expect("publish"),
        );
    }
    for c in confirms {
        common::within(c).await.expect("confirm");
    }
}

/// A consumer whose connection ends while deliveries are still queued towards it (unlimited
/// prefetch, thousands dispatched at once) loses none of them: every message it did not ack
/// is back in the queue.
#[tokio::test]
async fn deliveries_in_flight_when_a_consumer_connection_closes_go_back_to_the_queue() {
    const N: u32 = 20_000;
    let tb = common::start().await;
    let (_pc, publisher) = common::within(tb.channel()).await;
    let q = format!("in-flight-{}", std::process::id());
    numbered_messages(&publisher, &q, N, 4).await;
    for round in 0..3 {
        // A raw client that starts consuming and drops its socket at once, without reading:
        // the broker sees the end of the stream while deliveries wait in its event queue.
        let mut raw = open_with_channel(tb.addr).await;
        raw.send_frame(&method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: q.as_str().into(),
                consumer_tag: format!("doomed-{round}").as_str().into(),
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: true,
                arguments: FieldTable::default(),
            })),
        ))
        .await;
        drop(raw);
        let mut ready = 0;
        for _ in 0..200 {
            ready = common::amqp::ready_count(&publisher, &q).await;
            if ready == N {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            ready, N,
            "round {round}: messages lost with the closed consumer"
        );
    }
    common::within(publisher.queue_delete(
        q.as_str().into(),
        lapin::options::QueueDeleteOptions::default(),
    ))
    .await
    .expect("delete");
    tb.stop().await;
}

/// A consumer that stops reading its socket holds back only its own connection: the broker
/// keeps what the socket does not take (and then stops dispatching to it), other connections
/// are served meanwhile, and once the consumer reads again every message arrives, in order.
#[tokio::test]
async fn a_consumer_that_stops_reading_gets_everything_in_order_later() {
    const N: u32 = 4_000;
    const SIZE: usize = 4096;
    let tb = common::start().await;
    let (_pc, publisher) = common::within(tb.channel()).await;
    let q = format!("stalled-{}", std::process::id());
    numbered_messages(&publisher, &q, N, SIZE).await;
    // 16 MB of deliveries: more than the socket buffers hold, so the broker's own backlog for
    // this connection fills while the client reads nothing.
    let mut raw = open_with_channel(tb.addr).await;
    raw.send_frame(&method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: q.as_str().into(),
            consumer_tag: "stalled".into(),
            no_local: false,
            no_ack: true,
            exclusive: false,
            nowait: true,
            arguments: FieldTable::default(),
        })),
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = common::amqp::ready_count(&publisher, &q).await;
    assert!(
        left > 0,
        "the broker kept dispatching to a consumer that reads nothing"
    );
    let mut next = 0u32;
    while next < N {
        match raw.frame().await {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) => {}
            other => panic!("expected delivery {next}, got {other:?}"),
        }
        assert!(matches!(raw.frame().await, AMQPFrame::Header(1, ..)));
        match raw.frame().await {
            AMQPFrame::Body(1, body) => {
                assert_eq!(body.len(), SIZE);
                let i = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
                assert_eq!(i, next, "deliveries out of order");
            }
            other => panic!("expected the body of {next}, got {other:?}"),
        }
        next += 1;
    }
    assert_eq!(common::amqp::ready_count(&publisher, &q).await, 0);
    common::within(publisher.queue_delete(
        q.as_str().into(),
        lapin::options::QueueDeleteOptions::default(),
    ))
    .await
    .expect("delete");
    tb.stop().await;
}
