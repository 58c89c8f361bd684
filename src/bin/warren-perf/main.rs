//! `warren-perf`: an AMQP 0-9-1 load generator, in the spirit of RabbitMQ's PerfTest and
//! lavinmqperf, usable against any 0-9-1 broker.
//!
//! It runs producers and consumers (one connection each) in one process on a single-threaded
//! tokio runtime by default, so its own CPU per message stays far below a broker's. Every run ends
//! by itself (duration or message counts). It reports publish, confirm and delivery rates,
//! end-to-end and confirm latency percentiles and, given `--broker-pid`, the broker's CPU and RSS,
//! as text (stderr) and optionally as one JSON line (stdout).
//!
//! A second mode, `--wait-count N`, polls a queue with passive declares until it holds N messages
//! and prints how long that took (used to time broker restarts with a deep durable queue).

mod client;
mod consumer;
mod producer;
mod shared;
mod sys;

use amq_protocol::protocol::{AMQPClass, exchange, queue};
use amq_protocol::types::FieldTable;
use clap::Parser;
use client::{Conn, Result, Uri};
use consumer::ConsumerCfg;
use hdrhistogram::Histogram;
use producer::ProducerCfg;
use serde_json::json;
use shared::{Shared, histogram};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// AMQP 0-9-1 load generator (producers, consumers, latency, broker CPU and RSS).
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// Broker URI.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// Producer connections.
    #[arg(long, short = 'x', default_value_t = 1)]
    producers: usize,
    /// Consumer connections.
    #[arg(long, short = 'y', default_value_t = 1)]
    consumers: usize,
    /// Queues; producer i publishes to queue i mod N, consumer j consumes from queue j mod N.
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Queue name pattern; `%d` becomes the queue number (1-based).
    #[arg(long, alias = "queue", default_value = "perf-q-%d")]
    queue_pattern: String,
    /// Exchange type: direct, fanout or topic. With direct and no --exchange, messages go
    /// through the default exchange.
    #[arg(long, default_value = "direct")]
    exchange_type: String,
    /// Exchange name (default: "" for direct, "warren-perf-<type>" otherwise).
    #[arg(long)]
    exchange: Option<String>,
    /// Message body size in bytes (>= 16 for end-to-end latency).
    #[arg(long, short = 's', default_value_t = 16)]
    size: usize,
    /// Publish with delivery-mode 2.
    #[arg(long)]
    persistent: bool,
    /// Declare queues durable.
    #[arg(long)]
    queue_durable: bool,
    /// Max unconfirmed messages in flight per producer; 0 disables publisher confirms.
    #[arg(long, short = 'c', default_value_t = 0)]
    confirm: u64,
    /// basic.qos prefetch count per consumer (0 = unlimited).
    #[arg(long, short = 'q', default_value_t = 0)]
    prefetch: u16,
    /// Consume with no-ack.
    #[arg(long, short = 'a')]
    autoack: bool,
    /// Manual ack: one basic.ack with multiple=true every N messages (1 = ack each message).
    #[arg(long, default_value_t = 1)]
    multi_ack_every: u64,
    /// Total publish rate in messages/s across producers (0 = unlimited).
    #[arg(long, short = 'r', default_value_t = 0.0)]
    rate: f64,
    /// Total consume rate in messages/s across consumers (0 = unlimited): a slow consumer, for
    /// flow-control runs (PerfTest's --consumer-rate).
    #[arg(long, default_value_t = 0.0)]
    consumer_rate: f64,
    /// Run length in seconds (default 10 when no message count is given).
    #[arg(long, short = 'z')]
    duration: Option<f64>,
    /// Messages each producer publishes (0 = unlimited).
    #[arg(long, short = 'C', default_value_t = 0)]
    pmessages: u64,
    /// Messages each consumer consumes (0 = unlimited).
    #[arg(long, short = 'D', default_value_t = 0)]
    cmessages: u64,
    /// Closed loop: producers pause while published - consumed exceeds N (0 = open loop).
    #[arg(long, default_value_t = 0)]
    max_unconsumed: u64,
    /// Fanout to N queues, each with one consumer (sets --exchange-type fanout, --queues N,
    /// --consumers N).
    #[arg(long)]
    fanout_queues: Option<usize>,
    /// Sample this process's CPU (/proc/PID/stat) and RSS (/proc/PID/status).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print one JSON line with the results on stdout.
    #[arg(long)]
    json: bool,
    /// Label copied into the JSON line (scenario name).
    #[arg(long, default_value = "")]
    label: String,
    /// Purge the queues before starting.
    #[arg(long)]
    purge: bool,
    /// Keep queues and exchange at the end (default: delete them).
    #[arg(long)]
    keep_queues: bool,
    /// With message counts: how long consumers may take to drain after producers finish, s.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// Tokio worker threads (1 = current-thread runtime, the leanest).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// No per-second progress lines.
    #[arg(long)]
    quiet: bool,
    /// Wait mode: poll the (first) queue with passive declares until it holds N messages, print
    /// the time it took, and exit.
    #[arg(long)]
    wait_count: Option<u64>,
    /// Wait mode: give up after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    wait_timeout: f64,
}

