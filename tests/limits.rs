//! Queue length limits and poison-message limits driven through lapin: x-max-length,
//! x-max-length-bytes, x-overflow (drop-head, reject-publish), and x-delivery-limit with its
//! x-delivery-count header.
//!
//! Length limits were checked against RabbitMQ 3.10 classic queues
//! (`WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo test --test limits`). RabbitMQ has
//! x-delivery-limit only on quorum queues, so against an external broker those tests declare a
//! quorum queue (`x-queue-type=quorum`, durable, deleted at the end) and Warren is held to the
//! same contract on an ordinary queue. RabbitMQ 3.10 quorum queues put `x-delivery-count: 0` on the
//! first delivery and newer versions leave it out, so the first delivery accepts either; the first
//! redelivery carries 1. A limit of N allows N + 1 deliveries; the return after the last one
//! dead-letters the message with reason `delivery_limit` (or drops it without a DLX).
//! Only ready messages count towards a length limit; a single message larger than
//! x-max-length-bytes is dropped itself under drop-head.

mod common;

use common::amqp::*;
use common::within;
use lapin::options::{
    BasicNackOptions, BasicRejectOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
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
        "warren-limits-{what}-{}-{nanos}-{}",
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

fn as_int(v: &AMQPValue) -> i64 {
    match v {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// A channel in confirm mode (a confirmed message is in its queue).
async fn confirm_channel(b: &common::TestBroker) -> (lapin::Connection, Channel) {
    let (conn, ch) = within(b.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    (conn, ch)
}

fn bodies(v: &[&[u8]]) -> Vec<Vec<u8>> {
    v.iter().map(|b| b.to_vec()).collect()
}

async fn publish_confirm(ch: &Channel, queue: &str, body: &[u8]) -> Confirmation {
    publish_props(ch, "", queue, body, BasicProperties::default()).await
}

// ---------------------------------------------------------------------------------------------
// length limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn max_length_drop_head_keeps_the_newest() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "max-len", table(&[("x-max-length", int(3))])).await;
    for i in 0..5u8 {
        let c = publish_confirm(&ch, &q, &[i]).await;
        assert!(
            matches!(c, Confirmation::Ack(None)),
            "drop-head acks: {c:?}"
        );
    }
    assert_eq!(ready_count(&ch, &q).await, 3);
    assert_eq!(drain(&ch, &q).await, bodies(&[&[2], &[3], &[4]]));
    within(b.stop()).await;
}

#[tokio::test]
async fn explicit_drop_head_is_the_default_behaviour() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(
        &ch,
        "drop-head",
        table(&[("x-max-length", int(1)), ("x-overflow", s("drop-head"))]),
    )
    .await;
    publish(&ch, &q, b"old").await;
    publish(&ch, &q, b"new").await;
    assert_eq!(drain(&ch, &q).await, bodies(&[b"new"]));
    within(b.stop()).await;
}

#[tokio::test]
async fn max_length_bytes_drop_head_counts_body_bytes() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "max-bytes", table(&[("x-max-length-bytes", int(10))])).await;
    for body in [b"aaaa", b"bbbb", b"cccc", b"dddd"] {
        publish(&ch, &q, body).await;
    }
    // 16 bytes do not fit in 10: the two oldest are dropped.
    assert_eq!(ready_count(&ch, &q).await, 2);
    assert_eq!(drain(&ch, &q).await, bodies(&[b"cccc", b"dddd"]));

    publish(&ch, &q, b"1234").await;
    publish(&ch, &q, b"0123456789").await;
    assert_eq!(
        drain(&ch, &q).await,
        bodies(&[b"0123456789"]),
        "exactly 10 bytes fit; the older message made room"
    );
    publish(&ch, &q, b"small").await;
    publish(&ch, &q, b"01234567890").await;
    assert!(
        drain(&ch, &q).await.is_empty(),
        "a message larger than the limit is dropped too"
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn the_first_limit_reached_applies() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(
        &ch,
        "both",
        table(&[("x-max-length", int(3)), ("x-max-length-bytes", int(100))]),
    )
    .await;
    for i in 0..5u8 {
        publish(&ch, &q, &[i]).await;
    }
    assert_eq!(drain(&ch, &q).await, bodies(&[&[2], &[3], &[4]]));
    publish(&ch, &q, &[b'x'; 60]).await;
    publish(&ch, &q, &[b'y'; 60]).await;
    assert_eq!(drain(&ch, &q).await, vec![vec![b'y'; 60]]);
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_publish_nacks_and_keeps_the_oldest() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(
        &ch,
        "reject",
        table(&[
            ("x-max-length", int(2)),
            ("x-overflow", s("reject-publish")),
        ]),
    )
    .await;
    let mut results = Vec::new();
    for i in 0..4u8 {
        results.push(publish_confirm(&ch, &q, &[i]).await);
    }
    assert!(matches!(results[0], Confirmation::Ack(None)), "{results:?}");
    assert!(matches!(results[1], Confirmation::Ack(None)), "{results:?}");
    assert!(matches!(results[2], Confirmation::Nack(_)), "{results:?}");
    assert!(matches!(results[3], Confirmation::Nack(_)), "{results:?}");
    // Room again once a message is consumed.
    assert_eq!(get(&ch, &q, true).await.expect("0").delivery.data, [0]);
    let c = publish_confirm(&ch, &q, &[9]).await;
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    assert_eq!(drain(&ch, &q).await, bodies(&[&[1], &[9]]));
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_publish_applies_to_max_length_bytes() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(
        &ch,
        "reject-bytes",
        table(&[
            ("x-max-length-bytes", int(8)),
            ("x-overflow", s("reject-publish")),
        ]),
    )
    .await;
    assert!(matches!(
        publish_confirm(&ch, &q, b"12345").await,
        Confirmation::Ack(None)
    ));
    assert!(matches!(
        publish_confirm(&ch, &q, b"678").await,
        Confirmation::Ack(None)
    ));
    let c = publish_confirm(&ch, &q, b"9").await;
    assert!(
        matches!(c, Confirmation::Nack(_)),
        "the queue is full: {c:?}"
    );
    assert_eq!(drain(&ch, &q).await, bodies(&[b"12345", b"678"]));
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_publish_without_confirms_drops_silently() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = new_queue(
        &ch,
        "reject-silent",
        table(&[
            ("x-max-length", int(1)),
            ("x-overflow", s("reject-publish")),
        ]),
    )
    .await;
    publish(&ch, &q, b"kept").await;
    publish(&ch, &q, b"refused").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(drain(&ch, &q).await, bodies(&[b"kept"]));
    // The channel is still open.
    publish(&ch, &q, b"after").await;
    assert_eq!(poll_get(&ch, &q, 2000, true).await.delivery.data, b"after");
    within(b.stop()).await;
}

#[tokio::test]
async fn a_message_refused_by_one_of_its_queues_is_nacked() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let full = new_queue(
        &ch,
        "full",
        table(&[
            ("x-max-length", int(0)),
            ("x-overflow", s("reject-publish")),
        ]),
    )
    .await;
    let open = new_queue(&ch, "open", FieldTable::default()).await;
    for q in [&full, &open] {
        within(ch.queue_bind(
            q.as_str().into(),
            "amq.fanout".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ))
        .await
        .expect("queue.bind");
    }
    let c = publish_props(&ch, "amq.fanout", "", b"both", BasicProperties::default()).await;
    assert!(matches!(c, Confirmation::Nack(_)), "{c:?}");
    // The queue with room still got it.
    assert_eq!(drain(&ch, &open).await, bodies(&[b"both"]));
    assert!(drain(&ch, &full).await.is_empty());
    within(b.stop()).await;
}

