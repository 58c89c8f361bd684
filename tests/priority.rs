//! Priorities driven through lapin: priority queues (x-max-priority), consumer priorities
//! (x-priority on basic.consume) and single active consumer (x-single-active-consumer).
//!
//! Every expectation here was checked against RabbitMQ 3.10 classic queues
//! (`WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo test --test priority`).
//! RabbitMQ notes: a message without a priority property counts as priority 0; a priority above
//! x-max-priority counts as x-max-priority (the property is delivered unchanged); x-max-priority
//! 0 is accepted; messages of equal priority stay FIFO; a consumer of higher x-priority gets every
//! message while it has prefetch credit, lower ones only the overflow.

mod common;

use common::amqp::*;
use common::within;
use lapin::options::{BasicCancelOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use std::sync::atomic::{AtomicUsize, Ordering};

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
        "warren-prio-{what}-{}-{nanos}-{}",
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

/// A channel in confirm mode (a confirmed message is in its queue).
async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = within(conn.create_channel()).await.expect("channel.open");
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    ch
}

async fn publish_priority(ch: &Channel, queue: &str, body: &[u8], priority: Option<u8>) {
    let mut props = BasicProperties::default();
    if let Some(p) = priority {
        props = props.with_priority(p);
    }
    publish_props(ch, "", queue, body, props).await;
}

fn strings(v: Vec<Vec<u8>>) -> Vec<String> {
    v.into_iter()
        .map(|b| String::from_utf8(b).expect("utf-8"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// priority queues
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn higher_priority_is_delivered_first_and_equal_priorities_stay_fifo() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "prio", table(&[("x-max-priority", int(10))])).await;
    for (body, p) in [
        ("none-1", None),
        ("p1-1", Some(1)),
        ("p5-1", Some(5)),
        ("p0-1", Some(0)),
        ("p9-1", Some(9)),
        ("p5-2", Some(5)),
        ("none-2", None),
        ("p1-2", Some(1)),
        ("p9-2", Some(9)),
        ("p0-2", Some(0)),
    ] {
        publish_priority(&ch, &q, body.as_bytes(), p).await;
    }
    assert_eq!(
        strings(drain(&ch, &q).await),
        [
            "p9-1", "p9-2", "p5-1", "p5-2", "p1-1", "p1-2", "none-1", "p0-1", "none-2", "p0-2"
        ],
        "no priority property is priority 0"
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn priorities_above_the_maximum_count_as_the_maximum() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "prio-cap", table(&[("x-max-priority", int(5))])).await;
    for (body, p) in [
        ("p4", Some(4)),
        ("p5", Some(5)),
        ("p200", Some(200)),
        ("p6", Some(6)),
        ("p5-again", Some(5)),
    ] {
        publish_priority(&ch, &q, body.as_bytes(), p).await;
    }
    let first = get(&ch, &q, true).await.expect("p5");
    assert_eq!(first.delivery.data, b"p5");
    let second = get(&ch, &q, true).await.expect("p200");
    assert_eq!(second.delivery.data, b"p200");
    assert_eq!(
        *second.delivery.properties.priority(),
        Some(200),
        "the property is delivered as published"
    );
    assert_eq!(strings(drain(&ch, &q).await), ["p6", "p5-again", "p4"]);
    within(b.stop()).await;
}

#[tokio::test]
async fn priority_is_ignored_without_x_max_priority() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "no-prio", FieldTable::default()).await;
    for (body, p) in [("low", Some(1)), ("high", Some(9)), ("none", None)] {
        publish_priority(&ch, &q, body.as_bytes(), p).await;
    }
    assert_eq!(strings(drain(&ch, &q).await), ["low", "high", "none"]);
    within(b.stop()).await;
}

