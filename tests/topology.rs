//! Exchanges, queues and bindings seen through lapin: declare/delete semantics and their errors,
//! routing through every exchange type, exchange-to-exchange bindings, alternate exchanges,
//! CC/BCC, auto-delete and exclusive lifetimes, and consumer cancel notification.
//!
//! Every expectation here was checked against RabbitMQ 3.10 (`WARREN_TEST_URI=...`); names are
//! unique per run so the suite can share an external broker.

mod common;

use common::within;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::protocol::AMQPErrorKind;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer, ExchangeKind};
use std::collections::BTreeSet;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The AMQP reply code carried by a channel.close or connection.close the broker sent.
fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// The reply text of the broker's close, if the error is one.
fn reply_text(err: &lapin::Error) -> Option<String> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_message().as_str().to_owned()),
        _ => None,
    }
}

fn is_hard(err: &lapin::Error) -> bool {
    matches!(err.kind(), lapin::ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Hard(_)))
}

/// Asserts `res` failed with the broker's `code` and exact `text`.
#[track_caller]
fn assert_amqp_err<T: std::fmt::Debug>(res: lapin::Result<T>, code: u16, text: &str) {
    let err = res.expect_err("expected the broker to refuse");
    assert_eq!(reply_code(&err), Some(code), "wrong reply code: {err}");
    assert_eq!(
        reply_text(&err).as_deref(),
        Some(text),
        "wrong reply text: {err}"
    );
}

/// A name unique to this test run, so tests can share an external broker.
fn uniq(base: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{base}-{}-{nanos}", std::process::id())
}

/// A connection and a channel in confirm mode, so a publish is routed once its confirm arrives.
async fn setup(tb: &common::TestBroker) -> (Connection, Channel) {
    let (conn, ch) = within(tb.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// Publishes and returns the broker's answer: the confirm, or the error that closed the channel.
async fn try_publish_with(
    ch: &Channel,
    exchange: &str,
    rk: &str,
    body: &[u8],
    props: BasicProperties,
) -> lapin::Result<Confirmation> {
    let confirm = within(ch.basic_publish(
        exchange.into(),
        rk.into(),
        BasicPublishOptions::default(),
        body,
        props,
    ))
    .await
    .expect("publish frames sent");
    within(confirm).await
}

async fn try_publish(
    ch: &Channel,
    exchange: &str,
    rk: &str,
    body: &[u8],
) -> lapin::Result<Confirmation> {
    try_publish_with(ch, exchange, rk, body, BasicProperties::default()).await
}

async fn publish_with(ch: &Channel, exchange: &str, rk: &str, body: &[u8], props: BasicProperties) {
    let confirmation = try_publish_with(ch, exchange, rk, body, props)
        .await
        .expect("confirm");
    assert!(
        matches!(confirmation, Confirmation::Ack(_)),
        "publish to {exchange:?}/{rk:?} not acked: {confirmation:?}"
    );
}

async fn publish(ch: &Channel, exchange: &str, rk: &str, body: &[u8]) {
    publish_with(ch, exchange, rk, body, BasicProperties::default()).await
}

fn no_args() -> FieldTable {
    FieldTable::default()
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn lstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// A server-named exclusive queue (gone when the test's connection closes).
async fn temp_queue(ch: &Channel) -> String {
    let q = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare temp queue");
    q.name().as_str().to_owned()
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, args: FieldTable) {
    within(ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        args,
    ))
    .await
    .expect("declare exchange");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, rk: &str, args: FieldTable) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        rk.into(),
        QueueBindOptions::default(),
        args,
    ))
    .await
    .expect("queue.bind");
}

/// Takes every ready message from `queue` (no-ack) and returns the bodies.
async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(msg) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
    {
        out.push(msg.delivery.data);
    }
    out
}

async fn get_one(ch: &Channel, queue: &str) -> Option<Delivery> {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
        .map(|m| m.delivery)
}

/// Whether `queue` exists, probed with a passive declare on a throwaway channel.
async fn queue_exists(conn: &Connection, queue: &str) -> bool {
    let ch = within(conn.create_channel()).await.expect("probe channel");
    let res = within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await;
    match res {
        Ok(_) => {
            let _ = within(ch.close(200, "probe".into())).await;
            true
        }
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("probing {queue}: {e}"),
    }
}

