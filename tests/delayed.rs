//! Delayed messages driven through lapin: an exchange of type x-delayed-message routes like its
//! x-delayed-type once the x-delay header (ms) has passed, and a durable one keeps pending
//! messages across a restart.
//!
//! RabbitMQ 3.10 here has no rabbitmq-delayed-message-exchange plugin, so these tests skip
//! themselves against an external broker; the expectations follow the plugin's README (exchange
//! type `x-delayed-message`, mandatory `x-delayed-type` argument naming an existing exchange type,
//! `x-delay` header in milliseconds, no header or a delay of 0 routes at once, the publish is
//! confirmed when the message is accepted, not when it is routed).

mod common;

use common::amqp::*;
use common::within;
use lapin::message::{Delivery, DeliveryResult};
use lapin::options::{
    BasicConsumeOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Consumer, ExchangeKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
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
        "warren-delayed-{what}-{}-{nanos}-{}",
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

fn skip(test: &str) -> bool {
    if external() {
        eprintln!("{test}: skipped, RabbitMQ here has no delayed-message exchange plugin");
    }
    external()
}

async fn confirm_channel(b: &common::TestBroker) -> (lapin::Connection, Channel) {
    let (conn, ch) = within(b.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    (conn, ch)
}

async fn delayed_exchange(ch: &Channel, name: &str, kind: &str, durable: bool) {
    within(ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        table(&[("x-delayed-type", s(kind))]),
    ))
    .await
    .expect("exchange.declare x-delayed-message");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.bind");
}

fn delay(ms: i64) -> BasicProperties {
    BasicProperties::default().with_headers(table(&[("x-delay", int(ms))]))
}

/// A delayed direct exchange with one bound queue (key "k").
async fn direct_setup(ch: &Channel) -> (String, String) {
    let x = unique("delayed");
    delayed_exchange(ch, &x, "direct", false).await;
    let q = new_queue(ch, "target", FieldTable::default()).await;
    bind(ch, &q, &x, "k").await;
    (x, q)
}

async fn delete_exchange(ch: &Channel, name: &str) {
    within(ch.exchange_delete(name.into(), Default::default()))
        .await
        .expect("exchange.delete");
}

#[tokio::test]
async fn a_delayed_message_arrives_after_its_delay_and_not_before() {
    if skip("arrives_after_delay") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let (x, q) = direct_setup(&ch).await;
    let start = Instant::now();
    let c = publish_props(&ch, &x, "k", b"later", delay(400)).await;
    assert!(
        matches!(c, Confirmation::Ack(None)),
        "confirmed on acceptance: {c:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "the confirm did not wait for the delay"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get(&ch, &q, true).await.is_none(), "delivered too early");
    let m = poll_get(&ch, &q, 3000, true).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(390),
        "arrived after {elapsed:?}"
    );
    assert_eq!(m.delivery.data, b"later");
    assert_eq!(m.delivery.exchange.as_str(), x);
    assert_eq!(m.delivery.routing_key.as_str(), "k");
    delete_exchange(&ch, &x).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn without_a_delay_the_message_is_routed_at_once() {
    if skip("no_delay") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let (x, q) = direct_setup(&ch).await;
    publish_props(&ch, &x, "k", b"no header", BasicProperties::default()).await;
    publish_props(&ch, &x, "k", b"zero", delay(0)).await;
    publish_props(&ch, &x, "other", b"unrouted", BasicProperties::default()).await;
    let a = poll_get(&ch, &q, 500, true).await;
    let z = poll_get(&ch, &q, 500, true).await;
    assert_eq!(a.delivery.data, b"no header");
    assert_eq!(z.delivery.data, b"zero");
    assert!(get(&ch, &q, true).await.is_none());
    delete_exchange(&ch, &x).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn shorter_delays_overtake_longer_ones() {
    if skip("ordering") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let (x, q) = direct_setup(&ch).await;
    let mut sub = consume_with(&ch, &q, "c", true, FieldTable::default()).await;
    publish_props(&ch, &x, "k", b"500", delay(500)).await;
    publish_props(&ch, &x, "k", b"100", delay(100)).await;
    publish_props(&ch, &x, "k", b"300", delay(300)).await;
    assert_eq!(sub.next().await.data, b"100");
    assert_eq!(sub.next().await.data, b"300");
    assert_eq!(sub.next().await.data, b"500");
    delete_exchange(&ch, &x).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn delayed_type_topic_and_fanout_route_as_their_type() {
    if skip("delayed_types") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let topic = unique("delayed-topic");
    delayed_exchange(&ch, &topic, "topic", false).await;
    let fanout = unique("delayed-fanout");
    delayed_exchange(&ch, &fanout, "fanout", false).await;
    let tq = new_queue(&ch, "topic-q", FieldTable::default()).await;
    let fq = new_queue(&ch, "fanout-q", FieldTable::default()).await;
    bind(&ch, &tq, &topic, "orders.*").await;
    bind(&ch, &fq, &fanout, "ignored").await;
    publish_props(&ch, &topic, "orders.created", b"match", delay(150)).await;
    publish_props(&ch, &topic, "users.created", b"no match", delay(150)).await;
    publish_props(&ch, &fanout, "any", b"fan", delay(150)).await;
    assert_eq!(poll_get(&ch, &tq, 3000, true).await.delivery.data, b"match");
    assert_eq!(poll_get(&ch, &fq, 3000, true).await.delivery.data, b"fan");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get(&ch, &tq, true).await.is_none());
    delete_exchange(&ch, &topic).await;
    delete_exchange(&ch, &fanout).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn x_delayed_type_must_name_an_exchange_type() {
    if skip("x_delayed_type_required") {
        return;
    }
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    for args in [
        FieldTable::default(),
        table(&[("x-delayed-type", s("nope"))]),
    ] {
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let name = unique("bad-delayed");
        let err = within(ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Custom("x-delayed-message".into()),
            ExchangeDeclareOptions::default(),
            args.clone(),
        ))
        .await
        .expect_err("x-delayed-type is required");
        assert_eq!(reply_code(&err), Some(406), "{args:?}: {err:?}");
        assert_eq!(
            reply_text(&err).as_deref(),
            Some(
                "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"
            )
        );
        // Nothing was declared.
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let err = within(ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Custom("x-delayed-message".into()),
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ))
        .await
        .expect_err("not declared");
        assert_eq!(reply_code(&err), Some(404), "{err:?}");
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn a_durable_delayed_message_survives_a_restart_and_arrives_on_time() {
    if skip("durable_delayed_restart") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let b = within(common::start_with(move |c| c.data_dir = path)).await;
    let (conn, ch) = confirm_channel(&b).await;
    delayed_exchange(&ch, "delayed-durable", "direct", true).await;
    declare(
        &ch,
        "delayed-target",
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
    bind(&ch, "delayed-target", "delayed-durable", "k").await;
    let start = Instant::now();
    let props = delay(1500).with_delivery_mode(2);
    let c = publish_props(&ch, "delayed-durable", "k", b"survivor", props).await;
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    drop(ch);
    drop(conn);
    within(b.stop()).await;

    let path = dir.path().to_path_buf();
    let b = within(common::start_with(move |c| c.data_dir = path)).await;
    let (_conn, ch) = within(b.channel()).await;
    if start.elapsed() < Duration::from_millis(1300) {
        assert!(
            get(&ch, "delayed-target", true).await.is_none(),
            "delivered before its delay"
        );
    }
    let m = poll_get(&ch, "delayed-target", 5000, true).await;
    assert!(
        start.elapsed() >= Duration::from_millis(1490),
        "arrived after {:?}",
        start.elapsed()
    );
    assert_eq!(m.delivery.data, b"survivor");
    assert!(
        get(&ch, "delayed-target", true).await.is_none(),
        "exactly once"
    );
    within(b.stop()).await;
}
