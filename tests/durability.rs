//! Durability across broker restarts and publisher confirms, driven through lapin.
//!
//! Every restart test keeps its own temp dir, starts a broker on it, works, stops it cleanly
//! (`TestBroker::stop`: connections are closed with 320 and the broker drains) and starts a new
//! broker on the same dir. A restart needs an in-process broker, so those tests skip themselves
//! when `WARREN_TEST_URI` points the suite at an external broker; the confirm tests that need no
//! restart run there too, which is how their expectations were checked against RabbitMQ
//! (`WARREN_TEST_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo test --test durability`).
//!
//! RabbitMQ is the reference: persistent messages in durable queues survive, transient messages and
//! non-durable queues / exchanges / bindings do not, exclusive queues never come back, and a
//! message delivered but not acked before the restart comes back with redelivered=true.

mod common;

use common::amqp::*;

use common::{TestBroker, within};
use lapin::message::{BasicGetMessage, Delivery, DeliveryResult};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use lapin::{Consumer, ExchangeKind, PublisherConfirm};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// A data dir that outlives each broker started on it; `None` (test skipped) when the suite runs
/// against an external broker, which cannot be restarted from here.
fn data_dir(test: &str) -> Option<TempDir> {
    if std::env::var_os("WARREN_TEST_URI").is_some() {
        eprintln!("{test}: skipped, restarting needs an in-process broker");
        return None;
    }
    Some(tempfile::tempdir().expect("temp dir"))
}

/// Starts a broker on `dir` (a previous broker's state, if any, is recovered).
async fn boot(dir: &TempDir) -> TestBroker {
    let path = dir.path().to_path_buf();
    within(common::start_with(move |cfg| cfg.data_dir = path)).await
}

/// Clean shutdown of `tb`, then a new broker on the same dir.
async fn restart(tb: TestBroker, dir: &TempDir) -> TestBroker {
    within(tb.stop()).await;
    boot(dir).await
}

/// Like [`within`] with a caller-chosen limit, for the large-queue test.
async fn within_secs<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s"))
}

/// A name no other test (nor another run against a shared broker) uses.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "warren-dur-{what}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn no_args() -> FieldTable {
    FieldTable::default()
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn transient() -> QueueDeclareOptions {
    QueueDeclareOptions::default()
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn non_persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(1)
}

/// A connection and a channel in confirm mode.
async fn confirm_channel(tb: &TestBroker) -> (Connection, Channel) {
    let (conn, ch) = within(tb.channel()).await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    (conn, ch)
}

async fn declare(ch: &Channel, name: &str, opts: QueueDeclareOptions) {
    within(ch.queue_declare(name.into(), opts, no_args()))
        .await
        .unwrap_or_else(|e| panic!("queue.declare {name}: {e}"));
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, durable: bool) {
    within(ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
}

async fn bind_queue(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    ))
    .await
    .unwrap_or_else(|e| panic!("queue.bind {queue} -> {exchange} ({key}): {e}"));
}

async fn bind_exchange(ch: &Channel, dest: &str, source: &str, key: &str) {
    within(ch.exchange_bind(
        dest.into(),
        source.into(),
        key.into(),
        ExchangeBindOptions::default(),
        no_args(),
    ))
    .await
    .unwrap_or_else(|e| panic!("exchange.bind {dest} <- {source} ({key}): {e}"));
}

/// Sends a publish and returns its (not yet awaited) confirm.
async fn send(
    ch: &Channel,
    exchange: &str,
    key: &str,
    opts: BasicPublishOptions,
    body: &[u8],
    props: BasicProperties,
) -> PublisherConfirm {
    within(ch.basic_publish(exchange.into(), key.into(), opts, body, props))
        .await
        .expect("basic.publish")
}

/// Publishes on a confirm channel and waits for an ack that carries no returned message.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirm = send(
        ch,
        exchange,
        key,
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await;
    assert_acked(within(confirm).await.expect("confirm"), body);
}

#[track_caller]
fn assert_acked(c: Confirmation, what: &[u8]) {
    assert!(
        matches!(c, Confirmation::Ack(None)),
        "publish {:?} should be acked without a return, got {c:?}",
        String::from_utf8_lossy(what)
    );
}

/// Publishes a mandatory message and tells whether it was routed (acked without a return).
async fn routed(ch: &Channel, exchange: &str, key: &str, body: &[u8]) -> bool {
    let opts = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = send(ch, exchange, key, opts, body, persistent()).await;
    match within(confirm).await.expect("confirm") {
        Confirmation::Ack(None) => true,
        Confirmation::Ack(Some(ret)) => {
            assert_eq!(ret.reply_code, 312, "unexpected return {ret:?}");
            false
        }
        other => panic!("publish to {exchange:?}/{key:?}: unexpected {other:?}"),
    }
}

async fn get(ch: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack }))
        .await
        .unwrap_or_else(|e| panic!("basic.get {queue}: {e}"))
}