/// Waits (bounded) until `queue` no longer exists: deletions may be asynchronous.
async fn wait_queue_gone(conn: &Connection, queue: &str) {
    within(async {
        while queue_exists(conn, queue).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Polls a lapin `Consumer` (whose `Stream` trait we cannot name) with a bounded wait.
async fn next_delivery(
    consumer: &mut tokio_test::task::Spawn<Consumer>,
) -> Option<lapin::Result<Delivery>> {
    within(async {
        loop {
            match consumer.poll_next() {
                Poll::Ready(item) => break item,
                Poll::Pending => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
}

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Exchanges
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = temp_queue(&ch).await;
    let other = temp_queue(&ch).await;
    publish(&ch, "", &q, b"direct-to-queue").await;
    publish(&ch, "", "no-such-queue-anywhere", b"dropped").await;
    assert_eq!(drain(&ch, &q).await, vec![b"direct-to-queue".to_vec()]);
    assert!(drain(&ch, &other).await.is_empty());
    tb.stop().await;
}

/// A channel remembers the queue it last published to through the default exchange: that
/// memory must follow a change of routing key and must not outlive the queue.
#[tokio::test]
async fn default_exchange_follows_keys_and_redeclared_queues() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let (a, b) = (uniq("dflt-a"), uniq("dflt-b"));
    for q in [&a, &b] {
        within(ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), no_args()))
            .await
            .expect("declare");
    }
    publish(&ch, "", &a, b"a1").await;
    publish(&ch, "", &b, b"b1").await;
    publish(&ch, "", &a, b"a2").await;
    assert_eq!(drain(&ch, &a).await, vec![b"a1".to_vec(), b"a2".to_vec()]);
    assert_eq!(drain(&ch, &b).await, vec![b"b1".to_vec()]);
    within(ch.queue_delete(a.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("delete");
    publish(&ch, "", &a, b"nowhere").await;
    within(ch.queue_declare(a.as_str().into(), QueueDeclareOptions::default(), no_args()))
        .await
        .expect("redeclare");
    publish(&ch, "", &a, b"a3").await;
    assert_eq!(drain(&ch, &a).await, vec![b"a3".to_vec()]);
    for q in [&a, &b] {
        within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
            .await
            .expect("cleanup");
    }
    tb.stop().await;
}

#[tokio::test]
async fn builtin_exchanges_exist() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        within(ch.exchange_declare(name.into(), kind, passive(), no_args()))
            .await
            .unwrap_or_else(|e| panic!("{name} should exist: {e}"));
    }
    tb.stop().await;
}

#[tokio::test]
async fn exchange_passive_declare_missing_is_not_found() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("missing-x");
    let res = within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Direct,
        passive(),
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn exchange_redeclare_with_different_type_fails() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-type");
    declare_exchange(&ch, &ex, ExchangeKind::Direct, no_args()).await;
    let res = within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{ex}' in vhost '/': received 'fanout' but current is 'direct'"
        ),
    );
    let (_c2, ch2) = setup(&tb).await;
    within(ch2.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn exchange_redeclare_with_different_durable_fails() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-durable");
    declare_exchange(&ch, &ex, ExchangeKind::Direct, no_args()).await;
    let res = within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            durable: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{ex}' in vhost '/': received 'true' but current is 'false'"
        ),
    );
    let (_c2, ch2) = setup(&tb).await;
    within(ch2.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn exchange_declare_with_amq_prefix_is_refused() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let res = within(ch.exchange_declare(
        "amq.foo".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        403,
        "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'",
    );
    tb.stop().await;
}

/// RabbitMQ treats an unknown exchange type as a connection error (503 is a hard error).
#[tokio::test]
async fn exchange_declare_with_unknown_type_is_command_invalid() {
    let tb = common::start().await;
    let (conn, ch) = setup(&tb).await;
    let ex = uniq("x-unknown-type");
    let res = within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Custom("x-no-such-type".into()),
        ExchangeDeclareOptions::default(),
        no_args(),
    ))
    .await;
    let err = res.as_ref().expect_err("unknown type refused").clone();
    assert!(is_hard(&err), "{err}");
    assert_amqp_err(
        res,
        503,
        "COMMAND_INVALID - unknown exchange type 'x-no-such-type'",
    );
    within(async {
        while conn.status().connected() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    tb.stop().await;
}

#[tokio::test]
async fn exchange_delete_if_unused_with_bindings_fails() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-in-use");
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, no_args()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &ex, "", no_args()).await;
    let res = within(ch.exchange_delete(
        ex.as_str().into(),
        ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    ))
    .await;
    assert_amqp_err(
        res,
        406,
        &format!("PRECONDITION_FAILED - exchange '{ex}' in vhost '/' in use"),
    );
    // Still there, and deletable without if_unused.
    let (_c2, ch2) = setup(&tb).await;
    within(ch2.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Fanout,
        passive(),
        no_args(),
    ))
    .await
    .expect("exchange survived the refused delete");
    within(ch2.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("delete");
    tb.stop().await;
}

