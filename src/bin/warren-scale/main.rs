//! `warren-scale`: how much a broker pays for idle connections, idle queues and idle consumers,
//! and whether it still works once it holds many of them. Usable against any AMQP 0-9-1 broker.
//!
//! Steps, each followed by a pause (`--settle`) and a sample of the broker's `VmRSS`, CPU time
//! and open file descriptors (`/proc/PID/...`, given `--broker-pid`):
//! 1. `--connections N` idle connections (handshake, one open channel, heartbeats off);
//! 2. `--queues M` idle queues, declared over `--declare-conns` connections with
//!    `--declare-channels` channels each, pipelined (`--window` declarations in flight per
//!    connection; `--nowait` sends them with no-wait and checks each channel with a barrier);
//! 3. `--consumers K` consumers, one on each of the first K queues, over `--consumer-conns`
//!    connections;
//! 4. checks: a passive declare on the first, middle and last idle connection, a publish ->
//!    consume -> ack round trip through consumer 0, a publish -> basic.get round trip on the last
//!    queue;
//! 5. cleanup (unless `--keep`): queues deleted, every connection closed, a last RSS sample.
//!
//! Memory per idle connection / queue / consumer is the RSS growth of the step divided by the
//! count. The tool raises its own `RLIMIT_NOFILE` to the hard limit (and tries to raise the hard
//! limit when that is not enough). Results go to stderr as text and, with `--json`, to stdout as
//! one JSON line.

mod client;

use amq_protocol::protocol::{AMQPClass, basic, queue};
use amq_protocol::types::FieldTable;
use clap::Parser;
use client::{Conn, Frame, Result, Uri, close_error};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Idle connections, queues and consumers at scale: broker memory per item, and a liveness check.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// Broker URI.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// Broker process id, for RSS / CPU / fd samples.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Idle connections to open.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    connections: usize,
    /// Channels opened on each idle connection (0 = none).
    #[arg(long, default_value_t = 1)]
    idle_channels: u16,
    /// Idle queues to declare.
    #[arg(long, short = 'm', default_value_t = 100_000)]
    queues: usize,
    /// Consumers (one per queue, on the first K queues).
    #[arg(long, short = 'k', default_value_t = 1_000)]
    consumers: usize,
    /// Queue names: PREFIX-q-I; consumer tags PREFIX-c-I.
    #[arg(long, default_value = "warren-scale")]
    prefix: String,
    /// Declare queues durable.
    #[arg(long)]
    durable: bool,
    /// Connections the queues are declared (and deleted) over.
    #[arg(long, default_value_t = 4)]
    declare_conns: usize,
    /// Channels per declaring connection (declarations go round robin over them).
    #[arg(long, default_value_t = 1)]
    declare_channels: u16,
    /// Declarations (or deletes, consumes) in flight per connection.
    #[arg(long, default_value_t = 1000)]
    window: usize,
    /// Declare with no-wait (a qos barrier per channel checks that all went through).
    #[arg(long)]
    nowait: bool,
    /// Connections the consumers are spread over.
    #[arg(long, default_value_t = 10)]
    consumer_conns: usize,
    /// Concurrent connection handshakes.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Seconds to wait after each step before sampling the broker.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Leave queues and connections as they are at the end (the process still exits).
    #[arg(long)]
    keep: bool,
    /// Only delete queues PREFIX-q-0 .. PREFIX-q-(M-1) (after an interrupted run); brokers that
    /// answer a delete of a missing queue with delete-ok (RabbitMQ) only.
    #[arg(long)]
    cleanup_only: bool,
    /// Send the channel.opens in the same write as connection.open instead of after open-ok
    /// (checks that the broker serves frames that arrive with the last handshake frame).
    #[arg(long)]
    pipeline_open: bool,
    /// Print one JSON line with the results on stdout.
    #[arg(long)]
    json: bool,
    /// Label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

/// One sample of a process.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rss_kib: u64,
    cpu_s: f64,
    fds: u64,
}

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn sample(pid: &str) -> Sample {
    Sample {
        rss_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        cpu_s: cpu_seconds(pid).unwrap_or(0.0),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64),
    }
}

