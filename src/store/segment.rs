//! Segment file format: a fixed header, then length- and CRC-framed message records.
//!
//! ```text
//! header  : magic "WARRENSG" (8) | version u32 LE | reserved u32
//! record  : len u32 LE | crc32 u32 LE (of the len bytes that follow) | payload[len]
//! payload : seq u64 LE | flags u8 | expires_at u64 LE (ms since the epoch, 0 = never)
//!           | exchange_len u8 | exchange | key_len u8 | routing_key
//!           | props_len u32 LE | raw_properties | body (the rest)
//! ```
//! A zero `len` or the end of the file ends the records. Pure: encoding and scanning only, so
//! it is tested (and fuzzed) without files.

use crate::message::Message;
use bytes::Bytes;

pub const MAGIC: &[u8; 8] = b"WARRENSG";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 16;
/// Bytes before a record's payload.
pub const RECORD_OVERHEAD: usize = 8;
/// Record flag: the message was published persistent into a durable queue and must survive a
/// restart. Records without it are spilled transient messages, dropped at recovery.
pub const FLAG_PERSISTENT: u8 = 1;

/// The segment header.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Checks a segment header; returns the format version.
pub fn check_header(h: &[u8]) -> Result<u32, String> {
    if h.len() < HEADER_LEN {
        return Err("short header".into());
    }
    if &h[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let v = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if v != VERSION {
        return Err(format!("unsupported segment version {v}"));
    }
    Ok(v)
}

/// Payload length of `msg`'s record (exchange and routing key are cut at 255 bytes).
fn payload_len(msg: &Message) -> usize {
    let ex = msg.exchange.len().min(255);
    let rk = msg.routing_key.len().min(255);
    8 + 1 + 8 + 1 + ex + 1 + rk + 4 + msg.raw_properties.len() + msg.body.len()
}

/// Length of the record [`encode`] would write for `msg`, so a writer can decide where it goes
/// (segment roll) before encoding it.
pub fn record_len(msg: &Message) -> usize {
    RECORD_OVERHEAD + payload_len(msg)
}

/// Appends one encoded record to `out`; returns its length.
pub fn encode(out: &mut Vec<u8>, seq: u64, flags: u8, expires_at: u64, msg: &Message) -> usize {
    let ex = &msg.exchange.as_bytes()[..msg.exchange.len().min(255)];
    let rk = &msg.routing_key.as_bytes()[..msg.routing_key.len().min(255)];
    let payload_len = payload_len(msg);
    let start = out.len();
    out.reserve(RECORD_OVERHEAD + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.push(ex.len() as u8);
    out.extend_from_slice(ex);
    out.push(rk.len() as u8);
    out.extend_from_slice(rk);
    out.extend_from_slice(&(msg.raw_properties.len() as u32).to_le_bytes());
    out.extend_from_slice(&msg.raw_properties);
    out.extend_from_slice(&msg.body);
    let crc = crc32fast::hash(&out[start + RECORD_OVERHEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// A record read back.
#[derive(Debug)]
pub struct Record {
    pub seq: u64,
    pub flags: u8,
    pub expires_at: u64,
    pub exchange: String,
    pub routing_key: String,
    pub raw_properties: Bytes,
    pub body: Bytes,
}

/// What is at an offset of a segment's bytes.
#[derive(Debug)]
pub enum Scan {
    /// A valid record of `len` bytes in total.
    Record(usize),
    /// Zeroes or end of data: no more records.
    End,
    /// The record runs past the end of the data: a write torn by a crash.
    Torn,
    /// A record whose length is plausible but whose CRC or fields are wrong: skippable.
    Corrupt(usize),
    /// A length that cannot be right: the rest of the segment is unreadable.
    Garbage,
}

/// Classifies the bytes at the start of `buf`; `max_record` bounds believable lengths.
pub fn scan(buf: &[u8], max_record: usize) -> Scan {
    if buf.len() < RECORD_OVERHEAD {
        return if buf.iter().all(|&b| b == 0) {
            Scan::End
        } else {
            Scan::Torn
        };
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Scan::End;
    }
    if len < 8 + 1 + 8 + 1 + 1 + 4 || len > max_record {
        return Scan::Garbage;
    }
    if buf.len() < RECORD_OVERHEAD + len {
        return Scan::Torn;
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if crc32fast::hash(&buf[RECORD_OVERHEAD..RECORD_OVERHEAD + len]) != crc {
        return Scan::Corrupt(RECORD_OVERHEAD + len);
    }
    match decode_payload(&buf[RECORD_OVERHEAD..RECORD_OVERHEAD + len]) {
        Some(_) => Scan::Record(RECORD_OVERHEAD + len),
        None => Scan::Corrupt(RECORD_OVERHEAD + len),
    }
}

/// Reads the sequence number and flags of a record already validated by [`scan`].
pub fn peek(buf: &[u8]) -> (u64, u8, usize) {
    let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
    let flags = buf[16];
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let ex_len = buf[25] as usize;
    let rk_len = buf.get(26 + ex_len).copied().unwrap_or(0) as usize;
    let props_at = 27 + ex_len + rk_len;
    let props_len = buf
        .get(props_at..props_at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .unwrap_or(0);
    let body_len = (RECORD_OVERHEAD + len).saturating_sub(props_at + 4 + props_len);
    (seq, flags, body_len)
}

/// Decodes a record's payload (the bytes after len and crc), copying out of `payload`.
pub fn decode_payload(p: &[u8]) -> Option<Record> {
    let seq = u64::from_le_bytes(p.get(0..8)?.try_into().ok()?);
    let flags = *p.get(8)?;
    let expires_at = u64::from_le_bytes(p.get(9..17)?.try_into().ok()?);
    let ex_len = *p.get(17)? as usize;
    let ex = p.get(18..18 + ex_len)?;
    let mut at = 18 + ex_len;
    let rk_len = *p.get(at)? as usize;
    let rk = p.get(at + 1..at + 1 + rk_len)?;
    at += 1 + rk_len;
    let props_len = u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?) as usize;
    at += 4;
    let props = p.get(at..at.checked_add(props_len)?)?;
    at += props_len;
    let body = p.get(at..)?;
    Some(Record {
        seq,
        flags,
        expires_at,
        exchange: String::from_utf8(ex.to_vec()).ok()?,
        routing_key: String::from_utf8(rk.to_vec()).ok()?,
        raw_properties: Bytes::copy_from_slice(props),
        body: Bytes::copy_from_slice(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(body: &[u8]) -> Message {
        Message {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            properties: Default::default(),
            raw_properties: Bytes::from_static(&[0x10, 0x00, 2]),
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn roundtrip() {
        let mut out = Vec::new();
        let n = encode(&mut out, 42, FLAG_PERSISTENT, 7, &msg(b"hello"));
        assert_eq!(n, record_len(&msg(b"hello")));
        assert!(matches!(scan(&out, 1 << 20), Scan::Record(l) if l == n));
        let r = decode_payload(&out[RECORD_OVERHEAD..]).unwrap();
        assert_eq!((r.seq, r.flags, r.expires_at), (42, FLAG_PERSISTENT, 7));
        assert_eq!(&r.body[..], b"hello");
        assert_eq!(r.routing_key, "rk");
        assert_eq!(peek(&out), (42, FLAG_PERSISTENT, 5));
    }

    #[test]
    fn torn_corrupt_and_end() {
        let mut out = Vec::new();
        encode(&mut out, 1, 0, 0, &msg(b"abcdef"));
        assert!(matches!(scan(&out[..out.len() - 1], 1 << 20), Scan::Torn));
        assert!(matches!(scan(&out[..3], 1 << 20), Scan::Torn));
        let mut bad = out.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(scan(&bad, 1 << 20), Scan::Corrupt(_)));
        assert!(matches!(scan(&[0; 32], 1 << 20), Scan::End));
        assert!(matches!(scan(&[0xff; 32], 1 << 20), Scan::Garbage));
    }

    proptest! {
        #[test]
        fn scan_never_panics(data: Vec<u8>) {
            let _ = scan(&data, 1 << 20);
            let _ = decode_payload(&data);
        }

        #[test]
        fn encode_scan_roundtrip(body: Vec<u8>, seq: u64, flags: u8) {
            let mut out = Vec::new();
            let n = encode(&mut out, seq, flags, 0, &msg(&body));
            prop_assert_eq!(n, record_len(&msg(&body)));
            prop_assert!(matches!(scan(&out, 1 << 24), Scan::Record(l) if l == n));
            let r = decode_payload(&out[RECORD_OVERHEAD..]).unwrap();
            prop_assert_eq!(r.seq, seq);
            prop_assert_eq!(&r.body[..], &body[..]);
        }
    }
}
