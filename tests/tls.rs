//! AMQPS: a broker with `tls_cert`/`tls_key` (and optionally `tls_ca`) serves lapin over TLS
//! (rustls on the client side too), refuses clients that do not trust it or that it does not
//! trust, closes plain AMQP on the TLS port cleanly, and keeps serving everyone else meanwhile.
//!
//! Every certificate is generated here with rcgen; the broker runs in-process, so these tests
//! skip themselves against an external broker.

mod common;

use common::amqp::{self, Sub};
use common::{TestBroker, within};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, written to a
/// temp dir for the broker.
struct Pki {
    dir: tempfile::TempDir,
    /// The CA certificate, PEM.
    ca: String,
    client: Pem,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Pem {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn pki() -> Pki {
    let ca = ca("warren test CA");
    let server = leaf(&ca, "warren", ExtendedKeyUsagePurpose::ServerAuth);
    let client = leaf(&ca, "client", ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), &server.cert).unwrap();
    std::fs::write(dir.path().join("server.key"), &server.key).unwrap();
    Pki {
        dir,
        ca: ca.pem(),
        client,
    }
}

/// A broker with AMQPS on an ephemeral port; `None` against an external broker.
async fn start_tls(pki: &Pki, verify_clients: bool) -> Option<TestBroker> {
    if amqp::external() {
        return None;
    }
    let tb = common::start_with(|c| {
        c.tls_cert = Some(pki.path("server.pem"));
        c.tls_key = Some(pki.path("server.key"));
        c.tls_port = 0;
        if verify_clients {
            c.tls_ca = Some(pki.path("ca.pem"));
        }
    })
    .await;
    Some(tb)
}

fn amqps_uri(tb: &TestBroker) -> String {
    let addr = tb.broker().unwrap().tls_addr().expect("TLS listener");
    format!("amqps://guest:guest@{addr}/%2f")
}

/// Trusts `ca` and presents `identity`.
fn tls_config(ca: Option<&str>, identity: Option<&Pem>) -> OwnedTLSConfig {
    OwnedTLSConfig {
        cert_chain: ca.map(str::to_owned),
        identity: identity.map(|p| OwnedIdentity::PKCS8 {
            pem: p.cert.clone().into_bytes(),
            key: p.key.clone().into_bytes(),
        }),
    }
}

async fn connect_tls(uri: &str, config: OwnedTLSConfig) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime().expect("lapin runtime");
    within(Connection::connect_with_config(
        uri,
        ConnectionProperties::default(),
        config,
        runtime,
    ))
    .await
}

/// Publishes `bodies` with confirms and consumes them back on one connection.
async fn round_trip(conn: &Connection, queue: &str, bodies: &[Vec<u8>]) {
    let ch = within(conn.create_channel()).await.expect("channel");
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    amqp::declare(
        &ch,
        queue,
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    for body in bodies {
        let confirm = within(ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        ))
        .await
        .expect("publish");
        assert!(within(confirm).await.expect("confirm").is_ack());
    }
    let mut sub: Sub = amqp::consume_with(&ch, queue, "c", true, FieldTable::default()).await;
    for body in bodies {
        let d = sub.next().await;
        assert_eq!(d.data.len(), body.len());
        assert!(d.data == *body, "body of {} bytes differs", body.len());
    }
}

/// The TLS versions of the broker's live connections, in id order.
fn live_tls(tb: &TestBroker) -> Vec<Option<&'static str>> {
    let state = tb.broker().unwrap().state();
    let mut conns: Vec<_> = state
        .connections
        .iter()
        .map(|c| (*c.key(), c.tls))
        .collect();
    conns.sort();
    conns.into_iter().map(|(_, tls)| tls).collect()
}

/// GET from the broker's management API as guest.
async fn api_get(broker: &warren::Broker, path: &str) -> serde_json::Value {
    let url = format!("http://{}{path}", broker.http_addr().unwrap());
    let resp = within(
        reqwest::Client::new()
            .get(&url)
            .basic_auth("guest", Some("guest"))
            .send(),
    )
    .await
    .unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.unwrap()
}

