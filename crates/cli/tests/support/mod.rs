//! The end-to-end harness: the real `holdfast` binary, started as mock providers and as
//! the gateway, talked to over loopback sockets.
//!
//! Why processes and not in-process servers: these tests hold the product to what a user
//! runs (flag parsing, config loading, logging, shutdown), and a test can read the
//! server's own stdout and stderr (to prove that no secret is ever printed). Every
//! process is started on port 0, announces its address on stdout (`listening on ADDR`),
//! and is killed when its handle drops, so a failing test leaves nothing behind.

// Helpers panic on failure, as the tests that call them do; not every test file uses
// every helper.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

/// What a test needs beyond the toolchain; a missing need skips it, or fails it in CI.
#[path = "../../../../test-support/needs.rs"]
pub mod needs;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

/// How long a process may take to print `listening on`.
const STARTUP: Duration = Duration::from_secs(30);

/// Environment variables of ours that must not leak from the developer's shell.
const SCRUBBED_ENV: &[&str] = &[
    "HOLDFAST_CONFIG",
    "HOLDFAST_LISTEN",
    "HOLDFAST_STORE_URL",
    "HOLDFAST_SERVER",
    "HOLDFAST_CLIENT_KEY",
    "HOLDFAST_LOG",
    "RUST_LOG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

// ---------------------------------------------------------------------------------------
// Processes

/// A running `holdfast` process; killed (and reaped) on drop.
pub struct Process {
    name: String,
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    output: Arc<Mutex<String>>,
    /// Its own store directory (`HOLDFAST_STORE_URL`), removed on drop, so that no
    /// test writes `holdfast-data/` into the source tree or shares a database.
    store_dir: PathBuf,
}

impl Process {
    /// Starts `holdfast ARGS` with `envs` set and waits for its `listening on ADDR` line.
    pub fn spawn(name: &str, args: &[String], envs: &[(String, String)]) -> Process {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        command.env("NO_PROXY", "127.0.0.1,localhost");
        let store_dir = scratch_path("store");
        command.env(
            "HOLDFAST_STORE_URL",
            format!("sqlite://{}/holdfast.db", store_dir.display()),
        );
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({BIN}): {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let (ready, announced) = mpsc::channel::<SocketAddr>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        drain(stdout, Arc::clone(&output), Some(ready));
        drain(stderr, Arc::clone(&output), None);
        let mut process = Process {
            name: name.to_owned(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
            store_dir,
        };
        match announced.recv_timeout(STARTUP) {
            Ok(addr) => process.addr = addr,
            Err(_) => {
                let status = process.child.try_wait().ok().flatten();
                pause_blocking(Duration::from_millis(100)); // let the pipes drain
                panic!(
                    "{name} did not print `listening on ADDR` (exit status {status:?}); args {args:?}; output:\n{}",
                    process.output()
                );
            }
        }
        assert!(
            process.addr.ip().is_loopback(),
            "{name} listens on {} (loopback only)",
            process.addr
        );
        process
    }

    /// Everything it printed so far, stdout and stderr interleaved by line.
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// Its process id (for /proc readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its store directory (the SQLite file and its WAL).
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: what the process said is often why.
            let output = self.output();
            let tail = output
                .char_indices()
                .rev()
                .nth(4000)
                .map_or(output.as_str(), |(i, _)| &output[i..]);
            eprintln!(
                "--- {} (pid {}) said, last lines:\n{tail}",
                self.name,
                self.child.id()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

/// Copies `from` line by line into `into`; the first `listening on ADDR` line is sent on
/// `ready`. Lossy on invalid UTF-8 (so a binary leak would still be caught as text).
fn drain(
    from: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    mut ready: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(rest) = text.trim().strip_prefix("listening on ")
                && let Ok(addr) = rest.trim().parse::<SocketAddr>()
                && let Some(sender) = ready.take()
            {
                let _ = sender.send(addr);
            }
            lock(&into).push_str(&text);
        }
    });
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `holdfast ARGS` to completion: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {BIN} {args:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// Scratch directories

/// A directory under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

/// A fresh path under the system's temp dir, unique in this test process.
fn scratch_path(label: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("holdfast-e2e-{label}-{}-{n}", std::process::id()))
}

impl TempDir {
    /// A fresh, empty directory.
    pub fn new(label: &str) -> TempDir {
        let path = scratch_path(label);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` inside it and returns the file's path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// Time and serialisation

/// Measures wall time in a test.
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts now.
    #[allow(clippy::disallowed_methods)] // e2e tests measure real latency over real sockets
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Sleeps in an async test.
#[allow(clippy::disallowed_methods)] // e2e tests wait for real servers in real time
pub async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

#[allow(clippy::disallowed_methods)] // only while a dead process's pipes drain
fn pause_blocking(duration: Duration) {
    std::thread::sleep(duration);
}

/// Runs the tests of one binary one at a time: they measure latency on a 2-core
/// machine, and each starts its own processes. (An async mutex: each test holds it
/// across its awaits, and each test has its own runtime.)
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// A client that keeps no idle connection: each request on a connection of its own.
pub fn client_without_pool() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An HTTP client for loopback: no proxy, a big pool, no overall timeout (tests set
/// their own where it matters).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Mock providers

/// A `holdfast mock-provider` process.
pub struct Mock {
    /// The process.
    pub process: Process,
    /// `openai` or `anthropic`.
    pub format: String,
    client: reqwest::Client,
}

impl Mock {
    /// Starts a mock speaking `format` with extra `flags` (`["--rate-503", "0.2"]`).
    pub fn start(format: &str, flags: &[&str]) -> Mock {
        Mock::start_with_env(format, flags, &[])
    }

    /// Starts a mock with environment variables set (for `--api-key-env`).
    pub fn start_with_env(format: &str, flags: &[&str], envs: &[(&str, &str)]) -> Mock {
        let mut args: Vec<String> = [
            "mock-provider",
            "--listen",
            "127.0.0.1:0",
            "--format",
            format,
            "--seed",
            "7",
        ]
        .map(String::from)
        .to_vec();
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Mock {
            process: Process::spawn(&format!("mock-provider ({format})"), &args, &envs),
            format: format.to_owned(),
            client: client(),
        }
    }

    /// `http://127.0.0.1:PORT/v1`: a provider `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.process.addr)
    }

    fn admin(&self, path: &str) -> String {
        format!("http://{}/admin/{path}", self.process.addr)
    }

    /// `GET /admin/stats`.
    pub async fn stats(&self) -> Value {
        self.client
            .get(self.admin("stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Chat requests received since the start or the last reset.
    pub async fn total(&self) -> u64 {
        self.stats().await["total"].as_u64().expect("stats.total")
    }

    /// `GET /admin/requests`.
    pub async fn requests(&self) -> Vec<Value> {
        let body: Value = self
            .client
            .get(self.admin("requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body.as_array().cloned().expect("a request log")
    }

    /// `POST /admin/faults` with a JSON fault set (`{}` is healthy).
    pub async fn set_faults(&self, faults: Value) {
        let response = self
            .client
            .post(self.admin("faults"))
            .json(&faults)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "setting faults {faults}: {status} {}",
            response.text().await.unwrap()
        );
    }

    /// `POST /admin/reset`: zero the counts.
    pub async fn reset(&self) {
        let response = self.client.post(self.admin("reset")).send().await.unwrap();
        assert!(response.status().is_success());
    }
}

// ---------------------------------------------------------------------------------------
// Gateway configuration

/// Builds a gateway config file whose targets point at mocks.
#[derive(Default, Clone)]
pub struct ConfigBuilder {
    server: String,
    store: String,
    sections: String,
}

impl ConfigBuilder {
    /// An empty config; `[policies.default]` retries fast (tests run in real time).
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::default().policy(
            "default",
            r#"retry = { max_attempts = 3, base = "10ms", cap = "50ms" }"#,
        )
    }

    /// A line for `[server]` (`body_limit = "64KiB"`).
    pub fn server(mut self, line: &str) -> ConfigBuilder {
        self.server.push_str(line);
        self.server.push('\n');
        self
    }

    /// A line for `[store]` (`timeout = "2s"`).
    pub fn store(mut self, line: &str) -> ConfigBuilder {
        self.store.push_str(line);
        self.store.push('\n');
        self
    }

    /// A provider `p-NAME` for `mock` and a target `NAME` on it (model `mock-NAME`,
    /// context window 100000), with `extra` lines in the target's table.
    pub fn target(self, name: &str, mock: &Mock, extra: &str) -> ConfigBuilder {
        let provider = format!(
            "format = \"{}\"\nbase_url = \"{}\"\n",
            mock.format,
            mock.base_url()
        );
        self.provider(&format!("p-{name}"), &provider).raw(&format!(
            "[targets.{name}]\nprovider = \"p-{name}\"\nmodel = \"mock-{name}\"\ncontext_window = 100000\n{extra}\n"
        ))
    }

    /// Like [`ConfigBuilder::target`], with the target's declared context window.
    pub fn target_sized(
        self,
        name: &str,
        mock: &Mock,
        context_window: u64,
        extra: &str,
    ) -> ConfigBuilder {
        let provider = format!(
            "format = \"{}\"\nbase_url = \"{}\"\n",
            mock.format,
            mock.base_url()
        );
        self.provider(&format!("p-{name}"), &provider).raw(&format!(
            "[targets.{name}]\nprovider = \"p-{name}\"\nmodel = \"mock-{name}\"\ncontext_window = {context_window}\n{extra}\n"
        ))
    }

    /// A `[providers.NAME]` table with `body`.
    pub fn provider(self, name: &str, body: &str) -> ConfigBuilder {
        self.raw(&format!("[providers.{name}]\n{body}\n"))
    }

    /// A route `NAME` over `targets`, with `extra` lines (`policy = "fast"`).
    pub fn route(self, name: &str, targets: &[&str], extra: &str) -> ConfigBuilder {
        let list = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.raw(&format!("[routes.{name}]\ntargets = [{list}]\n{extra}\n"))
    }

    /// A `[policies.NAME]` table with `body`. A later table of the same name replaces it.
    pub fn policy(mut self, name: &str, body: &str) -> ConfigBuilder {
        let header = format!("[policies.{name}]\n");
        if let Some(start) = self.sections.find(&header) {
            let end = self.sections[start + header.len()..]
                .find("\n[")
                .map_or(self.sections.len(), |i| start + header.len() + i + 1);
            self.sections.replace_range(start..end, "");
        }
        self.raw(&format!("{header}{body}\n"))
    }

    /// An admin client key `name` read from `env_var` (of the tenant `name`).
    pub fn client_key(self, name: &str, env_var: &str) -> ConfigBuilder {
        self.client_key_as(name, env_var, "admin", name)
    }

    /// A client key `name` read from `env_var`, with its role and tenant.
    pub fn client_key_as(
        self,
        name: &str,
        env_var: &str,
        role: &str,
        tenant: &str,
    ) -> ConfigBuilder {
        self.raw(&format!(
            "[[client_keys]]\nname = \"{name}\"\nkey_env = \"{env_var}\"\nrole = \"{role}\"\ntenant = \"{tenant}\"\n"
        ))
    }

    /// Verbatim TOML.
    pub fn raw(mut self, text: &str) -> ConfigBuilder {
        self.sections.push_str(text);
        if !text.ends_with('\n') {
            self.sections.push('\n');
        }
        self.sections.push('\n');
        self
    }

    /// The file's text, with its store in `data_dir`.
    pub fn build(&self, data_dir: &Path) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[store]\nurl = \"sqlite://{}/holdfast.db\"\n{}\n{}",
            self.server,
            data_dir.display(),
            self.store,
            self.sections
        )
    }
}

// ---------------------------------------------------------------------------------------
// The gateway

/// A `holdfast serve` process.
pub struct Gateway {
    /// The process.
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The config file's text, for messages.
    pub config: String,
    /// A pooled client.
    pub client: reqwest::Client,
    _dir: TempDir,
}

impl Gateway {
    /// Starts `holdfast serve` on `config`.
    pub fn start(config: &ConfigBuilder) -> Gateway {
        Gateway::start_with_env(config, &[])
    }

    /// Starts `holdfast serve` on `config` with environment variables (keys) set.
    pub fn start_with_env(config: &ConfigBuilder, envs: &[(&str, &str)]) -> Gateway {
        let dir = TempDir::new("gateway");
        let text = config.build(dir.path());
        let path = dir.write("holdfast.toml", &text);
        let args: Vec<String> = [
            "serve",
            "--config",
            &path.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ]
        .map(String::from)
        .to_vec();
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let process = Process::spawn("holdfast serve", &args, &envs);
        Gateway {
            base: format!("http://{}", process.addr),
            process,
            config: text,
            client: client(),
            _dir: dir,
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /metrics`: the Prometheus exposition.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// `GET path` as JSON, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap_or(Value::Null)
    }

    /// `POST path` with a JSON body: the status and the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// One short chat to `route`: the status, the `x-holdfast-target` that served it
    /// and the body's text.
    pub async fn ask(&self, route: &str) -> (u16, Option<String>, String) {
        let response = self
            .chat(&chat_body(route, "hello", false))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let target = header(response.headers(), "x-holdfast-target");
        (status, target, response.text().await.unwrap())
    }

    /// A `POST /v1/chat/completions` of `body`, ready for headers.
    pub fn chat(&self, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url("/v1/chat/completions"))
            .json(body)
    }

    /// `GET /v1/holdfast/requests/{id}`: the attempt ledger.
    pub async fn ledger(&self, id: &str) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/v1/holdfast/requests/{id}")))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "ledger of {id}: {status} {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("ledger of {id} is not JSON ({e}): {text}"))
    }

    /// Sends one request on `route` and checks it succeeds: pays the gateway's one-time
    /// costs before a test measures latency.
    pub async fn warm_up(&self, route: &str) {
        let response = self
            .chat(&chat_body(route, "warm up", false))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "warm-up on {route}: {status}: {}",
            response.text().await.unwrap()
        );
    }

    /// The ledger of the request that got `response`'s headers.
    pub async fn ledger_of(&self, headers: &reqwest::header::HeaderMap) -> Value {
        let id = header(headers, "x-holdfast-request-id").expect("x-holdfast-request-id");
        self.ledger(&id).await
    }

    /// `GET /v1/holdfast/targets`.
    pub async fn targets(&self) -> Value {
        let response = self
            .client
            .get(self.url("/v1/holdfast/targets"))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET /v1/holdfast/targets: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The breaker state (`closed`, `open`, `half_open`) of `target`.
    pub async fn breaker(&self, target: &str) -> String {
        let targets = self.targets().await;
        breaker_state(&targets, target)
            .unwrap_or_else(|| panic!("no breaker state for {target} in {targets}"))
    }
}

/// A header's value as text.
pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Finds `target`'s breaker state in a `/v1/holdfast/targets` body, whatever its shape:
/// a map keyed by target name, or a list of objects with a field naming the target;
/// the state is the first string in the entry that is a breaker state.
pub fn breaker_state(targets: &Value, target: &str) -> Option<String> {
    entry(targets, target).and_then(state_in)
}

fn entry<'a>(value: &'a Value, target: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => {
            if let Some(found) = map.get(target) {
                return Some(found);
            }
            if map.values().any(|v| v.as_str() == Some(target)) {
                return Some(value);
            }
            map.values().find_map(|v| entry(v, target))
        }
        Value::Array(items) => items.iter().find_map(|v| entry(v, target)),
        _ => None,
    }
}

fn state_in(value: &Value) -> Option<String> {
    const STATES: [&str; 3] = ["closed", "open", "half_open"];
    match value {
        Value::String(s) if STATES.contains(&s.as_str()) => Some(s.clone()),
        Value::Object(map) => {
            // Prefer a field that says what it is.
            for key in ["breaker", "state", "breaker_state"] {
                if let Some(found) = map.get(key).and_then(state_in) {
                    return Some(found);
                }
            }
            map.values().find_map(state_in)
        }
        Value::Array(items) => items.iter().find_map(state_in),
        _ => None,
    }
}

/// The attempts of a ledger (`attempts`, at the top or one level down).
pub fn attempts(ledger: &Value) -> Vec<Value> {
    ledger
        .get("attempts")
        .or_else(|| {
            ledger
                .as_object()
                .and_then(|m| m.values().find_map(|v| v.get("attempts")))
        })
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| panic!("no attempts in ledger {ledger}"))
}

/// A field of an attempt as text (strings as they are, other values as JSON).
pub fn field(attempt: &Value, name: &str) -> String {
    match attempt.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Requests and responses

/// An OpenAI chat request for `model`.
pub fn chat_body(model: &str, prompt: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}]
    })
}

/// Checks that `text` is an OpenAI-style error body and returns it parsed.
pub fn assert_openai_error(text: &str, context: &str) -> Value {
    openai_error(text).unwrap_or_else(|problem| panic!("{context}: {problem}"))
}

/// `text` parsed, if it is an OpenAI-style error body
/// (`{"error": {"message", "type", "param", "code"}}`); else what is wrong with it.
pub fn openai_error(text: &str) -> Result<Value, String> {
    let body: Value = serde_json::from_str(text)
        .map_err(|e| format!("the error body is not JSON ({e}): {text:?}"))?;
    let error = body
        .get("error")
        .ok_or_else(|| format!("no `error` object: {text}"))?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if message.is_empty() {
        return Err(format!("error.message is missing or empty: {text}"));
    }
    if !error.get("type").is_some_and(Value::is_string) {
        return Err(format!("error.type is not a string: {text}"));
    }
    for key in ["param", "code"] {
        if error.get(key).is_none() {
            return Err(format!("error.{key} is missing (null is fine): {text}"));
        }
    }
    Ok(body)
}

/// `text` parsed, if it is an Anthropic-style error body
/// (`{"type": "error", "error": {"type", "message"}}`), as `/v1/messages` answers; else
/// what is wrong with it.
pub fn anthropic_error(text: &str) -> Result<Value, String> {
    let body: Value = serde_json::from_str(text)
        .map_err(|e| format!("the error body is not JSON ({e}): {text:?}"))?;
    if body.get("type").and_then(Value::as_str) != Some("error") {
        return Err(format!("`type` is not \"error\": {text}"));
    }
    let error = body
        .get("error")
        .ok_or_else(|| format!("no `error` object: {text}"))?;
    if error
        .get("message")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(format!("error.message is missing or empty: {text}"));
    }
    if !error.get("type").is_some_and(Value::is_string) {
        return Err(format!("error.type is not a string: {text}"));
    }
    Ok(body)
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its `event:` name, if any.
    pub event: Option<String>,
    /// Its data lines joined.
    pub data: String,
}

impl Event {
    /// Its data as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Splits an SSE body into events.
pub fn sse_events(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let mut event = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix("event:") {
                event = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("data:") {
                data.push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
            }
        }
        if event.is_some() || !data.is_empty() {
            events.push(Event {
                event,
                data: data.join("\n"),
            });
        }
    }
    events
}

/// The text of an OpenAI stream: the concatenated `delta.content`.
pub fn stream_text(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(Event::json)
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The `finish_reason`s an OpenAI stream reported.
pub fn finish_reasons(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(Event::json)
        .filter_map(|v| v["choices"][0]["finish_reason"].as_str().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------
// A canned OpenAI provider over any stream (plain TCP for a proxy, TLS for a private CA)

/// Answers every HTTP/1.1 request on `stream` with a chat completion whose text is
/// `content`, until the peer closes; `seen` gets each request line
/// (`POST /v1/chat/completions HTTP/1.1`, absolute-form through a proxy).
pub async fn answer_canned<S>(stream: S, content: &str, seen: &Mutex<Vec<String>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut reader = tokio::io::BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        lock(seen).push(line.trim_end().to_owned());
        let answer = json!({
            "id": "chatcmpl-canned", "object": "chat.completion", "created": 1,
            "model": "canned-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        })
        .to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        let stream = reader.get_mut();
        if stream.write_all(response.as_bytes()).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}