fn main() -> std::process::ExitCode {
    sys::epoch();
    let mut args = Args::parse();
    if let Some(n) = args.fanout_queues {
        args.exchange_type = "fanout".into();
        args.queues = n;
        args.consumers = n;
    }
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren-perf: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = if args.wait_count.is_some() {
        rt.block_on(wait_mode(&args))
    } else {
        rt.block_on(run(&args))
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren-perf: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn queue_names(args: &Args) -> Result<Vec<String>> {
    if args.queues == 0 {
        return Err("--queues must be at least 1".into());
    }
    if !args.queue_pattern.contains("%d") && args.queues > 1 {
        return Err("--queue-pattern needs %d with more than one queue".into());
    }
    Ok((1..=args.queues)
        .map(|i| args.queue_pattern.replace("%d", &i.to_string()))
        .collect())
}

async fn declare_queue(conn: &mut Conn, name: &str, durable: bool, passive: bool) -> Result<u32> {
    match conn
        .rpc(AMQPClass::Queue(queue::AMQPMethod::Declare(
            queue::Declare {
                queue: name.into(),
                passive,
                durable,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: FieldTable::default(),
            },
        )))
        .await?
    {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.message_count),
        m => Err(format!("expected queue.declare-ok, got {m:?}").into()),
    }
}

async fn wait_mode(args: &Args) -> Result<()> {
    let uri = Uri::parse(&args.uri)?;
    let want = args.wait_count.unwrap_or(0);
    let name = queue_names(args)?.swap_remove(0);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(args.wait_timeout);
    let mut last;
    loop {
        let attempt = async {
            let mut c = Conn::open(&uri, "warren-perf wait").await?;
            let n = declare_queue(&mut c, &name, false, true).await;
            c.close().await;
            n
        };
        match attempt.await {
            Ok(n) if u64::from(n) >= want => {
                let secs = t0.elapsed().as_secs_f64();
                eprintln!("queue {name} holds {n} messages after {secs:.3} s");
                if args.json {
                    println!(
                        "{}",
                        json!({"label": args.label, "queue": name, "message_count": n, "wait_s": secs})
                    );
                }
                return Ok(());
            }
            Ok(n) => last = format!("{n} messages"),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "queue {name} did not reach {want} messages within {} s (last: {last})",
                args.wait_timeout
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Broker process samples.
#[derive(Default, Clone, Copy)]
struct BrokerSample {
    cpu: f64,
    rss_kib: u64,
}

fn sample_broker(pid: Option<u32>) -> Option<BrokerSample> {
    let pid = pid?.to_string();
    Some(BrokerSample {
        cpu: sys::cpu_seconds(&pid)?,
        rss_kib: sys::status_kib(&pid, "VmRSS")?,
    })
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    if h.is_empty() {
        return serde_json::Value::Null;
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "count": h.len(),
        "p50_us": us(0.5),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "max_us": h.max() as f64 / 1000.0,
    })
}

fn fmt_latency(name: &str, h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("{name:<16} (none)");
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "{name:<16} p50 {:.0} µs  p99 {:.0} µs  p99.9 {:.0} µs  max {:.0} µs  ({} samples)",
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        h.len()
    )
}

async fn run(args: &Args) -> Result<()> {
    let uri = Uri::parse(&args.uri)?;
    let queues = queue_names(args)?;
    let kind = args.exchange_type.as_str();
    if !matches!(kind, "direct" | "fanout" | "topic") {
        return Err("--exchange-type must be direct, fanout or topic".into());
    }
    let exchange = match &args.exchange {
        Some(e) => e.clone(),
        None if kind == "direct" => String::new(),
        None => format!("warren-perf-{kind}"),
    };
    let copies = if kind == "fanout" { queues.len() } else { 1 } as u64;
    let duration = match args.duration {
        Some(d) if d > 0.0 => Some(d),
        _ if args.pmessages == 0 && args.cmessages == 0 => Some(10.0),
        _ => None,
    };

    // Topology, on a connection kept open for cleanup.
    let mut admin = Conn::open(&uri, "warren-perf admin").await?;
    if !exchange.is_empty() {
        let r = admin
            .rpc(AMQPClass::Exchange(exchange::AMQPMethod::Declare(
                exchange::Declare {
                    exchange: exchange.as_str().into(),
                    kind: kind.into(),
                    passive: false,
                    durable: args.queue_durable,
                    auto_delete: false,
                    internal: false,
                    nowait: false,
                    arguments: FieldTable::default(),
                },
            )))
            .await?;
        if !matches!(r, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))) {
            return Err(format!("expected exchange.declare-ok, got {r:?}").into());
        }
    }
    for q in &queues {
        declare_queue(&mut admin, q, args.queue_durable, false)
            .await
            .map_err(|e| format!("declaring queue {q}: {e}"))?;
        if args.purge {
            admin
                .rpc(AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
                    queue: q.as_str().into(),
                    nowait: false,
                })))
                .await?;
        }
        if !exchange.is_empty() {
            let r = admin
                .rpc(AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                    queue: q.as_str().into(),
                    exchange: exchange.as_str().into(),
                    routing_key: if kind == "fanout" { "" } else { q }.into(),
                    nowait: false,
                    arguments: FieldTable::default(),
                })))
                .await?;
            if !matches!(r, AMQPClass::Queue(queue::AMQPMethod::BindOk(_))) {
                return Err(format!("expected queue.bind-ok, got {r:?}").into());
            }
        }
    }

    // Connections: consumers first so nothing published is missed.
    let shared = Arc::new(Shared::new(copies, args.max_unconsumed));
    let mut consumer_conns = Vec::new();
    for j in 0..args.consumers {
        let cfg = ConsumerCfg {
            queue: queues[j % queues.len()].clone(),
            prefetch: args.prefetch,
            autoack: args.autoack,
            multi_ack_every: args.multi_ack_every,
            count: args.cmessages,
            rate: args.consumer_rate / args.consumers.max(1) as f64,
        };
        let mut c = Conn::open(&uri, &format!("warren-perf consumer {j}")).await?;
        consumer::subscribe(&mut c, &cfg, &format!("warren-perf-{j}")).await?;
        consumer_conns.push((c, cfg));
    }
    let mut producer_conns = Vec::new();
    for i in 0..args.producers {
        let q = &queues[i % queues.len()];
        let cfg = ProducerCfg {
            exchange: exchange.clone(),
            routing_key: if kind == "fanout" { "" } else { q }.to_string(),
            size: args.size,
            persistent: args.persistent,
            confirm: args.confirm,
            rate: args.rate / args.producers as f64,
            count: args.pmessages,
        };
        let mut c = Conn::open(&uri, &format!("warren-perf producer {i}")).await?;
        if cfg.confirm > 0 {
            producer::enable_confirms(&mut c).await?;
        }
        producer_conns.push((c, cfg));
    }

    let broker0 = sample_broker(args.broker_pid);
    let self_cpu0 = sys::cpu_seconds("self").unwrap_or(0.0);
    let mut rss_peak = broker0.map_or(0, |b| b.rss_kib);
    let t0 = Instant::now();
    let consumers: Vec<_> = consumer_conns
        .into_iter()
        .map(|(c, cfg)| tokio::spawn(consumer::run(c, cfg, shared.clone())))
        .collect();
    let producers: Vec<_> = producer_conns
        .into_iter()
        .map(|(c, cfg)| tokio::spawn(producer::run(c, cfg, shared.clone())))
        .collect();

    // Coordinator: progress, peak RSS, end conditions.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut next_print = 1.0;
    let mut last = (0u64, 0u64, 0u64);
    let mut producers_done_at: Option<Instant> = None;
    let mut early_exit = false;
    loop {
        tick.tick().await;
        let el = t0.elapsed().as_secs_f64();
        if let Some(b) = sample_broker(args.broker_pid) {
            rss_peak = rss_peak.max(b.rss_kib);
        }
        let p = shared.published.load(Ordering::Relaxed);
        let c = shared.confirmed.load(Ordering::Relaxed);
        let d = shared.delivered.load(Ordering::Relaxed);
        if el >= next_print {
            if !args.quiet {
                eprintln!(
                    "{:>5.0} s  published {:>9}/s  confirmed {:>9}/s  delivered {:>9}/s",
                    el,
                    p - last.0,
                    c - last.1,
                    d - last.2
                );
            }
            last = (p, c, d);
            next_print += 1.0;
        }
        if duration.is_some_and(|dur| el >= dur) {
            break;
        }
        if producers
            .iter()
            .chain(consumers.iter())
            .any(|h| h.is_finished())
        {
            early_exit = true;
            break;
        }
        let pdone = shared.producers_done.load(Ordering::SeqCst);
        let cdone = shared.consumers_done.load(Ordering::SeqCst);
        let consumers_finished =
            args.consumers > 0 && args.cmessages > 0 && cdone == args.consumers;
        if args.pmessages > 0 && pdone == args.producers {
            let at = *producers_done_at.get_or_insert_with(Instant::now);
            if args.consumers == 0 || d >= p * copies || consumers_finished {
                break;
            }
            if at.elapsed().as_secs_f64() > args.drain_timeout {
                eprintln!(
                    "warren-perf: consumers did not drain within {} s",
                    args.drain_timeout
                );
                break;
            }
        } else if consumers_finished && (args.pmessages == 0 || args.producers == 0) {
            break;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let published = shared.published.load(Ordering::SeqCst);
    let confirmed = shared.confirmed.load(Ordering::SeqCst);
    let nacked = shared.nacked.load(Ordering::SeqCst);
    let delivered = shared.delivered.load(Ordering::SeqCst);
    let broker1 = sample_broker(args.broker_pid);
    let self_cpu = sys::cpu_seconds("self").unwrap_or(0.0) - self_cpu0;
    let _ = shared.stop.send(true);

    let mut errors = Vec::new();
    let mut confirm_hist = histogram();
    let mut e2e_hist = histogram();
    let handles = producers
        .into_iter()
        .map(|h| (h, true))
        .chain(consumers.into_iter().map(|h| (h, false)));
    for (h, is_producer) in handles {
        let hist = if is_producer {
            &mut confirm_hist
        } else {
            &mut e2e_hist
        };
        match tokio::time::timeout(Duration::from_secs(5), h).await {
            Ok(Ok(Ok(part))) => {
                let _ = hist.add(part);
            }
            Ok(Ok(Err(e))) => errors.push(e.to_string()),
            Ok(Err(e)) => errors.push(format!("task failed: {e}")),
            Err(_) => errors.push("a connection did not finish within 5 s of the stop".into()),
        }
    }
    if !args.keep_queues {
        for q in &queues {
            let _ = admin
                .rpc(AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                    queue: q.as_str().into(),
                    if_unused: false,
                    if_empty: false,
                    nowait: false,
                })))
                .await;
        }
        if !exchange.is_empty() {
            let _ = admin
                .rpc(AMQPClass::Exchange(exchange::AMQPMethod::Delete(
                    exchange::Delete {
                        exchange: exchange.as_str().into(),
                        if_unused: false,
                        nowait: false,
                    },
                )))
                .await;
        }
    }
    admin.close().await;

    let msgs = published.max(delivered).max(1) as f64;
    let rate = |n: u64| n as f64 / elapsed;
    let broker = match (broker0, broker1) {
        (Some(b0), Some(b1)) => {
            let cpu = b1.cpu - b0.cpu;
            json!({
                "pid": args.broker_pid,
                "cpu_s": cpu,
                "cpu_pct": 100.0 * cpu / elapsed,
                "cpu_us_per_msg": cpu * 1e6 / msgs,
                "rss_start_kib": b0.rss_kib,
                "rss_end_kib": b1.rss_kib,
                "rss_peak_kib": rss_peak.max(b1.rss_kib),
            })
        }
        _ => serde_json::Value::Null,
    };
    let report = json!({
        "label": args.label,
        "elapsed_s": elapsed,
        "producers": args.producers,
        "consumers": args.consumers,
        "queues": queues.len(),
        "exchange_type": kind,
        "size": args.size,
        "persistent": args.persistent,
        "confirm": args.confirm,
        "prefetch": args.prefetch,
        "autoack": args.autoack,
        "multi_ack_every": args.multi_ack_every,
        "rate_target": args.rate,
        "consumer_rate_target": args.consumer_rate,
        "max_unconsumed": args.max_unconsumed,
        "published": published,
        "confirmed": confirmed,
        "nacked": nacked,
        "returned": shared.returned.load(Ordering::SeqCst),
        "blocked": shared.blocked.load(Ordering::SeqCst),
        "delivered": delivered,
        "publish_rate": rate(published),
        "confirm_rate": rate(confirmed),
        "consume_rate": rate(delivered),
        "e2e_latency": percentiles(&e2e_hist),
        "confirm_latency": percentiles(&confirm_hist),
        "broker": broker,
        "tool_cpu_s": self_cpu,
        "tool_cpu_us_per_msg": self_cpu * 1e6 / msgs,
        "errors": errors,
    });

    eprintln!(
        "--- warren-perf: {elapsed:.1} s, {} producers, {} consumers, {} queues ({} exchange), {} B{}{}",
        args.producers,
        args.consumers,
        queues.len(),
        kind,
        args.size,
        if args.persistent { ", persistent" } else { "" },
        if args.confirm > 0 {
            format!(", confirm window {}", args.confirm)
        } else {
            String::new()
        }
    );
    eprintln!(
        "published {published} ({:.0} msg/s)  confirmed {confirmed} ({:.0} msg/s)  nacked {nacked}",
        rate(published),
        rate(confirmed)
    );
    eprintln!("delivered {delivered} ({:.0} msg/s)", rate(delivered));
    eprintln!("{}", fmt_latency("e2e latency", &e2e_hist));
    eprintln!("{}", fmt_latency("confirm latency", &confirm_hist));
    if let (Some(b0), Some(b1)) = (broker0, broker1) {
        let cpu = b1.cpu - b0.cpu;
        eprintln!(
            "broker cpu {cpu:.2} s ({:.0}% of a core), {:.2} µs/msg; rss start {:.1} MiB, end {:.1} MiB, peak {:.1} MiB",
            100.0 * cpu / elapsed,
            cpu * 1e6 / msgs,
            b0.rss_kib as f64 / 1024.0,
            b1.rss_kib as f64 / 1024.0,
            rss_peak.max(b1.rss_kib) as f64 / 1024.0
        );
    }
    eprintln!(
        "tool cpu {self_cpu:.2} s ({:.0}% of a core), {:.2} µs/msg",
        100.0 * self_cpu / elapsed,
        self_cpu * 1e6 / msgs
    );
    for e in &errors {
        eprintln!("error: {e}");
    }
    if args.json {
        println!("{report}");
    }
    if early_exit || !errors.is_empty() {
        return Err(format!(
            "run ended early: {}",
            errors.first().map_or("a connection ended", |e| e.as_str())
        )
        .into());
    }
    Ok(())
}