#[tokio::test]
async fn max_length_zero_with_drop_head_keeps_nothing() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "zero", table(&[("x-max-length", int(0))])).await;
    let c = publish_confirm(&ch, &q, b"x").await;
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    assert!(drain(&ch, &q).await.is_empty());
    within(b.stop()).await;
}

#[tokio::test]
async fn unacked_messages_do_not_count_towards_the_limit() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "unacked", table(&[("x-max-length", int(1))])).await;
    publish(&ch, &q, b"a").await;
    let a = get(&ch, &q, false).await.expect("a");
    publish(&ch, &q, b"b").await;
    assert_eq!(ready_count(&ch, &q).await, 1);
    ack(&ch, a.delivery.delivery_tag).await;
    assert_eq!(drain(&ch, &q).await, bodies(&[b"b"]));
    within(b.stop()).await;
}

#[tokio::test]
async fn invalid_length_arguments_are_precondition_failed() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    for (arg, value, reason) in [
        ("x-max-length", int(-1), "{value_negative,-1}"),
        ("x-max-length-bytes", int(-1), "{value_negative,-1}"),
        ("x-overflow", s("nope"), "invalid_overflow"),
    ] {
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let q = unique("bad-arg");
        let err = within(ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            table(&[(arg, value.clone())]),
        ))
        .await
        .expect_err("invalid argument");
        assert_eq!(reply_code(&err), Some(406), "{arg}: {err:?}");
        assert_eq!(
            reply_text(&err),
            Some(format!(
                "PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/': {reason}"
            )),
            "{arg}={value:?}"
        );
    }
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// delivery limit
// ---------------------------------------------------------------------------------------------

/// A queue with `args` plus x-delivery-limit: an exclusive queue on Warren, a durable quorum queue
/// on RabbitMQ (the only kind with a delivery limit there). Delete it with [`delete`].
async fn limited_queue(ch: &Channel, what: &str, limit: i64, mut args: FieldTable) -> String {
    let name = unique(what);
    args.insert("x-delivery-limit".into(), int(limit));
    let options = if external() {
        args.insert("x-queue-type".into(), s("quorum"));
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        }
    } else {
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        }
    };
    declare(ch, &name, options, args).await;
    name
}

