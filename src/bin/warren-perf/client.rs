//! A minimal AMQP 0-9-1 client: just enough protocol for a load generator.
//!
//! Setup traffic (handshake, declarations, qos, consume) goes through amq-protocol's generic
//! encoder and parser because it is rare. The hot frames (basic.publish, content frames,
//! basic.ack, basic.deliver, confirms) are encoded and decoded by hand in `producer`/`consumer`
//! using [`next_frame`], which borrows from the read buffer and never allocates.
//!
//! Works against any 0-9-1 broker: PLAIN authentication, heartbeats disabled (the client proposes
//! 0 in tune-ok), one channel (number 1) per connection.

use amq_protocol::protocol::{AMQPClass, channel, connection};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::{Buf, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::protocol::codec::encode_method;

/// Boxed error: the tool only reports errors, it never matches on them.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The channel every connection of the tool uses.
pub const CH: u16 = 1;
/// The largest frame the tool asks for; brokers may lower it in connection.tune.
const FRAME_MAX: u32 = 131_072;

/// Broker address and credentials from an `amqp://user:pass@host:port/vhost` URI.
#[derive(Debug, Clone)]
pub struct Uri {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub vhost: String,
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("bad percent escape in URI")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent escape in URI")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8(out)?)
}

impl Uri {
    /// Parses `amqp://[user[:pass]@]host[:port][/vhost]`; the vhost defaults to `/`.
    pub fn parse(s: &str) -> Result<Uri> {
        let rest = s
            .strip_prefix("amqp://")
            .ok_or("only amqp:// URIs are supported")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => ("guest:guest", authority),
        };
        let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "bad port in URI")?),
            None => (hostport, 5672),
        };
        let vhost = if path.is_empty() {
            "/".to_string()
        } else {
            percent_decode(path)?
        };
        Ok(Uri {
            host: if host.is_empty() { "localhost" } else { host }.to_string(),
            port,
            user: percent_decode(user)?,
            pass: percent_decode(pass)?,
            vhost,
        })
    }
}

/// One frame borrowed from the read buffer.
pub enum RawFrame<'a> {
    /// Channel, class id, method id, and the whole method payload (class and method ids included,
    /// as amq-protocol's parser wants it).
    Method(u16, u16, u16, &'a [u8]),
    /// Body size of a content header (the tool uses one channel per connection).
    Header(u64),
    /// Body bytes.
    Body(&'a [u8]),
    Heartbeat,
}

/// Splits one complete frame off the front of `buf`: `Ok(None)` when more bytes are needed,
/// otherwise the frame and its length including framing.
pub fn next_frame(buf: &[u8], frame_max: u32) -> Result<Option<(RawFrame<'_>, usize)>> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let ty = buf[0];
    let ch = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if size + 8 > frame_max as usize {
        return Err(format!("frame of {} bytes exceeds frame_max {frame_max}", size + 8).into());
    }
    if buf.len() < size + 8 {
        return Ok(None);
    }
    if buf[7 + size] != 0xCE {
        return Err("bad frame end octet".into());
    }
    let p = &buf[7..7 + size];
    let frame = match ty {
        1 if size >= 4 => RawFrame::Method(
            ch,
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
            p,
        ),
        2 if size >= 12 => RawFrame::Header(u64::from_be_bytes(p[4..12].try_into()?)),
        3 => RawFrame::Body(p),
        8 => RawFrame::Heartbeat,
        _ => return Err(format!("malformed frame of type {ty}").into()),
    };
    Ok(Some((frame, size + 8)))
}

/// Decodes a method payload with amq-protocol (setup and error paths only).
pub fn parse_method(payload: &[u8]) -> Result<AMQPClass> {
    match amq_protocol::protocol::parse_class(payload) {
        Ok((_, m)) => Ok(m),
        Err(e) => Err(format!("cannot parse method: {e}").into()),
    }
}

/// Turns a broker-initiated close into an error, or `None` for any other method.
pub fn close_error(m: &AMQPClass) -> Option<Error> {
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => Some(
            format!(
                "connection closed by broker: {} {} (method {}/{})",
                c.reply_code,
                c.reply_text.as_str(),
                c.class_id,
                c.method_id
            )
            .into(),
        ),
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => Some(
            format!(
                "channel closed by broker: {} {} (method {}/{})",
                c.reply_code,
                c.reply_text.as_str(),
                c.class_id,
                c.method_id
            )
            .into(),
        ),
        _ => None,
    }
}

/// An open connection with channel [`CH`] open.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read but not yet consumed; hot loops keep using it after setup.
    pub rbuf: BytesMut,
    /// Negotiated maximum frame size including framing.
    pub frame_max: u32,
}

