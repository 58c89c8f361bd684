//! Disk alarm: below the free-disk limit publishers are blocked (connection.blocked, their
//! sockets no longer read) while consumers keep draining; clearing the alarm unblocks them and
//! nothing stored is lost.

mod common;

use common::within;
use lapin::BasicProperties;
use lapin::options::*;
use lapin::types::FieldTable;
use std::time::Duration;

async fn wait_until(mut f: impl FnMut() -> bool) {
    within(async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn disk_alarm_blocks_publishers_and_consumers_keep_draining() {
    let tb = common::start().await;
    let Some(broker) = tb.broker() else {
        eprintln!("skipped: needs the in-process broker to raise the alarm");
        return;
    };
    let (pub_conn, pub_ch) = tb.channel().await;
    let (_cons_conn, cons_ch) = tb.channel().await;
    within(pub_ch.queue_declare(
        "alarm-q".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("declare");
    let props = BasicProperties::default().with_delivery_mode(2);
    for i in 0..3u8 {
        within(pub_ch.basic_publish(
            "".into(),
            "alarm-q".into(),
            BasicPublishOptions::default(),
            &[i],
            props.clone(),
        ))
        .await
        .expect("publish before alarm");
    }
    // The broker must have taken them before the alarm stops it reading this socket.
    within(async {
        loop {
            let q = cons_ch
                .queue_declare(
                    "alarm-q".into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("passive declare");
            if q.message_count() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Any free space is below this limit: the alarm goes up.
    broker.set_disk_free_limit(u64::MAX);
    wait_until(|| pub_conn.status().blocked()).await;

    // lapin itself holds publishes while blocked, so publish from a task; the broker would
    // not read it anyway.
    let ch = pub_ch.clone();
    let blocked_publish = tokio::spawn(async move {
        ch.basic_publish(
            "".into(),
            "alarm-q".into(),
            BasicPublishOptions::default(),
            b"while-blocked",
            props,
        )
        .await
        .map(|_| ())
    });

    // The consumer side keeps working: drain the three stored messages.
    for i in 0..3u8 {
        let got = within(cons_ch.basic_get("alarm-q".into(), BasicGetOptions { no_ack: true }))
            .await
            .expect("get")
            .expect("message");
        assert_eq!(got.delivery.data, vec![i]);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let empty = within(cons_ch.basic_get("alarm-q".into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get");
    assert!(empty.is_none(), "the blocked publisher's message was read");

    broker.set_disk_free_limit(0);
    wait_until(|| !pub_conn.status().blocked()).await;
    within(blocked_publish)
        .await
        .expect("task")
        .expect("publish after unblock");
    let got = within(async {
        loop {
            if let Some(m) =
                within(cons_ch.basic_get("alarm-q".into(), BasicGetOptions { no_ack: true }))
                    .await
                    .expect("get")
            {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(got.delivery.data, b"while-blocked");
    tb.stop().await;
}

#[tokio::test]
async fn memory_alarm_blocks_publishers_until_memory_falls() {
    let tb = common::start().await;
    let Some(broker) = tb.broker() else {
        eprintln!("skipped: needs the in-process broker to raise the alarm");
        return;
    };
    let (pub_conn, pub_ch) = tb.channel().await;
    within(pub_ch.queue_declare(
        "mem-alarm-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("declare");
    // A publish marks this connection as a publisher.
    within(pub_ch.basic_publish(
        "".into(),
        "mem-alarm-q".into(),
        BasicPublishOptions::default(),
        b"first",
        BasicProperties::default(),
    ))
    .await
    .expect("publish");
    // Any resident size is above one byte.
    broker.set_memory_limit(1);
    wait_until(|| pub_conn.status().blocked()).await;
    broker.set_memory_limit(0);
    wait_until(|| !pub_conn.status().blocked()).await;
    let (_c, ch) = tb.channel().await;
    let got = within(ch.basic_get("mem-alarm-q".into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get")
        .expect("the message published before the alarm is intact");
    assert_eq!(got.delivery.data, b"first");
    tb.stop().await;
}
