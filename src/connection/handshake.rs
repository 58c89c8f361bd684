//! connection.start / start-ok / tune / tune-ok / open, as RabbitMQ performs them.

use super::writer::Output;
use super::{FrameReader, ReadError};
use crate::auth::{self, Permissions};
use crate::broker::BrokerState;
use crate::error::AmqpError;
use crate::protocol::codec::{self, FRAME_MIN_SIZE, Frame};
use crate::vhost::VHost;
use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncRead;

/// RabbitMQ's handshake_timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client announced it understands.
#[derive(Clone, Debug, Default)]
pub struct ClientCaps {
    pub consumer_cancel_notify: bool,
    pub connection_blocked: bool,
    pub authentication_failure_close: bool,
}

/// The outcome of a successful handshake.
pub struct Opened {
    pub user: String,
    pub vhost: Arc<VHost>,
    pub perms: Permissions,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub caps: ClientCaps,
    pub client_name: String,
    /// client_properties as the client encoded them (a field table), for the management API.
    pub client_properties: Box<[u8]>,
}

/// Why a handshake did not complete: either an AMQP error to send as connection.close, or the
/// socket is already unusable.
pub enum Failed {
    Close(AmqpError),
    Gone,
}

impl From<ReadError> for Failed {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Amqp(e) => Failed::Close(e),
            ReadError::Io | ReadError::Eof => Failed::Gone,
        }
    }
}

fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()));
    let mut props = FieldTable::default();
    props.insert("product".into(), s("Warren"));
    props.insert("version".into(), s(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), s("Rust"));
    props.insert("cluster_name".into(), s(&format!("warren@{}", hostname())));
    props.insert("copyright".into(), s("Warren contributors"));
    props.insert(
        "information".into(),
        s("Licensed under the Apache License 2.0"),
    );
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

fn client_caps(props: &FieldTable) -> (ClientCaps, String) {
    let mut caps = ClientCaps::default();
    if let Some(AMQPValue::FieldTable(t)) = props.inner().get("capabilities") {
        let flag = |k: &str| matches!(t.inner().get(k), Some(AMQPValue::Boolean(true)));
        caps.consumer_cancel_notify = flag("consumer_cancel_notify");
        caps.connection_blocked = flag("connection.blocked");
        caps.authentication_failure_close = flag("authentication_failure_close");
    }
    let name = props
        .inner()
        .get("connection_name")
        .or_else(|| props.inner().get("product"))
        .and_then(crate::vhost::value_as_str)
        .unwrap_or("")
        .to_owned();
    (caps, name)
}

async fn expect_method<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    frame_max: u32,
) -> Result<AMQPClass, Failed> {
    let frame = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next(frame_max))
        .await
        .map_err(|_| Failed::Gone)??;
    match frame {
        Frame::Method(0, m) => Ok(m),
        Frame::Method(_, m) => Err(Failed::Close(
            AmqpError::unexpected_frame("expected a connection method on channel 0")
                .on(m.get_amqp_class_id(), m.get_amqp_method_id()),
        )),
        Frame::Heartbeat(_) => Box::pin(expect_method(reader, frame_max)).await,
        _ => Err(Failed::Close(AmqpError::unexpected_frame(
            "content frame during the handshake",
        ))),
    }
}

async fn send(out: &mut Output, method: AMQPClass) {
    let mut buf = Vec::new();
    codec::encode_method(&mut buf, 0, method);
    let _ = out.send(&mut buf).await;
}

