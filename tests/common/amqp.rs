//! AMQP helpers shared by the lapin test suites: reply-code extraction, argument tables, and
//! bounded publish / get / consume wrappers. One copy here instead of one per test file.

use super::within;
use lapin::message::{BasicGetMessage, Delivery, DeliveryResult};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Consumer, ErrorKind};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub fn external() -> bool {
    std::env::var_os("WARREN_TEST_URI").is_some()
}

pub fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

pub fn reply_text(err: &lapin::Error) -> Option<String> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_message().to_string()),
        _ => None,
    }
}

pub fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

pub fn int(v: i64) -> AMQPValue {
    AMQPValue::LongLongInt(v)
}

pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub async fn declare(ch: &Channel, name: &str, options: QueueDeclareOptions, args: FieldTable) {
    within(ch.queue_declare(name.into(), options, args))
        .await
        .expect("queue.declare");
}

/// Publishes and, on a confirm channel, waits for the confirm.
pub async fn publish_props(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Confirmation {
    let confirm = within(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    ))
    .await
    .expect("basic.publish");
    within(confirm).await.expect("publisher confirm")
}

pub async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    publish_props(ch, "", queue, body, BasicProperties::default()).await;
}

pub async fn get(ch: &Channel, queue: &str, no_ack: bool) -> Option<BasicGetMessage> {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack }))
        .await
        .expect("basic.get")
}

/// Polls basic.get until a message arrives; fails after `ms`.
pub async fn poll_get(ch: &Channel, queue: &str, ms: u64, no_ack: bool) -> BasicGetMessage {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        if let Some(m) = get(ch, queue, no_ack).await {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no message reached {queue} within {ms} ms"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bodies of everything in `queue`, drained with no-ack basic.get.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, queue, true).await {
        out.push(m.delivery.data);
    }
    out
}

pub async fn ready_count(ch: &Channel, queue: &str) -> u32 {
    within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("passive queue.declare")
    .message_count()
}

pub fn header<'a>(props: &'a BasicProperties, key: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(key)
}

pub fn as_str(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => panic!("expected a string, got {other:?}"),
    }
}

/// A consumer whose deliveries are forwarded, in order, into a tokio channel.
pub struct Sub {
    _consumer: Consumer,
    pub rx: mpsc::UnboundedReceiver<DeliveryResult>,
}

impl Sub {
    pub fn new(consumer: Consumer) -> Sub {
        let (tx, rx) = mpsc::unbounded_channel();
        consumer.set_delegate(move |d: DeliveryResult| {
            let _ = tx.send(d);
            async {}
        });
        Sub {
            _consumer: consumer,
            rx,
        }
    }

    /// The next delivery; fails the test on error, cancel or timeout.
    pub async fn next(&mut self) -> Delivery {
        match within(self.rx.recv()).await {
            Some(Ok(Some(d))) => d,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    /// Asserts nothing is delivered for `ms`.
    pub async fn assert_quiet(&mut self, ms: u64) {
        if let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await
        {
            panic!("expected no delivery, got {item:?}");
        }
    }
}

pub async fn consume_with(
    ch: &Channel,
    queue: &str,
    tag: &str,
    no_ack: bool,
    args: FieldTable,
) -> Sub {
    let options = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    let consumer = within(ch.basic_consume(queue.into(), tag.into(), options, args))
        .await
        .expect("basic.consume");
    Sub::new(consumer)
}

pub async fn ack(ch: &Channel, tag: u64) {
    within(ch.basic_ack(tag, BasicAckOptions::default()))
        .await
        .expect("basic.ack");
}

pub async fn qos(ch: &Channel, prefetch: u16) {
    within(ch.basic_qos(prefetch, BasicQosOptions::default()))
        .await
        .expect("basic.qos");
}

/// The `reason` of the most recent x-death entry ("maxlen", "expired", "rejected", ...).
pub fn death_reason(props: &BasicProperties) -> String {
    match header(props, "x-death") {
        Some(AMQPValue::FieldArray(a)) => match a.as_slice().first() {
            Some(AMQPValue::FieldTable(t)) => t
                .inner()
                .get("reason")
                .map(as_str)
                .unwrap_or_else(|| panic!("x-death entry without a reason: {t:?}")),
            other => panic!("expected an x-death table, got {other:?}"),
        },
        other => panic!("expected an x-death array, got {other:?} in {props:?}"),
    }
}