#[tokio::test]
async fn publish_and_consume_over_tls() {
    let pki = pki();
    let Some(tb) = start_tls(&pki, false).await else {
        return;
    };
    let conn = connect_tls(&amqps_uri(&tb), tls_config(Some(&pki.ca), None))
        .await
        .expect("AMQPS connection with the CA trusted");
    // A body far above one TLS record and one frame: the split read/write halves must carry
    // it whole.
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    round_trip(&conn, "tls-q", &[b"hello over tls".to_vec(), big]).await;
    assert_eq!(live_tls(&tb), [Some("tlsv1.3")]);

    // The plain listener is unaffected and reports no TLS.
    let (plain, ch) = tb.channel().await;
    amqp::declare(
        &ch,
        "plain-q",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    assert_eq!(live_tls(&tb), [Some("tlsv1.3"), None]);

    // The management API tells the two apart as RabbitMQ does, by listener port and "ssl".
    let broker = tb.broker().unwrap();
    let conns = api_get(broker, "/api/connections").await;
    let mut seen: Vec<_> = conns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["ssl"].clone(),
                c["ssl_protocol"].clone(),
                c["port"].clone(),
            )
        })
        .collect();
    seen.sort_by_key(|s| s.0.as_bool());
    let tls_port = broker.tls_addr().unwrap().port();
    assert_eq!(
        seen,
        [
            (false.into(), serde_json::Value::Null, tb.addr.port().into()),
            (true.into(), "tlsv1.3".into(), tls_port.into()),
        ]
    );
    let overview = api_get(broker, "/api/overview").await;
    let listeners: Vec<_> = overview["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["protocol"].clone(), l["port"].clone()))
        .collect();
    assert_eq!(
        listeners,
        [
            ("amqp".into(), tb.addr.port().into()),
            ("amqp/ssl".into(), tls_port.into())
        ]
    );
    within(plain.close(200, "bye".into())).await.unwrap();
    within(conn.close(200, "bye".into())).await.unwrap();
    tb.stop().await;
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_is_refused_and_others_carry_on() {
    let pki = pki();
    let Some(tb) = start_tls(&pki, false).await else {
        return;
    };
    let uri = amqps_uri(&tb);
    // An established TLS connection must survive other clients' failed handshakes.
    let good = connect_tls(&uri, tls_config(Some(&pki.ca), None))
        .await
        .expect("trusted connection");

    // Neither the system roots nor an unrelated CA vouch for the broker's certificate.
    let err = connect_tls(&uri, tls_config(None, None))
        .await
        .expect_err("a client without the CA must not connect");
    assert!(
        format!("{err:?}").contains("UnknownIssuer"),
        "expected a certificate error, got {err:?}"
    );
    let stranger = ca("some other CA").pem();
    connect_tls(&uri, tls_config(Some(&stranger), None))
        .await
        .expect_err("a client trusting another CA must not connect");

    round_trip(&good, "still-fine", &[b"after".to_vec()]).await;
    let again = connect_tls(&uri, tls_config(Some(&pki.ca), None))
        .await
        .expect("new trusted connection after failed handshakes");
    round_trip(&again, "still-fine-2", &[b"again".to_vec()]).await;
    assert_eq!(live_tls(&tb), [Some("tlsv1.3"), Some("tlsv1.3")]);
    tb.stop().await;
}

#[tokio::test]
async fn plain_amqp_on_the_tls_port_fails_cleanly() {
    let pki = pki();
    let Some(tb) = start_tls(&pki, false).await else {
        return;
    };
    let tls_addr = tb.broker().unwrap().tls_addr().unwrap();

    // lapin speaking plain AMQP to the TLS port gets an error, not a hang (within() bounds it).
    let plain_uri = format!("amqp://guest:guest@{tls_addr}/%2f");
    within(Connection::connect(
        &plain_uri,
        ConnectionProperties::default(),
    ))
    .await
    .expect_err("plain AMQP on the AMQPS port must fail");

    // On the wire: the protocol header is answered with an orderly close (EOF, no reset).
    let mut raw = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    raw.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let mut buf = [0u8; 64];
    let n = within(raw.read(&mut buf))
        .await
        .expect("orderly close, not a reset");
    assert_eq!(n, 0, "expected EOF, got {:?}", &buf[..n]);

    // The TLS listener still works.
    let conn = connect_tls(&amqps_uri(&tb), tls_config(Some(&pki.ca), None))
        .await
        .expect("AMQPS after a plain client");
    round_trip(&conn, "after-plain", &[b"ok".to_vec()]).await;
    tb.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let pki = pki();
    let Some(tb) = start_tls(&pki, false).await else {
        return;
    };
    let tls_addr = tb.broker().unwrap().tls_addr().unwrap();
    let mut raw = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let mut buf = [0u8; 64];
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(30), raw.read(&mut buf))
        .await
        .expect("the broker must not wait forever for a ClientHello")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "closed too early"
    );
    tb.stop().await;
}

