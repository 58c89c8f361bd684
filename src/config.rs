//! Broker configuration: the only code that reads flags and `WARREN_*` environment variables.

use std::path::PathBuf;

/// Everything a broker needs to start. `Default` gives RabbitMQ's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the AMQP listener binds to.
    pub bind: String,
    /// AMQP port (0 picks an ephemeral port, used by tests).
    pub port: u16,
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// User created on first start.
    pub default_user: String,
    /// Password of the default user.
    pub default_pass: String,
    /// Users that may only connect from loopback (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    /// Heartbeat interval the server proposes, seconds (0 disables).
    pub heartbeat: u16,
    /// Largest frame the server accepts, bytes.
    pub frame_max: u32,
    /// Highest channel number a client may open.
    pub channel_max: u16,
    /// Confirm persistent messages only after fsync. Off gives RabbitMQ classic-queue
    /// semantics (confirmed once written to the OS) and can lose confirmed messages on power
    /// loss.
    pub fsync: bool,
    /// Publishers are blocked while free disk space is below this many bytes.
    pub disk_free_limit: u64,
    /// Publishers are blocked while resident memory exceeds this fraction of RAM.
    pub vm_memory_high_watermark: f64,
    /// A delivery not acked within this many ms is requeued and its consumer cancelled
    /// (RabbitMQ's consumer_timeout; per queue: x-consumer-timeout).
    pub consumer_timeout_ms: u64,
    /// Address the management API and Prometheus listeners bind to.
    pub http_bind: String,
    /// Management HTTP API port (RabbitMQ's 15672); `None` disables the API, `Some(0)` picks
    /// an ephemeral port (tests).
    pub http_port: Option<u16>,
    /// Prometheus metrics port (rabbitmq_prometheus's 15692); `None` disables it.
    pub metrics_port: Option<u16>,
    /// How often the management API samples message counters for rates, ms (RabbitMQ's
    /// collect_statistics_interval).
    pub stats_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "0.0.0.0".into(),
            port: 5672,
            data_dir: PathBuf::from("warren-data"),
            default_user: "guest".into(),
            default_pass: "guest".into(),
            loopback_users: vec!["guest".into()],
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            fsync: true,
            disk_free_limit: 50_000_000,
            vm_memory_high_watermark: 0.4,
            consumer_timeout_ms: 1_800_000,
            http_bind: "0.0.0.0".into(),
            http_port: Some(15672),
            metrics_port: Some(15692),
            stats_interval_ms: 5000,
        }
    }
}