/// Runs the handshake after the protocol header was accepted.
pub async fn run<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    out: &mut Output,
    state: &BrokerState,
    peer: SocketAddr,
) -> Result<Opened, Failed> {
    let cfg = &state.config;
    send(
        out,
        AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: LongString::from(b"PLAIN AMQPLAIN".to_vec()),
            locales: LongString::from(b"en_US".to_vec()),
        })),
    )
    .await;
    // Before tune the frame limit is the spec minimum.
    let start_ok = match expect_method(reader, FRAME_MIN_SIZE).await? {
        AMQPClass::Connection(connection::AMQPMethod::StartOk(s)) => s,
        _ => {
            return Err(Failed::Close(AmqpError::command_invalid(
                "expected connection.start-ok",
            )));
        }
    };
    let (caps, client_name) = client_caps(&start_ok.client_properties);
    // Kept encoded: a few hundred bytes per connection, decoded only when the API asks.
    let client_properties = cookie_factory::gen_simple(
        amq_protocol::types::generation::gen_field_table(&start_ok.client_properties),
        Vec::new(),
    )
    .map(Vec::into_boxed_slice)
    .unwrap_or_default();
    let mechanism = start_ok.mechanism.as_str().to_owned();
    let creds = match mechanism.as_str() {
        "PLAIN" => auth::parse_plain(start_ok.response.as_bytes()),
        "AMQPLAIN" => auth::parse_amqplain(start_ok.response.as_bytes()),
        other => {
            return Err(Failed::Close(AmqpError::access_refused(format!(
                "unsupported authentication mechanism '{other}'"
            ))));
        }
    };
    let refused = || {
        Failed::Close(AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the \
             broker logfile."
        )))
    };
    let Some((user, password)) = creds else {
        return Err(refused());
    };
    if state.authenticate(&user, &password).is_none() {
        tracing::warn!(%peer, %user, "authentication failed");
        return Err(refused());
    }
    if cfg.loopback_users.iter().any(|u| u == &user) && !peer.ip().is_loopback() {
        tracing::warn!(%peer, %user, "user may only connect via localhost");
        return Err(Failed::Close(AmqpError::access_refused(format!(
            "Login was refused: user '{user}' can only connect via localhost"
        ))));
    }

    send(
        out,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: cfg.channel_max,
            frame_max: cfg.frame_max,
            heartbeat: cfg.heartbeat,
        })),
    )
    .await;
    let tune_ok = match expect_method(reader, FRAME_MIN_SIZE).await? {
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(t)) => t,
        _ => {
            return Err(Failed::Close(AmqpError::command_invalid(
                "expected connection.tune-ok",
            )));
        }
    };
    // The client's tune-ok values win, within the server's limits (RabbitMQ's rule); 0 means
    // "no limit", i.e. the server's.
    let frame_max = if tune_ok.frame_max == 0 {
        cfg.frame_max
    } else {
        tune_ok.frame_max
    };
    if frame_max < FRAME_MIN_SIZE {
        return Err(Failed::Close(AmqpError::not_allowed(format!(
            "frame_max={frame_max} < {FRAME_MIN_SIZE} min size"
        ))));
    }
    if frame_max > cfg.frame_max {
        return Err(Failed::Close(AmqpError::not_allowed(format!(
            "frame_max={frame_max} > {} max size",
            cfg.frame_max
        ))));
    }
    let channel_max = if tune_ok.channel_max == 0 {
        cfg.channel_max
    } else {
        tune_ok.channel_max
    };
    if channel_max > cfg.channel_max {
        return Err(Failed::Close(AmqpError::not_allowed(format!(
            "channel_max={channel_max} > {} max",
            cfg.channel_max
        ))));
    }
    let heartbeat = tune_ok.heartbeat;

    let open = match expect_method(reader, frame_max).await? {
        AMQPClass::Connection(connection::AMQPMethod::Open(o)) => o,
        _ => {
            return Err(Failed::Close(AmqpError::command_invalid(
                "expected connection.open",
            )));
        }
    };
    let vhost_name = open.virtual_host.as_str().to_owned();
    let Some(vhost) = state.vhosts.get(&vhost_name).map(|v| v.clone()) else {
        return Err(Failed::Close(AmqpError::not_allowed(format!(
            "vhost {vhost_name} not found"
        ))));
    };
    let Some(perms) = state
        .permissions
        .get(&(user.clone(), vhost_name.clone()))
        .map(|p| p.clone())
    else {
        return Err(Failed::Close(AmqpError::not_allowed(format!(
            "access to vhost '{vhost_name}' refused for user '{user}'"
        ))));
    };
    send(
        out,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await;
    Ok(Opened {
        user,
        vhost,
        perms,
        frame_max,
        channel_max,
        heartbeat,
        caps,
        client_name,
        client_properties,
    })
}
