//! Encoders against the decoder: a structured sequence of frames built with `arbitrary`
//! (methods via `encode_method`, content via `encode_properties` + `encode_content`, deliveries
//! via the hand-written `encode_deliver`, heartbeats) is encoded into one buffer, decoded back
//! and fed through per-channel assemblers.
//!
//! Invariants checked:
//! - every method decodes to an equal method (compared by Debug text and by re-encoding to the
//!   same bytes, so NaN in field tables does not count as a difference);
//! - `encode_deliver` produces exactly what `encode_method` does for the same basic.deliver;
//! - content comes back as one header (declared size, raw properties byte-identical, properties
//!   equal) and body frames no larger than `frame_max - 8`, and a preceding basic.publish is
//!   reassembled into a publish with the original body;
//! - the buffer is fully consumed and no frame is refused.
#![no_main]

use amq_protocol::protocol::{
    AMQPClass, BasicProperties, basic, channel, confirm, connection, exchange, queue, tx,
};
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use warren::protocol::assembler::{Assembler, Command};
use warren::protocol::codec::{self, Frame};

/// A field-table value; ShortString is left out because amq-protocol cannot encode it in a table.
#[derive(Arbitrary, Debug)]
enum Value {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal(u8, u32),
    Long(Vec<u8>),
    Array(Vec<Value>),
    Timestamp(u64),
    Table(Vec<(String, Value)>),
    Bytes(Vec<u8>),
    Void,
}

fn short(s: &str) -> ShortString {
    let mut cut = s.len().min(255);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    ShortString::from(&s[..cut])
}

fn value(v: &Value, depth: u8) -> AMQPValue {
    match v {
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::I8(x) => AMQPValue::ShortShortInt(*x),
        Value::U8(x) => AMQPValue::ShortShortUInt(*x),
        Value::I16(x) => AMQPValue::ShortInt(*x),
        Value::U16(x) => AMQPValue::ShortUInt(*x),
        Value::I32(x) => AMQPValue::LongInt(*x),
        Value::U32(x) => AMQPValue::LongUInt(*x),
        Value::I64(x) => AMQPValue::LongLongInt(*x),
        Value::F32(x) => AMQPValue::Float(*x),
        Value::F64(x) => AMQPValue::Double(*x),
        Value::Decimal(scale, value) => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        Value::Long(b) => AMQPValue::LongString(LongString::from(b.clone())),
        Value::Array(_) | Value::Table(_) if depth == 0 => AMQPValue::Void,
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items
                .iter()
                .map(|i| value(i, depth - 1))
                .collect::<Vec<_>>(),
        )),
        Value::Timestamp(t) => AMQPValue::Timestamp(*t),
        Value::Table(entries) => AMQPValue::FieldTable(table(entries, depth - 1)),
        Value::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.clone())),
        Value::Void => AMQPValue::Void,
    }
}

fn table(entries: &[(String, Value)], depth: u8) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(short(k), value(v, depth));
    }
    t
}

/// The methods a client or the broker puts on the wire most, with their argument shapes.
#[derive(Arbitrary, Debug)]
enum Method {
    StartOk {
        props: Vec<(String, Value)>,
        mechanism: String,
        response: Vec<u8>,
        locale: String,
    },
    Start {
        props: Vec<(String, Value)>,
        mechanisms: Vec<u8>,
        locales: Vec<u8>,
    },
    TuneOk {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    },
    Open {
        vhost: String,
    },
    ConnClose {
        code: u16,
        text: String,
        class_id: u16,
        method_id: u16,
    },
    ChannelOpen,
    ChannelClose {
        code: u16,
        text: String,
        class_id: u16,
        method_id: u16,
    },
    Flow {
        active: bool,
    },
    ExchangeDeclare {
        name: String,
        kind: String,
        flags: u8,
        args: Vec<(String, Value)>,
    },
    QueueDeclare {
        name: String,
        flags: u8,
        args: Vec<(String, Value)>,
    },
    QueueBind {
        queue: String,
        exchange: String,
        key: String,
        nowait: bool,
        args: Vec<(String, Value)>,
    },
    Qos {
        prefetch_count: u16,
        global: bool,
    },
    Consume {
        queue: String,
        tag: String,
        flags: u8,
        args: Vec<(String, Value)>,
    },
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
    Get {
        queue: String,
        no_ack: bool,
    },
    TxSelect,
    ConfirmSelect {
        nowait: bool,
    },
}