#[tokio::test]
async fn exchange_delete_missing_is_ok() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-never-existed");
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("RabbitMQ 3.x answers delete-ok for a missing exchange");
    within(ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .expect("channel still open");
    tb.stop().await;
}

#[tokio::test]
async fn exchange_delete_removes_it() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-deleted");
    declare_exchange(&ch, &ex, ExchangeKind::Topic, no_args()).await;
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("delete");
    let res = within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Topic,
        passive(),
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"),
    );
    tb.stop().await;
}

/// A channel remembers the exchange it publishes to; deleting that exchange (from another
/// channel) must make its next publish fail with 404, and declaring it again must route by the
/// new exchange's bindings, not the old one's.
#[tokio::test]
async fn publisher_sees_its_exchange_deleted_and_declared_again() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let (_c2, admin) = setup(&tb).await;
    let ex = uniq("x-recreated");
    let (old_q, new_q) = (temp_queue(&admin).await, temp_queue(&admin).await);
    declare_exchange(&admin, &ex, ExchangeKind::Direct, no_args()).await;
    bind(&admin, &old_q, &ex, "k", no_args()).await;
    publish(&ch, &ex, "k", b"one").await;
    within(admin.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("delete");
    declare_exchange(&admin, &ex, ExchangeKind::Fanout, no_args()).await;
    bind(&admin, &new_q, &ex, "", no_args()).await;
    publish(&ch, &ex, "k", b"two").await;
    within(admin.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("delete again");
    assert_amqp_err(
        try_publish(&ch, &ex, "k", b"lost").await,
        404,
        &format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"),
    );
    assert_eq!(drain(&admin, &old_q).await, vec![b"one".to_vec()]);
    assert_eq!(drain(&admin, &new_q).await, vec![b"two".to_vec()]);
    tb.stop().await;
}

#[tokio::test]
async fn publish_to_internal_exchange_is_refused() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-internal");
    within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            internal: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare internal");
    assert_amqp_err(
        try_publish(&ch, &ex, "", b"x").await,
        403,
        &format!("ACCESS_REFUSED - cannot publish to internal exchange '{ex}' in vhost '/'"),
    );
    let (_c2, ch2) = setup(&tb).await;
    within(ch2.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn publish_to_missing_exchange_is_not_found() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-absent");
    assert_amqp_err(
        try_publish(&ch, &ex, "", b"x").await,
        404,
        &format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn exchange_to_exchange_binding_routes_and_unbinds() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let src = uniq("e2e-src");
    let dst = uniq("e2e-dst");
    // Not auto-delete: unbinding its only binding would delete an auto-delete source.
    within(ch.exchange_declare(
        src.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        no_args(),
    ))
    .await
    .expect("declare source");
    declare_exchange(&ch, &dst, ExchangeKind::Fanout, no_args()).await;
    let q = temp_queue(&ch).await;
    bind(&ch, &q, &dst, "", no_args()).await;
    within(ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "k1".into(),
        ExchangeBindOptions::default(),
        no_args(),
    ))
    .await
    .expect("exchange.bind");
    publish(&ch, &src, "k1", b"via-e2e").await;
    publish(&ch, &src, "k2", b"no-binding").await;
    assert_eq!(drain(&ch, &q).await, vec![b"via-e2e".to_vec()]);

    within(ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "k1".into(),
        ExchangeUnbindOptions::default(),
        no_args(),
    ))
    .await
    .expect("exchange.unbind");
    publish(&ch, &src, "k1", b"after-unbind").await;
    assert!(drain(&ch, &q).await.is_empty());
    for ex in [&src, &dst] {
        within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
            .await
            .expect("cleanup");
    }
    tb.stop().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_when_last_binding_is_removed() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("x-autodel");
    declare_exchange(&ch, &ex, ExchangeKind::Fanout, no_args()).await;
    let (q1, q2) = (temp_queue(&ch).await, temp_queue(&ch).await);
    bind(&ch, &q1, &ex, "", no_args()).await;
    bind(&ch, &q2, &ex, "", no_args()).await;
    within(ch.queue_unbind(q1.as_str().into(), ex.as_str().into(), "".into(), no_args()))
        .await
        .expect("unbind q1");
    within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Fanout,
        passive(),
        no_args(),
    ))
    .await
    .expect("one binding left: exchange stays");
    within(ch.queue_unbind(q2.as_str().into(), ex.as_str().into(), "".into(), no_args()))
        .await
        .expect("unbind q2");
    let res = within(ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Fanout,
        passive(),
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn exchange_bind_to_missing_source_is_not_found() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let src = uniq("e2e-missing-src");
    let res = within(ch.exchange_bind(
        "amq.fanout".into(),
        src.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no exchange '{src}' in vhost '/'"),
    );
    tb.stop().await;
}

/// a -> b -> a: each queue gets one copy, however many paths lead to it.
#[tokio::test]
async fn exchange_binding_loop_delivers_once() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let a = uniq("loop-a");
    let b = uniq("loop-b");
    declare_exchange(&ch, &a, ExchangeKind::Fanout, no_args()).await;
    declare_exchange(&ch, &b, ExchangeKind::Fanout, no_args()).await;
    for (dst, src) in [(&b, &a), (&a, &b)] {
        within(ch.exchange_bind(
            dst.as_str().into(),
            src.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            no_args(),
        ))
        .await
        .expect("exchange.bind");
    }
    let qa = temp_queue(&ch).await;
    let qb = temp_queue(&ch).await;
    bind(&ch, &qa, &a, "", no_args()).await;
    bind(&ch, &qb, &b, "", no_args()).await;
    // Also reachable twice: bound directly to both a and b.
    let qab = temp_queue(&ch).await;
    bind(&ch, &qab, &a, "", no_args()).await;
    bind(&ch, &qab, &b, "", no_args()).await;

    publish(&ch, &a, "", b"once").await;
    for q in [&qa, &qb, &qab] {
        assert_eq!(drain(&ch, q).await, vec![b"once".to_vec()], "queue {q}");
    }
    for ex in [&a, &b] {
        within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
            .await
            .expect("cleanup");
    }
    tb.stop().await;
}

