//! The workflow engine end to end through the real binary: `holdfast serve` with a
//! configuration whose store lives in a temporary directory, driven by the client
//! commands a user would type (`workflow register`, `task submit`, `task get`,
//! `task list`, `task cancel`, `escalations list`, `escalations resolve`), and a
//! workflow file that does not parse stopping the start with its name and field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Process, TempDir, run};

const KEY: &str = "cli-test-key";

/// A workflow that waits for a person, then naps.
const REVIEW: &str = r#"
name = "review"
version = 1

[input_schema]
type = "object"
required = ["topic"]

[[steps]]
name = "review"
kind = "human"
prompt = "Publish {{ input.topic }}?"
payload = { topic = "{{ input.topic }}" }

[[steps]]
name = "nap"
kind = "sleep"
duration = "10ms"
"#;

/// Runs `holdfast ARGS --server … --key …`: (exit code, stdout, stderr).
fn cli(server: &Process, args: &[&str]) -> (Option<i32>, String, String) {
    let url = format!("http://{}", server.addr);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", &url, "--key", KEY]);
    run(&all)
}

/// `cli` that must succeed; its stdout.
fn ok(server: &Process, args: &[&str]) -> String {
    let (code, out, err) = cli(server, args);
    assert_eq!(code, Some(0), "{args:?} failed:\n{out}\n{err}");
    out
}