impl Conn {
    /// Connects, authenticates with PLAIN, opens the vhost and channel 1.
    pub async fn open(uri: &Uri, name: &str) -> Result<Conn> {
        let stream = TcpStream::connect((uri.host.as_str(), uri.port)).await?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rbuf: BytesMut::with_capacity(256 * 1024),
            frame_max: FRAME_MAX,
        };
        c.stream.write_all(b"AMQP\x00\x00\x09\x01").await?;
        match c.recv_method().await? {
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(s))) => {
                let mechs = String::from_utf8_lossy(s.mechanisms.as_bytes()).to_string();
                if !mechs.split(' ').any(|m| m == "PLAIN") {
                    return Err(format!("broker does not offer PLAIN (offers {mechs})").into());
                }
            }
            (_, m) => return Err(format!("expected connection.start, got {m:?}").into()),
        }
        let mut caps = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "consumer_cancel_notify",
            "connection.blocked",
            "basic.nack",
            "authentication_failure_close",
        ] {
            caps.insert(cap.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString("warren-perf".into()),
        );
        props.insert("connection_name".into(), AMQPValue::LongString(name.into()));
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: format!("\0{}\0{}", uri.user, uri.pass).into(),
                locale: "en_US".into(),
            })),
        )
        .await?;
        let tune = match c.recv_method().await? {
            (_, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            (_, m) => {
                return Err(close_error(&m)
                    .unwrap_or_else(|| format!("expected connection.tune, got {m:?}").into()));
            }
        };
        c.frame_max = match tune.frame_max {
            0 => FRAME_MAX,
            f => f.min(FRAME_MAX),
        };
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: if tune.channel_max == 0 {
                    2047
                } else {
                    tune.channel_max
                },
                frame_max: c.frame_max,
                heartbeat: 0,
            })),
        )
        .await?;
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: uri.vhost.as_str().into(),
            })),
        )
        .await?;
        match c.recv_method().await? {
            (_, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            (_, m) => {
                return Err(close_error(&m)
                    .unwrap_or_else(|| format!("expected connection.open-ok, got {m:?}").into()));
            }
        }
        c.rpc(AMQPClass::Channel(channel::AMQPMethod::Open(
            channel::Open {},
        )))
        .await?;
        Ok(c)
    }

    /// Writes one method frame.
    pub async fn send(&mut self, ch: u16, m: AMQPClass) -> Result<()> {
        let mut out = Vec::with_capacity(256);
        encode_method(&mut out, ch, m);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// Reads until the next method frame, skipping content and heartbeat frames.
    pub async fn recv_method(&mut self) -> Result<(u16, AMQPClass)> {
        loop {
            let parsed = match next_frame(&self.rbuf, self.frame_max.max(FRAME_MAX))? {
                Some((RawFrame::Method(ch, _, _, p), len)) => Some((ch, parse_method(p)?, len)),
                Some((_, len)) => {
                    self.rbuf.advance(len);
                    continue;
                }
                None => None,
            };
            if let Some((ch, m, len)) = parsed {
                self.rbuf.advance(len);
                return Ok((ch, m));
            }
            self.rbuf.reserve(64 * 1024);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err("connection closed by broker".into());
            }
        }
    }

    /// Sends a method on channel 1 and returns the next method the broker sends, turning a
    /// channel.close or connection.close into an error (after answering it).
    pub async fn rpc(&mut self, m: AMQPClass) -> Result<AMQPClass> {
        self.send(CH, m).await?;
        let (_, reply) = self.recv_method().await?;
        if let Some(e) = close_error(&reply) {
            let ok = match reply {
                AMQPClass::Channel(_) => {
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
                }
                _ => AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
            };
            let ch = if matches!(ok, AMQPClass::Channel(_)) {
                CH
            } else {
                0
            };
            let _ = self.send(ch, ok).await;
            return Err(e);
        }
        Ok(reply)
    }

    /// Closes the connection politely (connection.close, wait up to 2 s for close-ok).
    pub async fn close(mut self) {
        let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }));
        if self.send(0, close).await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match self.recv_method().await {
                    Ok((_, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))) | Err(_) => {
                        break;
                    }
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing() {
        let u = Uri::parse("amqp://guest:guest@127.0.0.1:5680/%2f").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user.as_str(), u.vhost.as_str()),
            ("127.0.0.1", 5680, "guest", "/")
        );
        let u = Uri::parse("amqp://localhost").unwrap();
        assert_eq!((u.port, u.vhost.as_str()), (5672, "/"));
        let u = Uri::parse("amqp://a%40b:p@h/v1").unwrap();
        assert_eq!((u.user.as_str(), u.vhost.as_str()), ("a@b", "v1"));
    }

    #[test]
    fn frame_splitting() {
        let mut buf = vec![3, 0, 1, 0, 0, 0, 2, b'h', b'i', 0xCE, 8];
        match next_frame(&buf, 4096).unwrap() {
            Some((RawFrame::Body(b), 10)) => assert_eq!(b, b"hi"),
            _ => panic!("expected a body frame"),
        }
        assert!(next_frame(&buf[10..], 4096).unwrap().is_none());
        buf[9] = 0;
        assert!(next_frame(&buf, 4096).is_err());
    }
}
