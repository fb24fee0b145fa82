//! The store fails under load: PostgreSQL stopped and started again, SQLite locked by
//! another writer, SQLite on a full disk, SQLite's file made read-only, while
//! `holdfast serve` takes model calls and runs workflows.
//!
//! What must hold: model calls keep their latency (they do not need the store);
//! `/ready` turns unready within a second and ready again within a second of the store
//! coming back, while `/health` stays `ok`; a submission answers 503
//! `store_unavailable` with `Retry-After` within `store.timeout`, never hangs; the same
//! submission retried with its idempotency key once the store is back is accepted; and
//! every task accepted before the outage, including those whose step results could not
//! be committed during it, completes. The `store_unreachable` alert fires during the
//! outage and resolves after it, and `/metrics` shows `holdfast_store_up`.
//!
//! PostgreSQL runs as a private instance of this test (initdb and pg_ctl from the
//! PostgreSQL 15 install, on a port of its own), so stopping it disturbs no other test;
//! it is stopped and its directory removed when the test ends, failed or not. The full
//! disk is real too: a small tmpfs of the test's own, filled up and emptied again
//! ([`SmallDisk`]), so SQLite's writes fail with `SQLITE_FULL` as they would in
//! production; and so is the read-only file (immutable, on an ext4 image of its own).
//!
//! The tests run one at a time: each times `/ready` and model calls against bounds of a
//! second, which several outages at once on a small machine would blur.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, TempDir, needs, serial};

/// Where Debian's PostgreSQL 15 keeps its programs.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const PG_INSTALL: &str = "install PostgreSQL 15 (apt-get install postgresql-15)";

/// How long a submission may take while the store is down: `store.timeout` below plus
/// the time to answer.
const TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_millis(700);