async fn delete(ch: &Channel, queue: &str) {
    within(ch.queue_delete(queue.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

fn delivery_count(props: &BasicProperties) -> Option<i64> {
    header(props, "x-delivery-count").map(as_int)
}

async fn requeue(ch: &Channel, tag: u64) {
    within(ch.basic_reject(tag, BasicRejectOptions { requeue: true }))
        .await
        .expect("basic.reject");
}

#[tokio::test]
async fn delivery_limit_counts_redeliveries_then_dead_letters_with_reason_delivery_limit() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let q = limited_queue(
        &ch,
        "poison",
        2,
        table(&[
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s(&dead)),
        ]),
    )
    .await;
    publish(&ch, &q, b"poison").await;

    let first = poll_get(&ch, &q, 2000, false).await;
    assert!(!first.delivery.redelivered);
    assert!(
        matches!(delivery_count(&first.delivery.properties), None | Some(0)),
        "no redelivery yet: {:?}",
        first.delivery.properties
    );
    requeue(&ch, first.delivery.delivery_tag).await;
    for n in 1..=2i64 {
        let m = poll_get(&ch, &q, 2000, false).await;
        assert!(m.delivery.redelivered);
        assert_eq!(
            delivery_count(&m.delivery.properties),
            Some(n),
            "x-delivery-count on redelivery {n}"
        );
        requeue(&ch, m.delivery.delivery_tag).await;
    }
    // The third return is one more than the limit allows.
    let d = poll_get(&ch, &dead, 2000, true).await;
    assert_eq!(d.delivery.data, b"poison");
    let deaths = match header(&d.delivery.properties, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        other => panic!("x-death array expected, got {other:?}"),
    };
    let AMQPValue::FieldTable(t) = &deaths[0] else {
        panic!("x-death entry is a table: {deaths:?}");
    };
    assert_eq!(
        t.inner().get("reason").map(as_str).as_deref(),
        Some("delivery_limit")
    );
    assert_eq!(t.inner().get("queue").map(as_str), Some(q.clone()));
    assert_eq!(t.inner().get("count").map(as_int), Some(1));
    assert_eq!(
        header(&d.delivery.properties, "x-first-death-reason")
            .map(as_str)
            .as_deref(),
        Some("delivery_limit")
    );
    assert!(get(&ch, &q, true).await.is_none(), "gone from the queue");
    delete(&ch, &q).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn delivery_limit_without_dead_letter_exchange_drops_the_message() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = limited_queue(&ch, "poison-drop", 1, FieldTable::default()).await;
    publish(&ch, &q, b"poison").await;
    publish(&ch, &q, b"healthy").await;
    let mut deliveries = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Some(m) = get(&ch, &q, false).await {
        assert!(
            Instant::now() < deadline,
            "the poison message never went away"
        );
        if m.delivery.data == b"healthy" {
            ack(&ch, m.delivery.delivery_tag).await;
        } else {
            deliveries += 1;
            requeue(&ch, m.delivery.delivery_tag).await;
        }
    }
    assert_eq!(deliveries, 2, "a limit of 1 allows two deliveries");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(&ch, &q, true).await.is_none());
    delete(&ch, &q).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn delivery_limit_applies_to_consumer_nacks() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let dead = new_queue(&ch, "dead", FieldTable::default()).await;
    let q = limited_queue(
        &ch,
        "poison-consumed",
        1,
        table(&[
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s(&dead)),
        ]),
    )
    .await;
    qos(&ch, 1).await;
    let mut sub = consume_with(&ch, &q, "c", false, FieldTable::default()).await;
    publish(&ch, &q, b"poison").await;
    for expected in [None, Some(1)] {
        let d = sub.next().await;
        assert_eq!(d.data, b"poison");
        let count = delivery_count(&d.properties);
        match expected {
            None => assert!(matches!(count, None | Some(0)), "{count:?}"),
            Some(n) => assert_eq!(count, Some(n)),
        }
        within(ch.basic_nack(
            d.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        ))
        .await
        .expect("basic.nack");
    }
    sub.assert_quiet(200).await;
    let d = poll_get(&ch, &dead, 2000, true).await;
    assert_eq!(d.delivery.data, b"poison");
    within(ch.basic_cancel("c".into(), Default::default()))
        .await
        .expect("basic.cancel");
    delete(&ch, &q).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn delivery_limit_zero_drops_on_the_first_return_and_acks_are_unaffected() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = limited_queue(&ch, "poison-ack", 0, FieldTable::default()).await;
    // A limit of 0: delivered once, dropped on the first return.
    publish(&ch, &q, b"once").await;
    let m = poll_get(&ch, &q, 2000, false).await;
    requeue(&ch, m.delivery.delivery_tag).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(&ch, &q, true).await.is_none(), "limit 0: no redelivery");
    // Acked messages are not affected.
    publish(&ch, &q, b"fine").await;
    let m = poll_get(&ch, &q, 2000, false).await;
    ack(&ch, m.delivery.delivery_tag).await;
    assert!(get(&ch, &q, true).await.is_none());
    delete(&ch, &q).await;
    within(b.stop()).await;
}
