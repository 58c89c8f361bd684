//! Prometheus metrics in the text exposition format, named and labelled as rabbitmq_prometheus
//! names them so RabbitMQ's Grafana dashboards and alerts work unchanged.
//!
//! `/metrics` returns per-object metrics (per-queue samples labelled `vhost` and `queue`), which
//! is what rabbitmq_prometheus serves at `/metrics/per-object` or with
//! `prometheus.return_per_object_metrics = true`; `/metrics/per-object` and `/metrics/detailed`
//! are accepted as aliases. Unauthenticated, as in RabbitMQ.
//!
//! Exported: gauges of connections, channels, consumers, queues and queue depths, process
//! memory and file descriptors, disk space, the memory limit and the alarms; message counters
//! both as rabbitmq_global_* (with the `protocol`/`queue_type` labels RabbitMQ 3.10+ uses) and
//! as the aggregated rabbitmq_channel_* totals older dashboards read, plus per-queue counters.
//! Warren's queues report as `rabbit_classic_queue`, the type whose semantics they follow.

use crate::broker::BrokerState;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The content type Prometheus expects for the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `listener` until `shutdown` becomes true.
pub async fn serve_metrics(
    listener: TcpListener,
    state: Arc<BrokerState>,
    shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Prometheus metrics listening");
    }
    if let Err(e) = axum::serve(listener, router(state))
        .with_graceful_shutdown(super::until_shutdown(shutdown))
        .await
    {
        tracing::error!(error = %e, "metrics server failed");
    }
}

/// The metrics routes, for embedding.
pub fn router(state: Arc<BrokerState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/per-object", get(metrics))
        .route("/metrics/detailed", get(metrics))
        .with_state(state)
}

async fn metrics(State(st): State<Arc<BrokerState>>) -> impl IntoResponse {
    // Only connection tasks know their channels: ask them first.
    let ids: Vec<u64> = st.connections.iter().map(|c| *c.key()).collect();
    let channels = super::runtime::channel_total(&st, &ids).await;
    let st2 = st.clone();
    // Sampling touches /proc and statvfs: keep it off the reactor.
    let body = tokio::task::spawn_blocking(move || render(&st2, channels as u64))
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

/// Escapes a label value per the exposition format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: `# TYPE`, `# HELP`, then samples `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "# HELP {name} {help}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    family(out, name, kind, help, &[(String::new(), value)]);
}

/// Resident set size of this process in bytes (0 where /proc is unavailable).
pub fn resident_memory_bytes() -> u64 {
    crate::alarm::resident_bytes().unwrap_or(0)
}

/// File descriptors this process has open.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// The soft limit on open file descriptors.
fn max_fds() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a properly sized out-parameter.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 { lim.rlim_cur } else { 0 }
}

/// rabbitmq_prometheus's wording for each dead-letter reason.
fn dead_letter_cause(reason: &str) -> &'static str {
    match reason {
        "expired" => "message TTL exceeded",
        "rejected" => "basic.reject or basic.nack",
        "maxlen" => "overflow drop-head or reject-publish-dlx",
        _ => "delivery-limit exceeded",
    }
}