#[tokio::test]
async fn alternate_exchange_receives_unroutable_messages() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ae = uniq("ae");
    let main = uniq("ae-main");
    declare_exchange(&ch, &ae, ExchangeKind::Fanout, no_args()).await;
    declare_exchange(
        &ch,
        &main,
        ExchangeKind::Direct,
        table(&[("alternate-exchange", lstr(&ae))]),
    )
    .await;
    let unrouted = temp_queue(&ch).await;
    let routed = temp_queue(&ch).await;
    bind(&ch, &unrouted, &ae, "", no_args()).await;
    bind(&ch, &routed, &main, "known", no_args()).await;

    publish(&ch, &main, "known", b"routed").await;
    publish(&ch, &main, "unknown", b"to-ae").await;
    assert_eq!(drain(&ch, &routed).await, vec![b"routed".to_vec()]);
    assert_eq!(drain(&ch, &unrouted).await, vec![b"to-ae".to_vec()]);
    for ex in [&main, &ae] {
        within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
            .await
            .expect("cleanup");
    }
    tb.stop().await;
}

fn routing_keys(keys: &[&str]) -> AMQPValue {
    AMQPValue::FieldArray(FieldArray::from(
        keys.iter().map(|k| lstr(k)).collect::<Vec<_>>(),
    ))
}