/// A PostgreSQL server of this test's own: its data directory in a scratch directory
/// owned by the `postgres` user (PostgreSQL refuses to run as root), on a free port.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts it; `None` after a skip when PostgreSQL 15 is not installed.
    fn start() -> Option<PrivatePostgres> {
        if !needs::command(&format!("{PG_BIN}/pg_ctl"), &["--version"], PG_INSTALL) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "holdfast-pg-{}-{}",
            std::process::id(),
            support_free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = PrivatePostgres {
            port: support_free_port(),
            dir,
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres", &pg.dir.display().to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "chown of {}", pg.dir.display());
        }
        let data = pg.data();
        pg.pg(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        pg.ctl_start();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Runs one of PostgreSQL's programs as the `postgres` user; panics on failure.
    fn pg(&self, program: &str, args: &[&str]) {
        let path = format!("{PG_BIN}/{program}");
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(&path)
        };
        let out = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as a crash would).
    fn stop(&self) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(if is_root() { "runuser" } else { "true" })
            .args(if is_root() {
                vec!["-u", "postgres", "--"]
            } else {
                vec![]
            })
            .arg(format!("{PG_BIN}/pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn support_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The workflow under load: a model call, a short durable timer, another model call.
fn workflow() -> Value {
    json!({
        "name": "outage",
        "input_schema": {"type": "object", "required": ["n"]},
        "steps": [
            {"name": "think", "kind": "llm", "route": "smart", "prompt": "Think about {{ input.n }}"},
            {"name": "nap", "kind": "sleep", "duration": "300ms"},
            {"name": "answer", "kind": "llm", "route": "smart", "prompt": "Answer {{ input.n }}"}
        ]
    })
}

fn config(mock: &Mock) -> ConfigBuilder {
    ConfigBuilder::new()
        .store(&format!("timeout = \"{}ms\"", TIMEOUT.as_millis()))
        .store("probe_interval = \"200ms\"")
        .target("m", mock, "")
        .route("smart", &["m"], "")
        .raw("[engine]\nlease = \"10s\"\npoll_interval = \"50ms\"")
        .raw(
            "[alerts]\neval_interval = \"100ms\"\n\n[alerts.rules.store_unreachable]\nfor = \"0s\"",
        )
}

/// The state of the `store_unreachable` alert on `/v1/holdfast/alerts`.
async fn store_alert(gw: &Gateway) -> String {
    let board = gw.get_json("/v1/holdfast/alerts").await;
    board["alerts"]
        .as_array()
        .and_then(|alerts| alerts.iter().find(|a| a["alert"] == "store_unreachable"))
        .and_then(|a| a["state"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

/// Waits until the `store_unreachable` alert is (or is not) firing.
async fn until_store_alert(gw: &Gateway, firing: bool) {
    let started = Instant::now();
    loop {
        let state = store_alert(gw).await;
        if (state == "firing") == firing {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "store_unreachable is {state}; wanted firing = {firing}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn submit(gw: &Gateway, key: &str, n: u64) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let response = gw
        .client
        .post(gw.url("/v1/tasks"))
        .json(&json!({"workflow": "outage", "input": {"n": n}, "idempotency_key": key}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = support::header(response.headers(), "retry-after");
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body, started.elapsed())
}

async fn ready(gw: &Gateway) -> (u16, Value) {
    let response = gw.client.get(gw.url("/ready")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// How long until `/ready` answers `want`, polling every 20 ms, up to `within`.
async fn until_ready_is(gw: &Gateway, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = ready(gw).await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/ready still answers {status} {body} after {within:?}; wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One model call's latency (it must succeed).
async fn model_call(gw: &Gateway) -> Duration {
    let started = Instant::now();
    let (status, _, text) = gw.ask("smart").await;
    assert_eq!(status, 200, "a model call failed: {text}");
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Waits until every task in `ids` succeeded.
async fn all_succeed(gw: &Gateway, ids: &[String], within: Duration) {
    let started = Instant::now();
    for id in ids {
        loop {
            let task = gw.get_json(&format!("/v1/tasks/{id}")).await;
            match task["status"].as_str() {
                Some("succeeded") => break,
                Some("failed" | "cancelled") => panic!("task {id} ended {task}"),
                _ => {}
            }
            assert!(
                started.elapsed() < within,
                "task {id} did not succeed within {within:?}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A workflow whose one step is a worker's job.
fn handoff() -> Value {
    json!({
        "name": "handoff",
        "steps": [{"name": "render", "kind": "worker", "queue": "render", "payload": {"n": "{{ input.n }}"}}]
    })
}

/// Claims the one job of queue `render`, waiting for it to appear.
async fn claim_job(gw: &Gateway) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = gw
            .post_json(
                "/v1/workers/claim",
                &json!({"queue": "render", "worker_id": "w1", "lease_ms": 30000, "limit": 1}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(job) = body["jobs"].as_array().and_then(|jobs| jobs.first()) {
            return job.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no job to claim"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn complete_job(gw: &Gateway, job: &Value) -> (u16, Value) {
    let path = format!(
        "/v1/workers/jobs/{}/complete",
        job["job_id"].as_str().unwrap()
    );
    gw.post_json(
        &path,
        &json!({"token": job["token"], "output": {"rendered": true}}),
    )
    .await
}

/// The load and the checks shared by both backends; `fail` takes the store away and
/// `heal` gives it back.
async fn outage(gw: &Gateway, fail: impl FnOnce(), heal: impl FnOnce()) {
    let (status, body) = gw.post_json("/v1/workflows", &workflow()).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    assert_ne!(store_alert(gw).await, "firing");
    let (status, body) = gw.post_json("/v1/workflows", &handoff()).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, handed) = gw
        .post_json(
            "/v1/tasks",
            &json!({"workflow": "handoff", "input": {"n": 1}}),
        )
        .await;
    assert_eq!(status, 201, "{handed}");
    let job = claim_job(gw).await;
    // Warm: model calls' latency with the store up.
    let mut before = Vec::new();
    for _ in 0..20 {
        before.push(model_call(gw).await);
    }
    assert_eq!(
        until_ready_is(gw, 200, Duration::from_secs(5))
            .await
            .as_secs(),
        0
    );
    // Tasks accepted before the outage, still running when it starts.
    let mut accepted = Vec::new();
    for n in 0..8 {
        let (status, _, body, _) = submit(gw, &format!("before-{n}"), n).await;
        assert_eq!(status, 201, "{body}");
        accepted.push(body["task_id"].as_str().unwrap().to_owned());
    }

    // Model calls keep running through the outage, timed.
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn({
        let stop = Arc::clone(&stop);
        let gw_base = gw.base.clone();
        async move {
            let client = support::client();
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = client
                    .post(format!("{gw_base}/v1/chat/completions"))
                    .json(&support::chat_body("smart", "hello", false))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
                let _ = response.bytes().await;
                samples.push(started.elapsed());
            }
            samples
        }
    });

    fail();
    let unready_after = until_ready_is(gw, 503, Duration::from_secs(5)).await;
    assert!(
        unready_after <= Duration::from_secs(1),
        "/ready took {unready_after:?} to turn unready"
    );
    let (_, body) = ready(gw).await;
    assert_eq!(body["status"], "unready", "{body}");
    assert_eq!(body["checks"]["store"]["state"], "down", "{body}");
    assert!(body["checks"]["store"]["since_ms"].as_u64().unwrap() > 0);
    until_store_alert(gw, true).await;
    let health = gw.get_json("/health").await;
    assert_eq!(health["status"], "ok", "liveness does not follow the store");

    // Submissions answer 503 within the bound, never hang.
    for n in 0..3 {
        let (status, retry_after, body, took) = submit(gw, &format!("during-{n}"), 100 + n).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert!(took <= TIMEOUT + SLACK, "a submission took {took:?}");
    }
    // A worker's result meanwhile: 503, then accepted when sent again.
    let (status, body) = complete_job(gw, &job).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let metrics = gw.metrics().await;
    assert!(metrics.contains("holdfast_store_up 0"), "{metrics}");

    heal();
    let ready_after = until_ready_is(gw, 200, Duration::from_secs(10)).await;
    assert!(
        ready_after <= Duration::from_secs(1),
        "/ready took {ready_after:?} to turn ready again"
    );
    until_store_alert(gw, false).await;
    stop.store(true, Ordering::Relaxed);
    let during = during.await.unwrap();
    assert!(
        during.len() >= 5,
        "model calls during the outage: {}",
        during.len()
    );
    let (before, during) = (median(before), median(during));
    assert!(
        during <= before * 3 + Duration::from_millis(20),
        "model calls slowed during the outage: median {during:?} against {before:?}"
    );

    let (status, body) = complete_job(gw, &job).await;
    assert_eq!(status, 200, "the worker's result sent again: {body}");
    accepted.push(handed["task_id"].as_str().unwrap().to_owned());

    // The submissions refused during the outage are accepted on retry, once each.
    for n in 0..3 {
        let (status, _, body, _) = submit(gw, &format!("during-{n}"), 100 + n).await;
        assert!(status == 201 || status == 200, "{status} {body}");
        accepted.push(body["task_id"].as_str().unwrap().to_owned());
    }
    all_succeed(gw, &accepted, Duration::from_secs(60)).await;
    let metrics = gw.metrics().await;
    assert!(metrics.contains("holdfast_store_up 1"), "{metrics}");
    assert!(
        metrics.contains("holdfast_store_write_seconds_count"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_and_started_under_load() {
    let _serial = serial().await;
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let mock = Mock::start("openai", &[]);
    let gw = Gateway::start_with_env(&config(&mock), &[("HOLDFAST_STORE_URL", &pg.url())]);
    outage(&gw, || pg.stop(), || pg.ctl_start()).await;
}

/// SQLite that cannot be written: another process holds its write lock (an open
/// `BEGIN EXCLUSIVE`), so every write waits for the lock and times out, while reads
/// still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_locked_by_another_writer_under_load() {
    let _serial = serial().await;
    if !needs::command("python3", &["--version"], "install python3") {
        return;
    }
    let mock = Mock::start("openai", &[]);
    let dir = TempDir::new("sqlite-outage");
    let db = dir.path().join("holdfast.db");
    let url = format!("sqlite://{}", db.display());
    let gw = Gateway::start_with_env(&config(&mock), &[("HOLDFAST_STORE_URL", &url)]);
    let locker: Arc<std::sync::Mutex<Option<std::process::Child>>> = Arc::default();
    let take = Arc::clone(&locker);
    outage(
        &gw,
        || *locker.lock().unwrap() = Some(hold_write_lock(&db)),
        move || {
            if let Some(mut child) = take.lock().unwrap().take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        },
    )
    .await;
}

/// A process that takes `db`'s write lock and holds it until killed.
fn hold_write_lock(db: &Path) -> std::process::Child {
    let script = "import sqlite3,sys,time\n\
        c=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=10)\n\
        c.execute('BEGIN EXCLUSIVE')\n\
        print('locked',flush=True)\n\
        time.sleep(3600)\n";
    let mut child = Command::new("python3")
        .args(["-c", script, &db.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// SQLite on a disk that fills up under load and is emptied again: every write fails
/// with `SQLITE_FULL` while reads still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_on_a_full_disk_under_load() {
    let _serial = serial().await;
    let Some(disk) = SmallDisk::mount("full") else {
        return;
    };
    let mock = Mock::start("openai", &[]);
    let url = format!("sqlite://{}", disk.path("holdfast.db").display());
    let gw = Gateway::start_with_env(&config(&mock), &[("HOLDFAST_STORE_URL", &url)]);
    outage(&gw, || disk.fill(), || disk.free()).await;
    let said = gw.process.output();
    assert!(
        said.contains("database or disk is full"),
        "the outage was SQLite's full disk: {said}"
    );
}

/// SQLite on a file made read-only under load (the immutable attribute, which holds
/// even for root): every write fails with `SQLITE_IOERR` while reads still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_on_a_read_only_file_under_load() {
    let _serial = serial().await;
    let Some(disk) = SmallDisk::ext4("read-only") else {
        return;
    };
    let mock = Mock::start("openai", &[]);
    let url = format!("sqlite://{}", disk.path("holdfast.db").display());
    let gw = Gateway::start_with_env(&config(&mock), &[("HOLDFAST_STORE_URL", &url)]);
    outage(&gw, || disk.freeze(true), || disk.freeze(false)).await;
    let said = gw.process.output();
    assert!(
        said.contains("disk I/O error"),
        "the outage was SQLite's read-only file: {said}"
    );
}

/// A filesystem of this test's own, mounted on a scratch directory and unmounted when
/// the test ends, failed or not: a tmpfs of [`SmallDisk::SIZE`], whose filling is a
/// real full disk seen by nothing else, or an ext4 image, whose files can be made
/// immutable (tmpfs does not refuse writes to an immutable file already open). Mounting
/// needs root, as CI runs.
struct SmallDisk {
    dir: PathBuf,
    /// The ext4 image behind it, if it is one.
    image: Option<PathBuf>,
}

impl SmallDisk {
    /// Large enough for the database and its WAL under this load, small enough to fill
    /// in a moment.
    const SIZE: &str = "32m";

    /// Mounts a tmpfs; `None` after a skip when this process may not mount.
    fn mount(label: &str) -> Option<SmallDisk> {
        let size = format!("size={}", SmallDisk::SIZE);
        SmallDisk::mounted(label, None, &["-t", "tmpfs", "-o", &size, "tmpfs"])
    }

    /// Mounts a fresh ext4 image; `None` after a skip when this process may not.
    fn ext4(label: &str) -> Option<SmallDisk> {
        let tools = "install e2fsprogs (mkfs.ext4, chattr)";
        if !needs::command("mkfs.ext4", &["-V"], tools)
            || !needs::command("sh", &["-c", "command -v chattr"], tools)
        {
            return None;
        }
        let image = std::env::temp_dir().join(format!(
            "holdfast-disk-{label}-{}-{}.img",
            std::process::id(),
            support_free_port()
        ));
        let made = Command::new("truncate")
            .args(["-s", SmallDisk::SIZE])
            .arg(&image)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("mkfs.ext4")
                .arg("-q")
                .arg(&image)
                .status()
                .is_ok_and(|s| s.success());
        assert!(made, "making the ext4 image {}", image.display());
        let path = image.display().to_string();
        SmallDisk::mounted(label, Some(image), &["-o", "loop", &path])
    }

    fn mounted(label: &str, image: Option<PathBuf>, args: &[&str]) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!(
            "holdfast-disk-{label}-{}-{}",
            std::process::id(),
            support_free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = SmallDisk { dir, image };
        let mounted = is_root()
            && Command::new("mount")
                .args(args)
                .arg(&disk.dir)
                .status()
                .is_ok_and(|s| s.success());
        if !mounted {
            drop(disk);
            needs::skip(
                "mounting a small filesystem (a disk to fill, a file to freeze) needs root",
                "run the tests as root, as CI does",
            );
            return None;
        }
        Some(disk)
    }

    /// Makes the database and its WAL immutable (`true`) or writable again.
    fn freeze(&self, frozen: bool) {
        let flag = if frozen { "+i" } else { "-i" };
        for name in ["holdfast.db", "holdfast.db-wal"] {
            let status = Command::new("chattr")
                .arg(flag)
                .arg(self.path(name))
                .status()
                .unwrap();
            assert!(status.success(), "chattr {flag} {name}");
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Takes every free byte: writes zeros until the disk refuses another page.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        let zeros = vec![0_u8; 1 << 20];
        for chunk in [1 << 20, 4096] {
            while let Ok(n) = std::io::Write::write(&mut filler, &zeros[..chunk]) {
                if n == 0 {
                    break;
                }
            }
        }
        let taken = filler.metadata().unwrap().len();
        assert!(taken > 0, "the disk was full before it was filled");
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a holdfast killed a moment ago may still hold its files open.
        if self.image.is_some() {
            // Whatever a failed test left frozen would outlive the image's mount.
            for name in ["holdfast.db", "holdfast.db-wal"] {
                let _ = Command::new("chattr")
                    .arg("-i")
                    .arg(self.path(name))
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(image) = &self.image {
            let _ = std::fs::remove_file(image);
        }
    }
}

/// `POST /v1/tasks` as the key `key`: the status and the answer.
async fn submit_as(gw: &Gateway, key: &str, idempotency_key: Option<&str>, n: u64) -> (u16, Value) {
    let mut body = json!({"workflow": "outage", "input": {"n": n}});
    if let Some(k) = idempotency_key {
        body["idempotency_key"] = json!(k);
    }
    let response = gw
        .client
        .post(gw.url("/v1/tasks"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_as(gw: &Gateway, key: &str, path: &str) -> (u16, Value) {
    let response = gw
        .client
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const ACME: &str = "acme-key-0123456789";
const BETA: &str = "beta-key-0123456789";

/// `[store] outbox = true`: submissions during a PostgreSQL outage are answered 202
/// `queued` at once, the node is killed with SIGKILL while they wait, and the node
/// started again after the store is back stores every one of them, in its submitter's
/// tenant, and runs it; the same key then answers the stored task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outbox_survives_an_outage_and_a_kill() {
    let _serial = serial().await;
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    outbox_survives(pg.url(), || pg.stop(), || pg.ctl_start()).await;
}

/// The same with SQLite on a disk that fills up: the node killed while the disk is
/// full, the disk emptied, the node started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_outbox_survives_a_full_disk_and_a_kill() {
    let _serial = serial().await;
    let Some(disk) = SmallDisk::mount("outbox") else {
        return;
    };
    let url = format!("sqlite://{}", disk.path("holdfast.db").display());
    outbox_survives(url, || disk.fill(), || disk.free()).await;
}

/// `[store] outbox_max`: once the outbox holds its bound, a submission during the
/// outage is answered 503 `outbox_full` with `Retry-After` instead of being queued, and
/// `/metrics` counts it; what was queued is stored and run once the store is back, and
/// the refused submission sent again is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_outbox_refuses_with_retry_after_and_keeps_what_it_holds() {
    let _serial = serial().await;
    let Some(disk) = SmallDisk::mount("capped") else {
        return;
    };
    let mock = Mock::start("openai", &[]);
    let keep = TempDir::new("capped-outbox");
    let outbox = keep.path().join("outbox.jsonl");
    let config = config(&mock)
        .store("outbox = true")
        .store(&format!("outbox_path = \"{}\"", outbox.display()))
        .store("outbox_max = \"1KiB\"");
    let url = format!("sqlite://{}", disk.path("holdfast.db").display());
    let gw = Gateway::start_with_env(&config, &[("HOLDFAST_STORE_URL", &url)]);
    let (status, body) = gw.post_json("/v1/workflows", &workflow()).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, _, body, _) = submit(&gw, "warm", 0).await;
    assert_eq!(status, 201, "{body}");

    disk.fill();
    until_ready_is(&gw, 503, Duration::from_secs(5)).await;
    let mut queued = Vec::new();
    let refused = loop {
        let n = queued.len() as u64 + 1;
        let key = format!("capped-{n}");
        let (status, retry_after, body, took) = submit(&gw, &key, n).await;
        assert!(took <= TIMEOUT + SLACK, "a submission took {took:?}");
        if status == 202 {
            queued.push((key, n));
            assert!(queued.len() < 50, "1 KiB holds fewer submissions than that");
            continue;
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "outbox_full", "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"));
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("store.outbox_max"), "{message}");
        break (key, n);
    };
    assert!(
        queued.len() >= 3,
        "queued before the bound: {}",
        queued.len()
    );
    // Still full: refused again, and counted.
    let (status, _, body, _) = submit(&gw, "capped-extra", 999).await;
    assert_eq!(status, 503, "{body}");
    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert_eq!(metric(&metrics, "holdfast_outbox_refused_total"), Some(2.0));
    assert_eq!(metric(&metrics, "holdfast_outbox_max_bytes"), Some(1024.0));
    let held = metric(&metrics, "holdfast_outbox_bytes").unwrap();
    assert!(held > 0.0 && held <= 1024.0, "{held}");
    assert!(std::fs::metadata(&outbox).unwrap().len() <= 1024);

    disk.free();
    until_ready_is(&gw, 200, Duration::from_secs(5)).await;
    let started = Instant::now();
    let mut ids = Vec::new();
    for (key, n) in &queued {
        loop {
            let (status, _, body, _) = submit(&gw, key, *n).await;
            if status == 200 {
                ids.push(body["task_id"].as_str().unwrap().to_owned());
                break;
            }
            // Until the outbox drained, a submission still queues behind it (or finds
            // it full).
            assert!(
                status == 202 || body["error"]["code"] == "outbox_full",
                "{status} {body}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{key} never stored"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (status, _, body, _) = submit(&gw, &refused.0, refused.1).await;
    assert_eq!(status, 201, "the refused submission sent again: {body}");
    ids.push(body["task_id"].as_str().unwrap().to_owned());
    all_succeed(&gw, &ids, Duration::from_secs(60)).await;
    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert_eq!(metric(&metrics, "holdfast_outbox_bytes"), Some(0.0));
}

/// The value of an unlabelled sample in a `/metrics` exposition.
fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The outbox's checks, shared by both backends; `fail` takes the store away and
/// `heal` gives it back.
async fn outbox_survives(url: String, fail: impl FnOnce(), heal: impl FnOnce()) {
    let mock = Mock::start("openai", &[]);
    let keep = TempDir::new("outbox");
    let outbox = keep.path().join("outbox.jsonl");
    let config = config(&mock)
        .store("outbox = true")
        .store(&format!("outbox_path = \"{}\"", outbox.display()))
        .client_key("acme", "ACME_KEY")
        .client_key_as("beta", "BETA_KEY", "agent", "beta");
    let envs = [
        ("HOLDFAST_STORE_URL", url),
        ("ACME_KEY", ACME.to_owned()),
        ("BETA_KEY", BETA.to_owned()),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = Gateway::start_with_env(&config, &envs);
    let response = first
        .client
        .post(first.url("/v1/workflows"))
        .bearer_auth(ACME)
        .json(&workflow())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    // The node learns the workflow's version through a first submission.
    let (status, body) = submit_as(&first, ACME, Some("warm"), 0).await;
    assert_eq!(status, 201, "{body}");

    fail();
    until_ready_is(&first, 503, Duration::from_secs(5)).await;
    let mut keys = Vec::new();
    for n in 0..5 {
        let key = format!("queued-{n}");
        let started = Instant::now();
        let (status, body) = submit_as(&first, ACME, Some(&key), n).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "queued", "{body}");
        assert_eq!(body["idempotency_key"], key.as_str(), "{body}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        keys.push(key);
    }
    // Without a key, the answer names the one it was given.
    let (status, body) = submit_as(&first, ACME, None, 9).await;
    assert_eq!(status, 202, "{body}");
    keys.push(body["idempotency_key"].as_str().unwrap().to_owned());
    // A bad input is refused now, not queued to be lost later.
    let (status, body) = gw_bad_input(&first).await;
    assert_eq!(status, 400, "{body}");
    assert!(outbox.exists());
    drop(first); // SIGKILL while the submissions wait

    heal();
    let second = Gateway::start_with_env(&config, &envs);
    let started = Instant::now();
    let mut ids = Vec::new();
    for (n, key) in keys.iter().enumerate() {
        let n = if n == 5 { 9 } else { n as u64 };
        loop {
            let (status, body) = submit_as(&second, ACME, Some(key), n).await;
            if status == 200 {
                ids.push(body["task_id"].as_str().unwrap().to_owned());
                break;
            }
            assert_eq!(status, 202, "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{key} never stored"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for id in &ids {
        loop {
            let (status, task) = get_as(&second, ACME, &format!("/v1/tasks/{id}")).await;
            assert_eq!(status, 200, "{task}");
            if task["status"] == "succeeded" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{task}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The submitter's tenant holds it; another tenant does not see it.
        let (status, _) = get_as(&second, BETA, &format!("/v1/tasks/{id}")).await;
        assert_eq!(status, 404);
    }
    let (_, page) = get_as(&second, ACME, "/v1/tasks?limit=100").await;
    assert_eq!(
        page["tasks"].as_array().map(Vec::len),
        Some(keys.len() + 1),
        "each queued submission stored once: {page}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while outbox.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!outbox.exists(), "the outbox was not emptied");
}

async fn gw_bad_input(gw: &Gateway) -> (u16, Value) {
    let response = gw
        .client
        .post(gw.url("/v1/tasks"))
        .bearer_auth(ACME)
        .json(&json!({"workflow": "outage", "input": "not an object", "idempotency_key": "bad"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