fn strings(bodies: &[Vec<u8>]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// Ready-message count of an existing queue.
async fn ready_count(ch: &Channel, queue: &str) -> u32 {
    within(ch.queue_declare(queue.into(), passive(), no_args()))
        .await
        .unwrap_or_else(|e| panic!("passive queue.declare {queue}: {e}"))
        .message_count()
}

/// Whether `queue` exists, by a passive declare on a throwaway channel (a 404 closes it).
async fn queue_exists(conn: &Connection, queue: &str) -> bool {
    let ch = within(conn.create_channel()).await.expect("open channel");
    match within(ch.queue_declare(queue.into(), passive(), no_args())).await {
        Ok(_) => {
            let _ = within(ch.close(200, "bye".into())).await;
            true
        }
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive queue.declare {queue}: unexpected {e}"),
    }
}

/// Whether `exchange` exists, by a passive declare on a throwaway channel.
async fn exchange_exists(conn: &Connection, exchange: &str) -> bool {
    let ch = within(conn.create_channel()).await.expect("open channel");
    let opts = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match within(ch.exchange_declare(exchange.into(), ExchangeKind::Direct, opts, no_args())).await
    {
        Ok(()) => {
            let _ = within(ch.close(200, "bye".into())).await;
            true
        }
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive exchange.declare {exchange}: unexpected {e}"),
    }
}

/// A consumer whose deliveries are forwarded, in order, into a tokio channel.
struct Sub {
    _consumer: Consumer,
    rx: mpsc::UnboundedReceiver<DeliveryResult>,
}

impl Sub {
    async fn new(ch: &Channel, queue: &str) -> Sub {
        let consumer = within(ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            no_args(),
        ))
        .await
        .expect("basic.consume");
        let (tx, rx) = mpsc::unbounded_channel();
        // The send happens in the synchronous part of the delegate call, which lapin makes in
        // delivery order.
        consumer.set_delegate(move |d: DeliveryResult| {
            let _ = tx.send(d);
            async {}
        });
        Sub {
            _consumer: consumer,
            rx,
        }
    }

    async fn next(&mut self) -> Delivery {
        match within(self.rx.recv()).await {
            Some(Ok(Some(d))) => d,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    async fn assert_quiet(&mut self, ms: u64) {
        if let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await
        {
            panic!("expected no delivery, got {item:?}");
        }
    }
}

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

/// Every basic property set, persistent; `i` makes each message's properties distinct.
fn rich_properties(i: usize) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(rich_headers())
        .with_delivery_mode(2)
        .with_priority((i % 10) as u8)
        .with_correlation_id(format!("corr-{i}").as_str().into())
        .with_reply_to("reply-queue".into())
        .with_expiration("3600000".into())
        .with_message_id(format!("msg-{i}").as_str().into())
        .with_timestamp(1_700_000_000 + i as u64)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-a".into())
}

// ---------------------------------------------------------------------------------------------
// messages across a restart
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn persistent_messages_survive_restart_in_order_and_transient_ones_do_not() {
    let Some(dir) = data_dir("persistent_messages_survive_restart") else {
        return;
    };
    let tb = boot(&dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    declare(&ch, "dq", durable()).await;
    declare(&ch, "tq", transient()).await;
    for i in 0..20 {
        let body = format!("persistent-{i}");
        publish(&ch, "", "dq", body.as_bytes(), rich_properties(i)).await;
        let body = format!("transient-{i}");
        publish(&ch, "", "dq", body.as_bytes(), non_persistent()).await;
        // No delivery_mode at all is transient too.
        let body = format!("default-{i}");
        publish(&ch, "", "dq", body.as_bytes(), BasicProperties::default()).await;
        publish(&ch, "", "tq", b"in a transient queue", persistent()).await;
    }
    assert_eq!(ready_count(&ch, "dq").await, 60);

    let tb = restart(tb, &dir).await;
    let (conn, ch) = within(tb.channel()).await;
    assert!(
        !queue_exists(&conn, "tq").await,
        "a non-durable queue must not survive a restart"
    );
    assert_eq!(
        ready_count(&ch, "dq").await,
        20,
        "only the persistent messages survive"
    );
    for i in 0..20 {
        let m = get(&ch, "dq", false)
            .await
            .unwrap_or_else(|| panic!("persistent-{i} is missing after the restart"));
        let d = &m.delivery;
        assert_eq!(
            String::from_utf8_lossy(&d.data),
            format!("persistent-{i}"),
            "order after restart"
        );
        assert_eq!(
            d.properties,
            rich_properties(i),
            "properties of message {i}"
        );
        assert!(!d.redelivered, "never delivered, so redelivered=false");
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), "dq");
        assert_eq!(m.message_count, 19 - i as u32);
        within(d.acker.ack(BasicAckOptions::default()))
            .await
            .expect("ack");
    }
    assert!(get(&ch, "dq", true).await.is_none(), "nothing else in dq");
    within(tb.stop()).await;
}