impl Method {
    fn build(&self) -> AMQPClass {
        use AMQPClass as C;
        let bit = |f: u8, i: u8| f & (1 << i) != 0;
        match self {
            Method::StartOk {
                props,
                mechanism,
                response,
                locale,
            } => C::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: table(props, 3),
                mechanism: short(mechanism),
                response: LongString::from(response.clone()),
                locale: short(locale),
            })),
            Method::Start {
                props,
                mechanisms,
                locales,
            } => C::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: table(props, 3),
                mechanisms: LongString::from(mechanisms.clone()),
                locales: LongString::from(locales.clone()),
            })),
            Method::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            } => C::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: *channel_max,
                frame_max: *frame_max,
                heartbeat: *heartbeat,
            })),
            Method::Open { vhost } => {
                C::Connection(connection::AMQPMethod::Open(connection::Open {
                    virtual_host: short(vhost),
                }))
            }
            Method::ConnClose {
                code,
                text,
                class_id,
                method_id,
            } => C::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: *code,
                reply_text: short(text),
                class_id: *class_id,
                method_id: *method_id,
            })),
            Method::ChannelOpen => C::Channel(channel::AMQPMethod::Open(channel::Open {})),
            Method::ChannelClose {
                code,
                text,
                class_id,
                method_id,
            } => C::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: *code,
                reply_text: short(text),
                class_id: *class_id,
                method_id: *method_id,
            })),
            Method::Flow { active } => {
                C::Channel(channel::AMQPMethod::Flow(channel::Flow { active: *active }))
            }
            Method::ExchangeDeclare {
                name,
                kind,
                flags,
                args,
            } => C::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: short(name),
                kind: short(kind),
                passive: bit(*flags, 0),
                durable: bit(*flags, 1),
                auto_delete: bit(*flags, 2),
                internal: bit(*flags, 3),
                nowait: bit(*flags, 4),
                arguments: table(args, 3),
            })),
            Method::QueueDeclare { name, flags, args } => {
                C::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: short(name),
                    passive: bit(*flags, 0),
                    durable: bit(*flags, 1),
                    exclusive: bit(*flags, 2),
                    auto_delete: bit(*flags, 3),
                    nowait: bit(*flags, 4),
                    arguments: table(args, 3),
                }))
            }
            Method::QueueBind {
                queue,
                exchange,
                key,
                nowait,
                args,
            } => C::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: short(queue),
                exchange: short(exchange),
                routing_key: short(key),
                nowait: *nowait,
                arguments: table(args, 3),
            })),
            Method::Qos {
                prefetch_count,
                global,
            } => C::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: *prefetch_count,
                global: *global,
            })),
            Method::Consume {
                queue,
                tag,
                flags,
                args,
            } => C::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: short(queue),
                consumer_tag: short(tag),
                no_local: bit(*flags, 0),
                no_ack: bit(*flags, 1),
                exclusive: bit(*flags, 2),
                nowait: bit(*flags, 3),
                arguments: table(args, 3),
            })),
            Method::Ack { tag, multiple } => C::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: *tag,
                multiple: *multiple,
            })),
            Method::Nack {
                tag,
                multiple,
                requeue,
            } => C::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: *tag,
                multiple: *multiple,
                requeue: *requeue,
            })),
            Method::Get { queue, no_ack } => C::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: short(queue),
                no_ack: *no_ack,
            })),
            Method::TxSelect => C::Tx(tx::AMQPMethod::Select(tx::Select {})),
            Method::ConfirmSelect { nowait } => {
                C::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                    nowait: *nowait,
                }))
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Props {
    content_type: Option<String>,
    headers: Option<Vec<(String, Value)>>,
    delivery_mode: Option<u8>,
    priority: Option<u8>,
    correlation_id: Option<String>,
    expiration: Option<String>,
    timestamp: Option<u64>,
    app_id: Option<String>,
}