#[tokio::test]
async fn cc_header_adds_routing_keys_and_is_kept() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("cc");
    declare_exchange(&ch, &ex, ExchangeKind::Direct, no_args()).await;
    let (q1, q2, q3) = (
        temp_queue(&ch).await,
        temp_queue(&ch).await,
        temp_queue(&ch).await,
    );
    bind(&ch, &q1, &ex, "k1", no_args()).await;
    bind(&ch, &q2, &ex, "k2", no_args()).await;
    bind(&ch, &q3, &ex, "k3", no_args()).await;
    let props = BasicProperties::default().with_headers(table(&[("CC", routing_keys(&["k2"]))]));
    publish_with(&ch, &ex, "k1", b"cc", props).await;
    for q in [&q1, &q2] {
        let d = get_one(&ch, q)
            .await
            .unwrap_or_else(|| panic!("{q} got the CC'd message"));
        assert_eq!(
            d.routing_key.as_str(),
            "k1",
            "delivered with the original routing key"
        );
        let headers = d.properties.headers().clone().expect("headers kept");
        assert_eq!(headers.inner().get("CC"), Some(&routing_keys(&["k2"])));
    }
    assert!(get_one(&ch, &q3).await.is_none());
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn bcc_header_adds_routing_keys_and_is_removed() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("bcc");
    declare_exchange(&ch, &ex, ExchangeKind::Direct, no_args()).await;
    let (q1, q2) = (temp_queue(&ch).await, temp_queue(&ch).await);
    bind(&ch, &q1, &ex, "k1", no_args()).await;
    bind(&ch, &q2, &ex, "k2", no_args()).await;
    let props = BasicProperties::default().with_headers(table(&[
        ("BCC", routing_keys(&["k2"])),
        ("keep", lstr("me")),
    ]));
    publish_with(&ch, &ex, "k1", b"bcc", props).await;
    for q in [&q1, &q2] {
        let d = get_one(&ch, q)
            .await
            .unwrap_or_else(|| panic!("{q} got the BCC'd message"));
        assert_eq!(d.data, b"bcc");
        let headers = d.properties.headers().clone().expect("other headers kept");
        assert!(
            !headers.contains_key("BCC"),
            "BCC must be stripped: {headers:?}"
        );
        assert_eq!(headers.inner().get("keep"), Some(&lstr("me")));
    }
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn topic_exchange_matches_star_and_hash() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let ex = uniq("topic");
    declare_exchange(&ch, &ex, ExchangeKind::Topic, no_args()).await;
    let patterns = ["a.*.c", "a.#", "#", "*.b", "a.b.c", "*", "#.c", "a.*.#.d"];
    let mut queues = Vec::new();
    for p in patterns {
        let q = temp_queue(&ch).await;
        bind(&ch, &q, &ex, p, no_args()).await;
        queues.push(q);
    }
    let keys = [
        "a.b.c",
        "a",
        "a.b",
        "x.b",
        "a.x.y.c",
        "c",
        "a..c",
        "a.b.d",
        "a.b.x.y.d",
        "b.c.d",
    ];
    for k in keys {
        publish(&ch, &ex, k, k.as_bytes()).await;
    }
    let expected: [&[&str]; 8] = [
        &["a.b.c", "a..c"],                                              // a.*.c
        &["a.b.c", "a", "a.b", "a.x.y.c", "a..c", "a.b.d", "a.b.x.y.d"], // a.#
        &keys,                                                           // #
        &["a.b", "x.b"],                                                 // *.b
        &["a.b.c"],                                                      // a.b.c
        &["a", "c"],                                                     // *
        &["a.b.c", "a.x.y.c", "c", "a..c"],                              // #.c
        &["a.b.d", "a.b.x.y.d"],                                         // a.*.#.d
    ];
    for ((pattern, q), want) in patterns.iter().zip(&queues).zip(expected) {
        let got: BTreeSet<String> = drain(&ch, q)
            .await
            .into_iter()
            .map(|b| String::from_utf8(b).expect("utf8"))
            .collect();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "pattern {pattern:?}");
    }
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

/// Binds one queue to a fresh headers exchange with `binding`, publishes each message's headers
/// and returns which of them (by index) arrived.
async fn headers_routing(ch: &Channel, binding: FieldTable, messages: &[FieldTable]) -> Vec<usize> {
    let ex = uniq("headers");
    declare_exchange(ch, &ex, ExchangeKind::Headers, no_args()).await;
    let q = temp_queue(ch).await;
    bind(ch, &q, &ex, "", binding).await;
    for (i, headers) in messages.iter().enumerate() {
        let props = BasicProperties::default().with_headers(headers.clone());
        publish_with(ch, &ex, "", i.to_string().as_bytes(), props).await;
    }
    let got = drain(ch, &q)
        .await
        .into_iter()
        .map(|b| String::from_utf8(b).expect("utf8").parse().expect("index"))
        .collect();
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()))
        .await
        .expect("cleanup");
    got
}

#[tokio::test]
async fn headers_exchange_x_match_all() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let binding = table(&[
        ("x-match", lstr("all")),
        ("format", lstr("pdf")),
        ("type", lstr("report")),
    ]);
    let messages = [
        table(&[("format", lstr("pdf")), ("type", lstr("report"))]),
        table(&[("format", lstr("pdf"))]),
        table(&[
            ("format", lstr("pdf")),
            ("type", lstr("report")),
            ("extra", lstr("1")),
        ]),
        table(&[("format", lstr("pdf")), ("type", lstr("log"))]),
        table(&[]),
    ];
    assert_eq!(headers_routing(&ch, binding, &messages).await, vec![0, 2]);
    tb.stop().await;
}

