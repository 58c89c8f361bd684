//! Frame codec.
//!
//! Decoding checks the 7-byte frame header against the negotiated `frame_max` *before* waiting for
//! the payload, so an oversized frame is refused (501) without buffering it. Method and content
//! header payloads are parsed by amq-protocol; body payloads are split off the read buffer as
//! `Bytes` without copying. Encoding writes straight into the connection's output buffer; content
//! headers reuse the publisher's raw property bytes so a delivery never re-serialises properties.

use crate::error::AmqpError;
use amq_protocol::frame::{AMQPFrame, WriteContext, gen_frame};
use amq_protocol::protocol::AMQPClass;
use bytes::{Buf, Bytes, BytesMut};

/// Frame type octets.
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Bytes of framing around a payload: type(1) channel(2) size(4) ... end(1).
pub const FRAME_OVERHEAD: usize = 8;
/// The smallest frame_max the spec lets a peer negotiate.
pub const FRAME_MIN_SIZE: u32 = 4096;
/// The protocol header every 0-9-1 client sends first, and the one we answer a mismatch with.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// A decoded frame.
#[derive(Debug)]
pub enum Frame {
    Method(u16, AMQPClass),
    /// Content header: channel, body size, raw property bytes (flags + fields), parsed properties.
    Header(u16, ContentHeader),
    Body(u16, Bytes),
    Heartbeat(u16),
}

/// A content header as received: the raw property bytes are kept so they can be forwarded as-is.
#[derive(Debug)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    pub properties: Box<amq_protocol::protocol::BasicProperties>,
    pub raw_properties: Bytes,
}

/// Decodes one frame from the front of `buf`, or `Ok(None)` when more bytes are needed.
/// `frame_max` is the negotiated maximum frame size including the 8 framing bytes.
pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, AmqpError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let frame_type = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if !matches!(
        frame_type,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(AmqpError::frame_error(format!(
            "unknown frame type {frame_type}"
        )));
    }
    if size + FRAME_OVERHEAD > frame_max as usize {
        return Err(AmqpError::frame_error(format!(
            "frame size {} exceeds frame_max {frame_max}",
            size + FRAME_OVERHEAD
        )));
    }
    if buf.len() < size + FRAME_OVERHEAD {
        buf.reserve(size + FRAME_OVERHEAD - buf.len());
        return Ok(None);
    }
    if buf[7 + size] != FRAME_END {
        return Err(AmqpError::frame_error(format!(
            "bad frame end octet {:#x}",
            buf[7 + size]
        )));
    }
    // Only a body keeps a handle on the read buffer: methods and headers are parsed from the
    // slice (splitting shares the buffer, which costs an atomic count per frame).
    let payload = &buf[7..7 + size];
    let frame = match frame_type {
        FRAME_METHOD => Frame::Method(channel, parse_method(payload)?),
        FRAME_HEADER => Frame::Header(channel, parse_header(payload)?),
        FRAME_BODY => {
            buf.advance(7);
            let body = buf.split_to(size).freeze();
            buf.advance(1);
            return Ok(Some(Frame::Body(channel, body)));
        }
        _ => {
            if size != 0 {
                return Err(AmqpError::frame_error("heartbeat frame with a payload"));
            }
            Frame::Heartbeat(channel)
        }
    };
    buf.advance(size + FRAME_OVERHEAD);
    Ok(Some(frame))
}

