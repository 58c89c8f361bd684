//! basic.* class behaviour driven through lapin: publish/get, consume/cancel, acks, qos, returns,
//! large and empty bodies, direct reply-to. Every expectation here was checked against RabbitMQ
//! 3.10 (`WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo test --test basic`).

mod common;

use common::amqp::*;
use common::within;
use lapin::message::{BasicGetMessage, Delivery, DeliveryResult};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRecoverOptions, BasicRejectOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer, Event};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// Asserts `err` is a broker close with `code`, and that its text is exactly `text`.
#[track_caller]
fn assert_close(err: &lapin::Error, code: u16, text: &str) {
    assert_eq!(reply_code(err), Some(code), "unexpected error: {err:?}");
    assert_eq!(
        reply_text(err).as_deref(),
        Some(text),
        "unexpected error: {err:?}"
    );
}

/// A name no other test (nor another run against a shared RabbitMQ) uses.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "warren-basic-{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Declares an exclusive (auto-cleaned) queue, usable only from `ch`'s connection.
async fn exclusive_queue(ch: &Channel, what: &str) -> String {
    let name = unique(what);
    within(ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("queue.declare");
    name
}

/// Declares a shared, non-exclusive queue (delete it with [`delete_queue`] at the end).
async fn shared_queue(ch: &Channel, what: &str) -> String {
    let name = unique(what);
    within(ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.declare");
    name
}

async fn delete_queue(ch: &Channel, name: &str) {
    within(ch.queue_delete(name.into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
}

async fn publish_props(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    let confirm = within(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    ))
    .await
    .expect("basic.publish");
    within(confirm).await.expect("publisher confirm");
}

/// basic.get that must find a message.
async fn get_some(ch: &Channel, queue: &str) -> BasicGetMessage {
    get(ch, queue, false)
        .await
        .expect("queue should not be empty")
}

/// Watches a channel for a broker-initiated close. Asynchronous methods (publish, ack, ...) get
/// no reply, so their error only shows up as a channel.close (or connection.close); lapin hands
/// that error to every consumer of the channel, which makes a throwaway consumer a race-free
/// probe. Create it before the offending method.
struct CloseWatch(Sub);

async fn watch_close(ch: &Channel) -> CloseWatch {
    let q = exclusive_queue(ch, "close-watch").await;
    CloseWatch(
        consume(
            ch,
            &q,
            "close-watch",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await,
    )
}

impl CloseWatch {
    /// The error the channel (or its connection) was closed with.
    async fn error(mut self) -> lapin::Error {
        match tokio::time::timeout(Duration::from_secs(10), self.0.rx.recv()).await {
            Ok(Some(Err(e))) => e,
            Ok(other) => panic!("expected the broker to close the channel, got {other:?}"),
            Err(_) => panic!("the broker did not close the channel within 10s"),
        }
    }
}

/// Waits for lapin to report a connection-level error (connection.close from the broker).
/// Consumers are only cancelled in that case, so the error is read from the connection's event
/// stream: `poll_event` is `|| events.poll_next()` on a `tokio_test::task::spawn` of
/// `conn.events_listener()`, created before the offending method.
async fn connection_error(mut poll_event: impl FnMut() -> Poll<Option<Event>>) -> lapin::Error {
    within(async {
        loop {
            match poll_event() {
                Poll::Ready(Some(Event::Error(e))) => return e,
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => panic!("connection events ended without an error"),
                Poll::Pending => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
}

/// A consumer whose deliveries are forwarded, in order, into a tokio channel.
struct Sub {
    consumer: Consumer,
    rx: mpsc::UnboundedReceiver<DeliveryResult>,
}

impl Sub {
    fn new(consumer: Consumer) -> Sub {
        let (tx, rx) = mpsc::unbounded_channel();
        // The send happens in the synchronous part of the delegate call, which lapin makes in
        // delivery order; only the (empty) future it returns is spawned.
        consumer.set_delegate(move |d: DeliveryResult| {
            let _ = tx.send(d);
            async {}
        });
        Sub { consumer, rx }
    }

    fn tag(&self) -> String {
        self.consumer.tag().to_string()
    }

    /// The next delivery; fails the test on error, cancel or timeout.
    async fn next(&mut self) -> Delivery {
        match within(self.rx.recv()).await {
            Some(Ok(Some(d))) => d,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    /// The next item of the stream, whatever it is (delivery, cancel `Ok(None)`, error).
    /// `None` when lapin dropped the consumer (after a cancel).
    async fn next_event(&mut self) -> Option<DeliveryResult> {
        within(self.rx.recv()).await
    }

    /// Asserts nothing is delivered for a while.
    async fn assert_quiet(&mut self, ms: u64) {
        // `Ok(None)`: lapin dropped the consumer (cancelled), so nothing more can arrive.
        if let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await
        {
            panic!("expected no delivery, got {item:?}");
        }
    }
}

async fn consume(ch: &Channel, queue: &str, tag: &str, options: BasicConsumeOptions) -> Sub {
    let consumer =
        within(ch.basic_consume(queue.into(), tag.into(), options, FieldTable::default()))
            .await
            .expect("basic.consume");
    Sub::new(consumer)
}

fn body_of(d: &Delivery) -> &[u8] {
    &d.data
}

async fn ack(ch: &Channel, tag: u64, multiple: bool) {
    within(ch.basic_ack(tag, BasicAckOptions { multiple }))
        .await
        .expect("basic.ack");
}

async fn open_channel(conn: &Connection) -> Channel {
    within(conn.create_channel()).await.expect("channel.open")
}

// ---------------------------------------------------------------------------------------------
// publish / get
// ---------------------------------------------------------------------------------------------

fn rich_headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert(
        "inner-str".into(),
        AMQPValue::LongString(LongString::from("deep")),
    );
    nested.insert("inner-int".into(), AMQPValue::LongInt(-7));
    let array = FieldArray::from(vec![
        AMQPValue::LongString(LongString::from("a")),
        AMQPValue::LongInt(1),
        AMQPValue::Boolean(false),
        AMQPValue::FieldTable(nested.clone()),
    ]);
    let mut h = FieldTable::default();
    h.insert("bool".into(), AMQPValue::Boolean(true));
    h.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    h.insert("u8".into(), AMQPValue::ShortShortUInt(200));
    h.insert("i16".into(), AMQPValue::ShortInt(-1600));
    h.insert("u16".into(), AMQPValue::ShortUInt(60000));
    h.insert("i32".into(), AMQPValue::LongInt(-320_000));
    h.insert("u32".into(), AMQPValue::LongUInt(4_000_000_000));
    h.insert("i64".into(), AMQPValue::LongLongInt(-64_000_000_000_000));
    h.insert("f32".into(), AMQPValue::Float(1.5));
    h.insert("f64".into(), AMQPValue::Double(-2.25));
    h.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12345,
        }),
    );
    h.insert(
        "string".into(),
        AMQPValue::LongString(LongString::from("héllo wörld")),
    );
    h.insert("array".into(), AMQPValue::FieldArray(array));
    h.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    h.insert("table".into(), AMQPValue::FieldTable(nested));
    h.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 255])),
    );
    h.insert("void".into(), AMQPValue::Void);
    h
}

fn rich_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(rich_headers())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-a".into())
}

#[tokio::test]
async fn publish_then_get_round_trips_body_properties_and_headers() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "roundtrip").await;

    publish_props(&ch, "", &q, b"payload \x00\x01\xff", rich_properties()).await;

    let msg = get(&ch, &q, true).await.expect("message");
    assert_eq!(msg.data, b"payload \x00\x01\xff");
    assert_eq!(msg.exchange.as_str(), "");
    assert_eq!(msg.routing_key.as_str(), q);
    assert!(!msg.redelivered);
    assert_eq!(msg.message_count, 0);
    assert_eq!(msg.properties, rich_properties());
    within(b.stop()).await;
}

