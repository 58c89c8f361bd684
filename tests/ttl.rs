//! Message and queue TTL driven through lapin: x-message-ttl, the per-message expiration
//! property, TTL 0, requeued messages past their TTL, x-expires, and argument validation.
//!
//! Every expectation here was checked against RabbitMQ 3.10
//! (`WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo test --test ttl`).
//! RabbitMQ notes: an expired message is never delivered, even when it sits behind a live one
//! (it is discarded when it reaches the head; until then a passive declare may still count it);
//! a TTL of 0 delivers only to a consumer that can take the message at once; a message requeued
//! after its TTL passed is dropped; an unused queue with x-expires is deleted and a consumer,
//! basic.get or redeclare counts as use.

mod common;

use common::amqp::*;
use common::within;
use lapin::options::{
    BasicCancelOptions, BasicNackOptions, BasicPublishOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
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
        "warren-ttl-{what}-{}-{nanos}-{}",
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

/// Watches a channel for a broker-initiated close: lapin hands the close error to every
/// consumer of the channel, so a throwaway consumer is a race-free probe. Create it before the
/// offending method.
struct CloseWatch(Sub);

async fn watch_close(ch: &Channel) -> CloseWatch {
    let q = new_queue(ch, "close-watch", FieldTable::default()).await;
    CloseWatch(consume_with(ch, &q, "close-watch", true, FieldTable::default()).await)
}

impl CloseWatch {
    async fn error(mut self) -> lapin::Error {
        match tokio::time::timeout(Duration::from_secs(10), self.0.rx.recv()).await {
            Ok(Some(Err(e))) => e,
            Ok(other) => panic!("expected the broker to close the channel, got {other:?}"),
            Err(_) => panic!("the broker did not close the channel within 10s"),
        }
    }
}

/// A channel in confirm mode: a confirmed publish is in the queue, so a passive declare right
/// after it counts the message (RabbitMQ may not count an unconfirmed one yet).
async fn confirm_channel(b: &common::TestBroker) -> (lapin::Connection, Channel) {
    let (conn, ch) = within(b.channel()).await;
    within(ch.confirm_select(lapin::options::ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    (conn, ch)
}

fn expiring(ms: &str) -> BasicProperties {
    BasicProperties::default().with_expiration(ms.into())
}

/// Passive declare of `queue` on a fresh channel: `Ok(message count)` or the close error.
async fn probe_queue(conn: &lapin::Connection, queue: &str) -> Result<u32, lapin::Error> {
    let ch = within(conn.create_channel()).await.expect("channel.open");
    within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .map(|q| q.message_count())
}

// ---------------------------------------------------------------------------------------------
// message TTL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn queue_ttl_expires_messages_that_are_never_delivered() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "queue-ttl", table(&[("x-message-ttl", int(400))])).await;
    publish(&ch, &q, b"soon gone").await;
    // Still there before the TTL.
    assert_eq!(ready_count(&ch, &q).await, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        get(&ch, &q, true).await.is_none(),
        "expired message delivered"
    );
    assert_eq!(ready_count(&ch, &q).await, 0);
    // A consumer arriving later gets nothing either.
    let mut sub = consume_with(&ch, &q, "late", true, FieldTable::default()).await;
    sub.assert_quiet(200).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn per_message_expiration_is_never_delivered_after_it_passes() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "msg-ttl", FieldTable::default()).await;
    publish_props(&ch, "", &q, b"gone", expiring("400")).await;
    assert_eq!(ready_count(&ch, &q).await, 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        get(&ch, &q, true).await.is_none(),
        "expired message delivered"
    );
    let mut sub = consume_with(&ch, &q, "late", true, FieldTable::default()).await;
    sub.assert_quiet(200).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn message_is_delivered_before_its_ttl_with_its_expiration_property() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "alive", table(&[("x-message-ttl", int(5000))])).await;
    publish_props(&ch, "", &q, b"fresh", expiring("5000")).await;
    let m = get(&ch, &q, true).await.expect("not expired yet");
    assert_eq!(m.delivery.data, b"fresh");
    assert_eq!(
        m.delivery
            .properties
            .expiration()
            .as_ref()
            .map(|e| e.as_str()),
        Some("5000"),
        "the expiration property is delivered as published"
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn the_lower_of_queue_ttl_and_message_expiration_applies() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let long_queue = new_queue(
        &ch,
        "long-queue-ttl",
        table(&[("x-message-ttl", int(10_000))]),
    )
    .await;
    let short_queue = new_queue(
        &ch,
        "short-queue-ttl",
        table(&[("x-message-ttl", int(100))]),
    )
    .await;
    publish_props(&ch, "", &long_queue, b"short msg", expiring("100")).await;
    publish_props(&ch, "", &short_queue, b"long msg", expiring("10000")).await;
    publish(&ch, &long_queue, b"no expiration").await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        drain(&ch, &long_queue).await,
        vec![b"no expiration".to_vec()]
    );
    assert!(drain(&ch, &short_queue).await.is_empty());
    within(b.stop()).await;
}