impl Props {
    fn build(&self) -> BasicProperties {
        let mut p = BasicProperties::default();
        if let Some(v) = &self.content_type {
            p = p.with_content_type(short(v));
        }
        if let Some(v) = &self.headers {
            p = p.with_headers(table(v, 3));
        }
        if let Some(v) = self.delivery_mode {
            p = p.with_delivery_mode(v);
        }
        if let Some(v) = self.priority {
            p = p.with_priority(v);
        }
        if let Some(v) = &self.correlation_id {
            p = p.with_correlation_id(short(v));
        }
        if let Some(v) = &self.expiration {
            p = p.with_expiration(short(v));
        }
        if let Some(v) = self.timestamp {
            p = p.with_timestamp(v);
        }
        if let Some(v) = &self.app_id {
            p = p.with_app_id(short(v));
        }
        p
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Method {
        channel: u16,
        method: Method,
    },
    /// basic.publish + header + body frames.
    Publish {
        channel: u16,
        exchange: String,
        routing_key: String,
        props: Props,
        body: Vec<u8>,
    },
    Deliver {
        channel: u16,
        tag: String,
        delivery_tag: u64,
        redelivered: bool,
        exchange: String,
        routing_key: String,
    },
    Heartbeat,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// `frame_max = 4096 + frame_max_extra`.
    frame_max_extra: u16,
    ops: Vec<Op>,
}

/// What decoding must give back, in order.
enum Expect {
    Method(u16, AMQPClass),
    Content {
        channel: u16,
        raw: bytes::Bytes,
        props: Box<BasicProperties>,
        body: Vec<u8>,
    },
    Heartbeat,
}

fn encoded(channel: u16, m: &AMQPClass) -> Vec<u8> {
    let mut v = Vec::new();
    codec::encode_method(&mut v, channel, m.clone());
    v
}

fn same_method(a: &AMQPClass, b: &AMQPClass) -> bool {
    format!("{a:?}") == format!("{b:?}") && encoded(0, a) == encoded(0, b)
}

fuzz_target!(|input: Input| {
    let frame_max = 4096 + u32::from(input.frame_max_extra);
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for op in &input.ops {
        match op {
            Op::Method { channel, method } => {
                let m = method.build();
                codec::encode_method(&mut out, *channel, m.clone());
                expected.push(Expect::Method(*channel, m));
            }
            Op::Publish {
                channel,
                exchange,
                routing_key,
                props,
                body,
            } => {
                let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: short(exchange),
                    routing_key: short(routing_key),
                    mandatory: false,
                    immediate: false,
                }));
                codec::encode_method(&mut out, *channel, publish.clone());
                expected.push(Expect::Method(*channel, publish));
                let props = props.build();
                let raw = codec::encode_properties(&props);
                codec::encode_content(&mut out, *channel, &raw, body, frame_max);
                expected.push(Expect::Content {
                    channel: *channel,
                    raw,
                    props: Box::new(props),
                    body: body.clone(),
                });
            }
            Op::Deliver {
                channel,
                tag,
                delivery_tag,
                redelivered,
                exchange,
                routing_key,
            } => {
                let (tag, exchange, routing_key) =
                    (short(tag), short(exchange), short(routing_key));
                let m = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: tag.clone(),
                    delivery_tag: *delivery_tag,
                    redelivered: *redelivered,
                    exchange: exchange.clone(),
                    routing_key: routing_key.clone(),
                }));
                let mut ours = Vec::new();
                codec::encode_deliver(
                    &mut ours,
                    *channel,
                    tag.as_str(),
                    *delivery_tag,
                    *redelivered,
                    exchange.as_str(),
                    routing_key.as_str(),
                );
                assert_eq!(
                    ours,
                    encoded(*channel, &m),
                    "encode_deliver differs from encode_method"
                );
                out.extend_from_slice(&ours);
                expected.push(Expect::Method(*channel, m));
            }
            Op::Heartbeat => {
                codec::encode_heartbeat(&mut out);
                expected.push(Expect::Heartbeat);
            }
        }
    }

    let mut buf = BytesMut::from(&out[..]);
    let mut next = || match codec::decode(&mut buf, frame_max) {
        Ok(Some(f)) => f,
        other => panic!("decode of encoder output failed: {other:?}"),
    };
    let mut asms: HashMap<u16, Assembler> = HashMap::new();
    for e in expected {
        match e {
            Expect::Heartbeat => assert!(matches!(next(), Frame::Heartbeat(0))),
            Expect::Method(channel, m) => match next() {
                Frame::Method(c, got) => {
                    assert_eq!(c, channel);
                    assert!(
                        same_method(&m, &got),
                        "method changed in roundtrip:\n{m:?}\n{got:?}"
                    );
                    let r = asms.entry(c).or_default().method(got);
                    let is_publish = matches!(m, AMQPClass::Basic(basic::AMQPMethod::Publish(_)));
                    match r {
                        Ok(None) => assert!(is_publish),
                        Ok(Some(Command::Method(_))) => assert!(!is_publish),
                        other => panic!("assembler refused a method: {other:?}"),
                    }
                }
                other => panic!("expected method, got {other:?}"),
            },
            Expect::Content {
                channel,
                raw,
                props,
                body,
            } => {
                let asm = asms.entry(channel).or_default();
                let mut done = match next() {
                    Frame::Header(c, h) => {
                        assert_eq!(c, channel);
                        assert_eq!(h.class_id, 60);
                        assert_eq!(h.body_size, body.len() as u64);
                        assert_eq!(h.raw_properties, raw);
                        assert_eq!(format!("{:?}", h.properties), format!("{props:?}"));
                        asm.header(h).expect("assembler refused a header")
                    }
                    other => panic!("expected header, got {other:?}"),
                };
                let mut got = Vec::new();
                while got.len() < body.len() {
                    match next() {
                        Frame::Body(c, b) => {
                            assert_eq!(c, channel);
                            assert!(!b.is_empty() && b.len() <= frame_max as usize - 8);
                            got.extend_from_slice(&b);
                            assert!(done.is_none());
                            done = asm.body(b).expect("assembler refused a body");
                        }
                        other => panic!("expected body, got {other:?}"),
                    }
                }
                assert_eq!(got, body);
                match done {
                    Some(Command::Publish(c)) => assert_eq!(&c.body[..], &body[..]),
                    other => panic!("publish not completed: {other:?}"),
                }
            }
        }
    }
    assert!(buf.is_empty(), "{} trailing bytes", buf.len());
});