fn parse_method(payload: &[u8]) -> Result<AMQPClass, AmqpError> {
    if payload.len() < 4 {
        return Err(AmqpError::frame_error("method frame too short"));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    if !known_method(class_id, method_id) {
        return Err(
            AmqpError::not_implemented(format!("unknown method {class_id}/{method_id}"))
                .on(class_id, method_id),
        );
    }
    if class_id == 60
        && method_id == 40
        && let Some(p) = parse_publish(&payload[4..])
    {
        return Ok(p);
    }
    match amq_protocol::protocol::parse_class(payload) {
        Ok(([], class)) => Ok(class),
        // RabbitMQ reports undecodable method arguments as 501, not 502.
        Ok(_) => Err(AmqpError::frame_error(format!(
            "trailing bytes in method {class_id}/{method_id}"
        ))
        .on(class_id, method_id)),
        Err(_) => Err(AmqpError::frame_error(format!(
            "cannot decode method {class_id}/{method_id}"
        ))
        .on(class_id, method_id)),
    }
}

fn parse_header(payload: &[u8]) -> Result<ContentHeader, AmqpError> {
    if payload.len() < 14 {
        return Err(AmqpError::frame_error("content header too short"));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let body_size = u64::from_be_bytes(payload[4..12].try_into().unwrap_or([0; 8]));
    // Most publishers send no properties (flags 0) or a delivery mode; a copy of those few
    // bytes is cheaper than sharing the read buffer.
    let raw_properties = match &payload[12..] {
        [0, 0] => Bytes::from_static(&[0, 0]),
        raw => Bytes::copy_from_slice(raw),
    };
    let properties = match parse_properties_fast(&raw_properties) {
        Some(p) => p,
        None => match amq_protocol::protocol::basic::parse_properties(&raw_properties[..]) {
            Ok(([], p)) => Box::new(p),
            _ => {
                return Err(AmqpError::syntax_error(
                    "malformed content header properties",
                ));
            }
        },
    };
    Ok(ContentHeader {
        class_id,
        body_size,
        properties,
        raw_properties,
    })
}

/// basic.publish arguments, decoded by hand: it is the hottest incoming method, and the
/// generic parser costs several times more. `None` means "let amq-protocol decide" (it then
/// reports the exact error).
fn parse_publish(p: &[u8]) -> Option<AMQPClass> {
    use amq_protocol::protocol::basic;
    let mut at = 2; // reserved ticket
    let short = |at: &mut usize| -> Option<String> {
        let len = *p.get(*at)? as usize;
        let s = std::str::from_utf8(p.get(*at + 1..*at + 1 + len)?).ok()?;
        *at += 1 + len;
        Some(s.to_owned())
    };
    let exchange = short(&mut at)?;
    let routing_key = short(&mut at)?;
    let bits = *p.get(at)?;
    if at + 1 != p.len() {
        return None;
    }
    Some(AMQPClass::Basic(basic::AMQPMethod::Publish(
        basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: bits & 1 != 0,
            immediate: bits & 2 != 0,
        },
    )))
}

/// Basic properties decoded by hand (the headers table still goes through amq-protocol).
/// `None` for anything unusual (continuation flags, malformed input): the caller falls back to
/// the generic parser, which then reports the exact error.
fn parse_properties_fast(p: &[u8]) -> Option<Box<amq_protocol::protocol::BasicProperties>> {
    use amq_protocol::protocol::BasicProperties;
    let flags = u16::from_be_bytes([*p.first()?, *p.get(1)?]);
    if flags & 1 != 0 {
        return None;
    }
    let mut at = 2;
    let short = |at: &mut usize| -> Option<amq_protocol::types::ShortString> {
        let len = *p.get(*at)? as usize;
        let s = std::str::from_utf8(p.get(*at + 1..*at + 1 + len)?).ok()?;
        *at += 1 + len;
        Some(s.into())
    };
    let octet = |at: &mut usize| -> Option<u8> {
        let v = *p.get(*at)?;
        *at += 1;
        Some(v)
    };
    // Built in place: the common case (few or no properties) then moves nothing big.
    let mut props = Box::<BasicProperties>::default();
    if flags & (1 << 15) != 0 {
        *props = std::mem::take(&mut *props).with_content_type(short(&mut at)?);
    }
    if flags & (1 << 14) != 0 {
        *props = std::mem::take(&mut *props).with_content_encoding(short(&mut at)?);
    }
    if flags & (1 << 13) != 0 {
        let (rest, table) = amq_protocol::types::parsing::parse_field_table(&p[at..]).ok()?;
        at = p.len() - rest.len();
        *props = std::mem::take(&mut *props).with_headers(table);
    }
    if flags & (1 << 12) != 0 {
        *props = std::mem::take(&mut *props).with_delivery_mode(octet(&mut at)?);
    }
    if flags & (1 << 11) != 0 {
        *props = std::mem::take(&mut *props).with_priority(octet(&mut at)?);
    }
    if flags & (1 << 10) != 0 {
        *props = std::mem::take(&mut *props).with_correlation_id(short(&mut at)?);
    }
    if flags & (1 << 9) != 0 {
        *props = std::mem::take(&mut *props).with_reply_to(short(&mut at)?);
    }
    if flags & (1 << 8) != 0 {
        *props = std::mem::take(&mut *props).with_expiration(short(&mut at)?);
    }
    if flags & (1 << 7) != 0 {
        *props = std::mem::take(&mut *props).with_message_id(short(&mut at)?);
    }
    if flags & (1 << 6) != 0 {
        let ts = u64::from_be_bytes(p.get(at..at + 8)?.try_into().ok()?);
        at += 8;
        *props = std::mem::take(&mut *props).with_timestamp(ts);
    }
    if flags & (1 << 5) != 0 {
        *props = std::mem::take(&mut *props).with_type(short(&mut at)?);
    }
    if flags & (1 << 4) != 0 {
        *props = std::mem::take(&mut *props).with_user_id(short(&mut at)?);
    }
    if flags & (1 << 3) != 0 {
        *props = std::mem::take(&mut *props).with_app_id(short(&mut at)?);
    }
    if flags & (1 << 2) != 0 {
        *props = std::mem::take(&mut *props).with_cluster_id(short(&mut at)?);
    }
    (at == p.len()).then_some(props)
}

/// Every (class, method) pair AMQP 0-9-1 defines, so an unknown one gets 540 rather than 502.
fn known_method(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method_id)
}

