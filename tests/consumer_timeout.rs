//! Consumer timeout (the broker-side visibility timeout) driven through lapin and raw frames: a
//! delivery not acked within the timeout (per queue x-consumer-timeout in ms, else the server-wide
//! `consumer_timeout_ms`) is requeued and its consumer cancelled with basic.cancel when the client
//! announced consumer_cancel_notify (lapin does); otherwise the channel is closed with RabbitMQ's
//! 406 text.
//!
//! RabbitMQ 3.10 has only the server-wide consumer_timeout (set in rabbitmq.conf, 30 minutes by
//! default; x-consumer-timeout arrived in 3.12), so these tests skip themselves against an
//! external broker; the expectations follow RabbitMQ's consumer guide and its close text.

mod common;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::{AMQPClass, basic, channel, connection, queue};
use common::amqp::*;
use common::within;
use lapin::message::{Delivery, DeliveryResult};
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// A name no other test (nor another run against a shared RabbitMQ) uses.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "warren-ctimeout-{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Declares a fresh exclusive queue with `args` and returns its name.
async fn new_queue(ch: &Channel, what: &str, args: FieldTable) -> String {
    let name = unique(what);
    let options = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    declare(ch, &name, options, args).await;
    name
}

/// A consumer whose deliveries are forwarded, in order, into a tokio channel.
struct Sub {
    _consumer: Consumer,
    rx: mpsc::UnboundedReceiver<DeliveryResult>,
}

impl Sub {
    fn new(consumer: Consumer) -> Sub {
        let (tx, rx) = mpsc::unbounded_channel();
        consumer.set_delegate(move |d: DeliveryResult| {
            let _ = tx.send(d);
            async {}
        });
        Sub {
            _consumer: consumer,
            rx,
        }
    }