#[tokio::test]
async fn get_on_empty_queue_is_get_empty() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "empty").await;
    assert!(get(&ch, &q, false).await.is_none());
    // The channel is still usable after get-empty.
    publish(&ch, &q, b"x").await;
    assert_eq!(get(&ch, &q, true).await.expect("message").data, b"x");
    within(b.stop()).await;
}

#[tokio::test]
async fn get_ok_reports_remaining_message_count() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "count").await;
    for i in 0..3u8 {
        publish(&ch, &q, &[i]).await;
    }
    for (i, remaining) in [(0u8, 2u32), (1, 1), (2, 0)] {
        let m = get(&ch, &q, true).await.expect("message");
        assert_eq!(m.data, [i]);
        assert_eq!(m.message_count, remaining);
    }
    assert!(get(&ch, &q, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn mandatory_unroutable_publish_is_returned_with_312_no_route() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let key = unique("nobody-bound");
    let props = BasicProperties::default()
        .with_message_id("returned-1".into())
        .with_headers(rich_headers());
    let confirm = within(ch.basic_publish(
        "amq.direct".into(),
        key.as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"lost",
        props.clone(),
    ))
    .await
    .expect("basic.publish");
    let confirmation = within(confirm).await.expect("confirm");
    // RabbitMQ sends basic.return then basic.ack for an unroutable mandatory message.
    assert!(
        confirmation.is_ack(),
        "unroutable mandatory message is still acked: {confirmation:?}"
    );
    let returned = confirmation
        .take_message()
        .expect("the message is returned");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(returned.delivery.routing_key.as_str(), key);
    assert_eq!(returned.delivery.data, b"lost");
    assert_eq!(returned.delivery.properties, props);

    // A routable mandatory message is not returned.
    let q = exclusive_queue(&ch, "routable").await;
    let confirm = within(ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"kept",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    assert_eq!(
        within(confirm).await.expect("confirm"),
        Confirmation::Ack(None)
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn non_mandatory_unroutable_publish_is_dropped_silently() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let confirm = within(ch.basic_publish(
        "amq.direct".into(),
        unique("nobody").as_str().into(),
        BasicPublishOptions::default(),
        b"dropped",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    assert_eq!(
        within(confirm).await.expect("confirm"),
        Confirmation::Ack(None)
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn immediate_publish_closes_connection_with_540_not_implemented() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "immediate").await;
    let mut events = tokio_test::task::spawn(conn.events_listener());
    within(ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions {
            immediate: true,
            ..Default::default()
        },
        b"now",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish is sent");
    let err = connection_error(|| events.poll_next()).await;
    assert_close(&err, 540, "NOT_IMPLEMENTED - immediate=true");
    assert!(
        err.is_amqp_hard_error(),
        "540 closes the connection: {err:?}"
    );
    // The whole connection is gone, not just the channel.
    within(async {
        while conn.status().connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(b.stop()).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_closes_channel_with_404() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let ex = unique("no-such-exchange");
    let watch = watch_close(&ch).await;
    within(ch.basic_publish(
        ex.as_str().into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish is sent");
    let err = watch.error().await;
    assert_close(
        &err,
        404,
        &format!("NOT_FOUND - no exchange '{ex}' in vhost '/'"),
    );
    assert!(err.is_amqp_soft_error());
    // Only the channel is closed: the connection still opens channels.
    let ch2 = open_channel(&conn).await;
    let q = exclusive_queue(&ch2, "after-404").await;
    publish(&ch2, &q, b"ok").await;
    assert_eq!(get(&ch2, &q, true).await.expect("message").data, b"ok");
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// consume / cancel
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn consume_with_empty_tag_gets_generated_amq_ctag() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "gen-tag").await;
    let mut sub = consume(&ch, &q, "", BasicConsumeOptions::default()).await;
    let tag = sub.tag();
    assert!(tag.starts_with("amq.ctag-"), "generated tag {tag:?}");
    assert!(tag.len() > "amq.ctag-".len());
    let mut sub2 = consume(&ch, &q, "", BasicConsumeOptions::default()).await;
    assert_ne!(sub2.tag(), tag, "generated tags are unique");

    publish(&ch, &q, b"hello").await;
    publish(&ch, &q, b"hello2").await;
    let d = sub.next().await;
    assert_eq!(body_of(&d), b"hello");
    let d2 = sub2.next().await;
    assert_eq!(body_of(&d2), b"hello2");
    within(b.stop()).await;
}

#[tokio::test]
async fn consume_with_explicit_tag_keeps_it() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "explicit-tag").await;
    let mut sub = consume(&ch, &q, "my-consumer-tag", BasicConsumeOptions::default()).await;
    assert_eq!(sub.tag(), "my-consumer-tag");
    publish(&ch, &q, b"m").await;
    let d = sub.next().await;
    assert_eq!(d.data, b"m");
    assert_eq!(d.routing_key.as_str(), q);
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.delivery_tag, 1);
    assert!(!d.redelivered);
    within(b.stop()).await;
}

#[tokio::test]
async fn duplicate_consumer_tag_on_channel_is_530_not_allowed() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "dup-tag").await;
    let _sub = consume(&ch, &q, "dup", BasicConsumeOptions::default()).await;
    let err = within(ch.basic_consume(
        q.as_str().into(),
        "dup".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect_err("duplicate tag must be refused");
    // RabbitMQ: 530 is a hard error, the whole connection is closed.
    assert_close(
        &err,
        530,
        "NOT_ALLOWED - attempt to reuse consumer tag 'dup'",
    );
    assert!(err.is_amqp_hard_error());
    within(async {
        while conn.status().connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(b.stop()).await;
}

#[tokio::test]
async fn same_consumer_tag_on_two_channels_is_allowed() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let ch2 = open_channel(&conn).await;
    let q = exclusive_queue(&ch, "tag-two-channels").await;
    let _a = consume(&ch, &q, "shared-tag", BasicConsumeOptions::default()).await;
    let b2 = consume(&ch2, &q, "shared-tag", BasicConsumeOptions::default()).await;
    assert_eq!(b2.tag(), "shared-tag");
    within(b.stop()).await;
}

#[tokio::test]
async fn exclusive_consumer_blocks_second_consumer_with_403() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let ch2 = open_channel(&conn).await;
    let q = exclusive_queue(&ch, "excl-consumer").await;
    let _owner = consume(
        &ch,
        &q,
        "owner",
        BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    let err = within(ch2.basic_consume(
        q.as_str().into(),
        "second".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect_err("second consumer refused");
    assert_close(
        &err,
        403,
        &format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"),
    );
    assert!(err.is_amqp_soft_error());
    // basic.get is not a consumer and is still allowed on the first channel.
    assert!(get(&ch, &q, false).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn exclusive_consume_on_queue_with_consumers_is_403() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let ch2 = open_channel(&conn).await;
    let q = exclusive_queue(&ch, "excl-late").await;
    let _first = consume(&ch, &q, "first", BasicConsumeOptions::default()).await;
    let err = within(ch2.basic_consume(
        q.as_str().into(),
        "wants-exclusive".into(),
        BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect_err("exclusive consume refused");
    assert_close(
        &err,
        403,
        &format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"),
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn exclusive_consumer_receives_everything_and_queue_frees_after_cancel() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "excl-gets-all").await;
    let mut owner = consume(
        &ch,
        &q,
        "owner",
        BasicConsumeOptions {
            exclusive: true,
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..5u8 {
        publish(&ch, &q, &[i]).await;
    }
    for i in 0..5u8 {
        assert_eq!(owner.next().await.data, [i]);
    }
    within(ch.basic_cancel("owner".into(), BasicCancelOptions::default()))
        .await
        .expect("basic.cancel");
    // Once the exclusive consumer is gone, others may consume.
    let ch2 = open_channel(&conn).await;
    let mut other = consume(&ch2, &q, "other", BasicConsumeOptions::default()).await;
    publish(&ch, &q, b"next").await;
    assert_eq!(other.next().await.data, b"next");
    within(b.stop()).await;
}

#[tokio::test]
async fn no_ack_consumer_messages_are_settled_on_delivery() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "noack").await;
    let ch_consume = open_channel(&conn).await;
    let mut sub = consume(
        &ch_consume,
        &q,
        "noack",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..3u8 {
        publish(&ch, &q, &[i]).await;
    }
    for i in 0..3u8 {
        let d = sub.next().await;
        assert_eq!(d.data, [i]);
        assert_eq!(d.delivery_tag, u64::from(i) + 1);
    }
    // Closing the consuming channel requeues nothing: no-ack deliveries are already settled.
    within(ch_consume.close(200, "bye".into()))
        .await
        .expect("channel.close");
    assert_eq!(ready_count(&ch, &q).await, 0);
    assert!(get(&ch, &q, false).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn basic_cancel_stops_deliveries() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "cancel").await;
    let mut sub = consume(
        &ch,
        &q,
        "c1",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    publish(&ch, &q, b"before").await;
    assert_eq!(sub.next().await.data, b"before");

    within(ch.basic_cancel("c1".into(), BasicCancelOptions::default()))
        .await
        .expect("basic.cancel");
    // lapin ends the consumer stream on cancel-ok.
    match sub.next_event().await {
        Some(Ok(None)) | None => {}
        other => panic!("expected end of consumer stream, got {other:?}"),
    }
    publish(&ch, &q, b"after").await;
    sub.assert_quiet(300).await;
    // The message stays in the queue for someone else.
    let m = get(&ch, &q, true).await.expect("message kept in queue");
    assert_eq!(m.data, b"after");
    within(b.stop()).await;
}

#[tokio::test]
async fn cancel_of_unknown_consumer_tag_is_ok() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    within(ch.basic_cancel("never-consumed".into(), BasicCancelOptions::default()))
        .await
        .expect("RabbitMQ answers cancel-ok for an unknown tag");
    // The channel is still open.
    let q = exclusive_queue(&ch, "after-cancel-unknown").await;
    publish(&ch, &q, b"x").await;
    assert!(get(&ch, &q, true).await.is_some());
    within(b.stop()).await;
}

#[tokio::test]
async fn consume_from_missing_queue_is_404() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = unique("missing");
    let err = within(ch.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect_err("no such queue");
    assert_close(
        &err,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    assert!(err.is_amqp_soft_error());
    within(b.stop()).await;
}

#[tokio::test]
async fn get_from_missing_queue_is_404() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = unique("missing");
    let err = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
        .await
        .expect_err("no such queue");
    assert_close(
        &err,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn recover_without_requeue_is_540_not_implemented() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "recover-norequeue").await;
    publish(&ch, &q, b"a").await;
    let _m = get_some(&ch, &q).await;
    let err = within(ch.basic_recover(BasicRecoverOptions { requeue: false }))
        .await
        .expect_err("RabbitMQ does not implement recover(requeue=false)");
    assert_close(&err, 540, "NOT_IMPLEMENTED - requeue=false");
    assert!(err.is_amqp_hard_error(), "540 closes the connection");
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// ack / nack / reject / recover
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ack_single_removes_only_that_message() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-single").await;
    let cch = open_channel(&conn).await;
    let mut sub = consume(&cch, &q, "c", BasicConsumeOptions::default()).await;
    publish(&ch, &q, b"1").await;
    publish(&ch, &q, b"2").await;
    let d1 = sub.next().await;
    let d2 = sub.next().await;
    assert_eq!((d1.delivery_tag, d2.delivery_tag), (1, 2));
    ack(&cch, d2.delivery_tag, false).await;
    // Closing the channel requeues the unacked message 1 only.
    within(cch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    let m = get(&ch, &q, true).await.expect("message 1 requeued");
    assert_eq!(m.data, b"1");
    assert!(m.redelivered);
    assert!(get(&ch, &q, true).await.is_none(), "message 2 was acked");
    within(b.stop()).await;
}

#[tokio::test]
async fn ack_multiple_acks_everything_up_to_tag() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-multi").await;
    let cch = open_channel(&conn).await;
    let mut sub = consume(&cch, &q, "c", BasicConsumeOptions::default()).await;
    for i in 1..=4u8 {
        publish(&ch, &q, &[i]).await;
    }
    for i in 1..=4u64 {
        assert_eq!(sub.next().await.delivery_tag, i);
    }
    ack(&cch, 3, true).await;
    within(cch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    let m = get(&ch, &q, true).await.expect("message 4 requeued");
    assert_eq!(m.data, [4]);
    assert!(m.redelivered);
    assert!(get(&ch, &q, true).await.is_none(), "1..=3 were acked");
    within(b.stop()).await;
}

#[tokio::test]
async fn nack_requeue_redelivers_in_original_position() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "nack-requeue").await;
    for i in 1..=3u8 {
        publish(&ch, &q, &[i]).await;
    }
    let m1 = get_some(&ch, &q).await;
    let m2 = get_some(&ch, &q).await;
    assert_eq!(
        (m1.data.as_slice(), m2.data.as_slice()),
        (&[1u8][..], &[2u8][..])
    );
    within(ch.basic_nack(
        m1.delivery_tag,
        BasicNackOptions {
            requeue: true,
            multiple: false,
        },
    ))
    .await
    .expect("basic.nack");
    let again = get_some(&ch, &q).await;
    assert_eq!(
        again.data,
        [1],
        "requeued message goes back to its place, ahead of 3"
    );
    assert!(again.redelivered);
    assert_eq!(again.message_count, 1);
    let m3 = get_some(&ch, &q).await;
    assert_eq!(m3.data, [3]);
    assert!(!m3.redelivered);
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_without_requeue_drops_the_message() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "reject-drop").await;
    publish(&ch, &q, b"doomed").await;
    publish(&ch, &q, b"kept").await;
    let m = get_some(&ch, &q).await;
    assert_eq!(m.data, b"doomed");
    within(ch.basic_reject(m.delivery_tag, BasicRejectOptions { requeue: false }))
        .await
        .expect("basic.reject");
    let next = get_some(&ch, &q).await;
    assert_eq!(next.data, b"kept");
    within(ch.basic_reject(next.delivery_tag, BasicRejectOptions { requeue: false }))
        .await
        .expect("basic.reject");
    assert!(get(&ch, &q, false).await.is_none());
    assert_eq!(ready_count(&ch, &q).await, 0);
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_with_requeue_redelivers() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "reject-requeue").await;
    publish(&ch, &q, b"again").await;
    let m = get_some(&ch, &q).await;
    assert!(!m.redelivered);
    within(ch.basic_reject(m.delivery_tag, BasicRejectOptions { requeue: true }))
        .await
        .expect("basic.reject");
    let m = get_some(&ch, &q).await;
    assert_eq!(m.data, b"again");
    assert!(m.redelivered);
    within(b.stop()).await;
}

#[tokio::test]
async fn nack_multiple_settles_everything_up_to_tag() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "nack-multi").await;
    for i in 1..=4u8 {
        publish(&ch, &q, &[i]).await;
    }
    let mut tags = Vec::new();
    for _ in 0..4 {
        tags.push(get_some(&ch, &q).await.delivery_tag);
    }
    assert_eq!(tags, [1, 2, 3, 4]);
    // Drop 1..=2 ...
    within(ch.basic_nack(
        2,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    ))
    .await
    .expect("basic.nack");
    // ... requeue 3..=4 (multiple from the oldest remaining).
    within(ch.basic_nack(
        4,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    ))
    .await
    .expect("basic.nack");
    let a = get(&ch, &q, true).await.expect("3 requeued");
    let c = get(&ch, &q, true).await.expect("4 requeued");
    assert_eq!(
        (a.data.as_slice(), c.data.as_slice()),
        (&[3u8][..], &[4u8][..])
    );
    assert!(a.redelivered && c.redelivered);
    assert!(get(&ch, &q, true).await.is_none(), "1 and 2 were dropped");
    within(b.stop()).await;
}

#[tokio::test]
async fn ack_of_unknown_delivery_tag_closes_channel_406() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-unknown").await;
    publish(&ch, &q, b"x").await;
    let _m = get_some(&ch, &q).await;
    let watch = watch_close(&ch).await;
    ack(&ch, 42, false).await;
    let err = watch.error().await;
    assert_close(&err, 406, "PRECONDITION_FAILED - unknown delivery tag 42");
    assert!(err.is_amqp_soft_error());
    // The unacked message of the closed channel went back to the queue.
    let ch2 = open_channel(&conn).await;
    let m = get(&ch2, &q, true)
        .await
        .expect("requeued on channel close");
    assert!(m.redelivered);
    within(b.stop()).await;
}

#[tokio::test]
async fn double_ack_closes_channel_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "double-ack").await;
    publish(&ch, &q, b"x").await;
    let m = get_some(&ch, &q).await;
    ack(&ch, m.delivery_tag, false).await;
    let watch = watch_close(&ch).await;
    ack(&ch, m.delivery_tag, false).await;
    let err = watch.error().await;
    assert_close(
        &err,
        406,
        &format!(
            "PRECONDITION_FAILED - unknown delivery tag {}",
            m.delivery_tag
        ),
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn ack_of_no_ack_get_delivery_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-noack").await;
    publish(&ch, &q, b"x").await;
    let m = get(&ch, &q, true).await.expect("message");
    let watch = watch_close(&ch).await;
    ack(&ch, m.delivery_tag, false).await;
    let err = watch.error().await;
    assert_close(
        &err,
        406,
        &format!(
            "PRECONDITION_FAILED - unknown delivery tag {}",
            m.delivery_tag
        ),
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn recover_with_requeue_redelivers_unacked() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "recover").await;
    let cch = open_channel(&conn).await;
    let mut sub = consume(&cch, &q, "c", BasicConsumeOptions::default()).await;
    publish(&ch, &q, b"a").await;
    publish(&ch, &q, b"b").await;
    let a = sub.next().await;
    let b1 = sub.next().await;
    assert!(!a.redelivered && !b1.redelivered);
    ack(&cch, a.delivery_tag, false).await;
    within(cch.basic_recover(BasicRecoverOptions { requeue: true }))
        .await
        .expect("basic.recover");
    let again = sub.next().await;
    assert_eq!(again.data, b"b");
    assert!(again.redelivered);
    assert_ne!(
        again.delivery_tag, b1.delivery_tag,
        "a redelivery gets a fresh delivery tag"
    );
    ack(&cch, again.delivery_tag, false).await;
    sub.assert_quiet(200).await;
    within(cch.close(200, "bye".into())).await.expect("close");
    assert!(get(&ch, &q, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn reject_of_unknown_delivery_tag_closes_channel_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let watch = watch_close(&ch).await;
    within(ch.basic_reject(7, BasicRejectOptions { requeue: true }))
        .await
        .expect("basic.reject is sent");
    let err = watch.error().await;
    assert_close(&err, 406, "PRECONDITION_FAILED - unknown delivery tag 7");
    within(b.stop()).await;
}

#[tokio::test]
async fn nack_of_unknown_delivery_tag_closes_channel_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let watch = watch_close(&ch).await;
    within(ch.basic_nack(
        9,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    ))
    .await
    .expect("basic.nack is sent");
    let err = watch.error().await;
    assert_close(&err, 406, "PRECONDITION_FAILED - unknown delivery tag 9");
    within(b.stop()).await;
}

#[tokio::test]
async fn ack_multiple_beyond_last_delivery_tag_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-multi-beyond").await;
    for i in 1..=3u8 {
        publish(&ch, &q, &[i]).await;
    }
    for _ in 0..3 {
        get_some(&ch, &q).await;
    }
    let watch = watch_close(&ch).await;
    // Tags 1..=3 are outstanding; 5 was never delivered, even though it is above all of them.
    ack(&ch, 5, true).await;
    let err = watch.error().await;
    assert_close(&err, 406, "PRECONDITION_FAILED - unknown delivery tag 5");
    within(b.stop()).await;
}

#[tokio::test]
async fn ack_multiple_with_already_acked_tag_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-multi-acked").await;
    for i in 1..=3u8 {
        publish(&ch, &q, &[i]).await;
    }
    for _ in 0..3 {
        get_some(&ch, &q).await;
    }
    ack(&ch, 2, false).await;
    let watch = watch_close(&ch).await;
    // 1 is still outstanding, but 2 itself is not.
    ack(&ch, 2, true).await;
    let err = watch.error().await;
    assert_close(&err, 406, "PRECONDITION_FAILED - unknown delivery tag 2");
    within(b.stop()).await;
}

#[tokio::test]
async fn ack_single_with_tag_zero_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-zero").await;
    publish(&ch, &q, b"x").await;
    get_some(&ch, &q).await;
    let watch = watch_close(&ch).await;
    ack(&ch, 0, false).await;
    let err = watch.error().await;
    assert_close(&err, 406, "PRECONDITION_FAILED - unknown delivery tag 0");
    within(b.stop()).await;
}

#[tokio::test]
async fn nack_multiple_with_tag_zero_requeues_all_outstanding() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "nack-all").await;
    let cch = open_channel(&conn).await;
    for i in 1..=3u8 {
        publish(&cch, &q, &[i]).await;
    }
    for _ in 0..3 {
        get_some(&cch, &q).await;
    }
    within(cch.basic_nack(
        0,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    ))
    .await
    .expect("basic.nack");
    // Same channel: the requeued messages are ready again, in order, marked redelivered.
    for i in 1..=3u8 {
        let m = get(&cch, &q, true).await.expect("requeued");
        assert_eq!(m.data, [i]);
        assert!(m.redelivered);
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn ack_multiple_with_tag_zero_acks_all_outstanding() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-all").await;
    let cch = open_channel(&conn).await;
    for i in 1..=3u8 {
        publish(&cch, &q, &[i]).await;
    }
    for _ in 0..3 {
        get_some(&cch, &q).await;
    }
    ack(&cch, 0, true).await;
    within(cch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    assert!(get(&ch, &q, true).await.is_none(), "everything was acked");
    within(b.stop()).await;
}

#[tokio::test]
async fn delivery_tags_are_per_channel_and_shared_by_get_and_consume() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "tags").await;
    publish(&ch, &q, b"1").await;
    publish(&ch, &q, b"2").await;
    assert_eq!(get_some(&ch, &q).await.delivery_tag, 1);
    let mut sub = consume(&ch, &q, "c", BasicConsumeOptions::default()).await;
    assert_eq!(sub.next().await.delivery_tag, 2);
    within(ch.basic_cancel("c".into(), BasicCancelOptions::default()))
        .await
        .expect("basic.cancel");
    // A fresh channel starts again at 1.
    let ch2 = open_channel(&conn).await;
    publish(&ch2, &q, b"3").await;
    let mut sub2 = consume(&ch2, &q, "c", BasicConsumeOptions::default()).await;
    let d = sub2.next().await;
    assert_eq!(d.data, b"3");
    assert_eq!(d.delivery_tag, 1);
    within(b.stop()).await;
}

#[tokio::test]
async fn cancelled_consumer_unacked_messages_stay_unacked_and_can_be_acked() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "cancel-unacked").await;
    let cch = open_channel(&conn).await;
    let mut sub = consume(&cch, &q, "c", BasicConsumeOptions::default()).await;
    publish(&ch, &q, b"a").await;
    publish(&ch, &q, b"b").await;
    let a = sub.next().await;
    let _b = sub.next().await;
    within(cch.basic_cancel("c".into(), BasicCancelOptions::default()))
        .await
        .expect("basic.cancel");
    // Cancel requeues nothing ...
    assert_eq!(ready_count(&ch, &q).await, 0);
    // ... and the deliveries can still be acked on the channel.
    ack(&cch, a.delivery_tag, false).await;
    within(cch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    let m = get(&ch, &q, true).await.expect("b requeued on close");
    assert_eq!(m.data, b"b");
    assert!(m.redelivered);
    assert!(get(&ch, &q, true).await.is_none());
    within(b.stop()).await;
}

#[tokio::test]
async fn deleting_queue_cancels_its_consumers() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "deleted-under-consumer").await;
    let cch = open_channel(&conn).await;
    let mut sub = consume(&cch, &q, "doomed", BasicConsumeOptions::default()).await;
    delete_queue(&ch, &q).await;
    // lapin advertises consumer_cancel_notify: the broker sends basic.cancel, the stream ends.
    match sub.next_event().await {
        Some(Ok(None)) | None => {}
        other => panic!("expected the consumer to be cancelled, got {other:?}"),
    }
    // The consuming channel stays open.
    let q2 = exclusive_queue(&cch, "after-delete").await;
    publish(&cch, &q2, b"x").await;
    assert!(get(&cch, &q2, true).await.is_some());
    within(b.stop()).await;
}