/// Appends an encoded method frame to `out`.
pub fn encode_method(out: &mut Vec<u8>, channel: u16, method: AMQPClass) {
    let frame = AMQPFrame::Method(channel, method);
    let ctx = WriteContext::from(std::mem::take(out));
    match gen_frame(&frame)(ctx) {
        Ok(ctx) => *out = ctx.write,
        // gen_frame into a Vec only fails on values the type system already bounds (shortstr
        // lengths are checked when the value is built), so losing the frame is the least bad.
        Err(e) => tracing::error!(error = %e, "failed to encode method frame"),
    }
}

/// Appends a content header frame (class basic) followed by body frames split at `frame_max`.
pub fn encode_content(
    out: &mut Vec<u8>,
    channel: u16,
    raw_properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let header_size = 12 + raw_properties.len();
    out.reserve(header_size + body.len() + 2 * FRAME_OVERHEAD);
    out.push(FRAME_HEADER);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(header_size as u32).to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(raw_properties);
    out.push(FRAME_END);
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for part in body.chunks(chunk) {
        out.push(FRAME_BODY);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
        out.push(FRAME_END);
    }
}

/// Appends a basic.deliver method frame, hand-encoded: it is the hottest frame the broker writes
/// and this avoids building owned strings for every delivery.
pub fn encode_deliver(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    fn short(s: &str) -> &[u8] {
        &s.as_bytes()[..s.len().min(255)]
    }
    let (ct, ex, rk) = (short(consumer_tag), short(exchange), short(routing_key));
    let size = 4 + 1 + ct.len() + 8 + 1 + 1 + ex.len() + 1 + rk.len();
    out.push(FRAME_METHOD);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(&[0, 60, 0, 60]);
    out.push(ct.len() as u8);
    out.extend_from_slice(ct);
    out.extend_from_slice(&delivery_tag.to_be_bytes());
    out.push(u8::from(redelivered));
    out.push(ex.len() as u8);
    out.extend_from_slice(ex);
    out.push(rk.len() as u8);
    out.extend_from_slice(rk);
    out.push(FRAME_END);
}