#[tokio::test]
async fn headers_exchange_defaults_to_all() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let binding = table(&[("format", lstr("pdf")), ("type", lstr("report"))]);
    let messages = [
        table(&[("format", lstr("pdf")), ("type", lstr("report"))]),
        table(&[("format", lstr("pdf"))]),
    ];
    assert_eq!(headers_routing(&ch, binding, &messages).await, vec![0]);
    tb.stop().await;
}

#[tokio::test]
async fn headers_exchange_x_match_any() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let binding = table(&[
        ("x-match", lstr("any")),
        ("format", lstr("pdf")),
        ("type", lstr("report")),
    ]);
    let messages = [
        table(&[("format", lstr("pdf")), ("type", lstr("log"))]),
        table(&[("type", lstr("report"))]),
        table(&[("format", lstr("zip")), ("type", lstr("log"))]),
        table(&[("other", lstr("pdf"))]),
        table(&[]),
    ];
    assert_eq!(headers_routing(&ch, binding, &messages).await, vec![0, 1]);
    tb.stop().await;
}

/// Plain `all`/`any` ignore `x-` headers in the binding; the `-with-x` variants compare them.
#[tokio::test]
async fn headers_exchange_all_ignores_x_headers() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let binding = table(&[
        ("x-match", lstr("all")),
        ("x-tag", lstr("a")),
        ("y", lstr("1")),
    ]);
    let messages = [
        table(&[("y", lstr("1"))]),
        table(&[("y", lstr("1")), ("x-tag", lstr("other"))]),
        table(&[("x-tag", lstr("a"))]),
    ];
    assert_eq!(headers_routing(&ch, binding, &messages).await, vec![0, 1]);
    tb.stop().await;
}

#[tokio::test]
async fn headers_exchange_any_ignores_x_headers() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let binding = table(&[("x-match", lstr("any")), ("x-tag", lstr("a"))]);
    let messages = [table(&[("x-tag", lstr("a"))]), table(&[("y", lstr("1"))])];
    assert_eq!(
        headers_routing(&ch, binding, &messages).await,
        Vec::<usize>::new()
    );
    tb.stop().await;
}

#[tokio::test]
async fn headers_exchange_all_with_x() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let binding = table(&[
        ("x-match", lstr("all-with-x")),
        ("x-tag", lstr("a")),
        ("y", lstr("1")),
    ]);
    let messages = [
        table(&[("y", lstr("1")), ("x-tag", lstr("a"))]),
        table(&[("y", lstr("1"))]),
        table(&[("y", lstr("1")), ("x-tag", lstr("other"))]),
    ];
    assert_eq!(headers_routing(&ch, binding, &messages).await, vec![0]);
    tb.stop().await;
}

#[tokio::test]
async fn headers_exchange_any_with_x() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let binding = table(&[
        ("x-match", lstr("any-with-x")),
        ("x-tag", lstr("a")),
        ("y", lstr("1")),
    ]);
    let messages = [
        table(&[("x-tag", lstr("a"))]),
        table(&[("y", lstr("1"))]),
        table(&[("x-tag", lstr("b")), ("y", lstr("2"))]),
    ];
    assert_eq!(headers_routing(&ch, binding, &messages).await, vec![0, 1]);
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn queue_declare_server_named() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare");
    assert!(
        q.name().as_str().starts_with("amq.gen-"),
        "name {}",
        q.name()
    );
    assert!(
        q.name().as_str().len() > "amq.gen-".len() + 8,
        "name {}",
        q.name()
    );
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    let q2 = temp_queue(&ch).await;
    assert_ne!(q.name().as_str(), q2, "server names are unique");
    publish(&ch, "", q.name().as_str(), b"to-generated").await;
    assert_eq!(
        drain(&ch, q.name().as_str()).await,
        vec![b"to-generated".to_vec()]
    );
    tb.stop().await;
}

#[tokio::test]
async fn queue_declare_returns_counts() {
    let tb = common::start().await;
    let (conn, ch) = setup(&tb).await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"1").await;
    publish(&ch, "", &q, b"2").await;
    // A non-passive redeclare of an amq.gen-* name is refused (403), so count passively.
    let counted = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("passive declare");
    assert_eq!((counted.message_count(), counted.consumer_count()), (2, 0));
    let _consumer = within(ch.basic_consume(
        q.as_str().into(),
        "c1".into(),
        BasicConsumeOptions::default(),
        no_args(),
    ))
    .await
    .expect("consume");
    let ch2 = within(conn.create_channel()).await.expect("channel");
    let again = within(ch2.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("passive");
    assert_eq!(again.consumer_count(), 1);
    tb.stop().await;
}