#[tokio::test]
async fn consume_from_other_connections_exclusive_queue_is_405() {
    let b = within(common::start()).await;
    let (_owner_conn, owner) = within(b.channel()).await;
    let q = exclusive_queue(&owner, "locked").await;
    let (_conn, ch) = within(b.channel()).await;
    let err = within(ch.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect_err("exclusive queue is locked");
    // The full text is longer than a short string: RabbitMQ truncates it to 255 bytes ending
    // in "...", so only the start is compared.
    assert_eq!(reply_code(&err), Some(405), "{err:?}");
    let text = reply_text(&err).unwrap_or_default();
    let expected = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'."
    );
    assert!(text.starts_with(&expected), "{text:?}");
    assert!(text.len() <= 255);
    within(b.stop()).await;
}

#[tokio::test]
async fn get_from_other_connections_exclusive_queue_is_405() {
    let b = within(common::start()).await;
    let (_owner_conn, owner) = within(b.channel()).await;
    let q = exclusive_queue(&owner, "locked-get").await;
    let (_conn, ch) = within(b.channel()).await;
    let err = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default()))
        .await
        .expect_err("exclusive queue is locked");
    assert_eq!(reply_code(&err), Some(405), "{err:?}");
    within(b.stop()).await;
}

#[tokio::test]
async fn mandatory_publish_to_default_exchange_without_queue_is_returned() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let missing = unique("no-such-queue");
    let confirm = within(ch.basic_publish(
        "".into(),
        missing.as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"nowhere",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    let returned = within(confirm)
        .await
        .expect("confirm")
        .take_message()
        .expect("returned");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), "");
    assert_eq!(returned.delivery.routing_key.as_str(), missing);
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// qos / dispatch
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn qos_prefetch_limits_each_consumer() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "prefetch").await;
    let cch = open_channel(&conn).await;
    within(cch.basic_qos(2, BasicQosOptions { global: false }))
        .await
        .expect("basic.qos");
    let mut sub = consume(&cch, &q, "c", BasicConsumeOptions::default()).await;
    for i in 1..=5u8 {
        publish(&ch, &q, &[i]).await;
    }
    let d1 = sub.next().await;
    let d2 = sub.next().await;
    assert_eq!((d1.data[0], d2.data[0]), (1, 2));
    sub.assert_quiet(300).await;
    assert_eq!(ready_count(&ch, &q).await, 3);
    ack(&cch, d1.delivery_tag, false).await;
    assert_eq!(sub.next().await.data, [3]);
    sub.assert_quiet(300).await;
    // Multiple ack frees two slots at once.
    ack(&cch, 3, true).await;
    assert_eq!(sub.next().await.data, [4]);
    assert_eq!(sub.next().await.data, [5]);
    within(b.stop()).await;
}