    /// The next delivery; fails the test on error, cancel or timeout.
    async fn next(&mut self) -> Delivery {
        match within(self.rx.recv()).await {
            Some(Ok(Some(d))) => d,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    /// Asserts nothing is delivered for `ms`.
    async fn assert_quiet(&mut self, ms: u64) {
        if let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await
        {
            panic!("expected no delivery, got {item:?}");
        }
    }
}

async fn consume_with(ch: &Channel, queue: &str, tag: &str, no_ack: bool, args: FieldTable) -> Sub {
    let options = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    let consumer = within(ch.basic_consume(queue.into(), tag.into(), options, args))
        .await
        .expect("basic.consume");
    Sub::new(consumer)
}

/// None (and the test skips) against an external broker.
async fn start(test: &str) -> Option<common::TestBroker> {
    if external() {
        eprintln!("{test}: skipped, RabbitMQ 3.10 has no x-consumer-timeout");
        return None;
    }
    Some(within(common::start()).await)
}

async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = within(conn.create_channel()).await.expect("channel.open");
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    ch
}

fn timeout_args(ms: i64) -> FieldTable {
    table(&[("x-consumer-timeout", int(ms))])
}

impl Sub {
    /// Waits for the broker to cancel the consumer: lapin ends the stream (`Ok(None)`, then the
    /// sender is dropped) when basic.cancel arrives.
    async fn cancelled_within(&mut self, ms: u64) {
        match tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await {
            Ok(Some(Ok(None))) | Ok(None) => {}
            Ok(Some(Ok(Some(d)))) => panic!("expected a cancel, got a delivery {d:?}"),
            Ok(Some(Err(e))) => panic!("expected a basic.cancel, got an error {e:?}"),
            Err(_) => panic!("the consumer was not cancelled within {ms} ms"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// lapin (consumer_cancel_notify)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unacked_delivery_past_the_timeout_is_requeued_and_its_consumer_cancelled() {
    let Some(b) = start("unacked_past_timeout").await else {
        return;
    };
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "timeout", timeout_args(300)).await;
    let cch = within(conn.create_channel()).await.expect("channel");
    qos(&cch, 2).await;
    let mut sub = consume_with(&cch, &q, "slow", false, FieldTable::default()).await;
    publish(&ch, &q, b"one").await;
    publish(&ch, &q, b"two").await;
    let start = Instant::now();
    let d1 = sub.next().await;
    let d2 = sub.next().await;
    assert_eq!(
        (d1.data.as_slice(), d2.data.as_slice()),
        (&b"one"[..], &b"two"[..])
    );

    sub.cancelled_within(3000).await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "cancelled after {:?}, before the 300 ms timeout",
        start.elapsed()
    );
    // Both unacked deliveries went back to the queue, in order, marked redelivered.
    let m1 = poll_get(&ch, &q, 2000, true).await;
    let m2 = poll_get(&ch, &q, 2000, true).await;
    assert_eq!(m1.delivery.data, b"one");
    assert_eq!(m2.delivery.data, b"two");
    assert!(m1.delivery.redelivered && m2.delivery.redelivered);
    // The consumer's channel stays open and usable.
    let again = consume_with(&cch, &q, "again", true, FieldTable::default()).await;
    drop(again);
    publish(&ch, &q, b"three").await;
    within(b.stop()).await;
}

#[tokio::test]
async fn acks_within_the_timeout_keep_the_consumer() {
    let Some(b) = start("acks_within_timeout").await else {
        return;
    };
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "timely", timeout_args(300)).await;
    let mut sub = consume_with(&ch, &q, "timely", false, FieldTable::default()).await;
    // 5 x 150 ms: longer than the timeout in total, but each delivery is acked in time.
    for i in 0..5u8 {
        publish(&ch, &q, &[i]).await;
        let d = sub.next().await;
        assert_eq!(d.data, [i]);
        tokio::time::sleep(Duration::from_millis(150)).await;
        ack(&ch, d.delivery_tag).await;
    }
    publish(&ch, &q, b"still here").await;
    let d = sub.next().await;
    assert_eq!(d.data, b"still here");
    assert!(!d.redelivered);
    ack(&ch, d.delivery_tag).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn no_ack_consumers_have_no_timeout() {
    let Some(b) = start("no_ack_no_timeout").await else {
        return;
    };
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "no-ack", timeout_args(200)).await;
    let mut sub = consume_with(&ch, &q, "fast", true, FieldTable::default()).await;
    publish(&ch, &q, b"1").await;
    assert_eq!(sub.next().await.data, b"1");
    tokio::time::sleep(Duration::from_millis(600)).await;
    publish(&ch, &q, b"2").await;
    assert_eq!(sub.next().await.data, b"2");
    within(b.stop()).await;
}

#[tokio::test]
async fn the_timeout_only_cancels_the_consumer_that_held_the_delivery() {
    let Some(b) = start("only_the_slow_consumer").await else {
        return;
    };
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let slow_q = new_queue(&ch, "slow", timeout_args(300)).await;
    let fast_q = new_queue(&ch, "fast", timeout_args(300)).await;
    let cch = within(conn.create_channel()).await.expect("channel");
    let mut slow = consume_with(&cch, &slow_q, "slow", false, FieldTable::default()).await;
    let mut fast = consume_with(&cch, &fast_q, "fast", false, FieldTable::default()).await;
    publish(&ch, &slow_q, b"held").await;
    assert_eq!(slow.next().await.data, b"held");
    slow.cancelled_within(3000).await;
    publish(&ch, &fast_q, b"ok").await;
    let d = fast.next().await;
    assert_eq!(d.data, b"ok");
    ack(&cch, d.delivery_tag).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn the_server_wide_consumer_timeout_applies_without_the_argument() {
    if external() {
        eprintln!("server_wide_consumer_timeout: skipped, needs an in-process broker");
        return;
    }
    let b = within(common::start_with(|c| c.consumer_timeout_ms = 300)).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "server-wide", FieldTable::default()).await;
    let long_q = new_queue(&ch, "overridden", timeout_args(60_000)).await;
    let cch = within(conn.create_channel()).await.expect("channel");
    let mut sub = consume_with(&cch, &q, "slow", false, FieldTable::default()).await;
    let mut patient = consume_with(&cch, &long_q, "patient", false, FieldTable::default()).await;
    publish(&ch, &q, b"held").await;
    publish(&ch, &long_q, b"held long").await;
    assert_eq!(sub.next().await.data, b"held");
    let held = patient.next().await;
    sub.cancelled_within(3000).await;
    assert!(poll_get(&ch, &q, 2000, true).await.delivery.redelivered);
    // x-consumer-timeout overrides the server-wide value.
    patient.assert_quiet(300).await;
    ack(&cch, held.delivery_tag).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn invalid_consumer_timeout_argument_is_precondition_failed() {
    let Some(b) = start("invalid_consumer_timeout").await else {
        return;
    };
    let conn = within(b.connect()).await;
    for value in [
        AMQPValue::LongLongInt(0),
        AMQPValue::LongLongInt(-5),
        s("soon"),
    ] {
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let err = within(ch.queue_declare(
            unique("bad").as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            table(&[("x-consumer-timeout", value.clone())]),
        ))
        .await
        .expect_err("invalid x-consumer-timeout");
        assert_eq!(reply_code(&err), Some(406), "{value:?}: {err:?}");
        let text = reply_text(&err).unwrap_or_default();
        assert!(
            text.starts_with("PRECONDITION_FAILED - invalid arg 'x-consumer-timeout'"),
            "{text}"
        );
    }
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// raw client without consumer_cancel_notify
// ---------------------------------------------------------------------------------------------

/// A minimal AMQP client that announces no capabilities.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn send(&mut self, frame: AMQPFrame) {
        let bytes = gen_frame(&frame)(WriteContext::from(Vec::new()))
            .expect("encode")
            .write;
        within(self.stream.write_all(&bytes)).await.expect("write");
    }

    /// The next frame (heartbeats skipped), or None on EOF.
    async fn frame(&mut self) -> Option<AMQPFrame> {
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
                let len = 7 + size as usize + 1;
                if self.buf.len() >= len {
                    let bytes: Vec<u8> = self.buf.drain(..len).collect();
                    let (_, frame) = parse_frame(&bytes[..]).expect("a valid frame");
                    if matches!(frame, AMQPFrame::Heartbeat) {
                        continue;
                    }
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 8192];
            match within(self.stream.read(&mut chunk)).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn method(&mut self) -> (u16, AMQPClass) {
        match self.frame().await {
            Some(AMQPFrame::Method(ch, m)) => (ch, m),
            other => panic!("expected a method, got {other:?}"),
        }
    }

    async fn open(addr: SocketAddr) -> Raw {
        let stream = within(TcpStream::connect(addr)).await.expect("connect");
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
        };
        within(raw.stream.write_all(b"AMQP\x00\x00\x09\x01"))
            .await
            .expect("write");
        let (_, start) = raw.method().await;
        assert!(matches!(
            start,
            AMQPClass::Connection(connection::AMQPMethod::Start(_))
        ));
        raw.send(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: amq_protocol::types::FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
        ))
        .await;
        let tune = match raw.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            other => panic!("expected tune, got {other:?}"),
        };
        raw.send(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            })),
        ))
        .await;
        raw.send(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ))
        .await;
        assert!(matches!(
            raw.method().await,
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))
        ));
        raw.send(AMQPFrame::Method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ))
        .await;
        assert!(matches!(
            raw.method().await,
            (1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
        ));
        raw
    }
}

