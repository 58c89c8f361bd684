//! The scale tool's AMQP 0-9-1 client: as little as it takes to hold thousands of idle
//! connections cheaply and to pipeline declarations.
//!
//! Frames are encoded with warren's codec (`encode_method`, `encode_content`) and parsed with
//! amq-protocol's parser. Each connection starts with a small read buffer (it grows only on the
//! few connections that carry traffic), PLAIN authentication, heartbeats disabled (0 in tune-ok)
//! so an idle connection costs the broker nothing but its state.

use amq_protocol::protocol::{AMQPClass, channel, connection};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::{Buf, BytesMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren::protocol::codec::encode_method;

/// Boxed error: the tool only reports errors.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Send the channel.opens in the same write as connection.open (set once from the command line).
pub static PIPELINE_OPEN: AtomicBool = AtomicBool::new(false);

/// The largest frame the tool asks for.
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

/// One frame split off the read buffer.
pub enum Frame {
    /// Channel and parsed method.
    Method(u16, AMQPClass),
    /// Body size of a content header.
    Header(u64),
    /// Body bytes.
    Body(Vec<u8>),
    Heartbeat,
}

/// Splits one complete frame off the front of `buf`, or `Ok(None)` when more bytes are needed.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let ty = buf[0];
    let ch = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if size + 8 > FRAME_MAX as usize {
        return Err(format!("frame of {} bytes exceeds {FRAME_MAX}", size + 8).into());
    }
    if buf.len() < size + 8 {
        return Ok(None);
    }
    if buf[7 + size] != 0xCE {
        return Err("bad frame end octet".into());
    }
    let p = &buf[7..7 + size];
    let frame = match ty {
        1 => match amq_protocol::protocol::parse_class(p) {
            Ok((_, m)) => Frame::Method(ch, m),
            Err(e) => return Err(format!("cannot parse method: {e}").into()),
        },
        2 if size >= 12 => Frame::Header(u64::from_be_bytes(p[4..12].try_into()?)),
        3 => Frame::Body(p.to_vec()),
        8 => Frame::Heartbeat,
        _ => return Err(format!("malformed frame of type {ty}").into()),
    };
    buf.advance(size + 8);
    Ok(Some(frame))
}

/// Turns a broker-initiated close into an error, or `None` for any other method.
pub fn close_error(m: &AMQPClass) -> Option<Error> {
    let (what, code, text, class, method) = match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => (
            "connection",
            c.reply_code,
            c.reply_text.as_str(),
            c.class_id,
            c.method_id,
        ),
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => (
            "channel",
            c.reply_code,
            c.reply_text.as_str(),
            c.class_id,
            c.method_id,
        ),
        _ => return None,
    };
    Some(format!("{what} closed by broker: {code} {text} (method {class}/{method})").into())
}

/// An open AMQP connection.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read but not yet parsed.
    pub rbuf: BytesMut,
    /// Encoded frames not yet written (see [`Conn::queue`] and [`Conn::flush`]).
    pub wbuf: Vec<u8>,
}

impl Conn {
    /// Connects, authenticates with PLAIN, opens the vhost and channels `1..=channels`.
    pub async fn open(uri: &Uri, name: &str, channels: u16) -> Result<Conn> {
        let pipeline_open = PIPELINE_OPEN.load(Ordering::Relaxed);
        let stream = TcpStream::connect((uri.host.as_str(), uri.port)).await?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rbuf: BytesMut::with_capacity(1024),
            wbuf: Vec::new(),
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
            "basic.nack",
            "authentication_failure_close",
        ] {
            caps.insert(cap.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString("warren-scale".into()),
        );
        props.insert("connection_name".into(), AMQPValue::LongString(name.into()));
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        c.queue(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: format!("\0{}\0{}", uri.user, uri.pass).into(),
                locale: "en_US".into(),
            })),
        );
        c.flush().await?;
        let tune = match c.recv_method().await? {
            (_, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            (_, m) => {
                return Err(close_error(&m)
                    .unwrap_or_else(|| format!("expected connection.tune, got {m:?}").into()));
            }
        };
        if tune.channel_max != 0 && channels > tune.channel_max {
            return Err(format!("broker allows {} channels", tune.channel_max).into());
        }
        c.queue(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: match tune.frame_max {
                    0 => FRAME_MAX,
                    f => f.min(FRAME_MAX),
                },
                heartbeat: 0,
            })),
        );
        c.queue(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: uri.vhost.as_str().into(),
            })),
        );
        // With `pipeline_open`, the channel.opens follow connection.open in the same write (a
        // broker must then serve frames that arrived with the last handshake frame).
        if pipeline_open {
            c.queue_channel_opens(channels);
        }
        c.flush().await?;
        match c.recv_method().await? {
            (_, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            (_, m) => {
                return Err(close_error(&m)
                    .unwrap_or_else(|| format!("expected connection.open-ok, got {m:?}").into()));
            }
        }
        if !pipeline_open {
            c.queue_channel_opens(channels);
            c.flush().await?;
        }
        for _ in 0..channels {
            match c.recv_method().await? {
                (_, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
                (_, m) => {
                    return Err(close_error(&m)
                        .unwrap_or_else(|| format!("expected channel.open-ok, got {m:?}").into()));
                }
            }
        }
        c.rbuf = BytesMut::new();
        c.wbuf = Vec::new();
        Ok(c)
    }

    fn queue_channel_opens(&mut self, channels: u16) {
        for ch in 1..=channels {
            self.queue(
                ch,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            );
        }
    }

    /// Encodes a method frame into the write buffer.
    pub fn queue(&mut self, ch: u16, m: AMQPClass) {
        encode_method(&mut self.wbuf, ch, m);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads the next frame.
    pub async fn recv(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = next_frame(&mut self.rbuf)? {
                return Ok(f);
            }
            self.rbuf.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err("connection closed by broker".into());
            }
        }
    }

    /// Reads until the next method frame, skipping content and heartbeat frames.
    pub async fn recv_method(&mut self) -> Result<(u16, AMQPClass)> {
        loop {
            if let Frame::Method(ch, m) = self.recv().await? {
                return Ok((ch, m));
            }
        }
    }

    /// Sends one method and waits for the next method, turning a close into an error.
    pub async fn rpc(&mut self, ch: u16, m: AMQPClass) -> Result<AMQPClass> {
        self.queue(ch, m);
        self.flush().await?;
        let (_, reply) = self.recv_method().await?;
        match close_error(&reply) {
            Some(e) => Err(e),
            None => Ok(reply),
        }
    }

    /// Closes politely: connection.close, then up to `wait` for close-ok.
    pub async fn close(mut self, wait: Duration) -> Result<()> {
        self.queue(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        );
        self.flush().await?;
        tokio::time::timeout(wait, async {
            loop {
                if let (_, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) =
                    self.recv_method().await?
                {
                    return Ok(());
                }
            }
        })
        .await
        .map_err(|_| Error::from("no connection.close-ok"))?
    }
}