#[tokio::test]
async fn queue_passive_declare_missing_is_not_found() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = uniq("missing-q");
    let res = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    tb.stop().await;
}

fn locked(q: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
    )
}

#[tokio::test]
async fn exclusive_queue_declare_from_other_connection_is_locked() {
    let tb = common::start().await;
    let (_owner, ch) = setup(&tb).await;
    let q = uniq("excl-declare");
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare exclusive");
    let (_other, ch2) = setup(&tb).await;
    let res = within(ch2.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await;
    assert_amqp_err(res, 405, &locked(&q));
    tb.stop().await;
}

#[tokio::test]
async fn exclusive_queue_consume_from_other_connection_is_locked() {
    let tb = common::start().await;
    let (_owner, ch) = setup(&tb).await;
    let q = uniq("excl-consume");
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare exclusive");
    let (_other, ch2) = setup(&tb).await;
    let res = within(ch2.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        no_args(),
    ))
    .await;
    assert_amqp_err(res, 405, &locked(&q));
    tb.stop().await;
}

#[tokio::test]
async fn queue_redeclare_with_different_args_fails() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = uniq("q-args");
    let ttl = |ms: i32| table(&[("x-message-ttl", AMQPValue::LongInt(ms))]);
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        ttl(1000),
    ))
    .await
    .expect("declare with ttl");
    // Same arguments: fine.
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        ttl(1000),
    ))
    .await
    .expect("equivalent redeclare");
    let res = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        ttl(2000),
    ))
    .await;
    assert_amqp_err(
        res,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': received '2000' but current is '1000'"
        ),
    );
    let (_c2, ch2) = setup(&tb).await;
    within(ch2.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn queue_redeclare_with_different_durable_fails() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = uniq("q-durable");
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare");
    let res = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            durable: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        406,
        &format!(
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': received 'true' but current is 'false'"
        ),
    );
    let (_c2, ch2) = setup(&tb).await;
    within(ch2.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn queue_declare_with_amq_prefix_is_refused() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let res =
        within(ch.queue_declare("amq.x".into(), QueueDeclareOptions::default(), no_args())).await;
    assert_amqp_err(
        res,
        403,
        "ACCESS_REFUSED - queue name 'amq.x' contains reserved prefix 'amq.*'",
    );
    tb.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_goes_when_last_consumer_cancels() {
    let tb = common::start().await;
    let (conn, ch) = setup(&tb).await;
    let q = uniq("autodel");
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare");
    // lapin cancels a consumer when its handle is dropped, so keep both alive.
    let mut consumers = Vec::new();
    for tag in ["c1", "c2"] {
        consumers.push(
            within(ch.basic_consume(
                q.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                no_args(),
            ))
            .await
            .expect("consume"),
        );
    }
    within(ch.basic_cancel("c1".into(), BasicCancelOptions::default()))
        .await
        .expect("cancel c1");
    assert!(
        queue_exists(&conn, &q).await,
        "one consumer left: queue stays"
    );
    within(ch.basic_cancel("c2".into(), BasicCancelOptions::default()))
        .await
        .expect("cancel c2");
    wait_queue_gone(&conn, &q).await;
    tb.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_without_consumers_stays() {
    let tb = common::start().await;
    let (conn, ch) = setup(&tb).await;
    let q = uniq("autodel-unused");
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        queue_exists(&conn, &q).await,
        "never consumed: not auto-deleted"
    );
    within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("cleanup");
    tb.stop().await;
}

#[tokio::test]
async fn exclusive_queue_goes_when_its_connection_closes() {
    let tb = common::start().await;
    let (owner, ch) = setup(&tb).await;
    let q = uniq("excl-lifetime");
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("declare");
    let observer = within(tb.connect()).await;
    let probe = within(observer.create_channel()).await.expect("channel");
    // From another connection the queue exists (passive declare of an exclusive queue is locked).
    let res = within(probe.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await;
    assert_amqp_err(res, 405, &locked(&q));
    within(owner.close(200, "bye".into()))
        .await
        .expect("close owner");
    wait_queue_gone(&observer, &q).await;
    tb.stop().await;
}

#[tokio::test]
async fn queue_bind_to_missing_queue_is_not_found() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = uniq("bind-missing-q");
    let res = within(ch.queue_bind(
        q.as_str().into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn queue_bind_to_missing_exchange_is_not_found() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = temp_queue(&ch).await;
    let ex = uniq("bind-missing-x");
    let res = within(ch.queue_bind(
        q.as_str().into(),
        ex.as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        no_args(),
    ))
    .await;
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn queue_unbind_stops_routing() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = temp_queue(&ch).await;
    let rk = uniq("unbind-key");
    bind(&ch, &q, "amq.direct", &rk, no_args()).await;
    publish(&ch, "amq.direct", &rk, b"bound").await;
    within(ch.queue_unbind(
        q.as_str().into(),
        "amq.direct".into(),
        rk.as_str().into(),
        no_args(),
    ))
    .await
    .expect("unbind");
    publish(&ch, "amq.direct", &rk, b"unbound").await;
    assert_eq!(drain(&ch, &q).await, vec![b"bound".to_vec()]);
    // Unbinding a binding that does not exist is not an error.
    within(ch.queue_unbind(
        q.as_str().into(),
        "amq.direct".into(),
        rk.as_str().into(),
        no_args(),
    ))
    .await
    .expect("unbind again");
    tb.stop().await;
}

#[tokio::test]
async fn queue_purge_returns_count() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = temp_queue(&ch).await;
    for i in 0..3u8 {
        publish(&ch, "", &q, &[i]).await;
    }
    let purged = within(ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()))
        .await
        .expect("purge");
    assert_eq!(purged, 3);
    assert!(drain(&ch, &q).await.is_empty());
    let purged = within(ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default()))
        .await
        .expect("purge empty");
    assert_eq!(purged, 0);
    tb.stop().await;
}