#[tokio::test]
async fn an_expired_message_behind_a_live_one_is_skipped() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "behind", FieldTable::default()).await;
    publish_props(&ch, "", &q, b"A", expiring("10000")).await;
    publish_props(&ch, "", &q, b"B", expiring("50")).await;
    publish(&ch, &q, b"C").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(drain(&ch, &q).await, vec![b"A".to_vec(), b"C".to_vec()]);
    within(b.stop()).await;
}

#[tokio::test]
async fn an_expired_message_behind_a_live_one_is_not_consumed() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "behind-consumed", FieldTable::default()).await;
    publish_props(&ch, "", &q, b"A", expiring("10000")).await;
    publish_props(&ch, "", &q, b"B", expiring("50")).await;
    publish(&ch, &q, b"C").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sub = consume_with(&ch, &q, "c", true, FieldTable::default()).await;
    assert_eq!(sub.next().await.data, b"A");
    assert_eq!(sub.next().await.data, b"C");
    sub.assert_quiet(150).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn a_message_requeued_after_its_ttl_is_dropped() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "requeue-late", table(&[("x-message-ttl", int(100))])).await;
    publish(&ch, &q, b"late").await;
    publish_props(&ch, "", &q, b"fine", expiring("10000")).await;
    let m = get(&ch, &q, false).await.expect("delivered in time");
    // Unacked messages do not expire...
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...but once back in the queue past their TTL they are gone.
    within(ch.basic_nack(
        m.delivery.delivery_tag,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    ))
    .await
    .expect("basic.nack");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(&ch, &q, true).await.is_none(), "both expired");
    within(b.stop()).await;
}

#[tokio::test]
async fn a_message_held_unacked_past_its_ttl_can_still_be_acked() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "held", table(&[("x-message-ttl", int(100))])).await;
    publish(&ch, &q, b"held").await;
    let mut sub = consume_with(&ch, &q, "c", false, FieldTable::default()).await;
    let d = sub.next().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ack(&ch, d.delivery_tag).await;
    // The channel is fine and the ack settled the message.
    publish(&ch, &q, b"next").await;
    let d2 = sub.next().await;
    assert_eq!(d2.data, b"next");
    assert!(!d2.redelivered);
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// TTL 0
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ttl_zero_discards_a_message_no_consumer_can_take() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "ttl0", table(&[("x-message-ttl", int(0))])).await;
    publish(&ch, &q, b"queue ttl 0").await;
    let plain = new_queue(&ch, "exp0", FieldTable::default()).await;
    publish_props(&ch, "", &plain, b"expiration 0", expiring("0")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(&ch, &q, true).await.is_none());
    assert!(get(&ch, &plain, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn ttl_zero_delivers_to_a_consumer_waiting_with_credit() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "ttl0-consumer", table(&[("x-message-ttl", int(0))])).await;
    let plain = new_queue(&ch, "exp0-consumer", FieldTable::default()).await;
    let mut sub = consume_with(&ch, &q, "c", true, FieldTable::default()).await;
    let mut sub2 = consume_with(&ch, &plain, "c2", true, FieldTable::default()).await;
    publish(&ch, &q, b"now").await;
    publish_props(&ch, "", &plain, b"now too", expiring("0")).await;
    assert_eq!(sub.next().await.data, b"now");
    assert_eq!(sub2.next().await.data, b"now too");
    within(b.stop()).await;
}

