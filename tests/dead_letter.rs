//! Dead-letter exchanges driven through lapin: x-dead-letter-exchange / x-dead-letter-routing-key,
//! dead-lettering on reject / nack without requeue, on expiry, on max-length overflow, the x-death
//! header and x-first-death-* / x-last-death-* headers, and cycle detection.
//!
//! Every expectation here that RabbitMQ 3.10 classic queues share was checked against it
//! (`WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo test --test dead_letter`).
//! RabbitMQ 3.10 sets only x-first-death-*; newer versions also set x-last-death-*, which Warren
//! does too, so those are asserted only against the in-process broker.
//!
//! What RabbitMQ 3.10 does, exactly:
//! - x-death is an array of tables, most recent death first; each table has `count` (long-long),
//!   `reason` (`rejected` / `expired` / `maxlen` / `delivery_limit`), `queue`, `time` (timestamp,
//!   seconds), `exchange` (the exchange the message was published to, `""` for the default one),
//!   `routing-keys` (array: the publish routing key followed by any CC keys) and, only when the
//!   message had a per-message TTL, `original-expiration` (the expiration property, which is
//!   removed from the dead-lettered message).
//! - A second death with the same queue and reason increments `count` and moves that entry to the
//!   front; x-first-death-* never change.
//! - The dead-lettered message is published to the DLX with the original routing keys (CC
//!   included), or with x-dead-letter-routing-key instead when set.
//! - reject-publish-dlx dead-letters the refused message with reason `maxlen` and nacks it.
//! - A message that would reach a queue it already died in is dropped when no death in the cycle
//!   was a rejection (so a queue expiring into itself drops at once); a rejection cycle goes on.

mod common;

use common::amqp::*;

use common::{TestBroker, within};
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicNackOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
        "warren-dlx-{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Declares an exclusive queue with `args`.
async fn queue(ch: &Channel, name: &str, args: FieldTable) {
    within(ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        args,
    ))
    .await
    .expect("queue.declare");
}

/// Declares a fresh exclusive queue with `args` and returns its name.
async fn new_queue(ch: &Channel, what: &str, args: FieldTable) -> String {
    let name = unique(what);
    queue(ch, &name, args).await;
    name
}

/// Declares an auto-delete exchange.
async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    within(ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("exchange.declare");
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

/// Polls basic.get (no-ack) until a message arrives; fails after `ms`.
async fn get_within(ch: &Channel, queue: &str, ms: u64) -> BasicGetMessage {
    poll_get(ch, queue, ms, true).await
}

/// basic.get without ack that must find a message.
async fn get_unacked(ch: &Channel, queue: &str) -> BasicGetMessage {
    get(ch, queue, false).await.expect("a message in the queue")
}

async fn reject(ch: &Channel, tag: u64, requeue: bool) {
    within(ch.basic_reject(tag, BasicRejectOptions { requeue }))
        .await
        .expect("basic.reject");
}

fn header_str(props: &BasicProperties, key: &str) -> Option<String> {
    header(props, key).map(as_str)
}

/// The x-death array, each entry a table.
fn x_death(props: &BasicProperties) -> Vec<FieldTable> {
    match header(props, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .map(|v| match v {
                AMQPValue::FieldTable(t) => t.clone(),
                other => panic!("x-death entries are tables, got {other:?}"),
            })
            .collect(),
        other => panic!("expected an x-death array, got {other:?} in {props:?}"),
    }
}

fn field<'a>(t: &'a FieldTable, key: &str) -> &'a AMQPValue {
    t.inner()
        .get(key)
        .unwrap_or_else(|| panic!("x-death entry without {key}: {t:?}"))
}