/// Message counters, global and aggregated per channel, named as rabbitmq_prometheus does.
fn message_counters(out: &mut String, st: &BrokerState) {
    let c = st.message_totals();
    const AMQP: &str = "protocol=\"amqp091\"";
    const CLASSIC: &str = "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"";
    let global: [(&str, &str, &str, u64); 14] = [
        (
            "received",
            AMQP,
            "messages received from publishers",
            c.publish,
        ),
        (
            "received_confirm",
            AMQP,
            "messages received from publishers expecting confirmations",
            c.publish_confirm,
        ),
        (
            "routed",
            AMQP,
            "messages routed to queues or streams",
            c.routed,
        ),
        (
            "unroutable_dropped",
            AMQP,
            "messages published as non-mandatory into an exchange and dropped as unroutable",
            c.drop_unroutable,
        ),
        (
            "unroutable_returned",
            AMQP,
            "messages published as mandatory into an exchange and returned to the publisher as unroutable",
            c.return_unroutable,
        ),
        (
            "confirmed",
            AMQP,
            "messages confirmed to publishers",
            c.confirm,
        ),
        (
            "delivered",
            CLASSIC,
            "messages delivered to consumers",
            c.deliver_get(),
        ),
        (
            "delivered_consume_manual_ack",
            CLASSIC,
            "messages delivered to consumers using basic.consume with manual acknowledgment",
            c.deliver,
        ),
        (
            "delivered_consume_auto_ack",
            CLASSIC,
            "messages delivered to consumers using basic.consume with automatic acknowledgment",
            c.deliver_no_ack,
        ),
        (
            "delivered_get_manual_ack",
            CLASSIC,
            "messages delivered to consumers using basic.get with manual acknowledgment",
            c.get,
        ),
        (
            "delivered_get_auto_ack",
            CLASSIC,
            "messages delivered to consumers using basic.get with automatic acknowledgment",
            c.get_no_ack,
        ),
        (
            "get_empty",
            CLASSIC,
            "times basic.get operations fetched no message",
            c.get_empty,
        ),
        (
            "redelivered",
            CLASSIC,
            "messages redelivered to consumers",
            c.redeliver,
        ),
        (
            "acknowledged",
            CLASSIC,
            "messages acknowledged by consumers",
            c.ack,
        ),
    ];
    for (name, labels, help, value) in global {
        family(
            out,
            &format!("rabbitmq_global_messages_{name}_total"),
            "counter",
            &format!("Total number of {help}"),
            &[(labels.to_owned(), value as f64)],
        );
    }
    for (reason, dead_lettered, dropped) in st.losses() {
        let labels = |strategy: &str| {
            format!("queue_type=\"rabbit_classic_queue\",dead_letter_strategy=\"{strategy}\"")
        };
        family(
            out,
            &format!("rabbitmq_global_messages_dead_lettered_{reason}_total"),
            "counter",
            &format!(
                "Total number of messages dead-lettered due to {}",
                dead_letter_cause(reason)
            ),
            &[
                (labels("at_most_once"), dead_lettered as f64),
                (labels("disabled"), dropped as f64),
            ],
        );
    }
    let channel: [(&str, &str, u64); 11] = [
        (
            "messages_published",
            "messages published into an exchange on a channel",
            c.publish,
        ),
        (
            "messages_confirmed",
            "messages published into an exchange and confirmed on the channel",
            c.confirm,
        ),
        (
            "messages_unroutable_returned",
            "messages published as mandatory into an exchange and returned to the publisher as unroutable",
            c.return_unroutable,
        ),
        (
            "messages_unroutable_dropped",
            "messages published as non-mandatory into an exchange and dropped as unroutable",
            c.drop_unroutable,
        ),
        (
            "get_ack",
            "messages fetched with basic.get in manual acknowledgement mode",
            c.get,
        ),
        (
            "get",
            "messages fetched with basic.get in automatic acknowledgement mode",
            c.get_no_ack,
        ),
        (
            "messages_delivered_ack",
            "messages delivered to consumers in manual acknowledgement mode",
            c.deliver,
        ),
        (
            "messages_delivered",
            "messages delivered to consumers in automatic acknowledgement mode",
            c.deliver_no_ack,
        ),
        (
            "messages_redelivered",
            "messages redelivered to consumers",
            c.redeliver,
        ),
        (
            "messages_acked",
            "messages acknowledged by consumers",
            c.ack,
        ),
        (
            "get_empty",
            "times basic.get operations fetched no message",
            c.get_empty,
        ),
    ];
    for (name, help, value) in channel {
        single(
            out,
            &format!("rabbitmq_channel_{name}_total"),
            "counter",
            &format!("Total number of {help}"),
            value as f64,
        );
    }
}