#[tokio::test]
async fn a_consumer_receives_backlog_in_priority_order() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "prio-consume", table(&[("x-max-priority", int(255))])).await;
    for (body, p) in [("a", 3), ("b", 250), ("c", 3), ("d", 100), ("e", 255)] {
        publish_priority(&ch, &q, body.as_bytes(), Some(p)).await;
    }
    let mut sub = consume_with(&ch, &q, "c", true, FieldTable::default()).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(String::from_utf8(sub.next().await.data).expect("utf-8"));
    }
    assert_eq!(got, ["e", "b", "d", "a", "c"]);
    within(b.stop()).await;
}

#[tokio::test]
async fn a_requeued_message_keeps_its_priority() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "prio-requeue", table(&[("x-max-priority", int(10))])).await;
    publish_priority(&ch, &q, b"high", Some(8)).await;
    publish_priority(&ch, &q, b"low", Some(2)).await;
    let high = get(&ch, &q, false).await.expect("high");
    assert_eq!(high.delivery.data, b"high");
    publish_priority(&ch, &q, b"mid", Some(5)).await;
    within(ch.basic_reject(
        high.delivery.delivery_tag,
        lapin::options::BasicRejectOptions { requeue: true },
    ))
    .await
    .expect("basic.reject");
    assert_eq!(strings(drain(&ch, &q).await), ["high", "mid", "low"]);
    within(b.stop()).await;
}