fn json(server: &Process, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(server, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Polls `task get` until the task is in `status`.
fn wait_status(server: &Process, task_id: &str, status: &str) -> Value {
    for _ in 0..300 {
        let task = json(server, &["task", "get", task_id]);
        if task["status"] == status {
            return task;
        }
        #[allow(clippy::disallowed_methods)] // a real server, in real time
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{task_id} never reached {status}");
}

fn start(dir: &TempDir) -> Process {
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    dir.write(
        "flows/boot.json",
        r#"{"name": "boot", "steps": [{"name": "nap", "kind": "sleep", "duration": "1ms"}]}"#,
    );
    let config = dir.write(
        "holdfast.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[client_keys]]\nname = \"ops\"\nkey_env = \"HF_TEST_KEY\"\nrole = \"admin\"\n\n\
         [engine]\nnode_id = \"e2e-node\"\npoll_interval = \"20ms\"\nworkflows = [\"flows/boot.json\"]\n",
    );
    let store = format!("sqlite://{}/data/holdfast.db", dir.path().display());
    Process::spawn(
        "holdfast serve",
        &[
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        &[
            ("HF_TEST_KEY".into(), KEY.into()),
            ("HOLDFAST_STORE_URL".into(), store),
        ],
    )
}

#[test]
fn workflows_run_end_to_end_through_the_cli() {
    let dir = TempDir::new("engine-cli");
    let server = start(&dir);
    assert!(
        dir.path().join("data/holdfast.db").exists(),
        "the store is in the data dir"
    );

    let listed = json(&server, &["workflow", "list"]);
    let names: Vec<&str> = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["boot"],
        "the config's workflow file was registered at start"
    );

    let file = dir.write("review.toml", REVIEW);
    let file = file.display().to_string();
    let out = ok(&server, &["workflow", "register", &file]);
    assert!(out.contains("registered review v1"), "{out}");
    let out = ok(&server, &["workflow", "register", &file]);
    assert!(out.contains("already registered"), "{out}");

    let submitted = json(
        &server,
        &[
            "task",
            "submit",
            "review",
            "--input",
            r#"{"topic": "rust"}"#,
            "--idempotency-key",
            "k-1",
        ],
    );
    let task_id = submitted["task_id"].as_str().unwrap().to_owned();
    let out = ok(
        &server,
        &[
            "task",
            "submit",
            "review",
            "--input",
            r#"{"topic": "rust"}"#,
            "--idempotency-key",
            "k-1",
        ],
    );
    assert!(
        out.contains(&format!("already submitted {task_id}")),
        "{out}"
    );

    let waiting = wait_status(&server, &task_id, "waiting");
    assert_eq!(waiting["pending_steps"][0], "review", "{waiting}");
    let shown = ok(&server, &["task", "get", &task_id]);
    assert!(
        shown.contains("status:") && shown.contains("waiting"),
        "{shown}"
    );

    let open = json(&server, &["escalations", "list"]);
    let esc = &open["escalations"][0];
    assert_eq!(esc["task_id"], task_id.as_str(), "{open}");
    assert_eq!(esc["payload"]["topic"], "rust");
    let esc_id = esc["escalation_id"].as_str().unwrap().to_owned();
    let table = ok(&server, &["escalations", "list"]);
    assert!(
        table.starts_with("ESCALATION") && table.contains(&esc_id),
        "{table}"
    );

    let out = ok(&server, &["escalations", "resolve", &esc_id, "--approve"]);
    // Recorded under the key's name: who authenticated, not who a body says.
    assert!(out.contains("approved by ops"), "{out}");
    let (code, _, err) = cli(
        &server,
        &["escalations", "resolve", &esc_id, "--reject", "late"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("409") && err.contains("conflict"), "{err}");

    let done = wait_status(&server, &task_id, "succeeded");
    assert_eq!(
        done["completed_steps"],
        serde_json::json!(["review", "nap"])
    );
    let table = ok(&server, &["task", "list", "--status", "succeeded"]);
    assert!(
        table.contains(&task_id) && table.contains("review v1"),
        "{table}"
    );
    let all = json(&server, &["escalations", "list", "--all"]);
    assert_eq!(all["escalations"][0]["status"], "approved");

    // A second task, rejected; a third, cancelled.
    let second = json(
        &server,
        &["task", "submit", "review", "--input", r#"{"topic": "b"}"#],
    );
    let second = second["task_id"].as_str().unwrap().to_owned();
    wait_status(&server, &second, "waiting");
    let open = json(&server, &["escalations", "list", "--task", &second]);
    let id = open["escalations"][0]["escalation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &server,
        &["escalations", "resolve", &id, "--reject", "off topic"],
    );
    let failed = wait_status(&server, &second, "failed");
    assert!(
        failed["last_error"].as_str().unwrap().contains("off topic"),
        "{failed}"
    );

    let third = json(
        &server,
        &["task", "submit", "review", "--input", r#"{"topic": "c"}"#],
    );
    let third = third["task_id"].as_str().unwrap().to_owned();
    let out = ok(
        &server,
        &["task", "cancel", &third, "--reason", "not needed"],
    );
    assert!(out.contains(&format!("cancelled {third}")), "{out}");
    assert_eq!(
        json(&server, &["task", "get", &third])["status"],
        "cancelled"
    );
}

#[test]
fn refusals_print_the_server_message_and_bad_usage_exits_2() {
    let dir = TempDir::new("engine-cli-refusals");
    let server = start(&dir);
    let (code, _, err) = cli(&server, &["task", "submit", "nothing"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404") && err.contains("nothing"), "{err}");
    let (code, _, err) = cli(&server, &["task", "submit", "boot", "--input", "{not json"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--input"), "{err}");
    let (code, _, err) = cli(&server, &["escalations", "resolve", "x"]);
    assert_eq!(code, Some(2), "a decision is required: {err}");
    let (code, _, err) = cli(&server, &["task", "get", "t-none"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not found"), "{err}");
    let bad = dir.write(
        "bad.json",
        r#"{"name": "bad", "steps": [{"name": "a", "kind": "teleport"}]}"#,
    );
    let (code, _, err) = cli(
        &server,
        &["workflow", "register", &bad.display().to_string()],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("400") && err.contains("steps[0]"), "{err}");

    let url = format!("http://{}", server.addr);
    let (code, _, err) = run(&["task", "list", "--server", &url]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("401"), "no key: {err}");
    let (code, _, err) = run(&[
        "task",
        "list",
        "--server",
        "http://127.0.0.1:9",
        "--key",
        KEY,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot reach holdfast"), "{err}");
}

#[test]
fn a_bad_workflow_file_stops_the_start_with_its_name_and_field() {
    let dir = TempDir::new("engine-cli-bad-flow");
    dir.write(
        "broken.json",
        r#"{"name": "broken", "steps": [{"name": "a", "kind": "http", "url": "http://x/{{ steps.zzz.output }}"}]}"#,
    );
    let config = dir.write(
        "holdfast.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite://{}/data/h.db\"\n[engine]\nworkflows = [\"broken.json\"]\n",
            dir.path().display()
        ),
    );
    let (code, out, err) = run(&["serve", "--config", &config.display().to_string()]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("broken.json") && err.contains("steps[0].url"),
        "{err}"
    );
    assert!(!out.contains("listening on"), "{out}");
}

#[test]
fn config_check_parses_the_workflow_files() {
    let dir = TempDir::new("engine-cli-check");
    dir.write(
        "ok.json",
        r#"{"name": "ok", "steps": [{"name": "a", "kind": "sleep", "duration": "1s"}]}"#,
    );
    let good = dir.write("good.toml", "[engine]\nworkflows = [\"ok.json\"]\n");
    let (code, out, err) = run(&["config", "check", &good.display().to_string()]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    dir.write(
        "bad.toml",
        "name = \"bad\"\n[[steps]]\nname = \"a\"\nkind = \"sleep\"\nduration = \"soon\"\n",
    );
    let broken = dir.write(
        "broken.toml",
        "[engine]\nworkflows = [\"ok.json\", \"bad.toml\", \"missing.json\"]\n",
    );
    let (code, _, err) = run(&["config", "check", &broken.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml: steps[0].duration"), "{err}");
    assert!(err.contains("missing.json: cannot read"), "{err}");
}

/// A password in a store URL, which no message may show.
const STORE_PASSWORD: &str = "hunter2-store-secret";

/// `holdfast serve` on `store_url` must stop before listening, naming `cause` on stderr
/// and never the URL's password.
fn serve_refuses_store(store_url: &str, cause: &str) {
    let dir = TempDir::new("engine-cli-store-tls");
    let config = dir.write("holdfast.toml", "[server]\nlisten = \"127.0.0.1:0\"\n");
    let config = config.display().to_string();
    let (code, out, err) = run(&["serve", "--config", &config, "--store-url", store_url]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(!out.contains("listening on"), "{out}");
    assert!(
        err.contains("opening the store") && err.contains(cause),
        "{err}"
    );
    assert!(
        !format!("{out}{err}").contains(STORE_PASSWORD),
        "{out}\n{err}"
    );
}

#[test]
fn serve_says_a_store_without_tls_was_refused_and_hides_the_password() {
    // A server with `ssl = off` answers the client's TLS request with `N`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut socket in listener.incoming().flatten() {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).is_ok() {
                let _ = socket.write_all(b"N");
            }
        }
    });
    let url = format!("postgres://holdfast:{STORE_PASSWORD}@{addr}/db?sslmode=require");
    serve_refuses_store(
        &url,
        "the server does not accept TLS connections, but sslmode=require asks for TLS",
    );
}

#[test]
fn serve_says_the_stores_certificate_was_refused_and_hides_the_password() {
    let Some(server) = support::needs::postgres_url() else {
        return;
    };
    if !support::needs::command(
        "openssl",
        &["version"],
        "scripts/setup-test-deps installs it (Debian package openssl)",
    ) {
        return;
    }
    // A CA that signed nothing the test server presents.
    let dir = TempDir::new("engine-cli-other-ca");
    let made = std::process::Command::new("openssl")
        .args("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes".split(' '))
        .args(["-keyout", "other.key", "-out", "other-ca.pem", "-days", "2"])
        .args(["-subj", "/CN=not-the-test-server-CA"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ca = dir.path().join("other-ca.pem").display().to_string();
    // The test server's URL, with a password and the wrong CA.
    let base = server.split('?').next().unwrap();
    let (scheme, rest) = base.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap_or(("postgres", rest));
    let user = user.split(':').next().unwrap();
    let url =
        format!("{scheme}://{user}:{STORE_PASSWORD}@{host}?sslmode=verify-full&sslrootcert={ca}");
    serve_refuses_store(&url, &format!("not signed by the CA in sslrootcert {ca}"));
}
