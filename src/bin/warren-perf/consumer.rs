//! A consumer: one connection, one channel, basic.consume on one queue.
//!
//! Deliveries are parsed by hand from the read buffer (delivery tag from basic.deliver, size
//! from the content header, the timestamp from the first body frame). Acks are batched: one
//! basic.ack with `multiple` every `--multi-ack-every` messages, written once per socket read.

use crate::client::{CH, Conn, RawFrame, Result, close_error, next_frame, parse_method};
use crate::shared::{Shared, histogram};
use crate::sys::{now_ns, run_marker};
use amq_protocol::protocol::{AMQPClass, basic};
use amq_protocol::types::FieldTable;
use bytes::Buf;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a consumer acknowledges and when it stops.
#[derive(Clone)]
pub struct ConsumerCfg {
    pub queue: String,
    pub prefetch: u16,
    pub autoack: bool,
    /// Ack with `multiple` once this many messages are unacked (1 = ack each message).
    pub multi_ack_every: u64,
    /// Messages to consume; 0 = unlimited.
    pub count: u64,
    /// Messages per second this consumer takes at most (0 = as fast as they come).
    pub rate: f64,
}

/// Sets prefetch and starts consuming.
pub async fn subscribe(conn: &mut Conn, cfg: &ConsumerCfg, tag: &str) -> Result<()> {
    if cfg.prefetch > 0 {
        match conn
            .rpc(AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: cfg.prefetch,
                global: false,
            })))
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
            m => return Err(format!("expected basic.qos-ok, got {m:?}").into()),
        }
    }
    match conn
        .rpc(AMQPClass::Basic(basic::AMQPMethod::Consume(
            basic::Consume {
                queue: cfg.queue.as_str().into(),
                consumer_tag: tag.into(),
                no_local: false,
                no_ack: cfg.autoack,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            },
        )))
        .await?
    {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => Ok(()),
        m => Err(format!("expected basic.consume-ok, got {m:?}").into()),
    }
}

/// Per-message parse state: a delivery spans a method, a header and zero or more body frames.
#[derive(Default)]
struct InFlight {
    tag: u64,
    /// Body bytes still expected.
    remaining: u64,
    /// No body frame seen yet for this delivery.
    first_body: bool,
}

/// Consumes until the stop signal (or its count). Returns the end-to-end latency histogram.
pub async fn run(mut conn: Conn, cfg: ConsumerCfg, shared: Arc<Shared>) -> Result<Histogram<u64>> {
    let mut hist = histogram();
    pump(&mut conn, &cfg, &shared, &mut hist).await?;
    conn.close().await;
    Ok(hist)
}

async fn pump(
    conn: &mut Conn,
    cfg: &ConsumerCfg,
    shared: &Shared,
    hist: &mut Histogram<u64>,
) -> Result<()> {
    let frame_max = conn.frame_max;
    let ack_every = match cfg.prefetch {
        0 => cfg.multi_ack_every.max(1),
        p => cfg.multi_ack_every.clamp(1, u64::from(p)),
    };
    let mut stop = shared.stop.subscribe();
    let mut msg = InFlight::default();
    let mut unacked = 0u64;
    let mut total = 0u64;
    let mut wbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut done = false;
    let marker = run_marker();
    let mut paced_from: Option<tokio::time::Instant> = None;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        if cfg.rate > 0.0
            && let Some(t0) = paced_from
        {
            // A slow consumer: do not read on before this many messages are "due". Unread
            // deliveries stay in the socket, so the broker sees a consumer that cannot keep up.
            let due = t0 + std::time::Duration::from_secs_f64(total as f64 / cfg.rate);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => continue,
            }
        }
        tokio::select! {
            r = conn.stream.read_buf(&mut conn.rbuf) => {
                if r? == 0 {
                    return Err("connection closed by broker".into());
                }
            }
            _ = stop.changed() => continue,
        }
        if done {
            // Past the count: skip whatever still arrives until the stop signal.
            let mut pos = 0;
            while let Some((_, len)) = next_frame(&conn.rbuf[pos..], frame_max)? {
                pos += len;
            }
            conn.rbuf.advance(pos);
            conn.rbuf.reserve(64 * 1024);
            continue;
        }
        let now = now_ns();
        let mut completed = 0u64;
        let mut pos = 0;
        let rbuf = &conn.rbuf;
        while let Some((frame, len)) = next_frame(&rbuf[pos..], frame_max)? {
            pos += len;
            let complete = match frame {
                RawFrame::Method(_, 60, 60, p) => {
                    // basic.deliver: consumer-tag (shortstr), then delivery-tag (u64).
                    let ct = *p.get(4).ok_or("short basic.deliver")? as usize;
                    let t = p.get(5 + ct..13 + ct).ok_or("short basic.deliver")?;
                    msg.tag = u64::from_be_bytes(t.try_into()?);
                    false
                }
                RawFrame::Header(size) => {
                    msg.remaining = size;
                    msg.first_body = true;
                    size == 0
                }
                RawFrame::Body(data) => {
                    if msg.first_body && data.len() >= 16 && data[8..16] == marker {
                        let ts = u64::from_be_bytes(data[..8].try_into()?);
                        let _ = hist.record(now.saturating_sub(ts).max(1));
                    }
                    msg.first_body = false;
                    msg.remaining = msg.remaining.saturating_sub(data.len() as u64);
                    msg.remaining == 0
                }
                RawFrame::Heartbeat => false,
                RawFrame::Method(_, 10, 60 | 61, _) => false,
                RawFrame::Method(_, _, _, p) => {
                    let m = parse_method(p)?;
                    return Err(close_error(&m)
                        .unwrap_or_else(|| format!("consumer: unexpected {m:?}").into()));
                }
            };
            if complete {
                completed += 1;
                if !cfg.autoack {
                    unacked += 1;
                    if unacked >= ack_every {
                        ack(&mut wbuf, msg.tag, ack_every > 1);
                        unacked = 0;
                    }
                }
                if cfg.count > 0 && total + completed == cfg.count {
                    if unacked > 0 {
                        ack(&mut wbuf, msg.tag, true);
                        unacked = 0;
                    }
                    done = true;
                    break;
                }
            }
        }
        conn.rbuf.advance(pos);
        conn.rbuf.reserve(64 * 1024);
        if !wbuf.is_empty() {
            conn.stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if completed > 0 {
            paced_from.get_or_insert_with(tokio::time::Instant::now);
            total += completed;
            shared.delivered.fetch_add(completed, Ordering::SeqCst);
            shared.wake_producers();
        }
        if done {
            shared.consumers_done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Appends a basic.ack frame.
fn ack(out: &mut Vec<u8>, tag: u64, multiple: bool) {
    out.push(1);
    out.extend_from_slice(&CH.to_be_bytes());
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&[0, 60, 0, 80]);
    out.extend_from_slice(&tag.to_be_bytes());
    out.push(u8::from(multiple));
    out.push(0xCE);
}
