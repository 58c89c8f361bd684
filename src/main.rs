//! `warren`: reads flags, environment and the config file (see `warren::config`), initialises
//! logging, runs the broker until SIGTERM or SIGINT, then closes connections with 320
//! CONNECTION_FORCED and exits 0. `warren ctl ...` runs the management command line instead
//! (see `warren::ctl`).

use clap::Parser;

// glibc malloc serialises frees of memory another thread allocated on that arena's lock; a
// message is allocated by its publisher's thread and freed by its consumer's, so profiles showed
// futex waits on that lock. mimalloc frees cross-thread without a lock.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;

/// Runs as a runtime thread goes idle: at most once a second, lets mimalloc return that
/// thread's freed pages to the OS. It purges only when the owning thread allocates again, so
/// after a burst (10,000 connections opened and closed) idle threads kept the peak resident.
fn return_idle_memory() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    LAST.with(|last| {
        if last
            .get()
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            last.set(Some(now));
            // SAFETY: mi_collect only walks this thread's own heap; no pointers are passed.
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
    });
}

/// Warren, an AMQP 0-9-1 message broker.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "Each setting is taken from its flag, else its environment variable, else the \
                  config file, else its default."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file; its keys are the flag names in snake_case (see warren.example.toml)
    #[arg(long, env = "WARREN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: warren::config::Settings,
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
    init_logging();
    let file = match &args.config {
        Some(path) => match warren::config::Settings::from_file(path) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("warren: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => Default::default(),
    };
    if let Some(path) = &args.config {
        tracing::info!(path = %path.display(), "read config file");
    }
    let config = args.settings.or(file).into_config();
    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(return_idle_memory)
        .build()
    {
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

/// Logs go to stdout; the filter comes from WARREN_LOG, else RUST_LOG, else "info". A filter
/// that does not parse is reported rather than silently replaced.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match ["WARREN_LOG", "RUST_LOG"].into_iter().find_map(|var| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| (var, v))
    }) {
        Some((var, value)) => match EnvFilter::try_new(&value) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new("info"),
                Some(format!("{var}={value:?}: {e}")),
            ),
        },
        None => (EnvFilter::new("info"), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
    if let Some(bad) = bad {
        tracing::warn!("ignoring invalid log filter {bad}; using \"info\"");
    }
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