#[tokio::test]
async fn empty_multi_frame_and_huge_bodies_survive_restart() {
    let Some(dir) = data_dir("empty_multi_frame_and_huge_bodies_survive_restart") else {
        return;
    };
    // Sizes around frame_max (131072) and well past a typical segment size (8 MiB).
    let bodies: Vec<Vec<u8>> = [0usize, 1, 131_064, 131_072, 400_000, 10 * 1024 * 1024]
        .iter()
        .enumerate()
        .map(|(k, &n)| (0..n).map(|i| (i * 31 + k * 7) as u8).collect())
        .collect();
    let tb = boot(&dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    declare(&ch, "bodies", durable()).await;
    for b in &bodies {
        publish(&ch, "", "bodies", b, persistent()).await;
    }
    let tb = restart(tb, &dir).await;
    let (_conn, ch) = within(tb.channel()).await;
    let got = drain(&ch, "bodies").await;
    assert_eq!(got.len(), bodies.len(), "every body comes back");
    for (i, (g, want)) in got.iter().zip(&bodies).enumerate() {
        assert!(
            g == want,
            "body {i}: {} bytes back, {} published (or content differs)",
            g.len(),
            want.len()
        );
    }
    within(tb.stop()).await;
}

#[tokio::test]
async fn unacked_deliveries_come_back_redelivered_and_undelivered_ones_do_not() {
    let Some(dir) = data_dir("unacked_deliveries_come_back_redelivered") else {
        return;
    };
    let tb = boot(&dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    declare(&ch, "uq", durable()).await;
    for i in 0..10 {
        publish(&ch, "", "uq", format!("m{i}").as_bytes(), persistent()).await;
    }
    // m0 acked; m1, m2 by basic.get and m3, m4 by a consumer, all left unacked; m5.. never
    // delivered. The channel is still open when the broker stops.
    let m0 = get(&ch, "uq", false).await.expect("m0");
    within(m0.delivery.acker.ack(BasicAckOptions::default()))
        .await
        .expect("ack m0");
    let _m1 = get(&ch, "uq", false).await.expect("m1");
    let _m2 = get(&ch, "uq", false).await.expect("m2");
    let (_conn2, ch2) = within(tb.channel()).await;
    within(ch2.basic_qos(2, BasicQosOptions::default()))
        .await
        .expect("basic.qos");
    let mut sub = Sub::new(&ch2, "uq").await;
    assert_eq!(sub.next().await.data, b"m3");
    assert_eq!(sub.next().await.data, b"m4");
    sub.assert_quiet(100).await;

    let tb = restart(tb, &dir).await;
    let (_conn, ch) = within(tb.channel()).await;
    let mut back = Vec::new();
    while let Some(m) = get(&ch, "uq", true).await {
        back.push((
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
            m.delivery.redelivered,
        ));
    }
    let want: Vec<(String, bool)> = (1..10).map(|i| (format!("m{i}"), i <= 4)).collect();
    assert_eq!(
        back, want,
        "(body, redelivered) after restart: m0 acked, m1-m4 were unacked, m5-m9 never delivered"
    );
    within(tb.stop()).await;
}

#[tokio::test]
async fn acks_deletes_and_purges_persist() {
    let Some(dir) = data_dir("acks_deletes_and_purges_persist") else {
        return;
    };
    let tb = boot(&dir).await;
    let (conn, ch) = confirm_channel(&tb).await;
    for q in ["acked", "deleted", "purged", "recreated"] {
        declare(&ch, q, durable()).await;
        for i in 0..5 {
            publish(&ch, "", q, format!("{q}-{i}").as_bytes(), persistent()).await;
        }
    }
    // acked: three acked (one with basic.get, two through a multiple ack), two left.
    let a0 = get(&ch, "acked", false).await.expect("acked-0");
    within(a0.delivery.acker.ack(BasicAckOptions::default()))
        .await
        .expect("ack");
    let _a1 = get(&ch, "acked", false).await.expect("acked-1");
    let a2 = get(&ch, "acked", false).await.expect("acked-2");
    within(a2.delivery.acker.ack(BasicAckOptions { multiple: true }))
        .await
        .expect("multiple ack");
    // Auto-ack counts as acked too.
    let a3 = get(&ch, "acked", true).await.expect("acked-3");
    assert_eq!(a3.delivery.data, b"acked-3");
    within(ch.queue_delete("deleted".into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    let purged = within(ch.queue_purge("purged".into(), QueuePurgeOptions::default()))
        .await
        .expect("queue.purge");
    assert_eq!(purged, 5);
    publish(&ch, "", "purged", b"after-purge", persistent()).await;
    within(ch.queue_delete("recreated".into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    declare(&ch, "recreated", durable()).await;
    publish(&ch, "", "recreated", b"new-life", persistent()).await;
    drop((conn, ch));

    let tb = restart(tb, &dir).await;
    let (conn, ch) = within(tb.channel()).await;
    assert_eq!(
        strings(&drain(&ch, "acked").await),
        ["acked-4"],
        "acked messages must not come back"
    );
    assert!(
        !queue_exists(&conn, "deleted").await,
        "a queue deleted before the restart must stay deleted"
    );
    assert_eq!(
        strings(&drain(&ch, "purged").await),
        ["after-purge"],
        "a purge must persist"
    );
    assert_eq!(
        strings(&drain(&ch, "recreated").await),
        ["new-life"],
        "a queue deleted and declared again keeps nothing of its first life"
    );
    within(tb.stop()).await;
}

#[tokio::test]
async fn publishes_after_restart_append_after_recovered_messages() {
    let Some(dir) = data_dir("publishes_after_restart_append") else {
        return;
    };
    let tb = boot(&dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    declare(&ch, "seq", durable()).await;
    for i in 0..5 {
        publish(&ch, "", "seq", format!("{i}").as_bytes(), persistent()).await;
    }

    let tb = restart(tb, &dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    // A declare of the recovered queue is an ordinary redeclare.
    declare(&ch, "seq", durable()).await;
    assert_eq!(ready_count(&ch, "seq").await, 5);
    for i in 5..10 {
        publish(&ch, "", "seq", format!("{i}").as_bytes(), persistent()).await;
    }
    // 0..=2 acked; 3 taken and left unacked when the broker stops.
    for i in 0..3 {
        let m = get(&ch, "seq", false).await.expect("message");
        assert_eq!(m.delivery.data, format!("{i}").as_bytes(), "order");
        within(m.delivery.acker.ack(BasicAckOptions::default()))
            .await
            .expect("ack");
    }
    let m3 = get(&ch, "seq", false).await.expect("message 3");
    assert_eq!(m3.delivery.data, b"3");

    // Second restart: recovery of a recovered queue, with acks made after the first.
    let tb = restart(tb, &dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    for i in 10..12 {
        publish(&ch, "", "seq", format!("{i}").as_bytes(), persistent()).await;
    }
    let mut back = Vec::new();
    while let Some(m) = get(&ch, "seq", true).await {
        back.push((
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
            m.delivery.redelivered,
        ));
    }
    let want: Vec<(String, bool)> = (3..12).map(|i| (format!("{i}"), i == 3)).collect();
    assert_eq!(back, want, "(body, redelivered) after two restarts");

    // Third restart with the queue empty: stays empty and usable.
    let tb = restart(tb, &dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    assert_eq!(ready_count(&ch, "seq").await, 0);
    publish(&ch, "", "seq", b"last", persistent()).await;
    assert_eq!(strings(&drain(&ch, "seq").await), ["last"]);
    within(tb.stop()).await;
}

#[tokio::test]
async fn restart_with_nothing_declared_and_empty_durable_queues() {
    let Some(dir) = data_dir("restart_with_nothing_declared") else {
        return;
    };
    let tb = boot(&dir).await;
    let tb = restart(tb, &dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    declare(&ch, "empty", durable()).await;
    let tb = restart(tb, &dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    assert_eq!(ready_count(&ch, "empty").await, 0);
    publish(&ch, "", "empty", b"x", persistent()).await;
    assert_eq!(strings(&drain(&ch, "empty").await), ["x"]);
    within(tb.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// topology, users, vhosts across a restart
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn durable_topology_survives_restart_and_the_rest_does_not() {
    let Some(dir) = data_dir("durable_topology_survives_restart") else {
        return;
    };
    let tb = boot(&dir).await;
    let (conn, ch) = confirm_channel(&tb).await;
    // Durable: topic src -> (e2e "a.#") -> fanout dst; queues on each and on amq.direct;
    // a headers exchange with a binding that carries arguments.
    declare_exchange(&ch, "src", ExchangeKind::Topic, true).await;
    declare_exchange(&ch, "dst", ExchangeKind::Fanout, true).await;
    declare_exchange(&ch, "hdr", ExchangeKind::Headers, true).await;
    bind_exchange(&ch, "dst", "src", "a.#").await;
    for q in ["q-src", "q-dst", "q-direct", "q-hdr"] {
        declare(&ch, q, durable()).await;
    }
    bind_queue(&ch, "q-src", "src", "a.b", no_args()).await;
    bind_queue(&ch, "q-dst", "dst", "", no_args()).await;
    bind_queue(&ch, "q-direct", "amq.direct", "k-direct", no_args()).await;
    let mut hargs = FieldTable::default();
    hargs.insert("x-match".into(), AMQPValue::LongString("all".into()));
    hargs.insert("color".into(), AMQPValue::LongString("red".into()));
    bind_queue(&ch, "q-hdr", "hdr", "", hargs).await;
    // A durable queue with arguments that redeclares compare.
    let mut qargs = FieldTable::default();
    qargs.insert("x-max-length".into(), AMQPValue::LongInt(1000));
    within(ch.queue_declare("q-args".into(), durable(), qargs.clone()))
        .await
        .expect("declare q-args");

    // Non-durable: an exchange, a queue, an auto-delete queue, bindings from durable exchanges to
    // them, and a durable exclusive queue whose owner is still connected at shutdown.
    declare_exchange(&ch, "t-ex", ExchangeKind::Direct, false).await;
    bind_exchange(&ch, "t-ex", "src", "t.#").await;
    declare(&ch, "t-q", transient()).await;
    bind_queue(&ch, "t-q", "src", "t.q", no_args()).await;
    let autodel = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "t-autodel", autodel).await;
    let excl = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    declare(&ch, "t-exclusive", excl).await;
    publish(&ch, "", "t-exclusive", b"gone", persistent()).await;
    // A durable queue bound to a non-durable exchange: the binding goes with the exchange.
    declare(&ch, "q-of-t-ex", durable()).await;
    bind_queue(&ch, "q-of-t-ex", "t-ex", "t.x", no_args()).await;
    // Sanity before the restart: everything routes.
    assert!(routed(&ch, "src", "t.q", b"pre").await);
    assert!(routed(&ch, "src", "t.x", b"pre").await);
    within(ch.queue_purge("q-of-t-ex".into(), QueuePurgeOptions::default()))
        .await
        .expect("purge");
    let _keep_owner_open = conn;

    let tb = restart(tb, &dir).await;
    let (conn, ch) = confirm_channel(&tb).await;
    for ex in ["src", "dst", "hdr"] {
        assert!(
            exchange_exists(&conn, ex).await,
            "durable exchange {ex} is gone"
        );
    }
    for q in ["q-src", "q-dst", "q-direct", "q-hdr", "q-args", "q-of-t-ex"] {
        assert!(queue_exists(&conn, q).await, "durable queue {q} is gone");
    }
    assert!(
        !exchange_exists(&conn, "t-ex").await,
        "non-durable exchange came back"
    );
    assert!(
        !queue_exists(&conn, "t-q").await,
        "non-durable queue came back"
    );
    assert!(
        !queue_exists(&conn, "t-autodel").await,
        "auto-delete non-durable queue came back"
    );
    assert!(
        !queue_exists(&conn, "t-exclusive").await,
        "an exclusive queue must never come back"
    );

    // Kinds and flags came back as declared: same redeclare works, a different one is 406.
    declare_exchange(&ch, "src", ExchangeKind::Topic, true).await;
    let ch2 = within(conn.create_channel()).await.expect("channel");
    let err = within(ch2.exchange_declare(
        "src".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        no_args(),
    ))
    .await
    .expect_err("src was a topic exchange");
    assert_eq!(reply_code(&err), Some(406), "{err}");
    within(ch.queue_declare("q-args".into(), durable(), qargs))
        .await
        .expect("redeclare q-args with the same arguments after restart");
    let ch2 = within(conn.create_channel()).await.expect("channel");
    let err = within(ch2.queue_declare("q-src".into(), transient(), no_args()))
        .await
        .expect_err("q-src is durable");
    assert_eq!(reply_code(&err), Some(406), "{err}");

    // Routing through recovered bindings.
    assert!(
        routed(&ch, "src", "a.b", b"a.b").await,
        "src a.b unroutable"
    );
    assert!(
        routed(&ch, "src", "a.c", b"a.c").await,
        "src a.c unroutable"
    );
    assert!(routed(&ch, "amq.direct", "k-direct", b"direct").await);
    let mut h = FieldTable::default();
    h.insert("color".into(), AMQPValue::LongString("red".into()));
    publish(&ch, "hdr", "", b"red", persistent().with_headers(h.clone())).await;
    h.insert("color".into(), AMQPValue::LongString("blue".into()));
    publish(&ch, "hdr", "", b"blue", persistent().with_headers(h)).await;
    assert_eq!(strings(&drain(&ch, "q-src").await), ["a.b"]);
    assert_eq!(strings(&drain(&ch, "q-dst").await), ["a.b", "a.c"]);
    assert_eq!(strings(&drain(&ch, "q-direct").await), ["direct"]);
    assert_eq!(strings(&drain(&ch, "q-hdr").await), ["red"]);

    // Bindings to non-durable things did not come back, even once those things are redeclared.
    declare(&ch, "t-q", transient()).await;
    assert!(
        !routed(&ch, "src", "t.q", b"x").await,
        "the binding src -> t-q (non-durable queue) came back"
    );
    declare_exchange(&ch, "t-ex", ExchangeKind::Direct, false).await;
    assert!(
        !routed(&ch, "src", "t.x", b"x").await,
        "the binding src -> t-ex (non-durable exchange) came back"
    );
    assert!(
        !routed(&ch, "t-ex", "t.x", b"x").await,
        "the binding t-ex -> q-of-t-ex (from a non-durable exchange) came back"
    );
    within(tb.stop()).await;
}

#[tokio::test]
async fn unbinds_and_exchange_deletes_persist() {
    let Some(dir) = data_dir("unbinds_and_exchange_deletes_persist") else {
        return;
    };
    let tb = boot(&dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    declare_exchange(&ch, "ex", ExchangeKind::Direct, true).await;
    declare_exchange(&ch, "doomed", ExchangeKind::Fanout, true).await;
    declare(&ch, "q", durable()).await;
    bind_queue(&ch, "q", "ex", "kept", no_args()).await;
    bind_queue(&ch, "q", "ex", "dropped", no_args()).await;
    bind_exchange(&ch, "doomed", "ex", "via-doomed").await;
    bind_queue(&ch, "q", "doomed", "", no_args()).await;
    within(ch.queue_unbind("q".into(), "ex".into(), "dropped".into(), no_args()))
        .await
        .expect("queue.unbind");
    within(ch.exchange_delete("doomed".into(), Default::default()))
        .await
        .expect("exchange.delete");

    let tb = restart(tb, &dir).await;
    let (conn, ch) = confirm_channel(&tb).await;
    assert!(
        !exchange_exists(&conn, "doomed").await,
        "deleted exchange came back"
    );
    assert!(routed(&ch, "ex", "kept", b"kept").await);
    assert!(
        !routed(&ch, "ex", "dropped", b"x").await,
        "an unbound binding came back"
    );
    assert!(
        !routed(&ch, "ex", "via-doomed", b"x").await,
        "a binding to a deleted exchange came back"
    );
    assert_eq!(strings(&drain(&ch, "q").await), ["kept"]);
    within(tb.stop()).await;
}

#[tokio::test]
async fn users_vhosts_and_permissions_survive_restart() {
    let Some(dir) = data_dir("users_vhosts_and_permissions_survive_restart") else {
        return;
    };
    let tb = boot(&dir).await;
    {
        let b = tb.broker().expect("in-process broker");
        b.add_vhost("dur-vhost");
        b.add_user("alice", "alice-pw", &["management"]);
        b.set_permissions("alice", "dur-vhost", "^alice-.*", ".*", ".*")
            .expect("set_permissions");
        b.add_user("carol", "carol-pw", &[]);
        b.set_permissions("carol", "dur-vhost", ".*", ".*", ".*")
            .expect("set_permissions");
        assert!(b.delete_user("carol"));
    }
    // A durable queue with a persistent message in the new vhost.
    let alice_uri = tb.uri_for("alice", "alice-pw", "dur-vhost");
    {
        let conn = within(Connection::connect(
            &alice_uri,
            ConnectionProperties::default(),
        ))
        .await
        .expect("alice connects before the restart");
        let ch = within(conn.create_channel()).await.expect("channel");
        within(ch.confirm_select(ConfirmSelectOptions::default()))
            .await
            .expect("confirm.select");
        declare(&ch, "alice-q", durable()).await;
        publish(&ch, "", "alice-q", b"in dur-vhost", persistent()).await;
    }

    let tb = restart(tb, &dir).await;
    let alice_uri = tb.uri_for("alice", "alice-pw", "dur-vhost");
    let conn = within(Connection::connect(
        &alice_uri,
        ConnectionProperties::default(),
    ))
    .await
    .expect("alice (and dur-vhost, and her permission) must survive the restart");
    let ch = within(conn.create_channel()).await.expect("channel");
    assert_eq!(
        strings(&drain(&ch, "alice-q").await),
        ["in dur-vhost"],
        "the durable queue of a non-default vhost and its message survive"
    );
    // The permission regexes survived, not just "some" permission.
    let err = within(ch.queue_declare("bob-q".into(), durable(), no_args()))
        .await
        .expect_err("alice may only configure ^alice-.*");
    assert_eq!(reply_code(&err), Some(403), "{err}");
    // The password survived as a password (a wrong one is refused).
    let wrong = tb.uri_for("alice", "not-her-password", "dur-vhost");
    assert!(
        within(Connection::connect(&wrong, ConnectionProperties::default()))
            .await
            .is_err(),
        "a wrong password must be refused after restart"
    );
    // A user deleted before the restart stays deleted.
    let carol = tb.uri_for("carol", "carol-pw", "dur-vhost");
    assert!(
        within(Connection::connect(&carol, ConnectionProperties::default()))
            .await
            .is_err(),
        "a user deleted before the restart came back"
    );
    // guest still has "/" (the defaults are not duplicated or lost by a recovery).
    let (_c, gch) = within(tb.channel()).await;
    declare(&gch, "guest-q", transient()).await;
    within(tb.stop()).await;
}

#[tokio::test]
async fn odd_vhost_and_queue_names_survive_restart() {
    let Some(dir) = data_dir("odd_vhost_and_queue_names_survive_restart") else {
        return;
    };
    // Names that are awkward as file names: separators, dot-dots, unicode, 255 bytes.
    let names: Vec<String> = vec![
        "a/b".into(),
        "..".into(),
        "../escape".into(),
        "sp ace\\back".into(),
        "ünï 空".into(),
        "x".repeat(255),
        "CaseSensitive".into(),
        "casesensitive".into(),
    ];
    let vhost = "odd/vh ü..";
    let tb = boot(&dir).await;
    {
        let b = tb.broker().expect("in-process broker");
        b.add_vhost(vhost);
        b.set_permissions("guest", vhost, ".*", ".*", ".*")
            .expect("set_permissions");
    }
    for vh in ["/", vhost] {
        let conn = within(Connection::connect(
            &tb.uri_for("guest", "guest", vh),
            ConnectionProperties::default(),
        ))
        .await
        .expect("connect");
        let ch = within(conn.create_channel()).await.expect("channel");
        within(ch.confirm_select(ConfirmSelectOptions::default()))
            .await
            .expect("confirm.select");
        for n in &names {
            declare(&ch, n, durable()).await;
            publish(&ch, "", n, format!("{vh}|{n}").as_bytes(), persistent()).await;
        }
    }

    let tb = restart(tb, &dir).await;
    for vh in ["/", vhost] {
        let conn = within(Connection::connect(
            &tb.uri_for("guest", "guest", vh),
            ConnectionProperties::default(),
        ))
        .await
        .unwrap_or_else(|e| panic!("connect to vhost {vh:?} after restart: {e}"));
        let ch = within(conn.create_channel()).await.expect("channel");
        for n in &names {
            assert!(
                queue_exists(&conn, n).await,
                "queue {n:?} in vhost {vh:?} is gone"
            );
            assert_eq!(
                strings(&drain(&ch, n).await),
                [format!("{vh}|{n}")],
                "queue {n:?} in vhost {vh:?}"
            );
        }
    }
    within(tb.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// publisher confirms (these run against an external broker too)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_persistent_publish_is_acked_and_enqueued() {
    let tb = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    let q = unique("confirms");
    declare(&ch, &q, durable()).await;
    const N: usize = 2000;
    let mut confirms = Vec::with_capacity(N);
    for i in 0..N {
        let body = format!("{i}");
        confirms.push(
            send(
                &ch,
                "",
                &q,
                BasicPublishOptions::default(),
                body.as_bytes(),
                persistent(),
            )
            .await,
        );
    }
    let returned = within(ch.wait_for_confirms())
        .await
        .expect("wait_for_confirms");
    assert!(returned.is_empty(), "nothing returned: {returned:?}");
    for (i, c) in confirms.into_iter().enumerate() {
        let c = within(c).await.expect("confirm");
        assert!(
            matches!(c, Confirmation::Ack(None)),
            "publish {i}: expected ack, got {c:?}"
        );
    }
    // A confirm means the message is in the queue.
    assert_eq!(ready_count(&ch, &q).await, N as u32);
    within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    within(tb.stop()).await;
}

/// A confirm promises the record is written. Bursts of pipelined publishes arrive many per
/// socket read, so they take the batched write path (one write per queue per read); read
/// straight after the acks arrive, with nothing published since that could write a buffer out,
/// the segment files of both queues the fanout reaches must hold every confirmed message. A
/// confirm sent for a record left in a write buffer fails this.
#[tokio::test]
async fn every_confirmed_record_is_in_the_segment_files_when_its_ack_arrives() {
    let Some(dir) = data_dir("confirmed_records_are_on_disk") else {
        return;
    };
    let tb = boot(&dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    let x = unique("on-disk-x");
    declare_exchange(&ch, &x, ExchangeKind::Fanout, true).await;
    let queues = [unique("on-disk-a"), unique("on-disk-b")];
    for q in &queues {
        declare(&ch, q, durable()).await;
        bind_queue(&ch, q, &x, "", no_args()).await;
    }
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for round in 0..5 {
        let mut confirms = Vec::new();
        for i in 0..400 {
            let body = format!("round {round} message {i}").into_bytes();
            let opts = BasicPublishOptions::default();
            confirms.push(send(&ch, &x, "", opts, &body, persistent()).await);
            sent.push(body);
        }
        for c in confirms {
            assert!(matches!(
                within(c).await.expect("confirm"),
                Confirmation::Ack(None)
            ));
        }
        let on_disk = common::segment_bodies(dir.path());
        for body in &sent {
            assert_eq!(
                on_disk.get(body).copied().unwrap_or(0),
                queues.len(),
                "round {round}: confirmed {:?} is not written to both queues' segments",
                String::from_utf8_lossy(body)
            );
        }
    }
    within(tb.stop()).await;
}

#[tokio::test]
async fn mixed_publishes_are_all_confirmed_with_returns_where_mandatory() {
    let tb = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    let dq = unique("mixed-durable");
    let tq = unique("mixed-transient");
    declare(&ch, &dq, durable()).await;
    declare(
        &ch,
        &tq,
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    let nowhere = unique("nowhere");
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let plain = BasicPublishOptions::default();
    // Pipelined: lapin hands a basic.return to whichever pending confirm a (possibly `multiple`)
    // ack resolves first, so returns are checked as a set, and every confirm must be an ack.
    let mut confirms = Vec::new();
    let mut want_returned = Vec::new();
    for i in 0..200 {
        let body = format!("{i}");
        let b = body.as_bytes();
        let c = match i % 6 {
            0 => send(&ch, "", &dq, plain, b, persistent()).await,
            1 => send(&ch, "", &dq, plain, b, non_persistent()).await,
            2 => send(&ch, "", &tq, plain, b, persistent()).await,
            3 => {
                want_returned.push(body.clone());
                send(&ch, "amq.direct", &nowhere, mandatory, b, persistent()).await
            }
            4 => send(&ch, "amq.direct", &nowhere, plain, b, persistent()).await,
            _ => send(&ch, "", &dq, mandatory, b, persistent()).await,
        };
        confirms.push((i, c));
    }
    let mut returned = Vec::new();
    for (i, c) in confirms {
        match within(c).await.expect("confirm") {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(m)) => {
                assert_eq!(m.reply_code, 312, "{m:?}");
                returned.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
            }
            other => panic!("publish {i} (kind {}): unexpected {other:?}", i % 6),
        }
    }
    for m in within(ch.wait_for_confirms()).await.expect("wait") {
        returned.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    returned.sort();
    want_returned.sort();
    assert_eq!(
        returned, want_returned,
        "exactly the mandatory unroutable publishes are returned"
    );
    // Not pipelined: the return comes with that publish's own ack.
    let c = send(
        &ch,
        "amq.direct",
        &nowhere,
        mandatory,
        b"alone",
        persistent(),
    )
    .await;
    match within(c).await.expect("confirm") {
        Confirmation::Ack(Some(m)) => assert_eq!(m.delivery.data, b"alone"),
        other => panic!("expected basic.return then basic.ack, got {other:?}"),
    }
    let to_dq = (0..200).filter(|i| [0, 1, 5].contains(&(i % 6))).count();
    assert_eq!(ready_count(&ch, &dq).await, to_dq as u32);
    within(ch.queue_delete(dq.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    within(tb.stop()).await;
}

#[tokio::test]
async fn a_message_the_queue_refuses_is_nacked() {
    let tb = within(common::start()).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    let q = unique("reject-publish");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(2));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        args,
    ))
    .await
    .expect("queue.declare");
    let mut results = Vec::new();
    for i in 0..4u8 {
        let c = send(
            &ch,
            "",
            &q,
            BasicPublishOptions::default(),
            &[i],
            persistent(),
        )
        .await;
        results.push(within(c).await.expect("confirm"));
    }
    assert!(matches!(results[0], Confirmation::Ack(None)), "{results:?}");
    assert!(matches!(results[1], Confirmation::Ack(None)), "{results:?}");
    assert!(
        matches!(results[2], Confirmation::Nack(_)),
        "x-overflow=reject-publish on a full queue nacks: {results:?}"
    );
    assert!(matches!(results[3], Confirmation::Nack(_)), "{results:?}");
    assert_eq!(ready_count(&ch, &q).await, 2);
    within(tb.stop()).await;
}

#[tokio::test]
async fn concurrent_confirming_publishers_lose_nothing_across_restart() {
    let Some(dir) = data_dir("concurrent_confirming_publishers") else {
        return;
    };
    const PUBLISHERS: usize = 4;
    const EACH: usize = 1500;
    let tb = boot(&dir).await;
    {
        let (_conn, ch) = within(tb.channel()).await;
        declare(&ch, "shared", durable()).await;
    }
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let uri = tb.uri.clone();
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&uri, ConnectionProperties::default())
                .await
                .expect("connect");
            let ch = conn.create_channel().await.expect("channel");
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .expect("confirm.select");
            let mut window = VecDeque::new();
            for i in 0..EACH {
                let body = format!("{p}:{i}");
                let c = ch
                    .basic_publish(
                        "".into(),
                        "shared".into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        persistent(),
                    )
                    .await
                    .expect("publish");
                window.push_back((i, c));
                if window.len() > 100 {
                    let (i, c) = window.pop_front().expect("non-empty");
                    let c = c.await.expect("confirm");
                    assert!(matches!(c, Confirmation::Ack(None)), "{p}:{i}: {c:?}");
                }
            }
            for (i, c) in window {
                let c = c.await.expect("confirm");
                assert!(matches!(c, Confirmation::Ack(None)), "{p}:{i}: {c:?}");
            }
            conn.close(200, "done".into()).await.expect("close");
        }));
    }
    for t in tasks {
        within_secs(60, t).await.expect("publisher task");
    }

    let tb = restart(tb, &dir).await;
    let (_conn, ch) = within(tb.channel()).await;
    let back = strings(&drain(&ch, "shared").await);
    assert_eq!(
        back.len(),
        PUBLISHERS * EACH,
        "every confirmed message is back"
    );
    let mut next = [0usize; PUBLISHERS];
    for s in &back {
        let (p, i) = s.split_once(':').expect("p:i");
        let (p, i): (usize, usize) = (p.parse().expect("p"), i.parse().expect("i"));
        assert_eq!(
            i, next[p],
            "publisher {p}'s messages out of order or duplicated"
        );
        next[p] += 1;
    }
    within(tb.stop()).await;
}

// ---------------------------------------------------------------------------------------------
// a large queue
// ---------------------------------------------------------------------------------------------

/// 150 000 persistent 16-byte messages published with confirms (a window of outstanding
/// publishes), a restart, then consumed back exactly once and in order. (200 000 took ~23 s in a
/// debug build on 2 cores, so the count is lowered to stay near 20 s.)
#[tokio::test]
async fn a_large_queue_survives_restart_in_order() {
    let Some(dir) = data_dir("a_large_queue_survives_restart_in_order") else {
        return;
    };
    const N: usize = 150_000;
    const WINDOW: usize = 2_000;
    let started = Instant::now();
    let tb = boot(&dir).await;
    let (_conn, ch) = confirm_channel(&tb).await;
    declare(&ch, "big", durable()).await;
    within_secs(120, async {
        let mut window = VecDeque::with_capacity(WINDOW + 1);
        for i in 0..N {
            let body = format!("{i:016}");
            let c = ch
                .basic_publish(
                    "".into(),
                    "big".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                )
                .await
                .expect("publish");
            window.push_back((i, c));
            if window.len() > WINDOW {
                let (i, c) = window.pop_front().expect("non-empty");
                let c = c.await.expect("confirm");
                assert!(matches!(c, Confirmation::Ack(None)), "publish {i}: {c:?}");
            }
        }
        for (i, c) in window {
            let c = c.await.expect("confirm");
            assert!(matches!(c, Confirmation::Ack(None)), "publish {i}: {c:?}");
        }
    })
    .await;
    let published = started.elapsed();

    let t = Instant::now();
    let tb = restart(tb, &dir).await;
    let restarted = t.elapsed();
    let (_conn, ch) = within(tb.channel()).await;
    assert_eq!(ready_count(&ch, "big").await, N as u32);
    within(ch.basic_qos(5_000, BasicQosOptions::default()))
        .await
        .expect("basic.qos");
    let mut sub = Sub::new(&ch, "big").await;
    let t = Instant::now();
    within_secs(120, async {
        for i in 0..N {
            let d = sub.next().await;
            assert_eq!(
                d.data,
                format!("{i:016}").as_bytes(),
                "message {i} out of order, missing or duplicated"
            );
            assert!(!d.redelivered, "message {i} was never delivered before");
            if i % 1000 == 999 || i == N - 1 {
                d.acker
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .expect("ack");
            }
        }
    })
    .await;
    sub.assert_quiet(200).await;
    eprintln!(
        "large queue: {N} published+confirmed in {published:?}, restart {restarted:?}, \
         consumed in {:?}",
        t.elapsed()
    );
    assert_eq!(ready_count(&ch, "big").await, 0);
    within(tb.stop()).await;
}
