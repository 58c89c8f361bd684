//! Queue arguments (x-*) parsed once at declaration. Invalid values are refused with 406, as
//! RabbitMQ does, so a queue never runs with a setting it cannot honour.

use crate::vhost::value_as_str;
use amq_protocol::types::{AMQPValue, FieldTable};

/// What a full queue does with the next message (x-overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// Every queue argument Warren acts on.
#[derive(Clone, Debug)]
pub struct QueueArgs {
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// x-overflow was given, so a policy's `overflow` does not override it.
    pub overflow_declared: bool,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    /// x-message-ttl, ms.
    pub message_ttl: Option<u64>,
    /// x-expires, ms: delete the queue after this long unused.
    pub expires: Option<u64>,
    /// x-delivery-limit: unsuccessful deliveries allowed before dead-lettering.
    pub delivery_limit: Option<u64>,
    /// x-max-priority (1..=255).
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    /// x-consumer-timeout, ms.
    pub consumer_timeout: Option<u64>,
}

/// RabbitMQ's name for a field type, as it appears in its error texts.
fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => "longstr",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::Void => "void",
        _ => "signedint",
    }
}

/// An integer argument of any AMQP integer width.
pub fn int_value(v: &AMQPValue) -> Option<i64> {
    Some(match v {
        AMQPValue::ShortShortInt(v) => i64::from(*v),
        AMQPValue::ShortShortUInt(v) => i64::from(*v),
        AMQPValue::ShortInt(v) => i64::from(*v),
        AMQPValue::ShortUInt(v) => i64::from(*v),
        AMQPValue::LongInt(v) => i64::from(*v),
        AMQPValue::LongUInt(v) => i64::from(*v),
        AMQPValue::LongLongInt(v) => *v,
        _ => return None,
    })
}

impl QueueArgs {
    /// Parses and validates; Err is (argument, RabbitMQ's reason term) for a 406.
    pub fn parse(args: &FieldTable) -> Result<Self, (String, String)> {
        let get = |k: &str| args.inner().get(k);
        let bad = |key: &str, why: String| (key.to_owned(), why);
        let int = |key: &str, min: i64| -> Result<Option<u64>, (String, String)> {
            match get(key) {
                None => Ok(None),
                Some(v) => match int_value(v) {
                    Some(n) if n >= min => Ok(Some(n as u64)),
                    Some(n) if n < 0 => Err(bad(key, format!("{{value_negative,{n}}}"))),
                    Some(n) => Err(bad(key, format!("{{value_zero,{n}}}"))),
                    None => Err(bad(key, format!("{{unacceptable_type,{}}}", type_name(v)))),
                },
            }
        };
        let string = |key: &str| -> Result<Option<String>, (String, String)> {
            match get(key) {
                None => Ok(None),
                Some(v) => value_as_str(v)
                    .map(|s| Some(s.to_owned()))
                    .ok_or_else(|| bad(key, format!("{{unacceptable_type,{}}}", type_name(v)))),
            }
        };
        let overflow_declared = get("x-overflow").is_some();
        let overflow = match string("x-overflow")?.as_deref() {
            None | Some("drop-head") => Overflow::DropHead,
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            Some(_) => {
                return Err(bad(
                    "x-overflow",
                    // RabbitMQ's reason term; the value is in the argument already.
                    "invalid_overflow".into(),
                ));
            }
        };
        let max_priority = match int("x-max-priority", 0)? {
            None => None,
            Some(p) if p <= 255 => Some(p as u8).filter(|p| *p > 0),
            Some(p) => return Err(bad("x-max-priority", format!("{{max_value_exceeded,{p}}}"))),
        };
        let single_active_consumer = match get("x-single-active-consumer") {
            None => false,
            Some(AMQPValue::Boolean(b)) => *b,
            Some(v) => {
                return Err(bad(
                    "x-single-active-consumer",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                ));
            }
        };
        if get("x-dead-letter-routing-key").is_some() && get("x-dead-letter-exchange").is_none() {
            return Err(bad(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined".into(),
            ));
        }
        Ok(QueueArgs {
            max_length: int("x-max-length", 0)?,
            max_length_bytes: int("x-max-length-bytes", 0)?,
            overflow,
            overflow_declared,
            dead_letter_exchange: string("x-dead-letter-exchange")?,
            dead_letter_routing_key: string("x-dead-letter-routing-key")?,
            message_ttl: int("x-message-ttl", 0)?,
            expires: int("x-expires", 1)?,
            delivery_limit: int("x-delivery-limit", 0)?,
            max_priority,
            single_active_consumer,
            consumer_timeout: int("x-consumer-timeout", 1)?,
        })
    }

    /// Whether `len` messages of `bytes` total exceed the length limits.
    pub fn exceeded(&self, len: u64, bytes: u64) -> bool {
        self.max_length.is_some_and(|m| len > m) || self.max_length_bytes.is_some_and(|m| bytes > m)
    }
}

impl Default for QueueArgs {
    fn default() -> Self {
        QueueArgs {
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
            overflow_declared: false,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            message_ttl: None,
            expires: None,
            delivery_limit: None,
            max_priority: None,
            single_active_consumer: false,
            consumer_timeout: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let mut t = FieldTable::default();
        t.insert("x-message-ttl".into(), AMQPValue::LongInt(500));
        t.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
        t.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("dlx".into()),
        );
        let a = QueueArgs::parse(&t).unwrap();
        assert_eq!(a.message_ttl, Some(500));
        assert_eq!(a.max_priority, Some(10));
        assert_eq!(a.dead_letter_exchange.as_deref(), Some("dlx"));
        t.insert("x-message-ttl".into(), AMQPValue::LongInt(-1));
        assert!(QueueArgs::parse(&t).is_err());
        let mut t = FieldTable::default();
        t.insert("x-expires".into(), AMQPValue::LongInt(0));
        assert!(QueueArgs::parse(&t).is_err());
    }
}