#[tokio::test]
async fn client_certificates_are_required_with_tls_ca() {
    let pki = pki();
    let Some(tb) = start_tls(&pki, true).await else {
        return;
    };
    let uri = amqps_uri(&tb);

    let err = connect_tls(&uri, tls_config(Some(&pki.ca), None))
        .await
        .expect_err("a client without a certificate must be refused");
    let stranger = ca("some other CA");
    let forged = leaf(&stranger, "client", ExtendedKeyUsagePurpose::ClientAuth);
    let err2 = connect_tls(&uri, tls_config(Some(&pki.ca), Some(&forged)))
        .await
        .expect_err("a client certificate from another CA must be refused");
    assert!(live_tls(&tb).is_empty(), "{err:?} / {err2:?}");

    let conn = connect_tls(&uri, tls_config(Some(&pki.ca), Some(&pki.client)))
        .await
        .expect("a client certificate signed by tls_ca is accepted");
    round_trip(&conn, "mtls", &[b"signed".to_vec()]).await;
    tb.stop().await;
}

#[tokio::test]
async fn bad_tls_files_stop_the_start() {
    if amqp::external() {
        return;
    }
    let pki = pki();
    let data = tempfile::tempdir().unwrap();
    let start = |adjust: &dyn Fn(&mut warren::Config)| {
        let mut config = warren::Config {
            bind: "127.0.0.1".into(),
            port: 0,
            tls_port: 0,
            data_dir: data.path().to_path_buf(),
            http_port: None,
            metrics_port: None,
            ..Default::default()
        };
        adjust(&mut config);
        warren::Broker::start(config)
    };
    let err = |res: std::io::Result<warren::Broker>| match res {
        Ok(_) => panic!("the broker started with bad TLS settings"),
        Err(e) => e.to_string(),
    };

    let e = err(start(&|c| c.tls_cert = Some(pki.path("server.pem"))).await);
    assert!(e.contains("tls_key"), "{e}");
    let e = err(start(&|c| {
        c.tls_cert = Some(pki.path("missing.pem"));
        c.tls_key = Some(pki.path("server.key"));
    })
    .await);
    assert!(e.contains("tls_cert") && e.contains("missing.pem"), "{e}");
    // A key that is not the certificate's.
    let e = err(start(&|c| {
        c.tls_cert = Some(pki.path("server.pem"));
        c.tls_key = Some(pki.path("ca.pem"));
    })
    .await);
    assert!(e.contains("tls_key"), "{e}");
    std::fs::write(pki.path("client.key"), &pki.client.key).unwrap();
    let e = err(start(&|c| {
        c.tls_cert = Some(pki.path("server.pem"));
        c.tls_key = Some(pki.path("client.key"));
    })
    .await);
    assert!(e.contains("tls_cert/tls_key"), "{e}");
    let e = err(start(&|c| {
        c.tls_cert = Some(pki.path("server.pem"));
        c.tls_key = Some(pki.path("server.key"));
        c.tls_ca = Some(pki.path("server.key"));
    })
    .await);
    assert!(e.contains("tls_ca"), "{e}");
}

#[tokio::test]
async fn the_binary_serves_amqps_from_its_config_file() {
    use common::process::{Process, free_port};
    let pki = pki();
    let tls_port = free_port();
    let config = pki.path("warren.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1\"\nport = {}\nhttp_port = 0\nmetrics_port = 0\n\
             data_dir = {:?}\ntls_port = {tls_port}\ntls_cert = {:?}\ntls_key = {:?}\n",
            free_port(),
            pki.path("data").display().to_string(),
            pki.path("server.pem").display().to_string(),
            pki.path("server.key").display().to_string(),
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut warren = Process::spawn(pki.dir.path(), &["--config", &config], &[]);
    warren
        .wait_listening(std::net::SocketAddr::from(([127, 0, 0, 1], tls_port)))
        .await;
    let uri = format!("amqps://guest:guest@127.0.0.1:{tls_port}/%2f");
    let conn = connect_tls(&uri, tls_config(Some(&pki.ca), None))
        .await
        .expect("AMQPS to the binary");
    round_trip(&conn, "from-binary", &[b"over tls".to_vec()]).await;
    within(conn.close(200, "bye".into())).await.unwrap();
    warren.stop().await;
    assert!(
        warren_output_mentions(&pki, "ready to accept AMQPS connections"),
        "no AMQPS listener in the log"
    );
}

fn warren_output_mentions(pki: &Pki, text: &str) -> bool {
    std::fs::read_to_string(pki.path("warren.out"))
        .unwrap_or_default()
        .contains(text)
}