#[tokio::test]
async fn qos_per_consumer_limit_applies_to_each_consumer_separately() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "prefetch-each").await;
    let cch = open_channel(&conn).await;
    within(cch.basic_qos(1, BasicQosOptions { global: false }))
        .await
        .expect("basic.qos");
    let mut s1 = consume(&cch, &q, "c1", BasicConsumeOptions::default()).await;
    let mut s2 = consume(&cch, &q, "c2", BasicConsumeOptions::default()).await;
    for i in 1..=4u8 {
        publish(&ch, &q, &[i]).await;
    }
    // One each, then nothing until acked.
    let a = s1.next().await;
    let c = s2.next().await;
    s1.assert_quiet(200).await;
    s2.assert_quiet(100).await;
    assert_eq!(ready_count(&ch, &q).await, 2);
    let mut got = vec![a.data[0], c.data[0]];
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
    within(b.stop()).await;
}

#[tokio::test]
async fn qos_global_shares_limit_across_consumers_of_channel() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "prefetch-global").await;
    let cch = open_channel(&conn).await;
    within(cch.basic_qos(2, BasicQosOptions { global: true }))
        .await
        .expect("basic.qos");
    let mut s1 = consume(&cch, &q, "g1", BasicConsumeOptions::default()).await;
    let mut s2 = consume(&cch, &q, "g2", BasicConsumeOptions::default()).await;
    for i in 1..=6u8 {
        publish(&ch, &q, &[i]).await;
    }
    // Collect whatever arrives: exactly 2 in total across both consumers.
    let mut delivered = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(600);
    loop {
        tokio::select! {
            Some(Ok(Some(d))) = s1.rx.recv() => delivered.push(d),
            Some(Ok(Some(d))) = s2.rx.recv() => delivered.push(d),
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    assert_eq!(
        delivered.len(),
        2,
        "global prefetch 2 caps the channel: {delivered:?}"
    );
    assert_eq!(ready_count(&ch, &q).await, 4);
    // Acking one frees exactly one slot for the channel.
    ack(&cch, delivered[0].delivery_tag, false).await;
    let mut more = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(600);
    loop {
        tokio::select! {
            Some(Ok(Some(_))) = s1.rx.recv() => more += 1,
            Some(Ok(Some(_))) = s2.rx.recv() => more += 1,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    assert_eq!(more, 1);
    within(b.stop()).await;
}

#[tokio::test]
async fn prefetch_does_not_limit_no_ack_consumers() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "prefetch-noack").await;
    let cch = open_channel(&conn).await;
    within(cch.basic_qos(1, BasicQosOptions { global: false }))
        .await
        .expect("basic.qos");
    let mut sub = consume(
        &cch,
        &q,
        "c",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..5u8 {
        publish(&ch, &q, &[i]).await;
    }
    for i in 0..5u8 {
        assert_eq!(sub.next().await.data, [i]);
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn basic_get_is_not_limited_by_prefetch() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "get-ignores-qos").await;
    within(ch.basic_qos(1, BasicQosOptions { global: true }))
        .await
        .expect("basic.qos");
    within(ch.basic_qos(1, BasicQosOptions { global: false }))
        .await
        .expect("basic.qos");
    for i in 1..=3u8 {
        publish(&ch, &q, &[i]).await;
    }
    for i in 1..=3u8 {
        assert_eq!(get_some(&ch, &q).await.data, [i]);
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn two_consumers_on_one_queue_alternate() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "round-robin").await;
    let cch = open_channel(&conn).await;
    let mut s1 = consume(
        &cch,
        &q,
        "rr1",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    let mut s2 = consume(
        &cch,
        &q,
        "rr2",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..10u8 {
        publish(&ch, &q, &[i]).await;
    }
    let mut first = Vec::new();
    let mut second = Vec::new();
    for _ in 0..5 {
        first.push(s1.next().await.data[0]);
        second.push(s2.next().await.data[0]);
    }
    s1.assert_quiet(200).await;
    s2.assert_quiet(50).await;
    // Strict alternation: one consumer gets the even positions, the other the odd ones.
    let (evens, odds) = if first[0] == 0 {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(evens, [0, 2, 4, 6, 8]);
    assert_eq!(odds, [1, 3, 5, 7, 9]);
    within(b.stop()).await;
}

#[tokio::test]
async fn closing_channel_requeues_unacked_to_another_consumer() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "close-requeue").await;
    let ch_a = open_channel(&conn).await;
    let mut a = consume(&ch_a, &q, "a", BasicConsumeOptions::default()).await;
    for i in 1..=3u8 {
        publish(&ch, &q, &[i]).await;
    }
    for i in 1..=3u8 {
        let d = a.next().await;
        assert_eq!(d.data, [i]);
        assert!(!d.redelivered);
    }
    let ch_b = open_channel(&conn).await;
    let mut bsub = consume(&ch_b, &q, "b", BasicConsumeOptions::default()).await;
    bsub.assert_quiet(200).await;
    within(ch_a.close(200, "bye".into()))
        .await
        .expect("channel.close");
    for i in 1..=3u8 {
        let d = bsub.next().await;
        assert_eq!(d.data, [i], "requeued in original order");
        assert!(d.redelivered);
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn consumers_on_two_connections_are_both_served() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = shared_queue(&ch, "two-conns").await;
    let (_c1, ch1) = within(b.channel()).await;
    let (_c2, ch2) = within(b.channel()).await;
    let mut s1 = consume(&ch1, &q, "x", BasicConsumeOptions::default()).await;
    let mut s2 = consume(&ch2, &q, "x", BasicConsumeOptions::default()).await;
    for i in 0..4u8 {
        publish(&ch, &q, &[i]).await;
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let d = s1.next().await;
        ack(&ch1, d.delivery_tag, false).await;
        got.push(d.data[0]);
        let d = s2.next().await;
        ack(&ch2, d.delivery_tag, false).await;
        got.push(d.data[0]);
    }
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3]);
    delete_queue(&ch, &q).await;
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// bodies
// ---------------------------------------------------------------------------------------------

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

#[tokio::test]
async fn large_bodies_round_trip_byte_exact() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "large").await;
    let frame_max = conn.configuration().frame_max() as usize;
    let one = pattern(1024 * 1024);
    let five = pattern(5 * 1024 * 1024 + 3);
    assert!(
        one.len() > frame_max,
        "body must span several frames (frame_max {frame_max})"
    );
    publish(&ch, &q, &one).await;
    publish(&ch, &q, &five).await;
    // Via basic.get ...
    let m = get(&ch, &q, true).await.expect("1 MiB message");
    assert_eq!(m.data.len(), one.len());
    assert!(m.data == one, "1 MiB body differs");
    // ... and via a consumer.
    let mut sub = consume(
        &ch,
        &q,
        "big",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    let d = sub.next().await;
    assert_eq!(d.data.len(), five.len());
    assert!(d.data == five, "5 MiB body differs");
    within(b.stop()).await;
}

#[tokio::test]
async fn body_of_exactly_frame_payload_size_round_trips() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "frame-edge").await;
    // frame_max includes the 8 bytes of frame header and end octet.
    let payload_max = conn.configuration().frame_max() as usize - 8;
    for len in [
        payload_max - 1,
        payload_max,
        payload_max + 1,
        2 * payload_max,
    ] {
        let body = pattern(len);
        publish(&ch, &q, &body).await;
        let m = get(&ch, &q, true).await.expect("message");
        assert!(m.data == body, "body of {len} bytes differs");
    }
    within(b.stop()).await;
}

