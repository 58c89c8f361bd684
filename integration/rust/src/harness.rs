//! Shared by both suites: broker address from AMQP_HOST/AMQP_PORT/AMQP_USER/AMQP_PASS, per-run
//! names, the 16 MiB body, and the runner: every case under its own timeout (CASE_TIMEOUT seconds,
//! default 30), a process watchdog (SUITE_TIMEOUT, default 240), PASS/FAIL per case, then one line
//! `rust/<client>: N/M passed`; exit status 0 only if every case passed.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// What a case returns: `Err` carries the failure shown in the FAIL line.
pub type CaseResult = Result<(), String>;
/// A case: an async function run on the suite's runtime.
pub type Case = (
    &'static str,
    fn() -> Pin<Box<dyn Future<Output = CaseResult> + Send>>,
);

pub const LARGE_SIZE: usize = 16 * 1024 * 1024;

pub struct Env {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub run_id: String,
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn env() -> Env {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Env {
        host: var("AMQP_HOST", "127.0.0.1"),
        port: var("AMQP_PORT", "5672").parse().unwrap_or(5672),
        user: var("AMQP_USER", "guest"),
        pass: var("AMQP_PASS", "guest"),
        run_id: std::env::var("COMPAT_RUN_ID").unwrap_or_else(|_| {
            format!(
                "{:08x}",
                (nanos as u64 ^ std::process::id() as u64) & 0xffff_ffff
            )
        }),
    }
}

/// `base` made unique to this run (so runs against a shared broker never collide).
pub fn name(base: &str) -> String {
    format!("compat.{base}.{}", run_id())
}

pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| env().run_id)
}

/// A 16 MiB body that is not all one byte, ending in a marker, so truncation or shifted frames show.
pub fn large_body() -> Vec<u8> {
    let mut body: Vec<u8> = (0..LARGE_SIZE)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect();
    body[LARGE_SIZE - 7..].copy_from_slice(b"TAIL-42");
    body
}

/// Fails the case with a message unless `cond`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Fails the case unless `got == want`.
#[macro_export]
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $what:expr) => {
        match (&$got, &$want) {
            (got, want) => {
                if got != want {
                    return Err(format!("{}: got {:?}, want {:?}", $what, got, want));
                }
            }
        }
    };
}

/// Turns any error into the case's failure text, naming the step.
pub trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Debug> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e:?}"))
    }
}

/// Awaits `fut` for at most `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .map_err(|_| format!("timed out after {secs}s waiting for {what}"))
}

pub fn run(label: &str, cases: &[Case]) -> ! {
    let case_timeout: u64 = var("CASE_TIMEOUT", "30").parse().unwrap_or(30);
    let suite_timeout: u64 = var("SUITE_TIMEOUT", "240").parse().unwrap_or(240);
    let e = env();
    println!(
        "[{label}] broker {}:{}, run id {}",
        e.host,
        e.port,
        run_id()
    );
    let watchdog_label = label.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(suite_timeout));
        println!("{watchdog_label}: FAILED, suite timed out after {suite_timeout}s");
        std::process::exit(2);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            println!("{label}: FAILED, no tokio runtime: {e}");
            std::process::exit(2)
        });
    let mut passed = 0;
    for (case, f) in cases {
        let started = Instant::now();
        // Each case on its own task: a panic (an unexpected client failure) fails only that case.
        let res = rt.block_on(async {
            match tokio::time::timeout(Duration::from_secs(case_timeout), tokio::spawn(f())).await {
                Err(_) => Err(format!("timed out after {case_timeout}s")),
                Ok(Err(join)) => Err(format!("panicked: {join}")),
                Ok(Ok(r)) => r,
            }
        });
        let took = started.elapsed().as_secs_f64();
        match res {
            Ok(()) => {
                passed += 1;
                println!("PASS {case} ({took:.1}s)");
            }
            Err(e) => println!("FAIL {case} ({took:.1}s): {e}"),
        }
    }
    println!("{label}: {passed}/{} passed", cases.len());
    std::process::exit(if passed == cases.len() { 0 } else { 1 });
}