/// One x-death entry, as RabbitMQ lays it out.
#[track_caller]
fn assert_death(
    t: &FieldTable,
    count: i64,
    reason: &str,
    queue: &str,
    exchange: &str,
    keys: &[&str],
    original_expiration: Option<&str>,
) {
    match field(t, "count") {
        AMQPValue::LongLongInt(n) => assert_eq!(*n, count, "count in {t:?}"),
        other => panic!("count is a long-long int in RabbitMQ, got {other:?}"),
    }
    assert_eq!(as_str(field(t, "reason")), reason, "reason in {t:?}");
    assert_eq!(as_str(field(t, "queue")), queue, "queue in {t:?}");
    assert_eq!(as_str(field(t, "exchange")), exchange, "exchange in {t:?}");
    match field(t, "routing-keys") {
        AMQPValue::FieldArray(a) => {
            let got: Vec<String> = a.as_slice().iter().map(as_str).collect();
            assert_eq!(got, keys, "routing-keys in {t:?}");
        }
        other => panic!("routing-keys is an array, got {other:?}"),
    }
    match field(t, "time") {
        AMQPValue::Timestamp(ts) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs();
            assert!(
                ts.abs_diff(now) < 120,
                "time {ts} is a timestamp in seconds near {now}"
            );
        }
        other => panic!("time is a timestamp, got {other:?}"),
    }
    match original_expiration {
        Some(e) => assert_eq!(
            t.inner().get("original-expiration").map(as_str).as_deref(),
            Some(e),
            "original-expiration in {t:?}"
        ),
        None => assert!(
            !t.contains_key("original-expiration"),
            "no original-expiration without a per-message TTL: {t:?}"
        ),
    }
}

/// x-first-death-* (and, on Warren, x-last-death-*) headers.
#[track_caller]
fn assert_first_last(props: &BasicProperties, first: (&str, &str, &str), last: (&str, &str, &str)) {
    let (reason, queue, exchange) = first;
    assert_eq!(
        header_str(props, "x-first-death-reason").as_deref(),
        Some(reason)
    );
    assert_eq!(
        header_str(props, "x-first-death-queue").as_deref(),
        Some(queue)
    );
    assert_eq!(
        header_str(props, "x-first-death-exchange").as_deref(),
        Some(exchange)
    );
    if external() {
        return; // RabbitMQ 3.10 predates x-last-death-*.
    }
    let (reason, queue, exchange) = last;
    assert_eq!(
        header_str(props, "x-last-death-reason").as_deref(),
        Some(reason)
    );
    assert_eq!(
        header_str(props, "x-last-death-queue").as_deref(),
        Some(queue)
    );
    assert_eq!(
        header_str(props, "x-last-death-exchange").as_deref(),
        Some(exchange)
    );
}

/// Queue arguments dead-lettering through the default exchange to `target`.
fn dlx_to(target: &str) -> FieldTable {
    table(&[
        ("x-dead-letter-exchange", s("")),
        ("x-dead-letter-routing-key", s(target)),
    ])
}

/// Adds `pairs` to `t`.
fn with(mut t: FieldTable, pairs: &[(&str, AMQPValue)]) -> FieldTable {
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn setup() -> (TestBroker, lapin::Connection, Channel) {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    (b, conn, ch)
}

// ---------------------------------------------------------------------------------------------
// reject / nack
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rejected_message_is_dead_lettered_with_x_death_headers() {
    let (b, _conn, ch) = setup().await;
    let dlx = unique("dlx");
    exchange(&ch, &dlx, ExchangeKind::Direct).await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(&ch, "src", table(&[("x-dead-letter-exchange", s(&dlx))])).await;
    bind(&ch, &dead, &dlx, &src).await;

    let mut h = FieldTable::default();
    h.insert("app-header".into(), s("kept"));
    let props = BasicProperties::default()
        .with_message_id("m-1".into())
        .with_content_type("text/plain".into())
        .with_delivery_mode(2)
        .with_headers(h);
    publish_props(&ch, "", &src, b"payload", props).await;
    let m = get_unacked(&ch, &src).await;
    reject(&ch, m.delivery.delivery_tag, false).await;

    let d = get_within(&ch, &dead, 2000).await;
    assert_eq!(d.delivery.data, b"payload");
    assert_eq!(d.delivery.exchange.as_str(), dlx, "published to the DLX");
    assert_eq!(
        d.delivery.routing_key.as_str(),
        src,
        "with the original key"
    );
    let p = &d.delivery.properties;
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("m-1"));
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(header_str(p, "app-header").as_deref(), Some("kept"));
    let deaths = x_death(p);
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_death(&deaths[0], 1, "rejected", &src, "", &[&src], None);
    assert_first_last(p, ("rejected", &src, ""), ("rejected", &src, ""));
    assert!(get(&ch, &src, true).await.is_none(), "gone from the source");
    within(b.stop()).await;
}

