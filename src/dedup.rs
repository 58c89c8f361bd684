//! Message deduplication for idempotent publishing (LavinMQ's arguments): a bounded cache of
//! recently seen keys, per queue or per exchange. A message whose key is in the cache is
//! dropped (and still confirmed). The key is the `x-deduplication-header` header when that
//! argument names one, else the message-id property; messages without a key pass through.

use crate::message::Message;
use crate::vhost::value_as_str;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::collections::{HashMap, VecDeque};

/// Keys remembered when x-cache-size is not given.
const DEFAULT_CACHE_SIZE: usize = 10_000;

/// Dedup settings and the cache itself.
pub struct Dedup {
    size: usize,
    ttl_ms: Option<u64>,
    header: Option<String>,
    /// key -> time it was seen (ms).
    seen: HashMap<String, u64>,
    /// Insertion order, for evicting the oldest key when full.
    order: VecDeque<(String, u64)>,
}

impl Dedup {
    /// Reads x-message-deduplication and friends; None when deduplication is off.
    pub fn from_args(args: &FieldTable) -> Result<Option<Self>, (String, String)> {
        let get = |k: &str| args.inner().get(k);
        match get("x-message-deduplication") {
            None | Some(AMQPValue::Boolean(false)) => return Ok(None),
            Some(AMQPValue::Boolean(true)) => {}
            Some(_) => {
                return Err((
                    "x-message-deduplication".into(),
                    "{unacceptable_type,not_bool}".into(),
                ));
            }
        }
        let int = |k: &str| -> Result<Option<u64>, (String, String)> {
            match get(k) {
                None => Ok(None),
                Some(v) => match crate::queue::args::int_value(v) {
                    Some(n) if n > 0 => Ok(Some(n as u64)),
                    _ => Err((k.to_owned(), "{value_not_positive_integer}".into())),
                },
            }
        };
        Ok(Some(Dedup {
            size: int("x-cache-size")?.map_or(DEFAULT_CACHE_SIZE, |n| n as usize),
            ttl_ms: int("x-cache-ttl")?,
            header: get("x-deduplication-header")
                .and_then(value_as_str)
                .map(str::to_owned),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }))
    }

    fn key(&self, msg: &Message) -> Option<String> {
        match &self.header {
            Some(h) => {
                let v = msg
                    .properties
                    .headers()
                    .as_ref()?
                    .inner()
                    .get(h.as_str())?
                    .clone();
                Some(match &v {
                    AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
                        value_as_str(&v)?.to_owned()
                    }
                    other => format!("{other:?}"),
                })
            }
            None => msg
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_owned()),
        }
    }

    /// True if `msg` duplicates a remembered one; otherwise remembers it.
    pub fn is_duplicate(&mut self, msg: &Message, now_ms: u64) -> bool {
        let Some(key) = self.key(msg) else {
            return false;
        };
        if let Some(&at) = self.seen.get(&key)
            && self
                .ttl_ms
                .is_none_or(|ttl| now_ms < at.saturating_add(ttl))
        {
            return true;
        }
        self.seen.insert(key.clone(), now_ms);
        self.order.push_back((key, now_ms));
        while self.order.len() > self.size {
            if let Some((old, at)) = self.order.pop_front()
                && self.seen.get(&old) == Some(&at)
            {
                self.seen.remove(&old);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::BasicProperties;

    fn msg(id: &str) -> Message {
        Message {
            exchange: String::new(),
            routing_key: String::new(),
            properties: Box::new(BasicProperties::default().with_message_id(id.into())),
            raw_properties: bytes::Bytes::new(),
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn remembers_evicts_and_expires() {
        let mut t = FieldTable::default();
        t.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
        t.insert("x-cache-size".into(), AMQPValue::LongInt(2));
        t.insert("x-cache-ttl".into(), AMQPValue::LongInt(100));
        let mut d = Dedup::from_args(&t).unwrap().unwrap();
        assert!(!d.is_duplicate(&msg("a"), 0));
        assert!(d.is_duplicate(&msg("a"), 10));
        assert!(!d.is_duplicate(&msg("a"), 200), "expired after the ttl");
        assert!(!d.is_duplicate(&msg("b"), 201));
        assert!(!d.is_duplicate(&msg("c"), 202));
        assert!(!d.is_duplicate(&msg("a"), 203), "evicted by size");
    }
}
