//! Configuration history end to end: reload, refusal, history, diff, rollback, SIGHUP.
//!
//! One `holdfast serve` and two mock providers A and B. The route `smart` goes to A
//! (version 1), is reloaded to B (version 2), a broken text is refused with its line
//! and field while B keeps serving, a rollback restores version 1's text as version 3
//! and traffic follows it back to A, and a SIGHUP after editing the file reloads it.
//! Which mock served is read from the mocks' own request counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{ConfigBuilder, Mock, Process, TempDir, chat_body, client, run};

/// A config with both targets, `smart` on `to`.
fn config(a: &Mock, b: &Mock, to: &str) -> ConfigBuilder {
    ConfigBuilder::new()
        .target("a", a, "")
        .target("b", b, "")
        .route("smart", &[to], "")
}

/// Sends one chat to `smart`; answers which mock's count went up.
async fn served_by(base: &str, a: &Mock, b: &Mock) -> &'static str {
    let (before_a, before_b) = (a.total().await, b.total().await);
    let response = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat_body("smart", "hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    match (a.total().await - before_a, b.total().await - before_b) {
        (1, 0) => "a",
        (0, 1) => "b",
        other => panic!("unexpected counts {other:?}"),
    }
}

async fn post_config(base: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = client()
        .post(format!("{base}/admin/config"))
        .header("content-type", "application/toml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Sends only the head of a `POST /admin/config` declaring a 2 MiB body; the answer.
async fn declared_too_large(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /admin/config HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/toml\r\nContent-Length: 2097152\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn cli(base: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", base]);
    run(&all)
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_refuse_history_diff_rollback_and_sighup() {
    let (a, b) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
    let dir = TempDir::new("config-history");
    let v1 = config(&a, &b, "a").build(dir.path());
    let path = dir.write("holdfast.toml", &v1);
    let args: Vec<String> = ["serve", "--config", &path.display().to_string()]
        .map(String::from)
        .to_vec();
    let server = Process::spawn("holdfast serve", &args, &[]);
    let base = format!("http://{}", server.addr);
    assert_eq!(served_by(&base, &a, &b).await, "a");

    // v2: smart → B, sent as a body.
    let v2 = config(&a, &b, "b").build(dir.path());
    let (status, body) = post_config(&base, v2.clone()).await;
    assert_eq!((status, &body["version"]), (200, &Value::from(2)), "{body}");
    assert_eq!(served_by(&base, &a, &b).await, "b");

    // Broken: an unknown field, then a bad duration, each named with its line.
    let unknown = v2.replace("[routes.smart]", "[routes.smart]\ntimeout_typo = 1");
    let bad_duration = format!(
        "{v2}\n[policies.slow]\nretry = {{ max_attempts = 2, base = \"soon\", cap = \"1s\" }}\n"
    );
    let cases = [
        (unknown, "timeout_typo", "timeout_typo"),
        (bad_duration, "policies.slow.retry.base", "\"soon\""),
    ];
    for (broken, field, needle) in cases {
        let (status, body) = post_config(&base, broken.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_config", "{body}");
        let problem = body["error"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["field"].as_str().is_some_and(|f| f.contains(field)))
            .unwrap_or_else(|| panic!("no problem names {field}: {body}"))
            .clone();
        let line = broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(problem["line"], line, "{body}");
        assert!(problem["column"].as_u64().is_some(), "{body}");
        assert_eq!(served_by(&base, &a, &b).await, "b");
    }
    // A text that moves the listening socket needs a restart.
    let moved = v2.replace("127.0.0.1:0", "127.0.0.1:1");
    let (status, body) = post_config(&base, moved).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["problems"][0]["field"], "server.listen",
        "{body}"
    );
    assert_eq!(served_by(&base, &a, &b).await, "b");

    // History and diff through the CLI.
    let (code, out, err) = cli(&base, &["config", "history", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let history: Value = serde_json::from_str(&out).unwrap();
    let versions: Vec<u64> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1], "{out}");
    assert_eq!(history["data"][0]["applied"], true, "{out}");
    let (code, out, err) = cli(&base, &["config", "diff", "1", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("-targets = [\"a\"]"), "{out}");
    assert!(out.contains("+targets = [\"b\"]"), "{out}");

    // Rollback: v3 restores v1, traffic back on A.
    let (code, out, err) = cli(&base, &["config", "rollback"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("version 3"), "{out}");
    assert_eq!(served_by(&base, &a, &b).await, "a");
    let (_, out, _) = cli(&base, &["config", "history", "--json"]);
    let history: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(history["data"][0]["restored_from"], 1, "{out}");
    let (_, table, _) = cli(&base, &["config", "history"]);
    assert!(table.contains("restores 1"), "{table}");

    // SIGHUP after editing the file on disk.
    std::fs::write(&path, config(&a, &b, "b").build(dir.path())).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut served = "a";
    for _ in 0..50 {
        #[allow(clippy::disallowed_methods)] // a real server, in real time
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        served = served_by(&base, &a, &b).await;
        if served == "b" {
            break;
        }
    }
    assert_eq!(served, "b", "{}", server.output());

    // `config reload --file` sends the file.
    let v1_file = dir.write("v1.toml", &v1);
    let (code, out, err) = cli(
        &base,
        &["config", "reload", "--file", &v1_file.display().to_string()],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("applied"), "{out}");
    assert_eq!(served_by(&base, &a, &b).await, "a");

    // Bad input.
    let (code, _, err) = cli(&base, &["config", "rollback", "--to", "99"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404") && err.contains("99"), "{err}");
    let (code, _, err) = cli(&base, &["config", "diff", "1", "77"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404"), "{err}");
    let (status, body) = post_config(&base, vec![0xff_u8, 0xfe, b'x']).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &Value::from("invalid_config"))
    );
    let (status, body) = post_config(&base, "  \n").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &Value::from("invalid_config"))
    );
    // Too large: refused on its declared length, before any of it is read (a body
    // actually sent could meet a closed socket half-way, which is not what is tested).
    let answer = declared_too_large(&server.addr.to_string()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
    assert_eq!(served_by(&base, &a, &b).await, "a");
}
