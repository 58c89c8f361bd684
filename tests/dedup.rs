//! Deduplication for idempotent publishing, driven through lapin, with LavinMQ's argument names:
//! x-message-deduplication on a queue or an exchange, x-cache-size (entries kept), x-cache-ttl (ms
//! an entry is kept) and x-deduplication-header (the header carrying the key; by default the
//! message-id property is the key). A duplicate is dropped (a queue does not store it, an exchange
//! does not route it) and is still confirmed with basic.ack.
//!
//! RabbitMQ has no built-in deduplication (the community plugin is not installed here), so these
//! tests skip themselves against an external broker.

mod common;

use common::amqp::*;
use common::within;
use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
        "warren-dedup-{what}-{}-{nanos}-{}",
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

fn skip(test: &str) -> bool {
    if external() {
        eprintln!("{test}: skipped, RabbitMQ here has no message deduplication");
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

fn dedup(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = table(&[
        ("x-message-deduplication", AMQPValue::Boolean(true)),
        ("x-cache-size", int(100)),
    ]);
    for (k, v) in extra {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn with_id(id: &str) -> BasicProperties {
    BasicProperties::default().with_message_id(id.into())
}

fn with_header(name: &str, value: &str) -> BasicProperties {
    BasicProperties::default().with_headers(table(&[(name, s(value))]))
}

/// Publishes and asserts the publish is acked (duplicates are acked too).
async fn publish_acked(ch: &Channel, exchange: &str, key: &str, body: &[u8], p: BasicProperties) {
    let c = publish_props(ch, exchange, key, body, p).await;
    assert!(
        matches!(c, Confirmation::Ack(None)),
        "a publish, duplicate or not, is acked: {c:?}"
    );
}

fn strings(v: Vec<Vec<u8>>) -> Vec<String> {
    v.into_iter()
        .map(|b| String::from_utf8(b).expect("utf-8"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// queue deduplication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_queue_stores_one_of_two_messages_with_the_same_message_id() {
    if skip("queue_dedup") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "dedup", dedup(&[])).await;
    publish_acked(&ch, "", &q, b"first", with_id("order-1")).await;
    publish_acked(&ch, "", &q, b"duplicate", with_id("order-1")).await;
    publish_acked(&ch, "", &q, b"other", with_id("order-2")).await;
    publish_acked(&ch, "", &q, b"no id 1", BasicProperties::default()).await;
    publish_acked(&ch, "", &q, b"no id 2", BasicProperties::default()).await;
    assert_eq!(ready_count(&ch, &q).await, 4);
    assert_eq!(
        strings(drain(&ch, &q).await),
        ["first", "other", "no id 1", "no id 2"],
        "the first copy is kept; messages without a key are never duplicates"
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn a_consumed_message_still_counts_as_seen() {
    if skip("dedup_after_consume") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "dedup-consumed", dedup(&[])).await;
    publish_acked(&ch, "", &q, b"once", with_id("m")).await;
    assert_eq!(
        get(&ch, &q, true).await.expect("once").delivery.data,
        b"once"
    );
    publish_acked(&ch, "", &q, b"again", with_id("m")).await;
    assert!(get(&ch, &q, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn without_the_argument_duplicates_are_stored() {
    if skip("no_dedup") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "plain", table(&[("x-cache-size", int(10))])).await;
    publish_acked(&ch, "", &q, b"a", with_id("same")).await;
    publish_acked(&ch, "", &q, b"b", with_id("same")).await;
    assert_eq!(strings(drain(&ch, &q).await), ["a", "b"]);
    within(b.stop()).await;
}

#[tokio::test]
async fn x_deduplication_header_names_the_key_instead_of_message_id() {
    if skip("dedup_header") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(
        &ch,
        "dedup-header",
        dedup(&[("x-deduplication-header", s("x-idempotency-key"))]),
    )
    .await;
    let key = |k: &str, id: &str| with_header("x-idempotency-key", k).with_message_id(id.into());
    publish_acked(&ch, "", &q, b"k1", key("k1", "id-a")).await;
    publish_acked(&ch, "", &q, b"k1 again", key("k1", "id-b")).await;
    publish_acked(&ch, "", &q, b"k2 same id", key("k2", "id-a")).await;
    publish_acked(&ch, "", &q, b"no header 1", with_id("id-a")).await;
    publish_acked(&ch, "", &q, b"no header 2", with_id("id-a")).await;
    assert_eq!(
        strings(drain(&ch, &q).await),
        ["k1", "k2 same id", "no header 1", "no header 2"],
        "only the named header is the key"
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn x_cache_ttl_lets_a_duplicate_in_after_the_ttl() {
    if skip("dedup_ttl") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "dedup-ttl", dedup(&[("x-cache-ttl", int(200))])).await;
    publish_acked(&ch, "", &q, b"1", with_id("m")).await;
    publish_acked(&ch, "", &q, b"2", with_id("m")).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    publish_acked(&ch, "", &q, b"3", with_id("m")).await;
    publish_acked(&ch, "", &q, b"4", with_id("m")).await;
    assert_eq!(strings(drain(&ch, &q).await), ["1", "3"]);
    within(b.stop()).await;
}

#[tokio::test]
async fn x_cache_size_bounds_the_cache_and_forgets_the_oldest() {
    if skip("dedup_size") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let mut args = dedup(&[]);
    args.insert("x-cache-size".into(), int(2));
    let q = new_queue(&ch, "dedup-size", args).await;
    for (body, id) in [
        ("a", "A"),
        ("b", "B"),
        ("b dup", "B"),
        ("c", "C"),
        ("a again", "A"),
    ] {
        publish_acked(&ch, "", &q, body.as_bytes(), with_id(id)).await;
    }
    assert_eq!(
        strings(drain(&ch, &q).await),
        ["a", "b", "c", "a again"],
        "C pushed A out of a 2-entry cache"
    );
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// exchange deduplication
// ---------------------------------------------------------------------------------------------

async fn dedup_exchange(ch: &Channel, kind: ExchangeKind, args: FieldTable) -> String {
    let name = unique("dedup-x");
    within(ch.exchange_declare(
        name.as_str().into(),
        kind,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        args,
    ))
    .await
    .expect("exchange.declare");
    name
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

#[tokio::test]
async fn an_exchange_does_not_route_duplicates() {
    if skip("exchange_dedup") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let x = dedup_exchange(&ch, ExchangeKind::Direct, dedup(&[])).await;
    let q1 = new_queue(&ch, "x-q1", FieldTable::default()).await;
    let q2 = new_queue(&ch, "x-q2", FieldTable::default()).await;
    bind(&ch, &q1, &x, "k").await;
    bind(&ch, &q2, &x, "k").await;
    publish_acked(&ch, &x, "k", b"first", with_id("e-1")).await;
    publish_acked(&ch, &x, "k", b"duplicate", with_id("e-1")).await;
    publish_acked(&ch, &x, "k", b"second", with_id("e-2")).await;
    for q in [&q1, &q2] {
        assert_eq!(strings(drain(&ch, q).await), ["first", "second"]);
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn an_exchange_deduplicates_on_a_named_header_with_a_ttl() {
    if skip("exchange_dedup_header_ttl") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let x = dedup_exchange(
        &ch,
        ExchangeKind::Fanout,
        dedup(&[
            ("x-deduplication-header", s("x-key")),
            ("x-cache-ttl", int(200)),
        ]),
    )
    .await;
    let q = new_queue(&ch, "x-q", FieldTable::default()).await;
    bind(&ch, &q, &x, "").await;
    publish_acked(&ch, &x, "", b"1", with_header("x-key", "v")).await;
    publish_acked(&ch, &x, "", b"2", with_header("x-key", "v")).await;
    publish_acked(&ch, &x, "", b"3", with_id("v")).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    publish_acked(&ch, &x, "", b"4", with_header("x-key", "v")).await;
    assert_eq!(strings(drain(&ch, &q).await), ["1", "3", "4"]);
    within(b.stop()).await;
}

#[tokio::test]
async fn a_duplicate_is_not_routed_to_a_queue_that_is_itself_empty() {
    if skip("exchange_dedup_independent_of_queue") {
        return;
    }
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let x = dedup_exchange(&ch, ExchangeKind::Fanout, dedup(&[])).await;
    let q = new_queue(&ch, "x-drained", FieldTable::default()).await;
    bind(&ch, &q, &x, "").await;
    publish_acked(&ch, &x, "", b"1", with_id("same")).await;
    assert_eq!(poll_get(&ch, &q, 1000, true).await.delivery.data, b"1");
    publish_acked(&ch, &x, "", b"2", with_id("same")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(get(&ch, &q, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn invalid_deduplication_arguments_are_precondition_failed() {
    if skip("dedup_invalid_args") {
        return;
    }
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    for (arg, value) in [("x-cache-size", int(-1)), ("x-cache-ttl", int(-1))] {
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let err = within(ch.queue_declare(
            unique("bad").as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            dedup(&[(arg, value.clone())]),
        ))
        .await
        .expect_err("invalid argument");
        assert_eq!(reply_code(&err), Some(406), "{arg}: {err:?}");
        let text = reply_text(&err).unwrap_or_default();
        assert!(
            text.starts_with(&format!("PRECONDITION_FAILED - invalid arg '{arg}'")),
            "{text}"
        );
    }
    within(b.stop()).await;
}
