//! Connection-level behaviour seen through lapin: authentication, vhost access, tuning, channel
//! lifecycle, channel.flow, per-method permissions and broker shutdown.
//!
//! Every expectation here was checked against RabbitMQ 3.10 (`WARREN_TEST_URI=...`). Tests that need
//! to create users or vhosts skip themselves against an external broker, unless
//! `WARREN_TEST_RABBITMQCTL` names a `rabbitmqctl` binary that can administer it.

mod common;

use amq_protocol::frame::{AMQPFrame, parse_frame};
use amq_protocol::protocol::{AMQPClass, connection as conn_methods};
use common::within;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::protocol::AMQPErrorKind;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, Event};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The AMQP reply code carried by a channel.close or connection.close the broker sent.
fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// The reply text of the broker's close, if the error is one.
fn reply_text(err: &lapin::Error) -> Option<String> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_message().as_str().to_owned()),
        _ => None,
    }
}

fn is_hard(err: &lapin::Error) -> bool {
    matches!(err.kind(), lapin::ErrorKind::ProtocolError(e) if matches!(e.kind(), AMQPErrorKind::Hard(_)))
}

/// Asserts `res` failed with the broker's `code` and exact `text`.
#[track_caller]
fn assert_amqp_err<T: std::fmt::Debug>(res: lapin::Result<T>, code: u16, text: &str) {
    let err = res.expect_err("expected the broker to refuse");
    assert_eq!(reply_code(&err), Some(code), "wrong reply code: {err}");
    assert_eq!(
        reply_text(&err).as_deref(),
        Some(text),
        "wrong reply text: {err}"
    );
}

/// A name unique to this test run, so tests can share an external broker.
fn uniq(base: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{base}-{}-{nanos}", std::process::id())
}

/// Administration of users/vhosts: the in-process broker, or `rabbitmqctl` for an external one.
enum Admin<'a> {
    Warren(&'a warren::Broker),
    Ctl(String),
}

impl Admin<'_> {
    fn ctl(bin: &str, args: &[&str]) {
        let out = std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("run rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn add_user(&self, name: &str, pass: &str) {
        match self {
            Admin::Warren(b) => b.add_user(name, pass, &[]),
            Admin::Ctl(bin) => Self::ctl(bin, &["add_user", name, pass]),
        }
    }

    fn add_vhost(&self, name: &str) {
        match self {
            Admin::Warren(b) => b.add_vhost(name),
            Admin::Ctl(bin) => Self::ctl(bin, &["add_vhost", name]),
        }
    }

    fn set_permissions(&self, user: &str, vhost: &str, conf: &str, write: &str, read: &str) {
        match self {
            Admin::Warren(b) => b
                .set_permissions(user, vhost, conf, write, read)
                .expect("set_permissions"),
            Admin::Ctl(bin) => Self::ctl(
                bin,
                &["set_permissions", "-p", vhost, user, conf, write, read],
            ),
        }
    }
}

/// `None` (and the test skips) when running against an external broker we cannot administer.
fn admin<'a>(tb: &'a common::TestBroker, test: &str) -> Option<Admin<'a>> {
    if let Some(b) = tb.broker() {
        return Some(Admin::Warren(b));
    }
    if let Ok(bin) = std::env::var("WARREN_TEST_RABBITMQCTL") {
        return Some(Admin::Ctl(bin));
    }
    eprintln!("{test}: skipped, needs broker internals (users/vhosts)");
    None
}

async fn connect_uri(uri: &str) -> lapin::Result<Connection> {
    within(Connection::connect(uri, ConnectionProperties::default())).await
}

/// A user with the given permission regexes on the default vhost, connected, with one channel.
async fn restricted_channel(
    tb: &common::TestBroker,
    admin: &Admin<'_>,
    user: &str,
    conf: &str,
    write: &str,
    read: &str,
) -> (Connection, Channel) {
    admin.add_user(user, "secret");
    admin.set_permissions(user, "/", conf, write, read);
    let conn = connect_uri(&tb.uri_for(user, "secret", "/"))
        .await
        .expect("restricted user connects");
    let ch = within(conn.create_channel()).await.expect("open channel");
    (conn, ch)
}