/// The whole exposition.
pub fn render(st: &BrokerState, channels: u64) -> String {
    let mut out = String::with_capacity(4096);
    let node = super::node_name();
    let version = env!("CARGO_PKG_VERSION");
    family(
        &mut out,
        "rabbitmq_build_info",
        "untyped",
        "RabbitMQ & Erlang/OTP version info",
        &[(
            format!(
                "rabbitmq_version=\"{}\",prometheus_plugin_version=\"{version}\",\
                 prometheus_client_version=\"{version}\",erlang_version=\"none\",\
                 product_name=\"Warren\",product_version=\"{version}\"",
                super::RABBITMQ_COMPAT_VERSION
            ),
            1.0,
        )],
    );
    family(
        &mut out,
        "rabbitmq_identity_info",
        "untyped",
        "RabbitMQ node & cluster identity info",
        &[(
            format!(
                "rabbitmq_node=\"{0}\",rabbitmq_cluster=\"{0}\",\
                 rabbitmq_cluster_permanent_id=\"{0}\"",
                label(&node)
            ),
            1.0,
        )],
    );

    let vhosts: Vec<_> = st.vhosts.iter().map(|v| v.value().clone()).collect();
    let mut queues = Vec::new();
    for vh in &vhosts {
        let mut qs: Vec<_> = vh.queues.iter().map(|q| q.value().clone()).collect();
        qs.sort_by(|a, b| a.name.cmp(&b.name));
        queues.extend(qs);
    }
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let per_queue: Vec<(String, u64, u64, u64, crate::stats::QueueCounts)> = queues
        .iter()
        .map(|q| {
            let (ready, consumers) = q.counts();
            (
                format!("vhost=\"{}\",queue=\"{}\"", label(&q.vhost), label(&q.name)),
                u64::from(ready),
                q.unacked() as u64,
                u64::from(consumers),
                q.message_stats().0,
            )
        })
        .collect();
    let consumers: u64 = per_queue.iter().map(|q| q.3).sum();

    single(
        &mut out,
        "rabbitmq_connections",
        "gauge",
        "Connections currently open",
        st.connections.len() as f64,
    );
    single(
        &mut out,
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
        consumers as f64,
    );
    single(
        &mut out,
        "rabbitmq_queues",
        "gauge",
        "Queues available",
        queues.len() as f64,
    );
    let exchanges: usize = vhosts.iter().map(|v| v.exchanges.len()).sum();
    single(
        &mut out,
        "rabbitmq_exchanges",
        "gauge",
        "Exchanges available",
        exchanges as f64,
    );
    single(
        &mut out,
        "rabbitmq_vhosts",
        "gauge",
        "Virtual hosts available",
        vhosts.len() as f64,
    );
    single(
        &mut out,
        "rabbitmq_channels",
        "gauge",
        "Channels currently open",
        channels as f64,
    );
    message_counters(&mut out, st);
    type Row = (String, u64, u64, u64, crate::stats::QueueCounts);
    let pick = |f: fn(&Row) -> u64| -> Vec<(String, f64)> {
        per_queue
            .iter()
            .map(|q| (q.0.clone(), f(q) as f64))
            .collect()
    };
    family(
        &mut out,
        "rabbitmq_queue_messages_ready",
        "gauge",
        "Messages ready to be delivered to consumers",
        &pick(|q| q.1),
    );
    family(
        &mut out,
        "rabbitmq_queue_messages_unacked",
        "gauge",
        "Messages delivered to consumers but not yet acknowledged",
        &pick(|q| q.2),
    );
    family(
        &mut out,
        "rabbitmq_queue_messages",
        "gauge",
        "Sum of ready and unacknowledged messages - total queue depth",
        &pick(|q| q.1 + q.2),
    );
    family(
        &mut out,
        "rabbitmq_queue_consumers",
        "gauge",
        "Consumers on a queue",
        &pick(|q| q.3),
    );
    family(
        &mut out,
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        &pick(|q| q.4.publish),
    );
    family(
        &mut out,
        "rabbitmq_queue_messages_delivered_total",
        "counter",
        "Total number of messages delivered from the queue (consume and get)",
        &pick(|q| q.4.deliver_get),
    );
    family(
        &mut out,
        "rabbitmq_queue_messages_redelivered_total",
        "counter",
        "Total number of messages redelivered from the queue",
        &pick(|q| q.4.redeliver),
    );
    family(
        &mut out,
        "rabbitmq_queue_messages_acked_total",
        "counter",
        "Total number of messages acknowledged on the queue",
        &pick(|q| q.4.ack),
    );

    single(
        &mut out,
        "rabbitmq_process_resident_memory_bytes",
        "gauge",
        "Memory used in bytes",
        resident_memory_bytes() as f64,
    );
    single(
        &mut out,
        "rabbitmq_process_open_fds",
        "gauge",
        "Open file descriptors",
        open_fds() as f64,
    );
    single(
        &mut out,
        "rabbitmq_process_max_fds",
        "gauge",
        "Open file descriptors limit",
        max_fds() as f64,
    );
    let memory_limit = st.alarms.memory_limit.load(Ordering::Relaxed);
    if memory_limit > 0 {
        single(
            &mut out,
            "rabbitmq_resident_memory_limit_bytes",
            "gauge",
            "Memory high watermark in bytes",
            memory_limit as f64,
        );
    }
    let free = crate::alarm::free_bytes(&st.config.data_dir).unwrap_or(0);
    single(
        &mut out,
        "rabbitmq_disk_space_available_bytes",
        "gauge",
        "Disk space available in bytes",
        free as f64,
    );
    single(
        &mut out,
        "rabbitmq_disk_space_available_limit_bytes",
        "gauge",
        "Free disk space low watermark in bytes",
        st.alarms.disk_free_limit.load(Ordering::Relaxed) as f64,
    );
    let alarms = st.alarms.current();
    single(
        &mut out,
        "rabbitmq_alarms_free_disk_space_watermark",
        "untyped",
        "is 1 if free disk space watermark alarm is in effect",
        if alarms.disk { 1.0 } else { 0.0 },
    );
    single(
        &mut out,
        "rabbitmq_alarms_memory_used_watermark",
        "untyped",
        "is 1 if VM memory watermark alarm is in effect",
        if alarms.memory { 1.0 } else { 0.0 },
    );
    single(
        &mut out,
        "rabbitmq_alarms_file_descriptor_limit",
        "untyped",
        "is 1 if file descriptor limit alarm is in effect",
        0.0,
    );
    out
}