#[tokio::test]
async fn empty_body_round_trips() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "empty-body").await;
    let props = BasicProperties::default().with_message_id("empty".into());
    publish_props(&ch, "", &q, b"", props.clone()).await;
    publish(&ch, &q, b"after").await;
    let m = get(&ch, &q, true).await.expect("empty message");
    assert!(m.data.is_empty());
    assert_eq!(m.properties, props);
    let mut sub = consume(
        &ch,
        &q,
        "e",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        sub.next().await.data,
        b"after",
        "stream stays in sync after an empty body"
    );
    publish(&ch, &q, b"").await;
    assert!(sub.next().await.data.is_empty());
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// direct reply-to
// ---------------------------------------------------------------------------------------------

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

#[tokio::test]
async fn direct_reply_to_round_trip() {
    let b = within(common::start()).await;
    // The "server" side: its own connection, consuming a request queue.
    let (_sconn, sch) = within(b.channel()).await;
    let requests = exclusive_queue(&sch, "rpc-requests").await;
    let mut server = consume(&sch, &requests, "server", BasicConsumeOptions::default()).await;

    // The client consumes the pseudo-queue with no_ack, then publishes on the same channel.
    let (_cconn, cch) = within(b.channel()).await;
    let mut replies = consume(
        &cch,
        REPLY_TO,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    publish_props(
        &cch,
        "",
        &requests,
        b"ping",
        BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_correlation_id("c-1".into()),
    )
    .await;

    let req = server.next().await;
    assert_eq!(req.data, b"ping");
    let reply_to = req
        .properties
        .reply_to()
        .clone()
        .expect("reply_to set")
        .to_string();
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > REPLY_TO.len() + 1,
        "broker rewrites reply_to to a routable name: {reply_to:?}"
    );
    assert_eq!(
        req.properties.correlation_id().as_ref().map(|s| s.as_str()),
        Some("c-1")
    );
    publish_props(
        &sch,
        "",
        &reply_to,
        b"pong",
        BasicProperties::default().with_correlation_id("c-1".into()),
    )
    .await;
    ack(&sch, req.delivery_tag, false).await;

    let reply = replies.next().await;
    assert_eq!(reply.data, b"pong");
    assert_eq!(reply.routing_key.as_str(), reply_to);
    assert_eq!(reply.exchange.as_str(), "");
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("c-1")
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn direct_reply_to_consume_without_no_ack_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let err = within(ch.basic_consume(
        REPLY_TO.into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect_err("reply-to consumer must be no_ack");
    assert_close(
        &err,
        406,
        "PRECONDITION_FAILED - reply consumer cannot acknowledge",
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn publish_with_direct_reply_to_without_consumer_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "rpc-noconsumer").await;
    let watch = watch_close(&ch).await;
    within(ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"ping",
        BasicProperties::default().with_reply_to(REPLY_TO.into()),
    ))
    .await
    .expect("basic.publish is sent");
    let err = watch.error().await;
    assert_close(
        &err,
        406,
        "PRECONDITION_FAILED - fast reply consumer does not exist",
    );
    within(b.stop()).await;
}
