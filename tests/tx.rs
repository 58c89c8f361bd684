//! tx class: transactional publishes and acks, and the tx/confirm mode exclusions. Every
//! expectation here was checked against RabbitMQ 3.10
//! (`WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo test --test tx`).

mod common;

use common::amqp::*;
use common::within;
use lapin::options::{
    BasicAckOptions, BasicPublishOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use std::sync::atomic::{AtomicUsize, Ordering};

#[track_caller]
fn assert_close(err: &lapin::Error, code: u16, text: &str) {
    assert_eq!(reply_code(err), Some(code), "unexpected error: {err:?}");
    assert_eq!(
        reply_text(err).as_deref(),
        Some(text),
        "unexpected error: {err:?}"
    );
}

fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "warren-tx-{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Exclusive (auto-cleaned) queue; every channel of `ch`'s connection may use it.
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

async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    let confirm = within(ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    within(confirm).await.expect("publisher confirm");
}

async fn ack(ch: &Channel, tag: u64, multiple: bool) {
    within(ch.basic_ack(tag, BasicAckOptions { multiple }))
        .await
        .expect("basic.ack");
}

async fn tx_select(ch: &Channel) {
    within(ch.tx_select()).await.expect("tx.select");
}

async fn commit(ch: &Channel) {
    within(ch.tx_commit()).await.expect("tx.commit");
}

async fn rollback(ch: &Channel) {
    within(ch.tx_rollback()).await.expect("tx.rollback");
}

/// Drains the queue with no-ack gets, returning (body, redelivered) in order.
async fn drain(ch: &Channel, queue: &str) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, queue, true).await {
        out.push((m.delivery.data.clone(), m.redelivered));
        assert!(out.len() < 1000, "queue never drains");
    }
    out
}

/// Publishes `bodies` then gets them all (unacked) on `tx_ch`, before it becomes transactional.
/// Publishing on the same channel keeps the order: another channel's publish may still be in
/// flight when the get arrives.
async fn fetch_unacked(tx_ch: &Channel, q: &str, bodies: &[&[u8]]) -> Vec<u64> {
    for body in bodies {
        publish(tx_ch, q, body).await;
    }
    let mut tags = Vec::new();
    for body in bodies {
        let m = get(tx_ch, q, false).await.expect("message");
        assert_eq!(m.data, *body);
        tags.push(m.delivery_tag);
    }
    tags
}