/// Appends a heartbeat frame.
pub fn encode_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Serialises basic properties to raw bytes (flags + fields), for messages whose properties the
/// broker itself changes (BCC removal, direct reply-to).
pub fn encode_properties(props: &amq_protocol::protocol::BasicProperties) -> Bytes {
    let ctx = WriteContext::from(Vec::new());
    match amq_protocol::protocol::basic::gen_properties(props)(ctx) {
        Ok(ctx) => Bytes::from(ctx.write),
        Err(_) => Bytes::from_static(&[0, 0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{BasicProperties, basic, queue};

    fn roundtrip(method: AMQPClass) -> AMQPClass {
        let mut out = Vec::new();
        encode_method(&mut out, 3, method);
        let mut buf = BytesMut::from(&out[..]);
        match decode(&mut buf, 131072) {
            Ok(Some(Frame::Method(3, m))) => {
                assert!(buf.is_empty());
                m
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn method_roundtrip() {
        let m = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        }));
        assert_eq!(roundtrip(m.clone()), m);
    }

    #[test]
    fn partial_input_needs_more() {
        let mut out = Vec::new();
        encode_method(
            &mut out,
            1,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: 1,
                multiple: false,
            })),
        );
        for cut in 0..out.len() {
            let mut buf = BytesMut::from(&out[..cut]);
            assert!(matches!(decode(&mut buf, 131072), Ok(None)), "cut {cut}");
        }
    }

    #[test]
    fn oversized_frame_rejected_from_header_alone() {
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 1, 0, 0][..]);
        let err = decode(&mut buf, 4096).unwrap_err();
        assert_eq!(err.code, 501);
    }

    #[test]
    fn bad_frame_end_and_type() {
        let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0xCD][..]);
        assert_eq!(decode(&mut buf, 4096).unwrap_err().code, 501);
        let mut buf = BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 0, 0xCE][..]);
        assert_eq!(decode(&mut buf, 4096).unwrap_err().code, 501);
    }

    #[test]
    fn unknown_method_is_540_and_truncated_is_501() {
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 4, 0, 50, 0, 99, 0xCE][..]);
        assert_eq!(decode(&mut buf, 4096).unwrap_err().code, 540);
        // queue.declare with a shortstr length running past the payload
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 7, 0, 50, 0, 10, 0, 0, 9, 0xCE][..]);
        assert_eq!(decode(&mut buf, 4096).unwrap_err().code, 501);
    }

    #[test]
    fn content_split_at_frame_max() {
        let props = encode_properties(&BasicProperties::default().with_delivery_mode(2));
        let body = vec![7u8; 10_000];
        let mut out = Vec::new();
        encode_content(&mut out, 5, &props, &body, 4096);
        let mut buf = BytesMut::from(&out[..]);
        let mut got = Vec::new();
        match decode(&mut buf, 4096).unwrap() {
            Some(Frame::Header(5, h)) => {
                assert_eq!(h.body_size, 10_000);
                assert_eq!(h.properties.delivery_mode(), &Some(2));
            }
            other => panic!("{other:?}"),
        }
        while let Some(f) = decode(&mut buf, 4096).unwrap() {
            match f {
                Frame::Body(5, b) => {
                    assert!(b.len() <= 4096 - 8);
                    got.extend_from_slice(&b)
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, body);
    }

    #[test]
    fn hand_encoded_deliver_matches_amq_protocol() {
        let mut ours = Vec::new();
        encode_deliver(&mut ours, 7, "ctag", 42, true, "ex", "rk");
        let mut theirs = Vec::new();
        encode_method(
            &mut theirs,
            7,
            AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: "ctag".into(),
                delivery_tag: 42,
                redelivered: true,
                exchange: "ex".into(),
                routing_key: "rk".into(),
            })),
        );
        assert_eq!(ours, theirs);
    }

    fn arb_props() -> impl proptest::strategy::Strategy<Value = BasicProperties> {
        use proptest::prelude::*;
        let s = || proptest::option::of("[a-z0-9.]{0,20}");
        (
            (
                s(),
                s(),
                proptest::option::of(any::<u8>()),
                proptest::option::of(any::<u8>()),
            ),
            (s(), s(), s(), s()),
            (proptest::option::of(any::<u64>()), s(), s(), s(), s()),
            proptest::option::of(proptest::collection::btree_map(
                "[a-z]{1,8}",
                any::<i32>(),
                0..4,
            )),
        )
            .prop_map(
                |((ct, ce, dm, pr), (cid, rt, exp, mid), (ts, ty, uid, app, cl), h)| {
                    let mut p = BasicProperties::default();
                    if let Some(v) = ct {
                        p = p.with_content_type(v.into());
                    }
                    if let Some(v) = ce {
                        p = p.with_content_encoding(v.into());
                    }
                    if let Some(v) = dm {
                        p = p.with_delivery_mode(v);
                    }
                    if let Some(v) = pr {
                        p = p.with_priority(v);
                    }
                    if let Some(v) = cid {
                        p = p.with_correlation_id(v.into());
                    }
                    if let Some(v) = rt {
                        p = p.with_reply_to(v.into());
                    }
                    if let Some(v) = exp {
                        p = p.with_expiration(v.into());
                    }
                    if let Some(v) = mid {
                        p = p.with_message_id(v.into());
                    }
                    if let Some(v) = ts {
                        p = p.with_timestamp(v);
                    }
                    if let Some(v) = ty {
                        p = p.with_type(v.into());
                    }
                    if let Some(v) = uid {
                        p = p.with_user_id(v.into());
                    }
                    if let Some(v) = app {
                        p = p.with_app_id(v.into());
                    }
                    if let Some(v) = cl {
                        p = p.with_cluster_id(v.into());
                    }
                    if let Some(h) = h {
                        let mut t = amq_protocol::types::FieldTable::default();
                        for (k, v) in h {
                            t.insert(k.into(), amq_protocol::types::AMQPValue::LongInt(v));
                        }
                        p = p.with_headers(t);
                    }
                    p
                },
            )
    }

    proptest::proptest! {
        #[test]
        fn fast_property_parser_agrees_with_amq_protocol(p in arb_props()) {
            let raw = encode_properties(&p);
            let fast = parse_properties_fast(&raw);
            proptest::prop_assert_eq!(fast, Some(Box::new(p)));
        }

        #[test]
        fn fast_property_parser_never_panics(data: Vec<u8>) {
            let _ = parse_properties_fast(&data);
        }

        #[test]
        fn fast_publish_parser_agrees(ex in "[a-z.]{0,30}", rk in "[a-z.#*]{0,60}", m: bool, i: bool) {
            let method = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: ex.into(),
                routing_key: rk.into(),
                mandatory: m,
                immediate: i,
            }));
            let mut out = Vec::new();
            encode_method(&mut out, 1, method.clone());
            let payload = &out[7..out.len() - 1];
            proptest::prop_assert_eq!(parse_publish(&payload[4..]), Some(method));
        }

        #[test]
        fn decode_never_panics(data: Vec<u8>, frame_max in 4096u32..200_000) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = decode(&mut buf, frame_max) {}
        }
    }
}