#[tokio::test]
async fn queue_delete_returns_count() {
    let tb = common::start().await;
    let (conn, ch) = setup(&tb).await;
    let q = uniq("delete-count");
    within(ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), no_args()))
        .await
        .expect("declare");
    for i in 0..4u8 {
        publish(&ch, "", &q, &[i]).await;
    }
    let deleted = within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("delete");
    assert_eq!(deleted, 4);
    assert!(!queue_exists(&conn, &q).await);
    tb.stop().await;
}

#[tokio::test]
async fn queue_delete_missing_is_ok() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = uniq("delete-missing");
    let deleted = within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("RabbitMQ 3.x answers delete-ok for a missing queue");
    assert_eq!(deleted, 0);
    tb.stop().await;
}

#[tokio::test]
async fn queue_delete_if_unused_with_consumer_fails() {
    let tb = common::start().await;
    let (conn, ch) = setup(&tb).await;
    let q = temp_queue(&ch).await;
    let _consumer = within(ch.basic_consume(
        q.as_str().into(),
        "busy".into(),
        BasicConsumeOptions::default(),
        no_args(),
    ))
    .await
    .expect("consume");
    // Same connection (the queue is exclusive), another channel.
    let ch2 = within(conn.create_channel()).await.expect("channel");
    let res = within(ch2.queue_delete(
        q.as_str().into(),
        QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        },
    ))
    .await;
    assert_amqp_err(
        res,
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn queue_delete_if_empty_with_messages_fails() {
    let tb = common::start().await;
    let (_conn, ch) = setup(&tb).await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"still here").await;
    let res = within(ch.queue_delete(
        q.as_str().into(),
        QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        },
    ))
    .await;
    assert_amqp_err(
        res,
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"),
    );
    tb.stop().await;
}

/// With consumer_cancel_notify the broker sends basic.cancel when a consumed queue is deleted;
/// lapin then ends the consumer stream.
#[tokio::test]
async fn deleting_a_consumed_queue_cancels_the_consumer() {
    let tb = common::start().await;
    let (conn, ch) = setup(&tb).await;
    let q = uniq("cancel-notify");
    within(ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), no_args()))
        .await
        .expect("declare");
    let consumer = within(ch.basic_consume(
        q.as_str().into(),
        "watched".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect("consume");
    let mut consumer = tokio_test::task::spawn(consumer);
    publish(&ch, "", &q, b"before-delete").await;
    let first = next_delivery(&mut consumer)
        .await
        .expect("delivery")
        .expect("ok delivery");
    assert_eq!(first.data, b"before-delete");

    let (_c2, ch2) = setup(&tb).await;
    within(ch2.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("delete");
    let end = next_delivery(&mut consumer).await;
    assert!(
        end.is_none(),
        "consumer stream should end on basic.cancel, got {end:?}"
    );
    assert!(ch.status().connected(), "the consumer's channel stays open");
    within(ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .expect("channel usable");
    assert!(conn.status().connected());
    tb.stop().await;
}