#[tokio::test]
async fn tx_select_is_ok_and_idempotent() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    tx_select(&ch).await;
    tx_select(&ch).await;
    // An empty transaction commits and rolls back fine.
    commit(&ch).await;
    rollback(&ch).await;
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_publishes_are_invisible_until_commit() {
    let b = within(common::start()).await;
    let (conn, observer) = within(b.channel()).await;
    let q = exclusive_queue(&observer, "publish-commit").await;
    let ch = within(conn.create_channel()).await.expect("channel.open");
    tx_select(&ch).await;
    publish(&ch, &q, b"one").await;
    publish(&ch, &q, b"two").await;
    // Make sure the broker has processed the publishes before looking.
    within(ch.basic_qos(0, Default::default()))
        .await
        .expect("basic.qos");
    assert_eq!(ready_count(&observer, &q).await, 0);
    assert!(get(&observer, &q, true).await.is_none());

    commit(&ch).await;
    assert_eq!(ready_count(&observer, &q).await, 2);
    assert_eq!(
        drain(&observer, &q).await,
        [(b"one".to_vec(), false), (b"two".to_vec(), false)]
    );

    // The channel stays transactional after a commit: the next publish waits for the next commit.
    publish(&ch, &q, b"three").await;
    within(ch.basic_qos(0, Default::default()))
        .await
        .expect("basic.qos");
    assert_eq!(ready_count(&observer, &q).await, 0);
    commit(&ch).await;
    assert_eq!(drain(&observer, &q).await, [(b"three".to_vec(), false)]);
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_rollback_discards_publishes() {
    let b = within(common::start()).await;
    let (conn, observer) = within(b.channel()).await;
    let q = exclusive_queue(&observer, "publish-rollback").await;
    let ch = within(conn.create_channel()).await.expect("channel.open");
    tx_select(&ch).await;
    publish(&ch, &q, b"discarded-1").await;
    publish(&ch, &q, b"discarded-2").await;
    rollback(&ch).await;
    assert_eq!(ready_count(&observer, &q).await, 0);

    // Still transactional after rollback; only what follows the rollback is committed.
    publish(&ch, &q, b"kept").await;
    commit(&ch).await;
    assert_eq!(drain(&observer, &q).await, [(b"kept".to_vec(), false)]);
    // A commit after that has nothing left to publish.
    commit(&ch).await;
    assert_eq!(ready_count(&observer, &q).await, 0);
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_uncommitted_publishes_are_discarded_on_channel_close() {
    let b = within(common::start()).await;
    let (conn, observer) = within(b.channel()).await;
    let q = exclusive_queue(&observer, "publish-close").await;
    let ch = within(conn.create_channel()).await.expect("channel.open");
    tx_select(&ch).await;
    publish(&ch, &q, b"never").await;
    within(ch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    assert_eq!(ready_count(&observer, &q).await, 0);
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_acks_take_effect_only_on_commit() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-commit").await;
    let tx_ch = within(conn.create_channel()).await.expect("channel.open");
    let tags = fetch_unacked(&tx_ch, &q, &[b"a", b"b"]).await;
    tx_select(&tx_ch).await;
    ack(&tx_ch, tags[0], false).await;
    commit(&tx_ch).await;
    // Closing the channel requeues what is still unacked: only b.
    within(tx_ch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    assert_eq!(drain(&ch, &q).await, [(b"b".to_vec(), true)]);
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_uncommitted_acks_are_discarded_on_channel_close() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-close").await;
    let tx_ch = within(conn.create_channel()).await.expect("channel.open");
    let tags = fetch_unacked(&tx_ch, &q, &[b"a", b"b"]).await;
    tx_select(&tx_ch).await;
    ack(&tx_ch, tags[1], true).await;
    within(tx_ch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    assert_eq!(
        drain(&ch, &q).await,
        [(b"a".to_vec(), true), (b"b".to_vec(), true)]
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_rollback_discards_acks_and_messages_stay_unacked() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "ack-rollback").await;
    let tx_ch = within(conn.create_channel()).await.expect("channel.open");
    let tags = fetch_unacked(&tx_ch, &q, &[b"a", b"b", b"c"]).await;
    tx_select(&tx_ch).await;
    ack(&tx_ch, tags[1], true).await;
    rollback(&tx_ch).await;
    // Rollback does not requeue: the messages are still unacked on tx_ch.
    assert_eq!(ready_count(&ch, &q).await, 0);
    assert!(get(&ch, &q, true).await.is_none());

    // The delivery tags are still valid: ack a again and commit.
    ack(&tx_ch, tags[0], false).await;
    commit(&tx_ch).await;
    within(tx_ch.close(200, "bye".into()))
        .await
        .expect("channel.close");
    assert_eq!(
        drain(&ch, &q).await,
        [(b"b".to_vec(), true), (b"c".to_vec(), true)]
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_reject_takes_effect_on_commit() {
    let b = within(common::start()).await;
    let (conn, ch) = within(b.channel()).await;
    let q = exclusive_queue(&ch, "reject-commit").await;
    let tx_ch = within(conn.create_channel()).await.expect("channel.open");
    let tags = fetch_unacked(&tx_ch, &q, &[b"a"]).await;
    tx_select(&tx_ch).await;
    within(tx_ch.basic_reject(tags[0], BasicRejectOptions { requeue: true }))
        .await
        .expect("basic.reject");
    within(tx_ch.basic_qos(0, Default::default()))
        .await
        .expect("basic.qos");
    assert_eq!(
        ready_count(&ch, &q).await,
        0,
        "requeue waits for the commit"
    );
    commit(&tx_ch).await;
    assert_eq!(drain(&ch, &q).await, [(b"a".to_vec(), true)]);
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_mandatory_unroutable_publish_is_returned_at_commit() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    tx_select(&ch).await;
    let key = unique("unroutable");
    within(ch.basic_publish(
        "amq.direct".into(),
        key.as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"back",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    within(ch.basic_qos(0, Default::default()))
        .await
        .expect("basic.qos");
    // Without confirms, lapin keeps returned messages for wait_for_confirms to drain.
    let before = within(ch.wait_for_confirms()).await.expect("drain");
    assert!(before.is_empty(), "returned before commit: {before:?}");
    commit(&ch).await;
    let after = within(ch.wait_for_confirms()).await.expect("drain");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].reply_code, 312);
    assert_eq!(after[0].reply_text.as_str(), "NO_ROUTE");
    assert_eq!(after[0].delivery.routing_key.as_str(), key);
    assert_eq!(after[0].delivery.data, b"back");
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_rolled_back_mandatory_publish_is_not_returned() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    tx_select(&ch).await;
    within(ch.basic_publish(
        "amq.direct".into(),
        unique("unroutable").as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"gone",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    rollback(&ch).await;
    commit(&ch).await;
    let returned = within(ch.wait_for_confirms()).await.expect("drain");
    assert!(returned.is_empty(), "{returned:?}");
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_commit_without_select_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let err = within(ch.tx_commit()).await.expect_err("commit refused");
    assert_close(
        &err,
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    );
    assert!(err.is_amqp_soft_error());
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_rollback_without_select_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    let err = within(ch.tx_rollback())
        .await
        .expect_err("rollback refused");
    assert_close(
        &err,
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn confirm_select_after_tx_select_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    tx_select(&ch).await;
    let err = within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect_err("confirm.select refused");
    assert_close(
        &err,
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
    );
    within(b.stop()).await;
}

#[tokio::test]
async fn tx_select_after_confirm_select_is_406() {
    let b = within(common::start()).await;
    let (_conn, ch) = within(b.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let err = within(ch.tx_select()).await.expect_err("tx.select refused");
    assert_close(
        &err,
        406,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
    );
    within(b.stop()).await;
}