#[tokio::test]
async fn invalid_max_priority_is_precondition_failed() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    for (value, reason) in [
        (256, "{max_value_exceeded,256}"),
        (-1, "{value_negative,-1}"),
    ] {
        let ch = within(conn.create_channel()).await.expect("channel.open");
        let q = unique("bad-prio");
        let err = within(ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            table(&[("x-max-priority", int(value))]),
        ))
        .await
        .expect_err("invalid x-max-priority");
        assert_eq!(reply_code(&err), Some(406), "{err:?}");
        assert_eq!(
            reply_text(&err),
            Some(format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': {reason}"
            ))
        );
    }
    // 0 and 255 are fine.
    let ch = within(conn.create_channel()).await.expect("channel.open");
    for value in [0, 255] {
        new_queue(&ch, "ok-prio", table(&[("x-max-priority", int(value))])).await;
    }
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// consumer priorities
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_higher_priority_consumer_gets_messages_while_it_has_credit() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let pch = confirm_channel(&conn).await;
    let q = new_queue(&pch, "consumer-prio", FieldTable::default()).await;
    let high_ch = within(conn.create_channel()).await.expect("channel");
    let low_ch = within(conn.create_channel()).await.expect("channel");
    qos(&high_ch, 2).await;
    qos(&low_ch, 10).await;
    // The low-priority consumer registers first, so round robin alone would favour it.
    let mut low = consume_with(&low_ch, &q, "low", false, table(&[("x-priority", int(1))])).await;
    let mut high = consume_with(
        &high_ch,
        &q,
        "high",
        false,
        table(&[("x-priority", int(10))]),
    )
    .await;

    publish(&pch, &q, b"1").await;
    publish(&pch, &q, b"2").await;
    let h1 = high.next().await;
    let h2 = high.next().await;
    assert_eq!(
        (h1.data.as_slice(), h2.data.as_slice()),
        (&b"1"[..], &b"2"[..])
    );
    low.assert_quiet(150).await;

    // The high consumer is out of credit: the overflow goes to the low one.
    publish(&pch, &q, b"3").await;
    publish(&pch, &q, b"4").await;
    assert_eq!(low.next().await.data, b"3");
    assert_eq!(low.next().await.data, b"4");
    high.assert_quiet(100).await;

    // Credit back: the high consumer is preferred again.
    ack(&high_ch, h2.delivery_tag).await;
    ack(&high_ch, h1.delivery_tag).await;
    publish(&pch, &q, b"5").await;
    assert_eq!(high.next().await.data, b"5");
    low.assert_quiet(150).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn consumers_of_equal_priority_share_round_robin() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "equal-prio", FieldTable::default()).await;
    let mut a = consume_with(&ch, &q, "a", true, table(&[("x-priority", int(5))])).await;
    let mut c = consume_with(&ch, &q, "c", true, table(&[("x-priority", int(5))])).await;
    let mut low = consume_with(&ch, &q, "low", true, table(&[("x-priority", int(-5))])).await;
    for i in 0..4u8 {
        publish(&ch, &q, &[i]).await;
    }
    assert_eq!(a.next().await.data, [0]);
    assert_eq!(c.next().await.data, [1]);
    assert_eq!(a.next().await.data, [2]);
    assert_eq!(c.next().await.data, [3]);
    low.assert_quiet(150).await;
    within(b.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// single active consumer
// ---------------------------------------------------------------------------------------------

fn sac() -> FieldTable {
    table(&[("x-single-active-consumer", AMQPValue::Boolean(true))])
}

#[tokio::test]
async fn single_active_consumer_gets_everything_and_fails_over_on_cancel() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "sac", sac()).await;
    let ch1 = within(conn.create_channel()).await.expect("channel");
    let ch2 = within(conn.create_channel()).await.expect("channel");
    let ch3 = within(conn.create_channel()).await.expect("channel");
    let mut first = consume_with(&ch1, &q, "first", false, FieldTable::default()).await;
    let mut second = consume_with(&ch2, &q, "second", false, FieldTable::default()).await;
    let mut third = consume_with(&ch3, &q, "third", false, FieldTable::default()).await;
    for i in 0..4u8 {
        publish(&ch, &q, &[i]).await;
    }
    for i in 0..4u8 {
        let d = first.next().await;
        assert_eq!(d.data, [i]);
        ack(&ch1, d.delivery_tag).await;
    }
    second.assert_quiet(100).await;
    third.assert_quiet(50).await;

    within(ch1.basic_cancel("first".into(), BasicCancelOptions::default()))
        .await
        .expect("basic.cancel");
    publish(&ch, &q, b"after").await;
    let d = second.next().await;
    assert_eq!(d.data, b"after", "the next registered consumer took over");
    ack(&ch2, d.delivery_tag).await;
    third.assert_quiet(100).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn single_active_consumer_channel_close_hands_unacked_messages_to_the_next() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "sac-close", sac()).await;
    let ch1 = within(conn.create_channel()).await.expect("channel");
    let ch2 = within(conn.create_channel()).await.expect("channel");
    let mut first = consume_with(&ch1, &q, "first", false, FieldTable::default()).await;
    let mut second = consume_with(&ch2, &q, "second", false, FieldTable::default()).await;
    publish(&ch, &q, b"held").await;
    assert_eq!(first.next().await.data, b"held");
    second.assert_quiet(100).await;
    within(ch1.close(200, "bye".into()))
        .await
        .expect("channel.close");
    let d = second.next().await;
    assert_eq!(d.data, b"held");
    assert!(d.redelivered, "requeued from the closed channel");
    within(b.stop()).await;
}

#[tokio::test]
async fn single_active_consumer_ignores_consumer_priorities_of_later_consumers() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = confirm_channel(&conn).await;
    let q = new_queue(&ch, "sac-prio", sac()).await;
    let mut first = consume_with(&ch, &q, "first", true, FieldTable::default()).await;
    let mut late = consume_with(&ch, &q, "late", true, table(&[("x-priority", int(10))])).await;
    publish(&ch, &q, b"x").await;
    assert_eq!(first.next().await.data, b"x");
    late.assert_quiet(150).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn single_active_consumer_argument_must_be_a_boolean() {
    let b = within(common::start()).await;
    let conn = within(b.connect()).await;
    let ch = within(conn.create_channel()).await.expect("channel.open");
    let q = unique("bad-sac");
    let err = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        table(&[("x-single-active-consumer", s("yes"))]),
    ))
    .await
    .expect_err("invalid x-single-active-consumer");
    assert_eq!(reply_code(&err), Some(406), "{err:?}");
    assert_eq!(
        reply_text(&err),
        Some(format!(
            "PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' in vhost '/': {{unacceptable_type,longstr}}"
        ))
    );
    within(b.stop()).await;
}