/// Raises this process's open-file limit so it can hold `need` descriptors.
fn raise_nofile(need: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_max < need {
            // Needs CAP_SYS_RESOURCE; harmless when refused.
            let more = libc::rlimit {
                rlim_cur: need,
                rlim_max: need,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &more) == 0 {
                return need;
            }
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

/// Sends `count` methods built by `make(i)` on channels 1..=channels round robin, at most
/// `window` in flight, and counts replies for which `is_ok` holds. With `nowait`, nothing is
/// awaited per method; a basic.qos per channel at the end acts as a barrier.
async fn pipeline(
    conn: &mut Conn,
    channels: u16,
    count: usize,
    window: usize,
    nowait: bool,
    mut make: impl FnMut(usize) -> AMQPClass,
    is_ok: fn(&AMQPClass) -> bool,
) -> Result<()> {
    let window = window.max(1);
    let mut sent = 0usize;
    let mut acked = 0usize;
    let expected = if nowait { channels as usize } else { count };
    while acked < expected {
        while sent < count && (nowait || sent - acked < window) {
            conn.queue(1 + (sent % channels as usize) as u16, make(sent));
            sent += 1;
            if nowait && conn.wbuf.len() >= 256 * 1024 {
                conn.flush().await?;
            }
        }
        if nowait && sent == count && acked == 0 {
            for ch in 1..=channels {
                conn.queue(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                        prefetch_count: 0,
                        global: false,
                    })),
                );
            }
        }
        conn.flush().await?;
        // Read until the window is half empty (or everything is answered).
        loop {
            match conn.recv().await? {
                Frame::Method(_, m) => {
                    if let Some(e) = close_error(&m) {
                        return Err(e);
                    }
                    let ok = if nowait {
                        matches!(m, AMQPClass::Basic(basic::AMQPMethod::QosOk(_)))
                    } else {
                        is_ok(&m)
                    };
                    if ok {
                        acked += 1;
                    } else {
                        return Err(format!("unexpected reply {m:?}").into());
                    }
                }
                _ => continue,
            }
            if acked == expected || (!nowait && sent < count && sent - acked <= window / 2) {
                break;
            }
        }
    }
    Ok(())
}

fn queue_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-q-{i}")
}

/// Opens `n` connections with `channels` channels each, `concurrency` handshakes at a time.
/// Returns the connections opened (in index order, failures left out) and the errors.
async fn open_many(
    uri: &Uri,
    n: usize,
    channels: u16,
    concurrency: usize,
    name: &str,
) -> (Vec<Conn>, Vec<String>) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let sem = sem.clone();
        let uri = uri.clone();
        let cname = format!("{name}-{i}");
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            (i, Conn::open(&uri, &cname, channels).await)
        });
    }
    let mut slots: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((i, Ok(c))) => slots[i] = Some(c),
            Ok((i, Err(e))) => errors.push(format!("connection {i}: {e}")),
            Err(e) => errors.push(format!("task: {e}")),
        }
    }
    (slots.into_iter().flatten().collect(), errors)
}

/// Closes connections concurrently; returns how many did not close cleanly.
async fn close_many(conns: Vec<Conn>) -> usize {
    let mut set = JoinSet::new();
    let sem = Arc::new(Semaphore::new(1024));
    for c in conns {
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            c.close(Duration::from_secs(10)).await.is_err()
        });
    }
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        if !matches!(r, Ok(false)) {
            failed += 1;
        }
    }
    failed
}

/// Runs `make` over indices `0..count` split evenly across `conns`, in parallel.
async fn spread(
    conns: &mut [Conn],
    channels: u16,
    count: usize,
    window: usize,
    nowait: bool,
    make: impl Fn(usize) -> AMQPClass + Clone,
    is_ok: fn(&AMQPClass) -> bool,
) -> Result<()> {
    let per = count.div_ceil(conns.len().max(1));
    let mut futs = Vec::new();
    for (ci, conn) in conns.iter_mut().enumerate() {
        let start = ci * per;
        let end = ((ci + 1) * per).min(count);
        if start >= end {
            continue;
        }
        let make = make.clone();
        futs.push(pipeline(
            conn,
            channels,
            end - start,
            window,
            nowait,
            move |i| make(start + i),
            is_ok,
        ));
    }
    for r in join_all(futs).await {
        r?;
    }
    Ok(())
}