#[tokio::test]
async fn nack_without_requeue_dead_letters_and_nack_with_requeue_does_not() {
    let (b, _conn, ch) = setup().await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(&ch, "src", dlx_to(&dead)).await;
    for i in 0..3u8 {
        publish(&ch, &src, &[i]).await;
    }
    let mut tags = Vec::new();
    for _ in 0..3 {
        tags.push(get_unacked(&ch, &src).await.delivery.delivery_tag);
    }
    // Requeue the last one, then nack the first two at once without requeue.
    within(ch.basic_nack(
        tags[2],
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    ))
    .await
    .expect("basic.nack");
    within(ch.basic_nack(
        tags[1],
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    ))
    .await
    .expect("basic.nack");

    let first = get_within(&ch, &dead, 2000).await;
    let second = get_within(&ch, &dead, 2000).await;
    assert_eq!(first.delivery.data, [0]);
    assert_eq!(second.delivery.data, [1]);
    for m in [&first, &second] {
        let deaths = x_death(&m.delivery.properties);
        assert_eq!(deaths.len(), 1);
        assert_death(&deaths[0], 1, "rejected", &src, "", &[&src], None);
        assert_eq!(
            m.delivery.routing_key.as_str(),
            dead,
            "x-dead-letter-routing-key replaces the routing key"
        );
    }
    assert!(get(&ch, &dead, true).await.is_none());
    let back = get(&ch, &src, true).await.expect("the requeued message");
    assert_eq!(back.delivery.data, [2]);
    assert!(back.delivery.redelivered);
    assert!(
        header(&back.delivery.properties, "x-death").is_none(),
        "a requeued message has not died"
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn dead_lettering_keeps_the_original_exchange_and_cc_routing_keys() {
    let (b, _conn, ch) = setup().await;
    let src_ex = unique("src-ex");
    let dlx = unique("dlx");
    exchange(&ch, &src_ex, ExchangeKind::Direct).await;
    exchange(&ch, &dlx, ExchangeKind::Direct).await;
    let src = new_queue(&ch, "src", table(&[("x-dead-letter-exchange", s(&dlx))])).await;
    bind(&ch, &src, &src_ex, "orig-key").await;
    let by_key = new_queue(&ch, "by-key", FieldTable::default()).await;
    let by_cc = new_queue(&ch, "by-cc", FieldTable::default()).await;
    bind(&ch, &by_key, &dlx, "orig-key").await;
    bind(&ch, &by_cc, &dlx, "cc-key").await;

    let cc = AMQPValue::FieldArray(FieldArray::from(vec![s("cc-key")]));
    let props = BasicProperties::default().with_headers(table(&[("CC", cc)]));
    publish_props(&ch, &src_ex, "orig-key", b"cc", props).await;
    let m = get_unacked(&ch, &src).await;
    reject(&ch, m.delivery.delivery_tag, false).await;

    // Dead-lettered with both original keys: each DLX binding gets a copy.
    let a = get_within(&ch, &by_key, 2000).await;
    let c = get_within(&ch, &by_cc, 2000).await;
    for d in [&a, &c] {
        assert_eq!(d.delivery.data, b"cc");
        assert_eq!(d.delivery.routing_key.as_str(), "orig-key");
        let deaths = x_death(&d.delivery.properties);
        assert_death(
            &deaths[0],
            1,
            "rejected",
            &src,
            &src_ex,
            &["orig-key", "cc-key"],
            None,
        );
        assert_first_last(
            &d.delivery.properties,
            ("rejected", &src, &src_ex),
            ("rejected", &src, &src_ex),
        );
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn dead_letter_routing_key_replaces_the_original_key() {
    let (b, _conn, ch) = setup().await;
    let dlx = unique("dlx");
    exchange(&ch, &dlx, ExchangeKind::Direct).await;
    let src = new_queue(
        &ch,
        "src",
        table(&[
            ("x-dead-letter-exchange", s(&dlx)),
            ("x-dead-letter-routing-key", s("override")),
        ]),
    )
    .await;
    let by_orig = new_queue(&ch, "by-orig", FieldTable::default()).await;
    let by_override = new_queue(&ch, "by-override", FieldTable::default()).await;
    bind(&ch, &by_orig, &dlx, &src).await;
    bind(&ch, &by_override, &dlx, "override").await;

    publish(&ch, &src, b"x").await;
    let m = get_unacked(&ch, &src).await;
    reject(&ch, m.delivery.delivery_tag, false).await;

    let d = get_within(&ch, &by_override, 2000).await;
    assert_eq!(d.delivery.routing_key.as_str(), "override");
    // x-death still records the key the message was published with.
    assert_death(
        &x_death(&d.delivery.properties)[0],
        1,
        "rejected",
        &src,
        "",
        &[&src],
        None,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(&ch, &by_orig, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn a_missing_dead_letter_exchange_drops_the_message() {
    let (b, _conn, ch) = setup().await;
    let src = new_queue(
        &ch,
        "src",
        table(&[("x-dead-letter-exchange", s(&unique("nowhere")))]),
    )
    .await;
    publish(&ch, &src, b"x").await;
    let m = get_unacked(&ch, &src).await;
    reject(&ch, m.delivery.delivery_tag, false).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(&ch, &src, true).await.is_none());
    assert_eq!(ready_count(&ch, &src).await, 0);
    // The channel is still fine.
    publish(&ch, &src, b"y").await;
    assert_eq!(get(&ch, &src, true).await.expect("y").delivery.data, b"y");
    within(b.stop()).await;
}

#[tokio::test]
async fn purging_or_deleting_a_queue_does_not_dead_letter() {
    let (b, _conn, ch) = setup().await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(&ch, "src", dlx_to(&dead)).await;
    publish(&ch, &src, b"purged").await;
    within(ch.queue_purge(src.as_str().into(), QueuePurgeOptions::default()))
        .await
        .expect("queue.purge");
    publish(&ch, &src, b"deleted").await;
    within(ch.queue_delete(src.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get(&ch, &dead, true).await.is_none());
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// expiry and length limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn message_expired_by_queue_ttl_is_dead_lettered_with_reason_expired() {
    let (b, _conn, ch) = setup().await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(
        &ch,
        "src",
        with(dlx_to(&dead), &[("x-message-ttl", int(100))]),
    )
    .await;
    let start = Instant::now();
    publish(&ch, &src, b"old").await;
    let d = get_within(&ch, &dead, 3000).await;
    assert!(
        start.elapsed() >= Duration::from_millis(90),
        "expired only after its TTL"
    );
    let p = &d.delivery.properties;
    assert_death(&x_death(p)[0], 1, "expired", &src, "", &[&src], None);
    assert_first_last(p, ("expired", &src, ""), ("expired", &src, ""));
    assert!(p.expiration().is_none());
    assert!(get(&ch, &src, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn per_message_ttl_is_kept_as_original_expiration_and_removed() {
    let (b, _conn, ch) = setup().await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(&ch, "src", dlx_to(&dead)).await;
    publish_props(
        &ch,
        "",
        &src,
        b"short-lived",
        BasicProperties::default().with_expiration("100".into()),
    )
    .await;
    let d = get_within(&ch, &dead, 3000).await;
    let p = &d.delivery.properties;
    assert!(
        p.expiration().is_none(),
        "the expiration property is removed: {p:?}"
    );
    assert_death(&x_death(p)[0], 1, "expired", &src, "", &[&src], Some("100"));

    // A rejected message that had an expiration records it too.
    publish_props(
        &ch,
        "",
        &src,
        b"rejected",
        BasicProperties::default().with_expiration("60000".into()),
    )
    .await;
    let m = get_unacked(&ch, &src).await;
    reject(&ch, m.delivery.delivery_tag, false).await;
    let d = get_within(&ch, &dead, 2000).await;
    assert_eq!(d.delivery.data, b"rejected");
    assert!(d.delivery.properties.expiration().is_none());
    assert_death(
        &x_death(&d.delivery.properties)[0],
        1,
        "rejected",
        &src,
        "",
        &[&src],
        Some("60000"),
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn max_length_drop_head_dead_letters_the_oldest_with_reason_maxlen() {
    let (b, _conn, ch) = setup().await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(&ch, "src", with(dlx_to(&dead), &[("x-max-length", int(2))])).await;
    for i in 0..4u8 {
        publish(&ch, &src, &[i]).await;
    }
    for expected in [0u8, 1] {
        let d = get_within(&ch, &dead, 2000).await;
        assert_eq!(d.delivery.data, [expected], "oldest dropped first");
        let p = &d.delivery.properties;
        assert_death(&x_death(p)[0], 1, "maxlen", &src, "", &[&src], None);
        assert_first_last(p, ("maxlen", &src, ""), ("maxlen", &src, ""));
    }
    assert!(get(&ch, &dead, true).await.is_none());
    assert_eq!(get(&ch, &src, true).await.expect("2").delivery.data, [2]);
    assert_eq!(get(&ch, &src, true).await.expect("3").delivery.data, [3]);
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_publish_dlx_nacks_and_dead_letters_the_refused_message() {
    let (b, _conn, ch) = setup().await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(
        &ch,
        "src",
        with(
            dlx_to(&dead),
            &[
                ("x-max-length", int(1)),
                ("x-overflow", s("reject-publish-dlx")),
            ],
        ),
    )
    .await;
    let ok = publish_props(&ch, "", &src, b"kept", BasicProperties::default()).await;
    assert!(matches!(ok, Confirmation::Ack(None)), "{ok:?}");
    let refused = publish_props(&ch, "", &src, b"refused", BasicProperties::default()).await;
    assert!(matches!(refused, Confirmation::Nack(_)), "{refused:?}");

    let d = get_within(&ch, &dead, 2000).await;
    assert_eq!(d.delivery.data, b"refused");
    let p = &d.delivery.properties;
    assert_death(&x_death(p)[0], 1, "maxlen", &src, "", &[&src], None);
    assert_first_last(p, ("maxlen", &src, ""), ("maxlen", &src, ""));
    assert_eq!(
        get(&ch, &src, true).await.expect("kept").delivery.data,
        b"kept"
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_publish_refuses_without_dead_lettering() {
    let (b, _conn, ch) = setup().await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let src = new_queue(
        &ch,
        "src",
        with(
            dlx_to(&dead),
            &[
                ("x-max-length", int(1)),
                ("x-overflow", s("reject-publish")),
            ],
        ),
    )
    .await;
    publish_props(&ch, "", &src, b"kept", BasicProperties::default()).await;
    let refused = publish_props(&ch, "", &src, b"refused", BasicProperties::default()).await;
    assert!(matches!(refused, Confirmation::Nack(_)), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(get(&ch, &dead, true).await.is_none());
    assert_eq!(ready_count(&ch, &src).await, 1);
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// repeated deaths and cycles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn repeated_deaths_prepend_entries_and_count_per_queue_and_reason() {
    let (b, _conn, ch) = setup().await;
    let q1 = unique("q1");
    let q2 = unique("q2");
    queue(&ch, &q1, dlx_to(&q2)).await;
    queue(&ch, &q2, dlx_to(&q1)).await;
    publish(&ch, &q1, b"bounce").await;

    // q1 -> q2 -> q1 -> q2, rejected each time.
    for from in [&q1, &q2, &q1] {
        let m = poll_get(&ch, from, 2000, false).await;
        reject(&ch, m.delivery.delivery_tag, false).await;
    }
    let d = get_within(&ch, &q2, 2000).await;
    let p = &d.delivery.properties;
    let deaths = x_death(p);
    assert_eq!(deaths.len(), 2, "one entry per (queue, reason): {deaths:?}");
    // The entry updated last moves to the front.
    assert_death(&deaths[0], 2, "rejected", &q1, "", &[&q1], None);
    assert_death(&deaths[1], 1, "rejected", &q2, "", &[&q2], None);
    assert_first_last(p, ("rejected", &q1, ""), ("rejected", &q1, ""));
    within(b.stop()).await;
}

#[tokio::test]
async fn last_death_headers_follow_the_latest_death() {
    if external() {
        eprintln!(
            "last_death_headers_follow_the_latest_death: skipped, RabbitMQ 3.10 has no x-last-death-*"
        );
        return;
    }
    let (b, _conn, ch) = setup().await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let q2 = new_queue(
        &ch,
        "q2",
        with(dlx_to(&dead), &[("x-message-ttl", int(50))]),
    )
    .await;
    let q1 = new_queue(&ch, "q1", dlx_to(&q2)).await;
    publish(&ch, &q1, b"x").await;
    let m = get_unacked(&ch, &q1).await;
    reject(&ch, m.delivery.delivery_tag, false).await;
    // Rejected from q1, then expired from q2 into `dead`.
    let d = get_within(&ch, &dead, 3000).await;
    let p = &d.delivery.properties;
    let deaths = x_death(p);
    assert_eq!(deaths.len(), 2);
    assert_death(&deaths[0], 1, "expired", &q2, "", &[&q2], None);
    assert_death(&deaths[1], 1, "rejected", &q1, "", &[&q1], None);
    assert_first_last(p, ("rejected", &q1, ""), ("expired", &q2, ""));
    within(b.stop()).await;
}

#[tokio::test]
async fn rejected_message_cycling_into_its_own_queue_is_not_dropped() {
    let (b, _conn, ch) = setup().await;
    // No x-dead-letter-routing-key: dead-lettered to the default exchange with its own name.
    let q = new_queue(&ch, "self", table(&[("x-dead-letter-exchange", s(""))])).await;
    publish(&ch, &q, b"again").await;
    for round in 0..4i64 {
        let m = poll_get(&ch, &q, 2000, false).await;
        assert_eq!(m.delivery.data, b"again");
        if round == 0 {
            assert!(header(&m.delivery.properties, "x-death").is_none());
        } else {
            let deaths = x_death(&m.delivery.properties);
            assert_eq!(deaths.len(), 1);
            assert_death(&deaths[0], round, "rejected", &q, "", &[&q], None);
        }
        reject(&ch, m.delivery.delivery_tag, false).await;
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn expired_message_cycling_into_its_own_queue_is_dropped() {
    let (b, _conn, ch) = setup().await;
    let q = new_queue(
        &ch,
        "self-exp",
        table(&[
            ("x-dead-letter-exchange", s("")),
            ("x-message-ttl", int(50)),
        ]),
    )
    .await;
    publish(&ch, &q, b"loop").await;
    // A broker that kept cycling would have the message ready at (nearly) every sample.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..10 {
        assert_eq!(ready_count(&ch, &q).await, 0, "the cycle was not broken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(get(&ch, &q, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn expired_message_cycling_between_two_queues_is_dropped() {
    let (b, _conn, ch) = setup().await;
    let e1 = unique("e1");
    let e2 = unique("e2");
    queue(&ch, &e1, with(dlx_to(&e2), &[("x-message-ttl", int(60))])).await;
    queue(&ch, &e2, with(dlx_to(&e1), &[("x-message-ttl", int(60))])).await;
    publish(&ch, &e1, b"loop").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..10 {
        let n = ready_count(&ch, &e1).await + ready_count(&ch, &e2).await;
        assert_eq!(n, 0, "the e1 -> e2 -> e1 cycle was not broken");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn a_cycle_with_a_rejection_is_not_dropped() {
    let (b, _conn, ch) = setup().await;
    let r1 = unique("r1");
    let r2 = unique("r2");
    queue(&ch, &r1, dlx_to(&r2)).await; // rejected here
    queue(&ch, &r2, with(dlx_to(&r1), &[("x-message-ttl", int(50))])).await; // expires here
    publish(&ch, &r1, b"x").await;
    for round in 1..=2i64 {
        let m = get_unacked(&ch, &r1).await;
        reject(&ch, m.delivery.delivery_tag, false).await;
        // r2 expires it back into r1.
        let back = poll_get(&ch, &r1, 3000, false).await;
        let deaths = x_death(&back.delivery.properties);
        assert_eq!(deaths.len(), 2, "{deaths:?}");
        assert_death(&deaths[0], round, "expired", &r2, "", &[&r2], None);
        assert_death(&deaths[1], round, "rejected", &r1, "", &[&r1], None);
        // Put it back at the head of r1 for the next round.
        within(ch.basic_nack(
            back.delivery.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        ))
        .await
        .expect("basic.nack");
    }
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// argument validation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dead_letter_routing_key_without_exchange_is_precondition_failed() {
    let (b, conn, ch) = setup().await;
    let q = unique("rk-only");
    let err = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        table(&[("x-dead-letter-routing-key", s("k"))]),
    ))
    .await
    .expect_err("x-dead-letter-routing-key needs x-dead-letter-exchange");
    assert_eq!(reply_code(&err), Some(406), "{err:?}");
    assert_eq!(
        reply_text(&err).as_deref(),
        Some(
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': routing_key_but_no_dlx_defined"
            )
            .as_str()
        )
    );

    let ch = within(conn.create_channel()).await.expect("channel");
    let err = within(ch.queue_declare(
        unique("int-dlx").as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        table(&[("x-dead-letter-exchange", AMQPValue::LongInt(5))]),
    ))
    .await
    .expect_err("x-dead-letter-exchange must be a string");
    assert_eq!(reply_code(&err), Some(406), "{err:?}");
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// durability
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn persistent_dead_lettered_message_between_durable_queues_survives_restart() {
    if external() {
        eprintln!(
            "persistent_dead_lettered_message_survives_restart: skipped, needs an in-process broker"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let b = within(common::start_with(move |c| c.data_dir = path)).await;
    let (conn, ch) = within(b.channel()).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    within(ch.queue_declare("dead".into(), durable, FieldTable::default()))
        .await
        .expect("queue.declare");
    within(ch.queue_declare("src".into(), durable, dlx_to("dead")))
        .await
        .expect("queue.declare");
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let c = publish_props(
        &ch,
        "",
        "src",
        b"keep me",
        BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    assert!(matches!(c, Confirmation::Ack(_)));
    let m = get_unacked(&ch, "src").await;
    reject(&ch, m.delivery.delivery_tag, false).await;
    // Wait until the move is visible, then restart.
    let deadline = Instant::now() + Duration::from_secs(2);
    while ready_count(&ch, "dead").await == 0 {
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(ch);
    drop(conn);
    within(b.stop()).await;

    let path = dir.path().to_path_buf();
    let b = within(common::start_with(move |c| c.data_dir = path)).await;
    let (_conn, ch) = within(b.channel()).await;
    assert!(
        get(&ch, "src", true).await.is_none(),
        "not back in the source"
    );
    let d = get(&ch, "dead", true).await.expect("survived the restart");
    assert_eq!(d.delivery.data, b"keep me");
    assert_death(
        &x_death(&d.delivery.properties)[0],
        1,
        "rejected",
        "src",
        "",
        &["src"],
        None,
    );
    assert!(get(&ch, "dead", true).await.is_none(), "exactly once");
    within(b.stop()).await;
}