/// Declares a plain (non-durable, auto-delete) queue as guest so restricted users have a target.
async fn guest_queue(tb: &common::TestBroker, name: &str) -> Connection {
    let (conn, ch) = within(tb.channel()).await;
    within(ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("guest declares queue");
    conn
}

/// Polls a lapin stream (which we cannot name the `Stream` trait of) with a bounded wait.
macro_rules! next_within {
    ($spawned:expr) => {
        within(async {
            loop {
                match $spawned.poll_next() {
                    Poll::Ready(item) => break item,
                    Poll::Pending => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await
    };
}

async fn next_delivery(
    consumer: &mut tokio_test::task::Spawn<Consumer>,
) -> Option<lapin::Result<Delivery>> {
    next_within!(consumer)
}

/// Reads frames from a raw socket after sending the protocol header, returning connection.start.
async fn raw_connection_start(addr: std::net::SocketAddr) -> conn_methods::Start {
    within(async {
        let mut sock = tokio::net::TcpStream::connect(addr)
            .await
            .expect("tcp connect");
        sock.write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("send header");
        let mut header = [0u8; 7];
        sock.read_exact(&mut header).await.expect("frame header");
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        let mut frame = header.to_vec();
        frame.resize(7 + size + 1, 0);
        sock.read_exact(&mut frame[7..])
            .await
            .expect("frame payload");
        let (_, parsed) = parse_frame(frame.as_slice()).expect("valid frame");
        match parsed {
            AMQPFrame::Method(0, AMQPClass::Connection(conn_methods::AMQPMethod::Start(start))) => {
                start
            }
            other => panic!("expected connection.start, got {other:?}"),
        }
    })
    .await
}

fn long_string(table: &FieldTable, key: &str) -> String {
    match table.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("server property {key}: expected a longstr, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication and vhost access
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connect_as_guest() {
    let tb = common::start().await;
    let conn = within(tb.connect()).await;
    assert!(conn.status().connected());
    assert_eq!(conn.status().username(), "guest");
    let ch = within(conn.create_channel()).await.expect("channel");
    assert!(ch.status().connected());
    within(conn.close(200, "bye".into()))
        .await
        .expect("clean close");
    tb.stop().await;
}

const LOGIN_REFUSED: &str = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.";

#[tokio::test]
async fn wrong_password_is_access_refused() {
    let tb = common::start().await;
    let res = connect_uri(&tb.uri_for("guest", "not-the-password", "/")).await;
    assert_amqp_err(res, 403, LOGIN_REFUSED);
    tb.stop().await;
}

#[tokio::test]
async fn unknown_user_is_access_refused() {
    let tb = common::start().await;
    let user = uniq("nobody");
    let res = connect_uri(&tb.uri_for(&user, "whatever", "/")).await;
    assert_amqp_err(res, 403, LOGIN_REFUSED);
    tb.stop().await;
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let tb = common::start().await;
    let vhost = uniq("no-such-vhost");
    let res = connect_uri(&tb.uri_for("guest", "guest", &vhost)).await;
    assert_amqp_err(res, 530, &format!("NOT_ALLOWED - vhost {vhost} not found"));
    tb.stop().await;
}

#[tokio::test]
async fn user_without_permissions_is_not_allowed() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "user_without_permissions_is_not_allowed") else {
        return;
    };
    let user = uniq("noperms");
    admin.add_user(&user, "secret");
    let res = connect_uri(&tb.uri_for(&user, "secret", "/")).await;
    assert_amqp_err(
        res,
        530,
        &format!("NOT_ALLOWED - access to vhost '/' refused for user '{user}'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn new_user_on_new_vhost_can_connect_and_work() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "new_user_on_new_vhost_can_connect_and_work") else {
        return;
    };
    let user = uniq("vhuser");
    let vhost = uniq("vh");
    admin.add_vhost(&vhost);
    admin.add_user(&user, "s3cret");
    admin.set_permissions(&user, &vhost, ".*", ".*", ".*");
    let conn = connect_uri(&tb.uri_for(&user, "s3cret", &vhost))
        .await
        .expect("user connects to its vhost");
    assert_eq!(conn.status().vhost().as_str(), vhost);
    let ch = within(conn.create_channel()).await.expect("channel");
    within(ch.queue_declare(
        "q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("declare in new vhost");
    within(ch.basic_publish(
        "".into(),
        "q".into(),
        BasicPublishOptions::default(),
        b"hi",
        BasicProperties::default(),
    ))
    .await
    .expect("publish");
    let got = within(ch.basic_get("q".into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get")
        .expect("message routed in the new vhost");
    assert_eq!(got.delivery.data, b"hi");

    // The same queue name does not exist in the default vhost: vhosts are isolated.
    let (_c2, ch2) = within(tb.channel()).await;
    let res = within(ch2.queue_declare(
        "q".into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await;
    assert_amqp_err(res, 404, "NOT_FOUND - no queue 'q' in vhost '/'");

    // The user has no access to the default vhost.
    let res = connect_uri(&tb.uri_for(&user, "s3cret", "/")).await;
    assert_amqp_err(
        res,
        530,
        &format!("NOT_ALLOWED - access to vhost '/' refused for user '{user}'"),
    );
    tb.stop().await;
}

/// `loopback_users` restricts users to loopback connections; connecting from 127.0.0.1 is allowed.
/// A refused non-loopback login cannot be exercised here (tests only have 127.0.0.1).
#[tokio::test]
async fn loopback_user_can_connect_from_loopback() {
    let tb = common::start_with(|c| c.loopback_users.push("lb".into())).await;
    let Some(b) = tb.broker() else {
        eprintln!("loopback_user_can_connect_from_loopback: skipped, needs broker config");
        return;
    };
    b.add_user("lb", "lbpass", &[]);
    b.set_permissions("lb", "/", ".*", ".*", ".*")
        .expect("set_permissions");
    let conn = connect_uri(&tb.uri_for("lb", "lbpass", "/"))
        .await
        .expect("loopback user connects from 127.0.0.1");
    within(conn.create_channel()).await.expect("channel");
    // guest is in loopback_users by default and also connects from loopback.
    within(tb.connect()).await;
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// connection.start / tune
// ---------------------------------------------------------------------------------------------

/// lapin does not expose the server properties, so connection.start is read off a raw socket.
#[tokio::test]
async fn server_properties_advertise_capabilities() {
    let tb = common::start().await;
    let start = raw_connection_start(tb.addr).await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let props = &start.server_properties;
    assert!(!long_string(props, "product").is_empty());
    assert!(!long_string(props, "version").is_empty());
    let Some(AMQPValue::FieldTable(caps)) = props.inner().get("capabilities") else {
        panic!("no capabilities table in {props:?}");
    };
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
        assert_eq!(
            caps.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "capability {cap} in {caps:?}"
        );
    }
    let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
    assert!(
        mechanisms.split(' ').any(|m| m == "PLAIN"),
        "mechanisms: {mechanisms}"
    );
    let locales = String::from_utf8_lossy(start.locales.as_bytes()).into_owned();
    assert!(
        locales.split(' ').any(|l| l == "en_US"),
        "locales: {locales}"
    );
    tb.stop().await;
}

#[tokio::test]
async fn tune_defaults_match_rabbitmq() {
    let tb = common::start().await;
    let conn = within(tb.connect()).await;
    let cfg = conn.configuration();
    assert_eq!(cfg.channel_max(), 2047);
    assert_eq!(cfg.frame_max(), 131_072);
    assert_eq!(cfg.heartbeat(), 60);
    tb.stop().await;
}

#[tokio::test]
async fn tune_uses_configured_limits() {
    let tb = common::start_with(|c| {
        c.heartbeat = 15;
        c.frame_max = 65_536;
        c.channel_max = 64;
    })
    .await;
    if tb.broker().is_none() {
        eprintln!("tune_uses_configured_limits: skipped, needs broker config");
        return;
    }
    let conn = within(tb.connect()).await;
    let cfg = conn.configuration();
    assert_eq!(cfg.channel_max(), 64);
    assert_eq!(cfg.frame_max(), 65_536);
    assert_eq!(cfg.heartbeat(), 15);
    tb.stop().await;
}

/// The client asks for smaller limits in tune-ok; the broker must honour the smaller frame_max when
/// it sends a body larger than one frame.
#[tokio::test]
async fn tune_client_lower_limits_are_honoured() {
    let tb = common::start().await;
    let uri = format!("{}?heartbeat=5&frame_max=4096&channel_max=16", tb.uri);
    let conn = connect_uri(&uri).await.expect("connect with lower limits");
    let cfg = conn.configuration();
    assert_eq!(
        (cfg.channel_max(), cfg.frame_max(), cfg.heartbeat()),
        (16, 4096, 5)
    );
    let ch = within(conn.create_channel()).await.expect("channel");
    let q = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("declare");
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    within(ch.basic_publish(
        "".into(),
        q.name().clone(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default(),
    ))
    .await
    .expect("publish multi-frame body");
    let got = within(ch.basic_get(q.name().clone(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get")
        .expect("message");
    assert_eq!(got.delivery.data, body);
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Channel lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn many_channels_open_and_close() {
    let tb = common::start().await;
    let conn = within(tb.connect()).await;
    let mut channels = Vec::new();
    for _ in 0..200 {
        let ch = within(conn.create_channel()).await.expect("open channel");
        within(ch.basic_qos(10, BasicQosOptions::default()))
            .await
            .expect("qos");
        channels.push(ch);
    }
    let mut ids: Vec<u16> = channels.iter().map(|c| c.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    for ch in &channels {
        within(ch.close(200, "done".into()))
            .await
            .expect("close channel");
        assert!(!ch.status().connected());
    }
    let ch = within(conn.create_channel())
        .await
        .expect("channel after closing 200");
    within(ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .expect("usable");
    assert!(conn.status().connected());
    tb.stop().await;
}

/// With channel_max=1 lapin must reuse channel number 1 after closing it.
#[tokio::test]
async fn channel_number_reused_after_close() {
    let tb = common::start().await;
    let conn = connect_uri(&format!("{}?channel_max=1", tb.uri))
        .await
        .expect("connect");
    let q = uniq("reuse");
    let ch = within(conn.create_channel()).await.expect("first channel");
    assert_eq!(ch.id(), 1);
    within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("declare");
    within(ch.close(200, "bye".into())).await.expect("close");
    // lapin forgets the closed channel asynchronously after close-ok; retry until it has.
    let ch = within(async {
        loop {
            match conn.create_channel().await {
                Ok(ch) => break ch,
                Err(e) if matches!(e.kind(), lapin::ErrorKind::ChannelsLimitReached) => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => panic!("reopen channel 1: {e}"),
            }
        }
    })
    .await;
    assert_eq!(ch.id(), 1);
    let declared = within(ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("reused channel works");
    assert_eq!(declared.message_count(), 0);
    within(ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
        .await
        .expect("delete");
    tb.stop().await;
}

#[tokio::test]
async fn client_connection_close_is_clean() {
    let tb = common::start().await;
    let conn = within(tb.connect()).await;
    let ch = within(conn.create_channel()).await.expect("channel");
    within(conn.close(200, "normal shutdown".into()))
        .await
        .expect("close-ok received");
    assert!(conn.status().closed(), "status: {:?}", conn.status());
    assert!(!ch.status().connected());
    assert!(within(conn.create_channel()).await.is_err());
    // The broker keeps accepting new connections.
    let again = within(tb.connect()).await;
    within(again.create_channel())
        .await
        .expect("new connection works");
    tb.stop().await;
}

#[tokio::test]
async fn soft_error_leaves_connection_usable() {
    let tb = common::start().await;
    let (conn, ch) = within(tb.channel()).await;
    let missing = uniq("missing");
    let res = within(ch.queue_declare(
        missing.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await;
    let err = res
        .as_ref()
        .expect_err("passive declare of a missing queue")
        .clone();
    assert!(!is_hard(&err));
    assert_amqp_err(
        res,
        404,
        &format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
    );
    assert!(!ch.status().connected(), "the erroring channel is closed");
    assert!(
        conn.status().connected(),
        "the connection survives a soft error"
    );
    let ch2 = within(conn.create_channel())
        .await
        .expect("another channel");
    within(ch2.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("new channel works");
    tb.stop().await;
}

#[tokio::test]
async fn channel_flow_active_true_is_acknowledged() {
    let tb = common::start().await;
    let (conn, ch) = within(tb.channel()).await;
    let active = within(ch.channel_flow(ChannelFlowOptions { active: true }))
        .await
        .expect("flow-ok");
    assert!(active);
    within(ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .expect("channel still usable");
    assert!(conn.status().connected());
    tb.stop().await;
}

/// channel.flow(active=false) pauses deliveries to the channel's consumers until flow is
/// re-enabled. RabbitMQ documents active=false as unsupported (it closes the connection with 540
/// "NOT_IMPLEMENTED - active=false"); Warren implements what the spec describes, so this test
/// only runs in-process.
#[tokio::test]
async fn channel_flow_pauses_and_resumes_deliveries() {
    let tb = common::start().await;
    if tb.broker().is_none() {
        eprintln!("skipped: RabbitMQ refuses channel.flow(active=false) by design");
        return;
    }
    let q = uniq("flow");
    let _owner = guest_queue(&tb, &q).await;
    let (_conn, ch) = within(tb.channel()).await;
    let active = within(ch.channel_flow(ChannelFlowOptions { active: false }))
        .await
        .expect("flow-ok");
    assert!(!active);
    let consumer = within(ch.basic_consume(
        q.as_str().into(),
        "flow-consumer".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("consume");
    let mut consumer = tokio_test::task::spawn(consumer);
    within(ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"paused",
        BasicProperties::default(),
    ))
    .await
    .expect("publish");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        matches!(consumer.poll_next(), Poll::Pending),
        "delivery arrived while flow was off"
    );
    let active = within(ch.channel_flow(ChannelFlowOptions { active: true }))
        .await
        .expect("flow-ok");
    assert!(active);
    let delivery = next_delivery(&mut consumer)
        .await
        .expect("stream open")
        .expect("delivery");
    assert_eq!(delivery.data, b"paused");
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Permissions, one method at a time
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn queue_declare_requires_configure() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "queue_declare_requires_configure") else {
        return;
    };
    let user = uniq("p-conf");
    let (_conn, ch) = restricted_channel(&tb, &admin, &user, "^allowed-.*", ".*", ".*").await;
    let ok = uniq("allowed-q");
    within(ch.queue_declare(
        ok.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("configure matches");
    let denied = uniq("denied-q");
    let res = within(ch.queue_declare(
        denied.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_amqp_err(
        res,
        403,
        &format!(
            "ACCESS_REFUSED - access to queue '{denied}' in vhost '/' refused for user '{user}'"
        ),
    );
    tb.stop().await;
}

#[tokio::test]
async fn exchange_declare_requires_configure() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "exchange_declare_requires_configure") else {
        return;
    };
    let user = uniq("p-xconf");
    let (_conn, ch) = restricted_channel(&tb, &admin, &user, "^$", ".*", ".*").await;
    let ex = uniq("denied-x");
    let res = within(ch.exchange_declare(
        ex.as_str().into(),
        lapin::ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await;
    assert_amqp_err(
        res,
        403,
        &format!(
            "ACCESS_REFUSED - access to exchange '{ex}' in vhost '/' refused for user '{user}'"
        ),
    );
    tb.stop().await;
}

#[tokio::test]
async fn publish_requires_write_on_exchange() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "publish_requires_write_on_exchange") else {
        return;
    };
    let user = uniq("p-write");
    let (_conn, ch) = restricted_channel(&tb, &admin, &user, ".*", "^$", ".*").await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm mode");
    let confirm = within(ch.basic_publish(
        "amq.direct".into(),
        "rk".into(),
        BasicPublishOptions::default(),
        b"nope",
        BasicProperties::default(),
    ))
    .await
    .expect("publish frames sent");
    let res = within(confirm).await;
    assert_amqp_err(
        res,
        403,
        &format!(
            "ACCESS_REFUSED - access to exchange 'amq.direct' in vhost '/' refused for user '{user}'"
        ),
    );
    tb.stop().await;
}

#[tokio::test]
async fn consume_requires_read_on_queue() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "consume_requires_read_on_queue") else {
        return;
    };
    let q = uniq("p-read-consume");
    let _guest = guest_queue(&tb, &q).await;
    let user = uniq("p-read");
    let (_conn, ch) = restricted_channel(&tb, &admin, &user, ".*", ".*", "^$").await;
    let res = within(ch.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_amqp_err(
        res,
        403,
        &format!("ACCESS_REFUSED - access to queue '{q}' in vhost '/' refused for user '{user}'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn get_requires_read_on_queue() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "get_requires_read_on_queue") else {
        return;
    };
    let q = uniq("p-read-get");
    let _guest = guest_queue(&tb, &q).await;
    let user = uniq("p-readget");
    let (_conn, ch) = restricted_channel(&tb, &admin, &user, ".*", ".*", "^$").await;
    let res = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default())).await;
    assert_amqp_err(
        res,
        403,
        &format!("ACCESS_REFUSED - access to queue '{q}' in vhost '/' refused for user '{user}'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn queue_bind_requires_write_on_queue() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "queue_bind_requires_write_on_queue") else {
        return;
    };
    let q = uniq("p-bind-w");
    let _guest = guest_queue(&tb, &q).await;
    let user = uniq("p-bindw");
    let (_conn, ch) = restricted_channel(&tb, &admin, &user, ".*", "^$", ".*").await;
    let res = within(ch.queue_bind(
        q.as_str().into(),
        "amq.direct".into(),
        "rk".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_amqp_err(
        res,
        403,
        &format!("ACCESS_REFUSED - access to queue '{q}' in vhost '/' refused for user '{user}'"),
    );
    tb.stop().await;
}

#[tokio::test]
async fn queue_bind_requires_read_on_exchange() {
    let tb = common::start().await;
    let Some(admin) = admin(&tb, "queue_bind_requires_read_on_exchange") else {
        return;
    };
    let q = uniq("p-bind-r");
    let _guest = guest_queue(&tb, &q).await;
    let user = uniq("p-bindr");
    let (_conn, ch) = restricted_channel(&tb, &admin, &user, ".*", ".*", "^p-bind-r.*").await;
    let res = within(ch.queue_bind(
        q.as_str().into(),
        "amq.direct".into(),
        "rk".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_amqp_err(
        res,
        403,
        &format!(
            "ACCESS_REFUSED - access to exchange 'amq.direct' in vhost '/' refused for user '{user}'"
        ),
    );
    tb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Broker shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_closes_connections_with_connection_forced() {
    let tb = common::start().await;
    if tb.broker().is_none() {
        eprintln!(
            "shutdown_closes_connections_with_connection_forced: skipped, cannot stop an external broker"
        );
        return;
    }
    let (conn, ch) = within(tb.channel()).await;
    let mut events = tokio_test::task::spawn(conn.events_listener());
    let q = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("declare");
    let consumer = within(ch.basic_consume(
        q.name().clone(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("consume");
    let mut consumer = tokio_test::task::spawn(consumer);

    within(tb.stop()).await;

    let err = loop {
        match next_within!(events) {
            Some(Event::Error(e)) => break e,
            Some(_) => continue,
            None => panic!("events ended without an error"),
        }
    };
    assert_eq!(reply_code(&err), Some(320), "{err}");
    assert_eq!(
        reply_text(&err).as_deref(),
        Some("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
    );
    assert!(is_hard(&err));
    let delivery_err = next_delivery(&mut consumer)
        .await
        .expect("consumer sees the close")
        .expect_err("consumer gets the connection error");
    assert_eq!(reply_code(&delivery_err), Some(320), "{delivery_err}");
    assert!(conn.status().errored(), "status: {:?}", conn.status());
}
