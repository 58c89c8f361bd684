//! The `warren` binary's configuration: a TOML file given by `--config` / `WARREN_CONFIG`,
//! layered under environment variables and flags, and refused with a clear message (and a
//! non-zero exit) when it is missing, unparsable or has unknown keys.

mod common;

use common::process::{Process, free_port, run_to_exit};
use common::within;
use lapin::{Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::path::Path;

/// A config file that keeps the broker on loopback with no HTTP listeners, plus `extra`.
fn write_config(dir: &Path, extra: &str) -> String {
    let path = dir.join("warren.toml");
    let data = dir.join("data");
    std::fs::write(
        &path,
        format!(
            "bind = \"127.0.0.1\"\nhttp_port = 0\nmetrics_port = 0\ndata_dir = {:?}\n{extra}",
            data.display().to_string()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An AMQP client gets all the way through the handshake on `port`.
async fn speaks_amqp(port: u16) {
    let uri = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let conn = within(Connection::connect(&uri, ConnectionProperties::default()))
        .await
        .expect("AMQP handshake");
    within(conn.close(200, "bye".into())).await.unwrap();
}

#[tokio::test]
async fn the_broker_listens_where_the_config_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &format!("port = {port}\n"));
    let mut warren = Process::spawn(dir.path(), &["--config", &config], &[]);
    warren.wait_listening(addr(port)).await;
    speaks_amqp(port).await;
    assert!(
        dir.path().join("data").is_dir(),
        "data_dir from the file not used"
    );
    warren.stop().await;
}

#[tokio::test]
async fn environment_beats_the_file_and_flags_beat_both() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    assert!(file_port != env_port && env_port != flag_port && file_port != flag_port);
    let config = write_config(dir.path(), &format!("port = {file_port}\n"));
    let env_port_s = env_port.to_string();

    // WARREN_CONFIG names the file; WARREN_PORT overrides its port.
    let env = [
        ("WARREN_CONFIG", config.as_str()),
        ("WARREN_PORT", &env_port_s),
    ];
    let mut warren = Process::spawn(dir.path(), &[], &env);
    warren.wait_listening(addr(env_port)).await;
    speaks_amqp(env_port).await;
    assert!(
        tokio::net::TcpStream::connect(addr(file_port))
            .await
            .is_err()
    );
    warren.stop().await;

    let mut warren = Process::spawn(dir.path(), &["--port", &flag_port.to_string()], &env);
    warren.wait_listening(addr(flag_port)).await;
    speaks_amqp(flag_port).await;
    assert!(
        tokio::net::TcpStream::connect(addr(env_port))
            .await
            .is_err()
    );
    warren.stop().await;
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "prot = 5672\n");
    let (ok, out) = run_to_exit(dir.path(), &["--config", &config], &[]).await;
    assert!(!ok, "warren started with an unknown key:\n{out}");
    assert!(
        out.contains("invalid config file") && out.contains(&config),
        "{out}"
    );
    assert!(out.contains("unknown field `prot`"), "{out}");
}

#[tokio::test]
async fn an_unparsable_or_mistyped_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "port = \"not a number\"\n");
    let (ok, out) = run_to_exit(dir.path(), &["--config", &config], &[]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("invalid config file") && out.contains("port"),
        "{out}"
    );

    let config = write_config(dir.path(), "port = [\n");
    let (ok, out) = run_to_exit(dir.path(), &["--config", &config], &[]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("TOML parse error"), "{out}");
}

#[tokio::test]
async fn a_missing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml").display().to_string();
    let (ok, out) = run_to_exit(dir.path(), &[], &[("WARREN_CONFIG", &missing)]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("cannot read config file {missing}")),
        "{out}"
    );
}

#[tokio::test]
async fn help_lists_every_option_with_its_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = run_to_exit(dir.path(), &["--help"], &[]).await;
    assert!(ok, "{out}");
    for (flag, env) in [
        ("--config", "WARREN_CONFIG"),
        ("--port", "WARREN_PORT"),
        ("--http-port", "WARREN_HTTP_PORT"),
        ("--metrics-port", "WARREN_METRICS_PORT"),
        ("--tls-cert", "WARREN_TLS_CERT"),
        ("--tls-key", "WARREN_TLS_KEY"),
        ("--tls-ca", "WARREN_TLS_CA"),
        ("--tls-port", "WARREN_TLS_PORT"),
    ] {
        assert!(
            out.contains(flag) && out.contains(env),
            "{flag}/{env}:\n{out}"
        );
    }
    assert!(out.contains("[default: 5672]"), "{out}");
}
