//! Dead-lettering: the x-death header in RabbitMQ's layout and the cycle rule.
//!
//! A dead-lettered message is a new message (properties re-encoded): x-death gets an entry per
//! (queue, reason) with a count, newest first; x-first-death-* are set once and x-last-death-*
//! every time; a per-message expiration moves to original-expiration so the message does not
//! expire again in the dead-letter queue.

use crate::message::Message;
use crate::protocol::codec;
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use std::sync::Arc;

/// Why a message was dead-lettered (RabbitMQ's reason strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::MaxLen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

fn ls(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

fn str_of(v: Option<&AMQPValue>) -> Option<String> {
    v.and_then(crate::vhost::value_as_str).map(str::to_owned)
}

/// Routing keys the message was published with: its key plus any CC keys.
pub fn routing_keys(msg: &Message) -> Vec<String> {
    let mut keys = vec![msg.routing_key.clone()];
    if let Some(h) = msg.properties.headers().as_ref() {
        match h.inner().get("CC") {
            Some(AMQPValue::FieldArray(a)) => keys.extend(
                a.as_slice()
                    .iter()
                    .filter_map(crate::vhost::value_as_str)
                    .map(str::to_owned),
            ),
            Some(v) => keys.extend(str_of(Some(v))),
            None => {}
        }
    }
    keys
}

/// True when routing this message back to `queue` would close a cycle with no rejection in
/// it, which RabbitMQ breaks by dropping the message.
pub fn is_cycle(msg: &Message, queue: &str) -> bool {
    let Some(AMQPValue::FieldArray(deaths)) = msg
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-death").cloned())
    else {
        return false;
    };
    let mut seen_queue = false;
    for d in deaths.as_slice() {
        if let AMQPValue::FieldTable(t) = d {
            if str_of(t.inner().get("reason")).as_deref() == Some("rejected") {
                return false;
            }
            if str_of(t.inner().get("queue")).as_deref() == Some(queue) {
                seen_queue = true;
            }
        }
    }
    seen_queue
}

/// The message as it leaves `queue` for the dead-letter exchange `dlx`.
pub fn dead_lettered(
    msg: &Message,
    reason: Reason,
    queue: &str,
    dlx: &str,
    new_routing_key: Option<&str>,
    now_secs: u64,
) -> Arc<Message> {
    let p = &msg.properties;
    let mut headers = p.headers().clone().unwrap_or_default();
    let mut inner = headers.inner().clone();
    let mut deaths: Vec<AMQPValue> = match inner.remove("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let matches = |t: &FieldTable| {
        str_of(t.inner().get("queue")).as_deref() == Some(queue)
            && str_of(t.inner().get("reason")).as_deref() == Some(reason.as_str())
    };
    let existing = deaths
        .iter()
        .position(|d| matches!(d, AMQPValue::FieldTable(t) if matches(t)));
    let entry = match existing {
        Some(i) => {
            let mut t = match deaths.remove(i) {
                AMQPValue::FieldTable(t) => t,
                _ => FieldTable::default(),
            };
            let count = t
                .inner()
                .get("count")
                .and_then(super::args::int_value)
                .unwrap_or(0);
            t.insert("count".into(), AMQPValue::LongLongInt(count + 1));
            t
        }
        None => {
            let mut t = FieldTable::default();
            t.insert("count".into(), AMQPValue::LongLongInt(1));
            t.insert("reason".into(), ls(reason.as_str()));
            t.insert("queue".into(), ls(queue));
            t.insert("time".into(), AMQPValue::Timestamp(now_secs));
            t.insert("exchange".into(), ls(&msg.exchange));
            let keys: Vec<AMQPValue> = routing_keys(msg).iter().map(|k| ls(k)).collect();
            t.insert(
                "routing-keys".into(),
                AMQPValue::FieldArray(FieldArray::from(keys)),
            );
            if let Some(exp) = p.expiration() {
                t.insert("original-expiration".into(), ls(exp.as_str()));
            }
            t
        }
    };
    deaths.insert(0, AMQPValue::FieldTable(entry));
    inner.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(deaths)),
    );
    if !inner.contains_key("x-first-death-reason") {
        inner.insert("x-first-death-reason".into(), ls(reason.as_str()));
        inner.insert("x-first-death-queue".into(), ls(queue));
        inner.insert("x-first-death-exchange".into(), ls(&msg.exchange));
    }
    inner.insert("x-last-death-reason".into(), ls(reason.as_str()));
    inner.insert("x-last-death-queue".into(), ls(queue));
    inner.insert("x-last-death-exchange".into(), ls(&msg.exchange));
    headers = FieldTable::from(inner);
    let props = without_expiration(p).with_headers(headers);
    Arc::new(Message {
        exchange: dlx.to_owned(),
        routing_key: new_routing_key.unwrap_or(&msg.routing_key).to_owned(),
        raw_properties: codec::encode_properties(&props),
        properties: Box::new(props),
        body: msg.body.clone(),
    })
}

/// A copy of `p` without the expiration property (the builder has no way to clear one).
pub fn without_expiration(p: &BasicProperties) -> BasicProperties {
    let mut n = BasicProperties::default();
    if let Some(v) = p.content_type() {
        n = n.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        n = n.with_content_encoding(v.clone());
    }
    if let Some(v) = p.headers() {
        n = n.with_headers(v.clone());
    }
    if let Some(v) = p.delivery_mode() {
        n = n.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        n = n.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        n = n.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        n = n.with_reply_to(v.clone());
    }
    if let Some(v) = p.message_id() {
        n = n.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        n = n.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        n = n.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        n = n.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        n = n.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        n = n.with_cluster_id(v.clone());
    }
    n
}

/// The message with an x-delivery-count header (redeliveries from queues with a delivery
/// limit), as quorum queues add it.
pub fn with_delivery_count(msg: &Message, count: u32) -> Arc<Message> {
    let mut headers = msg.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-delivery-count".into(),
        AMQPValue::LongLongInt(i64::from(count)),
    );
    let props = msg.properties.clone().with_headers(headers);
    Arc::new(Message {
        exchange: msg.exchange.clone(),
        routing_key: msg.routing_key.clone(),
        raw_properties: codec::encode_properties(&props),
        properties: Box::new(props),
        body: msg.body.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg() -> Message {
        let props = BasicProperties::default().with_expiration("5000".into());
        Message {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            raw_properties: codec::encode_properties(&props),
            properties: Box::new(props),
            body: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn x_death_counts_and_moves_expiration() {
        let once = dead_lettered(&msg(), Reason::Expired, "q1", "dlx", None, 100);
        assert!(once.properties.expiration().is_none());
        let h = once.properties.headers().clone().unwrap();
        let Some(AMQPValue::FieldArray(d)) = h.inner().get("x-death") else {
            panic!("no x-death")
        };
        let AMQPValue::FieldTable(e) = &d.as_slice()[0] else {
            panic!()
        };
        assert_eq!(e.inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert_eq!(
            str_of(e.inner().get("original-expiration")).as_deref(),
            Some("5000")
        );
        assert!(is_cycle(&once, "q1"));
        let twice = dead_lettered(&once, Reason::Expired, "q1", "dlx", None, 200);
        let h = twice.properties.headers().clone().unwrap();
        let Some(AMQPValue::FieldArray(d)) = h.inner().get("x-death") else {
            panic!()
        };
        assert_eq!(d.as_slice().len(), 1);
        let rejected = dead_lettered(&twice, Reason::Rejected, "q2", "dlx", None, 300);
        assert!(
            !is_cycle(&rejected, "q1"),
            "a rejection in the cycle keeps it alive"
        );
    }
}
