//! Runs the real `warren` binary (for what only the binary does: flags, environment, the config
//! file, exit codes). Output goes to a file so a chatty broker never blocks on a full pipe.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A `warren` process, killed on drop if still running.
pub struct Process {
    child: tokio::process::Child,
    out: std::path::PathBuf,
}

/// A port that was free a moment ago (the binary needs a fixed port, not 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(args: &[&str], env: &[(&str, &str)], out: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"));
    // The test's own environment must not leak settings into the broker.
    for (key, _) in std::env::vars() {
        if key.starts_with("WARREN_") {
            cmd.env_remove(key);
        }
    }
    let log = std::fs::File::create(out).unwrap();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true);
    cmd
}

impl Process {
    /// Starts `warren args...` with `env` added; `dir` holds its output file.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        let out = dir.join("warren.out");
        let child = command(args, env, &out).spawn().expect("spawn warren");
        Process { child, out }
    }

    /// The process id (for reading its `/proc` entries).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("warren is running")
    }

    /// What the process printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits (bounded) until `addr` accepts TCP connections; panics with the output if the
    /// process exits or the time runs out.
    pub async fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("warren exited with {status}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "nothing listening on {addr} after 30s:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill only sends a signal to our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("warren did not stop within 30s of SIGTERM")
            .unwrap();
        assert!(status.success(), "exit {status}:\n{}", self.output());
    }
}

/// Runs `warren args...` expecting it to exit by itself (bounded); returns (success, output).
pub async fn run_to_exit(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut p = Process::spawn(dir, args, env);
    let status = tokio::time::timeout(Duration::from_secs(30), p.child.wait())
        .await
        .unwrap_or_else(|_| panic!("warren did not exit within 30s:\n{}", p.output()))
        .unwrap();
    (status.success(), p.output())
}
