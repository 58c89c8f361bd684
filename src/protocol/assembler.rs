//! Per-channel command assembly: method -> content header -> body frames.
//!
//! Pure state machine: frames in, complete commands out. Invariant: a content-carrying method
//! (basic.publish) is followed by exactly one header and then body frames totalling exactly the
//! header's body size; anything else on that channel meanwhile is 505 UNEXPECTED_FRAME, and a body
//! overrunning the declared size is 501 FRAME_ERROR.

use crate::error::AmqpError;
use crate::protocol::codec::ContentHeader;
use amq_protocol::protocol::{AMQPClass, BasicProperties, basic};
use bytes::{Bytes, BytesMut};

/// Largest message body accepted (RabbitMQ's default max_message_size, 128 MiB).
pub const MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;
/// Most body memory reserved up front from a client's declared size; the rest grows as bytes
/// actually arrive, so a header claiming a huge body costs nothing until it is sent.
const MAX_PREALLOC: usize = 1024 * 1024;

/// A complete command.
#[derive(Debug)]
pub enum Command {
    Method(AMQPClass),
    Publish(Content),
}

/// A basic.publish with its content reassembled.
#[derive(Debug)]
pub struct Content {
    pub publish: basic::Publish,
    pub properties: Box<BasicProperties>,
    pub raw_properties: Bytes,
    pub body: Bytes,
}

/// Where a channel is in the method/header/body sequence.
#[derive(Debug, Default)]
pub enum Assembler {
    #[default]
    Idle,
    AwaitHeader(basic::Publish),
    AwaitBody {
        content: Content,
        expected: u64,
        /// Only used when the body arrives in more than one frame; a single-frame body is kept as
        /// the received `Bytes` without copying.
        parts: Option<BytesMut>,
    },
}

impl Assembler {
    /// Feeds a method frame.
    pub fn method(&mut self, method: AMQPClass) -> Result<Option<Command>, AmqpError> {
        if !matches!(self, Assembler::Idle) {
            *self = Assembler::Idle;
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header or body, got method {}/{}",
                method.get_amqp_class_id(),
                method.get_amqp_method_id()
            )));
        }
        match method {
            AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => {
                *self = Assembler::AwaitHeader(p);
                Ok(None)
            }
            m => Ok(Some(Command::Method(m))),
        }
    }

    /// Feeds a content header frame.
    pub fn header(&mut self, header: ContentHeader) -> Result<Option<Command>, AmqpError> {
        let publish = match std::mem::take(self) {
            Assembler::AwaitHeader(p) => p,
            _ => return Err(AmqpError::unexpected_frame("content header not expected")),
        };
        if header.class_id != 60 {
            return Err(AmqpError::unexpected_frame(format!(
                "content header for class {}, expected 60",
                header.class_id
            )));
        }
        if header.body_size > MAX_MESSAGE_SIZE {
            return Err(AmqpError::precondition(format!(
                "message size {} is larger than configured max size {MAX_MESSAGE_SIZE}",
                header.body_size
            ))
            .on(60, 40));
        }
        let content = Content {
            publish,
            properties: header.properties,
            raw_properties: header.raw_properties,
            body: Bytes::new(),
        };
        if header.body_size == 0 {
            return Ok(Some(Command::Publish(content)));
        }
        *self = Assembler::AwaitBody {
            content,
            expected: header.body_size,
            parts: None,
        };
        Ok(None)
    }

    /// Feeds a body frame.
    pub fn body(&mut self, chunk: Bytes) -> Result<Option<Command>, AmqpError> {
        let Assembler::AwaitBody {
            content,
            expected,
            parts,
        } = self
        else {
            *self = Assembler::Idle;
            return Err(AmqpError::unexpected_frame("content body not expected"));
        };
        let have = parts.as_ref().map_or(content.body.len(), |p| p.len()) as u64;
        if have + chunk.len() as u64 > *expected {
            *self = Assembler::Idle;
            return Err(AmqpError::frame_error(
                "content body larger than the size declared in its header",
            ));
        }
        if have == 0 && parts.is_none() {
            content.body = chunk;
        } else {
            let buf = parts.get_or_insert_with(|| {
                let mut b = BytesMut::with_capacity((*expected as usize).min(MAX_PREALLOC));
                b.extend_from_slice(&content.body);
                b
            });
            buf.extend_from_slice(&chunk);
        }
        let have = parts.as_ref().map_or(content.body.len(), |p| p.len()) as u64;
        if have < *expected {
            return Ok(None);
        }
        match std::mem::take(self) {
            Assembler::AwaitBody {
                mut content, parts, ..
            } => {
                if let Some(p) = parts {
                    content.body = p.freeze();
                }
                Ok(Some(Command::Publish(content)))
            }
            _ => Ok(None),
        }
    }

    /// True while a publish is waiting for its content.
    pub fn in_content(&self) -> bool {
        !matches!(self, Assembler::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish() -> AMQPClass {
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            mandatory: false,
            immediate: false,
        }))
    }

    fn header(size: u64) -> ContentHeader {
        ContentHeader {
            class_id: 60,
            body_size: size,
            properties: Box::default(),
            raw_properties: Bytes::from_static(&[0, 0]),
        }
    }

    #[test]
    fn reassembles_multi_frame_body() {
        let mut a = Assembler::default();
        assert!(a.method(publish()).unwrap().is_none());
        assert!(a.header(header(5)).unwrap().is_none());
        assert!(a.body(Bytes::from_static(b"he")).unwrap().is_none());
        match a.body(Bytes::from_static(b"llo")).unwrap() {
            Some(Command::Publish(c)) => assert_eq!(&c.body[..], b"hello"),
            other => panic!("{other:?}"),
        }
        assert!(!a.in_content());
    }

    #[test]
    fn empty_body_completes_at_header() {
        let mut a = Assembler::default();
        a.method(publish()).unwrap();
        assert!(matches!(
            a.header(header(0)).unwrap(),
            Some(Command::Publish(_))
        ));
    }

    #[test]
    fn oversized_declared_body_is_refused_without_allocating() {
        let mut a = Assembler::default();
        a.method(publish()).unwrap();
        assert_eq!(a.header(header(1 << 40)).unwrap_err().code, 406);
        // Within the limit, a large declared size reserves only a bounded amount up front.
        a.method(publish()).unwrap();
        a.header(header(MAX_MESSAGE_SIZE)).unwrap();
        assert!(a.body(Bytes::from_static(b"a")).unwrap().is_none());
        assert!(a.body(Bytes::from_static(b"b")).unwrap().is_none());
    }

    #[test]
    fn wrong_order_is_505_and_overrun_is_501() {
        let mut a = Assembler::default();
        assert_eq!(a.header(header(1)).unwrap_err().code, 505);
        assert_eq!(a.body(Bytes::from_static(b"x")).unwrap_err().code, 505);
        a.method(publish()).unwrap();
        assert_eq!(a.method(publish()).unwrap_err().code, 505);
        a.method(publish()).unwrap();
        a.header(header(2)).unwrap();
        assert_eq!(a.body(Bytes::from_static(b"xyz")).unwrap_err().code, 501);
    }
}
