//! A producer: one connection, one channel, publishing pre-encoded messages in large writes.
//!
//! Each message is a copy of a template (basic.publish + content header + body frames) with the
//! send time patched into the first 8 body bytes and a marker in the next 8, so the whole hot
//! path is a memcpy per message and one `write` per batch. Confirms are parsed by hand.
//!
//! What limits a batch: `--confirm` (messages in flight), `--rate` (messages due by now),
//! `--max-unconsumed` (closed loop), `--pmessages`, and a 64 KiB batch size.

use crate::client::{CH, Conn, RawFrame, Result, close_error, next_frame, parse_method};
use crate::shared::{Shared, histogram};
use crate::sys::{now_ns, run_marker};
use amq_protocol::protocol::{AMQPClass, confirm};
use bytes::Buf;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Target size of one write.
const BATCH_BYTES: usize = 64 * 1024;

/// What a producer publishes and how fast.
#[derive(Clone)]
pub struct ProducerCfg {
    pub exchange: String,
    pub routing_key: String,
    pub size: usize,
    pub persistent: bool,
    /// Max unconfirmed messages in flight; 0 disables confirms.
    pub confirm: u64,
    /// Messages per second for this producer; 0 = unlimited.
    pub rate: f64,
    /// Messages to publish; 0 = unlimited.
    pub count: u64,
}

/// A fully encoded message and where its body starts.
struct Template {
    bytes: Vec<u8>,
    body_offset: usize,
}