/// Polls a set of futures to completion concurrently on the current task.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..futs.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Measures broker growth across steps.
struct Meter {
    pid: Option<String>,
    settle: Duration,
    last: Sample,
    steps: Vec<Value>,
}

impl Meter {
    async fn sample(&self) -> Sample {
        tokio::time::sleep(self.settle).await;
        self.pid.as_deref().map(sample).unwrap_or_default()
    }

    /// Records a step of `count` items that took `took`, sampling after the settle pause.
    async fn step(&mut self, name: &str, unit: &str, count: usize, took: Duration) -> Sample {
        let s = self.sample().await;
        let delta_kib = s.rss_kib as i64 - self.last.rss_kib as i64;
        let per_item = if count > 0 {
            delta_kib as f64 * 1024.0 / count as f64
        } else {
            0.0
        };
        let cpu = s.cpu_s - self.last.cpu_s;
        let rate = count as f64 / took.as_secs_f64().max(1e-9);
        if self.pid.is_some() {
            eprintln!(
                "{name:>12}: {count:>7} {unit} in {:>6.2} s ({rate:>8.0}/s); broker RSS {:>8.1} -> {:>8.1} MiB ({:+.1} MiB, {:.2} KiB per {}), CPU {:.2} s, fds {}",
                took.as_secs_f64(),
                self.last.rss_kib as f64 / 1024.0,
                s.rss_kib as f64 / 1024.0,
                delta_kib as f64 / 1024.0,
                per_item / 1024.0,
                unit.trim_end_matches('s'),
                cpu,
                s.fds
            );
        } else {
            eprintln!(
                "{name:>12}: {count:>7} {unit} in {:>6.2} s ({rate:>8.0}/s)",
                took.as_secs_f64()
            );
        }
        self.steps.push(json!({
            "step": name,
            "count": count,
            "seconds": took.as_secs_f64(),
            "rate": rate,
            "rss_before_kib": self.last.rss_kib,
            "rss_after_kib": s.rss_kib,
            "bytes_per_item": per_item,
            "broker_cpu_s": cpu,
            "broker_fds": s.fds,
        }));
        self.last = s;
        s
    }
}

fn publish(conn: &mut Conn, queue: &str, body: &[u8]) {
    conn.queue(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: queue.into(),
            mandatory: false,
            immediate: false,
        })),
    );
    // Properties: no flags set.
    warren::protocol::codec::encode_content(&mut conn.wbuf, 1, &[0, 0], body, 131_072);
}

/// Reads frames until a complete delivery (deliver or get-ok, header, body) arrives on `conn`;
/// returns its delivery tag and body.
async fn recv_delivery(conn: &mut Conn) -> Result<(u64, Vec<u8>)> {
    let tag = loop {
        match conn.recv().await? {
            Frame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                break d.delivery_tag;
            }
            Frame::Method(_, AMQPClass::Basic(basic::AMQPMethod::GetOk(g))) => {
                break g.delivery_tag;
            }
            Frame::Method(_, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))) => {
                return Err("basic.get-empty: the message is not in the queue".into());
            }
            Frame::Method(_, m) => {
                if let Some(e) = close_error(&m) {
                    return Err(e);
                }
            }
            _ => {}
        }
    };
    let size = loop {
        match conn.recv().await? {
            Frame::Header(size) => break size,
            Frame::Heartbeat => {}
            _ => return Err("expected a content header".into()),
        }
    };
    let mut body = Vec::new();
    while (body.len() as u64) < size {
        match conn.recv().await? {
            Frame::Body(b) => body.extend_from_slice(&b),
            Frame::Heartbeat => {}
            _ => return Err("expected a body frame".into()),
        }
    }
    Ok((tag, body))
}

