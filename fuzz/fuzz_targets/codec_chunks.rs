//! Frame decoding fed the way a socket delivers it: arbitrary partial reads.
//!
//! Input layout: `[fm_lo, fm_hi, seed, mode, stream...]`.
//! - `frame_max = 4096 + u16(fm_lo, fm_hi) * 2` (4096..=135166).
//! - `seed`/`mode` drive a small PRNG picking each read's size in `1..=limit`, where `limit`
//!   comes from `mode` (1, 7, 64, 1024 or 65536 bytes); `mode >= 0xF0` delivers the whole
//!   stream in one read.
//!
//! Invariants checked:
//! - `decode` never panics, and `Ok(None)` leaves the buffer untouched;
//! - `Ok(Some(frame))` consumes exactly 8 + payload-size bytes;
//! - decoding the stream in chunks yields the same frames (and the same first error) at the same
//!   stream offsets as decoding it all at once, and leaves the same undecoded tail;
//! - every frame is fed to a per-channel `Assembler`, which never panics, and every publish it
//!   completes carries exactly the body bytes sent after its header, of the declared size.
//!
//! Set `WARREN_FUZZ_TRACE=1` when replaying an input to print every decode and assembler outcome.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;
use warren::error::AmqpError;
use warren::protocol::assembler::{Assembler, Command};
use warren::protocol::codec::{self, Frame};

/// A decode outcome in a form two runs can be compared by (field tables may hold NaN, so
/// methods and properties are compared through their Debug text).
#[derive(Debug, PartialEq)]
enum Event {
    Method {
        at: usize,
        channel: u16,
        method: String,
    },
    Header {
        at: usize,
        channel: u16,
        class_id: u16,
        body_size: u64,
        raw: Bytes,
        props: String,
    },
    Body {
        at: usize,
        channel: u16,
        body: Bytes,
    },
    Heartbeat {
        at: usize,
        channel: u16,
    },
    Error {
        at: usize,
        error: AmqpError,
    },
}

impl Event {
    fn of(at: usize, frame: &Frame) -> Event {
        match frame {
            Frame::Method(channel, m) => Event::Method {
                at,
                channel: *channel,
                method: format!("{m:?}"),
            },
            Frame::Header(channel, h) => Event::Header {
                at,
                channel: *channel,
                class_id: h.class_id,
                body_size: h.body_size,
                raw: h.raw_properties.clone(),
                props: format!("{:?}", h.properties),
            },
            Frame::Body(channel, b) => Event::Body {
                at,
                channel: *channel,
                body: b.clone(),
            },
            Frame::Heartbeat(channel) => Event::Heartbeat {
                at,
                channel: *channel,
            },
        }
    }
}

/// Per-channel reference of what the assembler should hand back for a publish.
#[derive(Default)]
struct Expect {
    body_size: u64,
    body: Vec<u8>,
}

/// Channels, each with an assembler and the body it has been sent since its last header.
#[derive(Default)]
struct Channels {
    by_id: HashMap<u16, (Assembler, Option<Expect>)>,
}

impl Channels {
    fn feed(&mut self, frame: Frame) {
        let (asm, expect) = match &frame {
            Frame::Heartbeat(_) => return,
            Frame::Method(c, _) | Frame::Header(c, _) | Frame::Body(c, _) => {
                self.by_id.entry(*c).or_default()
            }
        };
        let result = match frame {
            Frame::Method(_, m) => {
                *expect = None;
                asm.method(m)
            }
            Frame::Header(_, h) => {
                let body_size = h.body_size;
                let r = asm.header(h);
                *expect = match r {
                    Ok(None) => Some(Expect {
                        body_size,
                        body: Vec::new(),
                    }),
                    _ => None,
                };
                if let Ok(Some(Command::Publish(c))) = &r {
                    assert_eq!(
                        body_size, 0,
                        "publish completed at a header declaring a body"
                    );
                    assert!(c.body.is_empty());
                }
                r
            }
            Frame::Body(_, b) => {
                if let Some(e) = expect.as_mut() {
                    e.body.extend_from_slice(&b);
                }
                asm.body(b)
            }
            Frame::Heartbeat(_) => return,
        };
        if tracing() {
            eprintln!("  assembler: {result:?}");
        }
        match result {
            Ok(Some(Command::Publish(content))) => {
                if let Some(e) = expect.take() {
                    assert_eq!(content.body.len() as u64, e.body_size, "body size mismatch");
                    assert_eq!(&content.body[..], &e.body[..], "body bytes mismatch");
                }
                assert!(!asm.in_content());
            }
            Ok(Some(Command::Method(_))) => assert!(!asm.in_content()),
            Ok(None) => assert!(asm.in_content()),
            Err(_) => {
                // The connection closes on these; keep going to drive more states anyway.
                *asm = Assembler::default();
                *expect = None;
            }
        }
    }
}