#[tokio::test]
async fn a_client_without_consumer_cancel_notify_gets_its_channel_closed_with_406() {
    let Some(b) = start("no_cancel_notify").await else {
        return;
    };
    let q = unique("raw");
    let mut raw = Raw::open(b.addr).await;
    let mut args = amq_protocol::types::FieldTable::default();
    args.insert(
        "x-consumer-timeout".into(),
        amq_protocol::types::AMQPValue::LongLongInt(300),
    );
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: q.as_str().into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: args,
        })),
    ))
    .await;
    assert!(matches!(
        raw.method().await,
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: q.as_str().into(),
            mandatory: false,
            immediate: false,
        })),
    ))
    .await;
    raw.send(AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: 4,
            properties: basic::AMQPProperties::default(),
        },
    ))
    .await;
    raw.send(AMQPFrame::Body(1, b"held".to_vec())).await;
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: q.as_str().into(),
            consumer_tag: "raw".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: amq_protocol::types::FieldTable::default(),
        })),
    ))
    .await;
    let start = Instant::now();
    let close = loop {
        match raw.frame().await {
            Some(AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(c)))) => {
                break c;
            }
            Some(AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Cancel(c)))) => {
                panic!("basic.cancel sent to a client without consumer_cancel_notify: {c:?}")
            }
            Some(_) => {} // consume-ok, deliver, header, body
            None => panic!("connection closed instead of the channel"),
        }
    };
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        close.reply_text.as_str(),
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 300 ms. This timeout value can be configured, see consumers doc guide to learn more"
    );
    // The message is back in the queue for others.
    let (_conn, ch) = within(b.channel()).await;
    let m = poll_get(&ch, &q, 2000, true).await;
    assert_eq!(m.delivery.data, b"held");
    assert!(m.delivery.redelivered);
    within(ch.queue_delete(q.as_str().into(), Default::default()))
        .await
        .expect("queue.delete");
    within(b.stop()).await;
}