/// The end-of-run checks; returns a JSON summary.
async fn verify(
    args: &Args,
    uri: &Uri,
    idle: &mut [Conn],
    consumers: &mut [Conn],
) -> Result<Value> {
    let mut out = serde_json::Map::new();
    // 1. Idle connections still answer.
    if args.idle_channels > 0 && args.queues > 0 && !idle.is_empty() {
        let n = idle.len();
        let mut picks = vec![0, n / 2, n - 1];
        picks.dedup();
        for i in picks {
            let t = Instant::now();
            let r = idle[i]
                .rpc(
                    1,
                    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                        queue: queue_name(&args.prefix, 0).into(),
                        passive: true,
                        durable: false,
                        exclusive: false,
                        auto_delete: false,
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                )
                .await
                .map_err(|e| format!("idle connection {i}: {e}"))?;
            match r {
                AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => {
                    let want = u32::from(args.consumers > 0);
                    if ok.consumer_count != want {
                        return Err(format!(
                            "queue 0 reports {} consumers, expected {want}",
                            ok.consumer_count
                        )
                        .into());
                    }
                }
                m => return Err(format!("idle connection {i}: unexpected {m:?}").into()),
            }
            eprintln!(
                "      verify: idle connection {i} answered a passive declare in {:.2} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        out.insert("idle_connections_answer".into(), json!(true));
    }
    if args.queues == 0 {
        return Ok(Value::Object(out));
    }
    // A connection to publish from: the first idle one, or a fresh one.
    let mut fresh = None;
    let publisher: &mut Conn = match idle.first_mut() {
        Some(c) if args.idle_channels > 0 => c,
        _ => fresh.insert(Conn::open(uri, "warren-scale-verify", 1).await?),
    };
    let marker = format!("warren-scale {} {:?}", std::process::id(), Instant::now());
    // 2. Publish -> consumer 0 -> ack.
    if !consumers.is_empty() {
        let q0 = queue_name(&args.prefix, 0);
        let t = Instant::now();
        publish(publisher, &q0, marker.as_bytes());
        publisher.flush().await?;
        let c = &mut consumers[0];
        let (tag, body) = tokio::time::timeout(Duration::from_secs(10), recv_delivery(c))
            .await
            .map_err(|_| "no delivery to consumer 0 within 10 s")??;
        if body != marker.as_bytes() {
            return Err("consumer 0 received a different body".into());
        }
        c.queue(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: tag,
                multiple: false,
            })),
        );
        c.flush().await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("      verify: publish -> consumer 0 round trip in {ms:.2} ms");
        out.insert("consume_round_trip_ms".into(), json!(ms));
    }
    // 3. Publish -> basic.get on the last queue (no consumer unless every queue has one).
    if args.consumers < args.queues {
        let ql = queue_name(&args.prefix, args.queues - 1);
        let t = Instant::now();
        publish(publisher, &ql, marker.as_bytes());
        publisher.queue(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: ql.as_str().into(),
                no_ack: true,
            })),
        );
        publisher.flush().await?;
        let (_, body) = tokio::time::timeout(Duration::from_secs(10), recv_delivery(publisher))
            .await
            .map_err(|_| "no basic.get answer within 10 s")??;
        if body != marker.as_bytes() {
            return Err("basic.get returned a different body".into());
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("      verify: publish -> basic.get on {ql} in {ms:.2} ms");
        out.insert("get_round_trip_ms".into(), json!(ms));
    }
    if let Some(c) = fresh {
        let _ = c.close(Duration::from_secs(5)).await;
    }
    Ok(Value::Object(out))
}

fn declare(prefix: &str, durable: bool, nowait: bool) -> impl Fn(usize) -> AMQPClass + Clone {
    let prefix = prefix.to_string();
    move |i| {
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: queue_name(&prefix, i).into(),
            passive: false,
            durable,
            exclusive: false,
            auto_delete: false,
            nowait,
            arguments: FieldTable::default(),
        }))
    }
}

fn delete(prefix: &str) -> impl Fn(usize) -> AMQPClass + Clone {
    let prefix = prefix.to_string();
    move |i| {
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: queue_name(&prefix, i).into(),
            if_unused: false,
            if_empty: false,
            nowait: false,
        }))
    }
}

