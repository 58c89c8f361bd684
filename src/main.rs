//! `warren`: parses flags and environment, initialises logging, runs the broker until SIGTERM or
//! SIGINT, then closes connections with 320 CONNECTION_FORCED and exits 0. `warren ctl ...` runs
//! the management command line instead (see `warren::ctl`).

use clap::Parser;
use std::path::PathBuf;

/// Warren, an AMQP 0-9-1 message broker.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on for AMQP.
    #[arg(long, env = "WARREN_BIND", default_value = "0.0.0.0")]
    bind: String,
    /// AMQP port.
    #[arg(long, env = "WARREN_PORT", default_value_t = 5672)]
    port: u16,
    /// Directory for durable state.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "warren-data")]
    data_dir: PathBuf,
    /// Name of the user created at start.
    #[arg(long, env = "WARREN_DEFAULT_USER", default_value = "guest")]
    default_user: String,
    /// Password of the default user.
    #[arg(long, env = "WARREN_DEFAULT_PASS", default_value = "guest")]
    default_pass: String,
    /// Users only allowed to connect from loopback, comma-separated ("" for none), like
    /// RabbitMQ's loopback_users.
    #[arg(
        long,
        env = "WARREN_LOOPBACK_USERS",
        default_value = "guest",
        value_delimiter = ','
    )]
    loopback_users: Vec<String>,
    /// Heartbeat interval proposed to clients, seconds (0 disables).
    #[arg(long, env = "WARREN_HEARTBEAT", default_value_t = 60)]
    heartbeat: u16,
    /// Largest frame accepted, bytes.
    #[arg(long, env = "WARREN_FRAME_MAX", default_value_t = 131_072)]
    frame_max: u32,
    /// Highest channel number per connection.
    #[arg(long, env = "WARREN_CHANNEL_MAX", default_value_t = 2047)]
    channel_max: u16,
    /// UNSAFE: confirm persistent messages once written to the OS instead of after fsync
    /// (RabbitMQ classic-queue semantics); a power loss can lose confirmed messages.
    #[arg(long, env = "WARREN_NO_FSYNC")]
    no_fsync: bool,
    /// Block publishers while free disk space in the data dir is below this many bytes
    /// (RabbitMQ's disk_free_limit).
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT", default_value_t = 50_000_000)]
    disk_free_limit: u64,
    /// Block publishers while resident memory exceeds this fraction of RAM
    /// (RabbitMQ's vm_memory_high_watermark).
    #[arg(long, env = "WARREN_VM_MEMORY_HIGH_WATERMARK", default_value_t = 0.4)]
    vm_memory_high_watermark: f64,
    /// Requeue a delivery not acked within this many ms and cancel its consumer.
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT", default_value_t = 1_800_000)]
    consumer_timeout: u64,
    /// Address the management API and metrics listeners bind to.
    #[arg(long, env = "WARREN_HTTP_BIND", default_value = "0.0.0.0")]
    http_bind: String,
    /// Management HTTP API port (RabbitMQ's 15672); 0 disables it.
    #[arg(long, env = "WARREN_HTTP_PORT", default_value_t = 15672)]
    http_port: u16,
    /// Prometheus metrics port (rabbitmq_prometheus's 15692); 0 disables it.
    #[arg(long, env = "WARREN_METRICS_PORT", default_value_t = 15692)]
    metrics_port: u16,
}

/// Without a subcommand, `warren` runs the broker.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Manage a running broker through its management API, like rabbitmqctl (`warren ctl --help`).
    // ctl parses its own arguments so its usage errors exit 64 as rabbitmqctl's do.
    #[command(disable_help_flag = true)]
    Ctl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(Command::Ctl { args }) = args.command {
        return warren::ctl::main(args);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = warren::Config {
        bind: args.bind,
        port: args.port,
        data_dir: args.data_dir,
        default_user: args.default_user,
        default_pass: args.default_pass,
        loopback_users: args
            .loopback_users
            .into_iter()
            .filter(|u| !u.is_empty())
            .collect(),
        heartbeat: args.heartbeat,
        frame_max: args.frame_max,
        channel_max: args.channel_max,
        fsync: !args.no_fsync,
        disk_free_limit: args.disk_free_limit,
        consumer_timeout_ms: args.consumer_timeout,
        vm_memory_high_watermark: args.vm_memory_high_watermark,
        http_bind: args.http_bind,
        http_port: (args.http_port != 0).then_some(args.http_port),
        metrics_port: (args.metrics_port != 0).then_some(args.metrics_port),
        ..warren::Config::default()
    };
    raise_open_file_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match warren::Broker::start(config).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot start broker");
                return std::process::ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        broker.shutdown().await;
        tracing::info!("stopped");
        std::process::ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Every connection and segment is a file descriptor; the default soft limit (often 1024)
/// would cap a broker at a few hundred clients, so take the hard limit.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = lim.rlim_max;
            lim.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("could not raise the open-file limit");
            }
        }
    }
}
