//! The broker binary hands memory back to the system once a burst is over.

mod common;

use common::process::{Process, free_port};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::{Duration, Instant};

const QUEUES: usize = 20_000;
const CHANNELS: usize = 4;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Declares queues `first`, `first + CHANNELS`, ... on one channel, with a 1 KiB message in
/// each, or deletes them again.
async fn burst(ch: Channel, first: usize, delete: bool) {
    let body = vec![b'x'; 1024];
    for i in (first..QUEUES).step_by(CHANNELS) {
        let name = format!("memory-burst-{i}");
        if delete {
            ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .unwrap();
            continue;
        }
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            name.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
}

/// Runs `burst` on `CHANNELS` channels at once.
async fn all(channels: &[Channel], delete: bool) {
    let tasks: Vec<_> = channels
        .iter()
        .enumerate()
        .map(|(i, ch)| tokio::spawn(burst(ch.clone(), i, delete)))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn memory_a_burst_used_is_given_back_once_it_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let mut warren = Process::spawn(
        dir.path(),
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--data-dir",
            data.to_str().unwrap(),
            "--http-port",
            "0",
            "--metrics-port",
            "0",
        ],
        &[],
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    warren.wait_listening(addr).await;
    let pid = warren.pid();
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .unwrap();
    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(conn.create_channel().await.unwrap());
    }
    let base = rss_kib(pid);

    all(&channels, false).await;
    let peak = rss_kib(pid);
    let grown = peak.saturating_sub(base);
    assert!(
        grown > 16 * 1024,
        "the burst should have taken some memory: {base} -> {peak} KiB"
    );
    all(&channels, true).await;

    // Idle runtime threads return freed pages within about a second; allow for a slow machine.
    // Without that, 30-60% of the growth stayed resident; with it, about 5%.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = rss_kib(pid);
    while now.saturating_sub(base) > grown / 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = rss_kib(pid);
    }
    assert!(
        now.saturating_sub(base) <= grown / 8,
        "RSS {base} KiB before the burst, {peak} KiB at its peak, still {now} KiB 10 s after it"
    );
    conn.close(200, "bye".into()).await.unwrap();
    warren.stop().await;
}