fn short(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn template(cfg: &ProducerCfg, frame_max: u32) -> Template {
    let mut out = Vec::with_capacity(cfg.size + 128);
    let mut args = vec![0, 60, 0, 40, 0, 0];
    short(&mut args, &cfg.exchange);
    short(&mut args, &cfg.routing_key);
    args.push(0);
    out.push(1);
    out.extend_from_slice(&CH.to_be_bytes());
    out.extend_from_slice(&(args.len() as u32).to_be_bytes());
    out.extend_from_slice(&args);
    out.push(0xCE);
    let props: &[u8] = if cfg.persistent {
        &[0x10, 0x00, 2]
    } else {
        &[0, 0]
    };
    out.push(2);
    out.extend_from_slice(&CH.to_be_bytes());
    out.extend_from_slice(&((12 + props.len()) as u32).to_be_bytes());
    out.extend_from_slice(&[0, 60, 0, 0]);
    out.extend_from_slice(&(cfg.size as u64).to_be_bytes());
    out.extend_from_slice(props);
    out.push(0xCE);
    let mut body = vec![0u8; cfg.size];
    if cfg.size >= 16 {
        body[8..16].copy_from_slice(&run_marker());
    }
    let mut body_offset = 0;
    for (i, part) in body.chunks((frame_max as usize - 8).max(1)).enumerate() {
        out.push(3);
        out.extend_from_slice(&CH.to_be_bytes());
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        if i == 0 {
            body_offset = out.len();
        }
        out.extend_from_slice(part);
        out.push(0xCE);
    }
    Template {
        bytes: out,
        body_offset,
    }
}

/// In-flight publishes awaiting confirms: send times indexed by delivery tag.
struct Pending {
    /// Delivery tag of the front entry.
    base: u64,
    /// Send time (ns since epoch) per tag; 0 once confirmed out of order.
    sent_ns: VecDeque<u64>,
}

impl Pending {
    /// Resolves `tag` (or all tags up to it); returns how many messages it settled.
    fn settle(&mut self, tag: u64, multiple: bool, now: u64, hist: &mut Histogram<u64>) -> u64 {
        let mut n = 0;
        if multiple {
            while self.base <= tag {
                let Some(t) = self.sent_ns.pop_front() else {
                    break;
                };
                self.base += 1;
                if t != 0 {
                    let _ = hist.record(now.saturating_sub(t).max(1));
                    n += 1;
                }
            }
        } else if tag >= self.base {
            if let Some(t) = self.sent_ns.get_mut((tag - self.base) as usize)
                && *t != 0
            {
                let _ = hist.record(now.saturating_sub(*t).max(1));
                *t = 0;
                n = 1;
            }
            while self.sent_ns.front() == Some(&0) {
                self.sent_ns.pop_front();
                self.base += 1;
            }
        }
        n
    }
}

/// Runs until the stop signal (or, with a count, until all messages are published and
/// confirmed, then waits for the stop signal). Returns the confirm-latency histogram.
pub async fn run(mut conn: Conn, cfg: ProducerCfg, shared: Arc<Shared>) -> Result<Histogram<u64>> {
    let mut hist = histogram();
    let mut out = Out {
        buf: Vec::new(),
        pos: 0,
    };
    pump(&mut conn, &cfg, &shared, &mut hist, &mut out).await?;
    // Finish the batch in flight so connection.close does not land inside a frame.
    let rest = &out.buf[out.pos..];
    match tokio::time::timeout(Duration::from_secs(2), conn.stream.write_all(rest)).await {
        Ok(Ok(())) => conn.close().await,
        _ => return Err("producer: broker stopped reading at the end of the run".into()),
    }
    Ok(hist)
}

/// The write buffer and how much of it the socket has taken.
struct Out {
    buf: Vec<u8>,
    pos: usize,
}

async fn pump(
    conn: &mut Conn,
    cfg: &ProducerCfg,
    shared: &Shared,
    hist: &mut Histogram<u64>,
    out: &mut Out,
) -> Result<()> {
    let frame_max = conn.frame_max;
    let tpl = template(cfg, frame_max);
    let per_batch = (BATCH_BYTES / tpl.bytes.len()).max(1) as u64;
    let mut pending = Pending {
        base: 1,
        sent_ns: VecDeque::new(),
    };
    let mut stop = shared.stop.subscribe();
    out.buf = Vec::with_capacity(BATCH_BYTES + tpl.bytes.len());
    let mut sent = 0u64;
    let mut done = false;
    let start = Instant::now();
    let rbuf = &mut conn.rbuf;
    let (mut rd, mut wr) = conn.stream.split();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let mut wait_rate: Option<Instant> = None;
        let mut wait_consumers = None;
        if out.pos == out.buf.len() && !done {
            out.buf.clear();
            out.pos = 0;
            let mut n = per_batch;
            if cfg.count > 0 {
                n = n.min(cfg.count - sent);
            }
            if cfg.confirm > 0 {
                n = n.min(cfg.confirm.saturating_sub(pending.sent_ns.len() as u64));
            }
            if cfg.rate > 0.0 && n > 0 {
                let due = (start.elapsed().as_secs_f64() * cfg.rate) as u64 + 1;
                let allowed = due.saturating_sub(sent);
                if allowed == 0 {
                    wait_rate = Some(start + Duration::from_secs_f64(sent as f64 / cfg.rate));
                }
                n = n.min(allowed);
            }
            if shared.max_unconsumed > 0 && n > 0 {
                let mut allowed = shared.unconsumed_allowance();
                if allowed == 0 {
                    let notified = shared.resume.notified();
                    shared.producers_waiting.store(true, Ordering::SeqCst);
                    allowed = shared.unconsumed_allowance();
                    if allowed == 0 {
                        wait_consumers = Some(notified);
                    }
                }
                n = n.min(allowed);
            }
            if n > 0 {
                let ts = now_ns();
                for _ in 0..n {
                    let at = out.buf.len();
                    out.buf.extend_from_slice(&tpl.bytes);
                    if cfg.size >= 8 {
                        let o = at + tpl.body_offset;
                        out.buf[o..o + 8].copy_from_slice(&ts.to_be_bytes());
                    }
                }
                if cfg.confirm > 0 {
                    pending.sent_ns.extend(std::iter::repeat_n(ts, n as usize));
                }
                sent += n;
                shared.published.fetch_add(n, Ordering::SeqCst);
            } else if cfg.count > 0 && sent == cfg.count && pending.sent_ns.is_empty() {
                done = true;
                shared.producers_done.fetch_add(1, Ordering::SeqCst);
            }
        }
        let wait_consumers_active = wait_consumers.is_some();
        let notified = async {
            match wait_consumers {
                Some(n) => n.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = rd.read_buf(rbuf) => {
                if r? == 0 {
                    return Err("connection closed by broker".into());
                }
                let now = now_ns();
                let (mut acked, mut nacked) = (0, 0);
                let mut pos = 0;
                while let Some((frame, len)) = next_frame(&rbuf[pos..], frame_max)? {
                    if let RawFrame::Method(_, class, method, p) = frame {
                        match (class, method) {
                            (60, 80) | (60, 120) if p.len() >= 13 => {
                                let tag = u64::from_be_bytes(p[4..12].try_into()?);
                                let n = pending.settle(tag, p[12] & 1 != 0, now, hist);
                                if method == 80 { acked += n } else { nacked += n }
                            }
                            (60, 50) => {
                                shared.returned.fetch_add(1, Ordering::Relaxed);
                            }
                            (10, 60) => {
                                shared.blocked.fetch_add(1, Ordering::Relaxed);
                            }
                            (10, 61) => {}
                            _ => {
                                let m = parse_method(p)?;
                                return Err(close_error(&m).unwrap_or_else(|| {
                                    format!("producer: unexpected {m:?}").into()
                                }));
                            }
                        }
                    }
                    pos += len;
                }
                rbuf.advance(pos);
                rbuf.reserve(64 * 1024);
                if acked > 0 {
                    shared.confirmed.fetch_add(acked, Ordering::Relaxed);
                }
                if nacked > 0 {
                    shared.nacked.fetch_add(nacked, Ordering::Relaxed);
                }
            }
            w = wr.write(&out.buf[out.pos..]), if out.pos < out.buf.len() => {
                out.pos += w?;
            }
            _ = tokio::time::sleep_until(wait_rate.unwrap_or(start)), if wait_rate.is_some() => {}
            _ = notified, if wait_consumers_active => {}
            _ = stop.changed() => {}
        }
    }
}

/// Puts the channel in confirm mode.
pub async fn enable_confirms(conn: &mut Conn) -> Result<()> {
    match conn
        .rpc(AMQPClass::Confirm(confirm::AMQPMethod::Select(
            confirm::Select { nowait: false },
        )))
        .await?
    {
        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => Ok(()),
        m => Err(format!("expected confirm.select-ok, got {m:?}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_in_and_out_of_order() {
        let mut h = histogram();
        let mut p = Pending {
            base: 1,
            sent_ns: VecDeque::from(vec![10, 10, 10, 10]),
        };
        assert_eq!(p.settle(3, false, 20, &mut h), 1);
        assert_eq!(p.base, 1);
        assert_eq!(p.settle(1, false, 20, &mut h), 1);
        assert_eq!(p.base, 2);
        assert_eq!(p.settle(4, true, 20, &mut h), 2);
        assert!(p.sent_ns.is_empty());
        assert_eq!(p.base, 5);
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn template_layout() {
        let cfg = ProducerCfg {
            exchange: String::new(),
            routing_key: "q".into(),
            size: 16,
            persistent: true,
            confirm: 0,
            rate: 0.0,
            count: 0,
        };
        let t = template(&cfg, 4096);
        assert_eq!(
            &t.bytes[t.body_offset + 8..t.body_offset + 16],
            &run_marker()
        );
        assert_eq!(*t.bytes.last().unwrap(), 0xCE);
    }
}
