//! Frame codec benchmarks: decoding the frame streams a broker reads (publishes as method +
//! content header + body, acks, large body frames) and encoding the frames it writes most
//! (basic.deliver + content).
//!
//! Each decode benchmark decodes a pre-encoded stream of `BATCH` messages; the copy of the stream
//! into a fresh `BytesMut` is done outside the timed section (`iter_batched`). Throughput is
//! reported per message (or per byte for body frames).

use amq_protocol::protocol::{AMQPClass, BasicProperties, basic};
use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use warren::protocol::codec::{self, Frame};

/// Messages per decoded or encoded stream.
const BATCH: usize = 1000;
/// The frame_max most clients negotiate.
const FRAME_MAX: u32 = 131_072;

fn publish_stream(body_len: usize, props: &BasicProperties) -> Vec<u8> {
    let raw_props = codec::encode_properties(props);
    let body = vec![0xABu8; body_len];
    let mut out = Vec::new();
    for _ in 0..BATCH {
        codec::encode_method(
            &mut out,
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "perf-q-1".into(),
                mandatory: false,
                immediate: false,
            })),
        );
        codec::encode_content(&mut out, 1, &raw_props, &body, FRAME_MAX);
    }
    out
}

/// Decodes every frame of `stream`, returning how many there were.
fn decode_all(mut buf: BytesMut) -> usize {
    let mut n = 0;
    while let Ok(Some(frame)) = codec::decode(&mut buf, FRAME_MAX) {
        black_box(&frame);
        n += 1;
    }
    assert!(buf.is_empty(), "stream not fully decoded");
    n
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    let cases: Vec<(&str, Vec<u8>, Throughput)> = vec![
        (
            "publish_16B_no_props",
            publish_stream(16, &BasicProperties::default()),
            Throughput::Elements(BATCH as u64),
        ),
        (
            "publish_16B_persistent",
            publish_stream(16, &BasicProperties::default().with_delivery_mode(2)),
            Throughput::Elements(BATCH as u64),
        ),
        (
            "publish_1KiB_5_props",
            publish_stream(
                1024,
                &BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id("3f2a9c1e-0b7d-4e55-9a61-2c8d1e0f4b7a".into())
                    .with_timestamp(1_700_000_000)
                    .with_priority(5),
            ),
            Throughput::Elements(BATCH as u64),
        ),
        (
            "publish_method_only",
            {
                let mut out = Vec::new();
                for _ in 0..BATCH {
                    codec::encode_method(
                        &mut out,
                        1,
                        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                            exchange: "".into(),
                            routing_key: "perf-q-1".into(),
                            mandatory: false,
                            immediate: false,
                        })),
                    );
                }
                out
            },
            Throughput::Elements(BATCH as u64),
        ),
        (
            "content_header_only_persistent",
            {
                let raw =
                    codec::encode_properties(&BasicProperties::default().with_delivery_mode(2));
                let mut out = Vec::new();
                for _ in 0..BATCH {
                    // encode_content with an empty body writes the header frame only.
                    codec::encode_content(&mut out, 1, &raw, &[], FRAME_MAX);
                }
                out
            },
            Throughput::Elements(BATCH as u64),
        ),
        (
            "basic_ack",
            {
                let mut out = Vec::new();
                for tag in 1..=BATCH as u64 {
                    codec::encode_method(
                        &mut out,
                        1,
                        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                            delivery_tag: tag,
                            multiple: false,
                        })),
                    );
                }
                out
            },
            Throughput::Elements(BATCH as u64),
        ),
        (
            "body_frames_128KiB",
            {
                // A 128 MiB-ish stream would be too big; 100 maximal body frames (12.5 MiB).
                let mut out = Vec::new();
                let payload = vec![0x5Au8; FRAME_MAX as usize - 8];
                for _ in 0..100 {
                    out.push(codec::FRAME_BODY);
                    out.extend_from_slice(&1u16.to_be_bytes());
                    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                    out.extend_from_slice(&payload);
                    out.push(codec::FRAME_END);
                }
                out
            },
            Throughput::Bytes(100 * (FRAME_MAX as u64 - 8)),
        ),
    ];
    for (name, stream, tp) in cases {
        // Sanity: the stream decodes to what it should.
        let frames = decode_all(BytesMut::from(&stream[..]));
        assert!(frames > 0);
        if name.starts_with("publish") && !name.ends_with("_only") {
            assert_eq!(frames, 3 * BATCH);
            let mut b = BytesMut::from(&stream[..]);
            assert!(matches!(
                codec::decode(&mut b, FRAME_MAX),
                Ok(Some(Frame::Method(1, _)))
            ));
        }
        g.throughput(tp);
        g.bench_function(name, |b| {
            b.iter_batched(
                || BytesMut::from(&stream[..]),
                decode_all,
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(BATCH as u64));

    let persistent = codec::encode_properties(&BasicProperties::default().with_delivery_mode(2));
    let body16 = vec![0xABu8; 16];
    let body1k = vec![0xABu8; 1024];
    let mut out: Vec<u8> = Vec::with_capacity(2 * 1024 * 1024);

    g.bench_function("deliver_only", |b| {
        b.iter(|| {
            out.clear();
            for tag in 1..=BATCH as u64 {
                codec::encode_deliver(&mut out, 1, "amq.ctag-warren-1", tag, false, "", "perf-q-1");
            }
            black_box(out.len())
        })
    });
    for (name, body) in [
        ("deliver_content_16B", &body16),
        ("deliver_content_1KiB", &body1k),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for tag in 1..=BATCH as u64 {
                    codec::encode_deliver(
                        &mut out,
                        1,
                        "amq.ctag-warren-1",
                        tag,
                        false,
                        "",
                        "perf-q-1",
                    );
                    codec::encode_content(&mut out, 1, &persistent, body, FRAME_MAX);
                }
                black_box(out.len())
            })
        });
    }
    // The generic (amq-protocol gen_frame) path, for comparison with the hand-written deliver.
    g.bench_function("deliver_via_gen_frame", |b| {
        b.iter(|| {
            out.clear();
            for tag in 1..=BATCH as u64 {
                codec::encode_method(
                    &mut out,
                    1,
                    AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                        consumer_tag: "amq.ctag-warren-1".into(),
                        delivery_tag: tag,
                        redelivered: false,
                        exchange: "".into(),
                        routing_key: "perf-q-1".into(),
                    })),
                );
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
