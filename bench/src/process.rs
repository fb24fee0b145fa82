//! The `holdfast` binary as a child process of a benchmark: started on port 0, read
//! for its `listening on ADDR` line, measured through `/proc`, killed on drop.
//!
//! End-to-end benchmarks run the release binary the user runs, not an in-process
//! server, so that what they measure (latency, throughput, memory) includes everything
//! the product does; the binary is the one built next to the benchmark itself.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a child may take to print `listening on ADDR`.
const STARTUP: Duration = Duration::from_secs(30);

/// The release `holdfast` binary beside this benchmark's own executable.
pub fn holdfast_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the benchmark's own executable")?;
    let dir = exe
        .parent()
        .context("the benchmark's executable has no directory")?;
    let binary = dir.join(format!("holdfast{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p holdfast` (same CARGO_TARGET_DIR)",
            binary.display()
        );
    }
    Ok(binary)
}

/// A running child process that announced its address; killed and reaped on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `binary ARGS` with `envs` and waits for `listening on ADDR` on stdout.
    pub fn start(
        binary: &Path,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Server> {
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "HOLDFAST_CONFIG",
            "HOLDFAST_LISTEN",
            "HOLDFAST_STORE_URL",
            "RUST_LOG",
            "HOLDFAST_LOG",
        ] {
            command.env_remove(var);
        }
        command.envs(envs.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stderr_pipe = child.stderr.take().context("no stderr pipe")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready, announced) = mpsc::channel();
        watch_stdout(stdout, ready);
        keep_tail(stderr_pipe, Arc::clone(&stderr));
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        match announced.recv_timeout(STARTUP) {
            Ok(addr) => server.addr = addr,
            Err(_) => bail!(
                "{args:?} did not print `listening on ADDR`; its stderr:\n{}",
                server.stderr_tail()
            ),
        }
        if !server.addr.ip().is_loopback() {
            bail!("{args:?} listens on {}, not on loopback", server.addr);
        }
        Ok(server)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its resident set size in bytes (`VmRSS` in `/proc/PID/status`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading /proc/PID/status (Linux only)")?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .context("no VmRSS line")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("empty VmRSS line")?
            .parse()?;
        Ok(kib * 1024)
    }

    /// CPU time its threads have run so far, in nanoseconds (the sum of each live
    /// thread's `/proc/PID/task/TID/schedstat`). CPU per request is a far steadier
    /// figure than throughput on a shared 2-core machine, so changes are judged by it;
    /// nanosecond counters, unlike `/proc/PID/stat`'s 10 ms ticks, resolve short runs.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .context("listing /proc/PID/task (Linux only)")?;
        let mut nanos = 0u64;
        for task in tasks {
            let path = task?.path().join("schedstat");
            // A thread may exit between the listing and the read: it no longer counts.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let ran: u64 = text
                .split_whitespace()
                .next()
                .context("empty schedstat")?
                .parse()
                .with_context(|| format!("parsing {}", path.display()))?;
            nanos += ran;
        }
        Ok(Duration::from_nanos(nanos))
    }

    /// The last lines it wrote to stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watch_stdout(from: impl Read + Send + 'static, ready: mpsc::Sender<SocketAddr>) {
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line
                .trim()
                .strip_prefix("listening on")
                .and_then(|a| a.trim().parse().ok())
                && let Some(sender) = ready.take()
            {
                let _ = sender.send(addr);
            }
        }
    });
}

/// Drains `from` (a full pipe would stall the child), keeping the last 8 KiB.
fn keep_tail(from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if let Ok(mut tail) = into.lock() {
                tail.push_str(&line);
                tail.push('\n');
                if tail.len() > 16 * 1024 {
                    let cut = tail.len() - 8 * 1024;
                    let cut = (cut..tail.len())
                        .find(|&i| tail.is_char_boundary(i))
                        .unwrap_or(0);
                    tail.replace_range(..cut, "");
                }
            }
        }
    });
}

/// A scratch directory for a benchmark's config, suite and store, under the system's
/// temporary one: emptied when made, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `holdfast-bench-LABEL-PID` in the temporary directory, empty.
    pub fn new(label: &str) -> anyhow::Result<Scratch> {
        let dir =
            std::env::temp_dir().join(format!("holdfast-bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