/// Decodes what `buf` holds, appending outcomes to `events`; false once decoding has failed.
fn drain(
    buf: &mut BytesMut,
    frame_max: u32,
    offset: &mut usize,
    events: &mut Vec<Event>,
    mut channels: Option<&mut Channels>,
) -> bool {
    loop {
        let before_len = buf.len();
        let mut head = [0u8; 16];
        let head_len = before_len.min(head.len());
        head[..head_len].copy_from_slice(&buf[..head_len]);
        match codec::decode(buf, frame_max) {
            Ok(None) => {
                assert_eq!(buf.len(), before_len, "Ok(None) consumed bytes");
                assert_eq!(
                    &buf[..head_len],
                    &head[..head_len],
                    "Ok(None) changed the buffer"
                );
                return true;
            }
            Ok(Some(frame)) => {
                let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
                assert_eq!(
                    before_len - buf.len(),
                    size + 8,
                    "frame consumed wrong length"
                );
                events.push(Event::of(*offset, &frame));
                if tracing() && channels.is_some() {
                    eprintln!("{:?}", events.last());
                }
                *offset += size + 8;
                if let Some(ch) = channels.as_deref_mut() {
                    ch.feed(frame);
                }
            }
            Err(error) => {
                if tracing() && channels.is_some() {
                    eprintln!("at {offset}: {error:?}");
                }
                events.push(Event::Error { at: *offset, error });
                return false;
            }
        }
    }
}

fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("WARREN_FUZZ_TRACE").is_some())
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let frame_max = 4096 + u32::from(u16::from_le_bytes([data[0], data[1]])) * 2;
    let (seed, mode) = (data[2], data[3]);
    let stream = &data[4..];
    if tracing() {
        eprintln!(
            "frame_max {frame_max}, seed {seed}, mode {mode}, {} stream bytes",
            stream.len()
        );
    }
    let limit = match mode {
        0xF0..=0xFF => usize::MAX,
        _ => [1, 7, 64, 1024, 65536][usize::from(mode) % 5],
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(seed) << 8 | u64::from(mode)));

    let mut whole = Vec::new();
    let mut whole_buf = BytesMut::from(stream);
    let mut whole_offset = 0;
    drain(
        &mut whole_buf,
        frame_max,
        &mut whole_offset,
        &mut whole,
        None,
    );

    let mut chunked = Vec::new();
    let mut chunk_buf = BytesMut::new();
    let mut chunk_offset = 0;
    let mut channels = Channels::default();
    let mut pos = 0;
    let mut ok = true;
    while pos < stream.len() && ok {
        let n = if limit == usize::MAX {
            stream.len() - pos
        } else {
            (1 + (rng.next() as usize) % limit).min(stream.len() - pos)
        };
        chunk_buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        ok = drain(
            &mut chunk_buf,
            frame_max,
            &mut chunk_offset,
            &mut chunked,
            Some(&mut channels),
        );
    }

    assert_eq!(
        whole, chunked,
        "chunked decoding diverged from whole-stream decoding"
    );
    if ok {
        assert_eq!(&whole_buf[..], &chunk_buf[..], "different undecoded tails");
    }
});