#[tokio::test]
async fn ttl_zero_discards_when_the_consumer_has_no_credit() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    qos(&ch, 1).await;
    let q = new_queue(&ch, "ttl0-busy", table(&[("x-message-ttl", int(0))])).await;
    let mut sub = consume_with(&ch, &q, "c", false, FieldTable::default()).await;
    publish(&ch, &q, b"first").await;
    let first = sub.next().await;
    assert_eq!(first.data, b"first");
    // The consumer's only credit is taken: the next message cannot be delivered right away.
    publish(&ch, &q, b"second").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ack(&ch, first.delivery_tag).await;
    sub.assert_quiet(200).await;
    assert!(get(&ch, &q, true).await.is_none());
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// x-expires
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn x_expires_deletes_an_unused_queue() {
    let b = within(common::start()).await;
    let (conn, ch) = confirm_channel(&b).await;
    let q = unique("expires");
    declare(
        &ch,
        &q,
        QueueDeclareOptions::default(),
        table(&[("x-expires", int(200))]),
    )
    .await;
    publish(&ch, &q, b"messages do not count as use").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let err = probe_queue(&conn, &q).await.expect_err("the queue expired");
    assert_eq!(reply_code(&err), Some(404), "{err:?}");
    assert_eq!(
        reply_text(&err),
        Some(format!("NOT_FOUND - no queue '{q}' in vhost '/'"))
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn x_expires_keeps_a_queue_with_a_consumer_and_expires_it_after_the_cancel() {
    let b = within(common::start()).await;
    let (conn, ch) = confirm_channel(&b).await;
    let q = unique("expires-used");
    declare(
        &ch,
        &q,
        QueueDeclareOptions::default(),
        table(&[("x-expires", int(200))]),
    )
    .await;
    let _sub = consume_with(&ch, &q, "keeper", true, FieldTable::default()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(probe_queue(&conn, &q).await.expect("still there"), 0);
    within(ch.basic_cancel("keeper".into(), BasicCancelOptions::default()))
        .await
        .expect("basic.cancel");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let err = probe_queue(&conn, &q)
        .await
        .expect_err("expired after the cancel");
    assert_eq!(reply_code(&err), Some(404), "{err:?}");
    within(b.stop()).await;
}

#[tokio::test]
async fn x_expires_is_renewed_by_basic_get_and_redeclare() {
    let b = within(common::start()).await;
    let (conn, ch) = confirm_channel(&b).await;
    let q = unique("expires-renewed");
    let args = table(&[("x-expires", int(300))]);
    declare(&ch, &q, QueueDeclareOptions::default(), args.clone()).await;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        if i % 2 == 0 {
            assert!(get(&ch, &q, true).await.is_none());
        } else {
            declare(&ch, &q, QueueDeclareOptions::default(), args.clone()).await;
        }
    }
    // 720 ms after the declare, kept alive by use.
    assert_eq!(probe_queue(&conn, &q).await.expect("still there"), 0);
    within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// validation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_expiration_property_closes_the_channel_with_406() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    for (value, reason) in [("abc", "no_integer"), ("-5", "{value_negative,-5}")] {
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let q = new_queue(&ch, "bad-expiration", FieldTable::default()).await;
        let watch = watch_close(&ch).await;
        within(ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"x",
            expiring(value),
        ))
        .await
        .expect("basic.publish is asynchronous");
        let err = watch.error().await;
        assert_eq!(reply_code(&err), Some(406), "{err:?}");
        assert_eq!(
            reply_text(&err),
            Some(format!(
                "PRECONDITION_FAILED - invalid expiration '{value}': {reason}"
            ))
        );
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn invalid_ttl_arguments_are_precondition_failed() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    for (arg, value, reason) in [
        ("x-message-ttl", -1, "{value_negative,-1}"),
        ("x-expires", 0, "{value_zero,0}"),
        ("x-expires", -1, "{value_negative,-1}"),
    ] {
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let q = unique("bad-arg");
        let err = within(ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            table(&[(arg, int(value))]),
        ))
        .await
        .expect_err("invalid argument");
        assert_eq!(reply_code(&err), Some(406), "{arg}={value}: {err:?}");
        assert_eq!(
            reply_text(&err),
            Some(format!(
                "PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/': {reason}"
            )),
            "{arg}={value}"
        );
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn publishing_with_a_confirm_reports_nothing_special_for_a_ttl() {
    let b = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&b).await;
    let q = new_queue(&ch, "ttl-confirm", table(&[("x-message-ttl", int(0))])).await;
    // Even a message discarded at once (TTL 0, no consumer) is acked to the publisher.
    let c = publish_props(&ch, "", &q, b"x", BasicProperties::default()).await;
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    within(b.stop()).await;
}