async fn run(args: Args) -> Result<Value> {
    let uri = Uri::parse(&args.uri)?;
    client::PIPELINE_OPEN.store(args.pipeline_open, std::sync::atomic::Ordering::Relaxed);
    let need = (args.connections + args.declare_conns + args.consumer_conns + 64) as u64;
    let limit = raise_nofile(need);
    if limit < need {
        eprintln!("warren-scale: open-file limit {limit} < {need} needed; expect failures");
    }
    let pid = args.broker_pid.map(|p| p.to_string());
    let mut meter = Meter {
        pid: pid.clone(),
        settle: Duration::from_secs_f64(args.settle),
        last: Sample::default(),
        steps: Vec::new(),
    };
    let window = args.window;
    let ch = args.declare_channels.max(1);

    if args.cleanup_only {
        let (mut dconns, errs) = open_many(
            &uri,
            args.declare_conns.max(1),
            ch,
            16,
            "warren-scale-delete",
        )
        .await;
        if let Some(e) = errs.first() {
            return Err(e.clone().into());
        }
        let t = Instant::now();
        spread(
            &mut dconns,
            ch,
            args.queues,
            window,
            false,
            delete(&args.prefix),
            |m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_))),
        )
        .await?;
        eprintln!(
            "deleted {} queues in {:.2} s",
            args.queues,
            t.elapsed().as_secs_f64()
        );
        close_many(dconns).await;
        return Ok(json!({"cleanup_only": args.queues}));
    }

    let started = Instant::now();
    let base = meter.sample().await;
    meter.last = base;
    if pid.is_some() {
        eprintln!(
            "    baseline: broker RSS {:.1} MiB, fds {}; tool open-file limit {limit}",
            base.rss_kib as f64 / 1024.0,
            base.fds
        );
    }
    let mut failures: Vec<String> = Vec::new();

    // 1. Idle connections.
    let t = Instant::now();
    let (mut idle, errs) = open_many(
        &uri,
        args.connections,
        args.idle_channels,
        args.connect_concurrency,
        "warren-scale-idle",
    )
    .await;
    let took = t.elapsed();
    if !errs.is_empty() {
        eprintln!(
            "warren-scale: {} of {} connections failed; first: {}",
            errs.len(),
            args.connections,
            errs[0]
        );
        failures.push(format!("{} connections failed: {}", errs.len(), errs[0]));
    }
    meter
        .step("connections", "connections", idle.len(), took)
        .await;

    // 2. Idle queues.
    let (mut dconns, errs) = open_many(
        &uri,
        args.declare_conns.max(1),
        ch,
        16,
        "warren-scale-declare",
    )
    .await;
    if let Some(e) = errs.first() {
        return Err(format!("declaring connections: {e}").into());
    }
    let t = Instant::now();
    let declared = spread(
        &mut dconns,
        ch,
        args.queues,
        window,
        args.nowait,
        declare(&args.prefix, args.durable, args.nowait),
        |m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))),
    )
    .await;
    let took = t.elapsed();
    if let Err(e) = &declared {
        eprintln!("warren-scale: declaring queues failed: {e}");
        failures.push(format!("queue declarations: {e}"));
    }
    meter.step("queues", "queues", args.queues, took).await;

    // 3. Consumers.
    let k = args.consumers.min(args.queues);
    let mut cconns = Vec::new();
    if k > 0 && declared.is_ok() {
        let (conns, errs) = open_many(
            &uri,
            args.consumer_conns.clamp(1, k),
            1,
            16,
            "warren-scale-consumer",
        )
        .await;
        if let Some(e) = errs.first() {
            return Err(format!("consumer connections: {e}").into());
        }
        cconns = conns;
        // Consumer i consumes queue i, on connection i mod C (so consumer 0 is on connection 0).
        let nconn = cconns.len();
        let t = Instant::now();
        let mut futs = Vec::new();
        for (ci, conn) in cconns.iter_mut().enumerate() {
            let ids: Vec<usize> = (ci..k).step_by(nconn).collect();
            let prefix = args.prefix.clone();
            futs.push(pipeline(
                conn,
                1,
                ids.len(),
                window,
                false,
                move |j| {
                    let i = ids[j];
                    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                        queue: queue_name(&prefix, i).into(),
                        consumer_tag: format!("{prefix}-c-{i}").into(),
                        no_local: false,
                        no_ack: false,
                        exclusive: false,
                        nowait: false,
                        arguments: FieldTable::default(),
                    }))
                },
                |m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))),
            ));
        }
        let results = join_all(futs).await;
        let took = t.elapsed();
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            eprintln!("warren-scale: consumers failed: {e}");
            failures.push(format!("consumers: {e}"));
        }
        meter.step("consumers", "consumers", k, took).await;
    }

    // 4. Checks.
    let verified = if declared.is_ok() {
        match verify(&args, &uri, &mut idle, &mut cconns).await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("warren-scale: verification failed: {e}");
                failures.push(format!("verification: {e}"));
                Value::Null
            }
        }
    } else {
        Value::Null
    };
    let peak = pid
        .as_deref()
        .and_then(|p| status_kib(p, "VmHWM"))
        .unwrap_or(0);

    // 5. Cleanup.
    let mut cleanup = json!(null);
    if !args.keep {
        let t = Instant::now();
        let r = spread(
            &mut dconns,
            ch,
            args.queues,
            window,
            false,
            delete(&args.prefix),
            |m| matches!(m, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_))),
        )
        .await;
        if let Err(e) = r {
            eprintln!("warren-scale: deleting queues failed: {e}");
            failures.push(format!("queue deletes: {e}"));
        }
        let deleted = t.elapsed();
        let t = Instant::now();
        let n = idle.len() + cconns.len() + dconns.len();
        let mut all = idle;
        all.append(&mut cconns);
        all.append(&mut dconns);
        let unclean = close_many(all).await;
        if unclean > 0 {
            failures.push(format!("{unclean} connections did not close cleanly"));
        }
        let closed = t.elapsed();
        let s = meter.sample().await;
        eprintln!(
            "     cleanup: {} queues deleted in {:.2} s, {n} connections closed in {:.2} s ({unclean} unclean); broker RSS {:.1} MiB, fds {}",
            args.queues,
            deleted.as_secs_f64(),
            closed.as_secs_f64(),
            s.rss_kib as f64 / 1024.0,
            s.fds
        );
        cleanup = json!({
            "delete_seconds": deleted.as_secs_f64(),
            "close_seconds": closed.as_secs_f64(),
            "rss_after_kib": s.rss_kib,
            "fds_after": s.fds,
        });
    }
    let tool_rss = status_kib("self", "VmHWM").unwrap_or(0);
    if pid.is_some() {
        eprintln!(
            "     summary: broker peak RSS (VmHWM) {:.1} MiB; tool peak RSS {:.1} MiB; {:.1} s in all",
            peak as f64 / 1024.0,
            tool_rss as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        );
    }
    if !failures.is_empty() {
        eprintln!("warren-scale: FAILURES:");
        for f in &failures {
            eprintln!("  - {f}");
        }
    } else {
        eprintln!("warren-scale: all steps and checks passed");
    }
    Ok(json!({
        "label": args.label,
        "uri_host": uri.host,
        "uri_port": uri.port,
        "connections": args.connections,
        "queues": args.queues,
        "consumers": k,
        "baseline_rss_kib": base.rss_kib,
        "steps": meter.steps,
        "verify": verified,
        "broker_peak_rss_kib": peak,
        "cleanup": cleanup,
        "tool_peak_rss_kib": tool_rss,
        "failures": failures,
    }))
}

fn main() {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren-scale: cannot start runtime: {e}");
            std::process::exit(2);
        }
    };
    let json_out = args.json;
    match rt.block_on(run(args)) {
        Ok(v) => {
            if json_out {
                println!("{v}");
            }
            let failed = v["failures"].as_array().is_some_and(|f| !f.is_empty());
            std::process::exit(i32::from(failed));
        }
        Err(e) => {
            eprintln!("warren-scale: {e}");
            std::process::exit(2);
        }
    }
}
