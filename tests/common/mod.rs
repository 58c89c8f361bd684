//! Shared harness: every test starts its own broker in-process on 127.0.0.1:0 with a temp data dir.
//!
//! Setting `WARREN_TEST_URI` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`) runs the suite against an
//! external broker instead, which is how expectations are checked against a real RabbitMQ. Tests that
//! need broker internals (adding users, vhosts) call [`TestBroker::broker`] and skip when it is `None`.
#![allow(dead_code)]

pub mod amqp;
pub mod http;
pub mod process;

use lapin::{Channel, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::time::Duration;

pub struct TestBroker {
    broker: Option<warren::Broker>,
    /// Host:port of the AMQP listener.
    pub addr: SocketAddr,
    /// URI for guest on the default vhost.
    pub uri: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestBroker {
    /// The in-process broker, or `None` when running against an external broker.
    pub fn broker(&self) -> Option<&warren::Broker> {
        self.broker.as_ref()
    }

    /// URI for another user / vhost on this broker (vhost is percent-encoded here).
    pub fn uri_for(&self, user: &str, pass: &str, vhost: &str) -> String {
        let vhost = vhost.replace('%', "%25").replace('/', "%2f");
        format!("amqp://{user}:{pass}@{}/{vhost}", self.addr)
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.uri, ConnectionProperties::default())
            .await
            .expect("connect to test broker")
    }

    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.expect("open channel");
        (conn, ch)
    }

    pub async fn stop(self) {
        if let Some(b) = self.broker {
            b.shutdown().await;
        }
    }
}

pub async fn start() -> TestBroker {
    start_with(|_| {}).await
}

/// Starts a broker after letting the test adjust its config.
pub async fn start_with(adjust: impl FnOnce(&mut warren::Config)) -> TestBroker {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    if let Ok(uri) = std::env::var("WARREN_TEST_URI") {
        let hostport = uri
            .split('@')
            .nth(1)
            .and_then(|s| s.split('/').next())
            .expect("WARREN_TEST_URI like amqp://u:p@host:port/vhost");
        let addr = tokio::net::lookup_host(hostport)
            .await
            .expect("resolve")
            .next()
            .expect("address");
        return TestBroker {
            broker: None,
            addr,
            uri,
            _dir: None,
        };
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = warren::Config {
        bind: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.path().to_path_buf(),
        http_bind: "127.0.0.1".into(),
        http_port: Some(0),
        metrics_port: Some(0),
        ..Default::default()
    };
    adjust(&mut config);
    let broker = warren::Broker::start(config).await.expect("broker starts");
    let addr = broker.local_addr();
    TestBroker {
        uri: format!("amqp://guest:guest@{addr}/%2f"),
        addr,
        broker: Some(broker),
        _dir: Some(dir),
    }
}

/// Bounded wait so a broken broker fails a test instead of hanging it.
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out after 10s")
}

/// How many times each body occurs in the records of every segment file under `data`.
pub fn segment_bodies(data: &std::path::Path) -> std::collections::HashMap<Vec<u8>, usize> {
    use warren::store::segment::{HEADER_LEN, RECORD_OVERHEAD, Scan, decode_payload, scan};
    let mut found = std::collections::HashMap::new();
    for q in std::fs::read_dir(data.join("queues"))
        .expect("queues dir")
        .flatten()
    {
        for f in std::fs::read_dir(q.path()).expect("queue dir").flatten() {
            if f.path().extension().is_none_or(|e| e != "seg") {
                continue;
            }
            let bytes = std::fs::read(f.path()).expect("read segment");
            let mut off = HEADER_LEN;
            while off < bytes.len() {
                let Scan::Record(len) = scan(&bytes[off..], 1 << 30) else {
                    break;
                };
                let rec = decode_payload(&bytes[off + RECORD_OVERHEAD..off + len]).expect("record");
                *found.entry(rec.body.to_vec()).or_insert(0) += 1;
                off += len;
            }
        }
    }
    found
}
