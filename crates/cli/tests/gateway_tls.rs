//! HTTPS to providers: certificates are checked, against Mozilla's roots plus those in
//! `SSL_CERT_FILE`, as a self-hosted model behind a private CA needs.
//!
//! A provider stand-in here speaks TLS with a certificate from a CA made for the test
//! (by the `openssl` command; without it the tests skip loudly, or fail in CI). Trusted through
//! `SSL_CERT_FILE`, the call goes through; without it the handshake is refused before
//! any request is sent; a `SSL_CERT_FILE` that cannot be read fails the call with its
//! name, never trusting less than was asked. A workflow's `http` step to a tool behind
//! the same CA is held to the same rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::{ConfigBuilder, Gateway, TempDir, answer_canned};
use tokio_rustls::rustls;

/// How the tests here get `openssl`.
const OPENSSL: &str = "scripts/setup-test-deps installs it (Debian package openssl)";

/// A CA and a certificate it issued for 127.0.0.1, as PEM files in `dir`.
fn make_certificates(dir: &Path) {
    let run = |command: &str| {
        let out = Command::new("openssl")
            .args(command.split_whitespace())
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=holdfast-test-CA"
    ));
    run(&format!(
        "req {ec} -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1"
    ));
    run(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext",
    );
}

/// An OpenAI-speaking provider over TLS that answers every request itself; `seen`
/// holds the requests that got through the handshake.
async fn tls_provider(dir: &Path) -> (String, Arc<Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    answer_canned(tls, "over TLS", &log).await;
                }
            });
        }
    });
    (base, seen)
}

/// A gateway whose one route goes to `base`, started with `SSL_CERT_FILE` set to
/// `cert_file` (empty: unset), asked once: status, target and body.
async fn ask(base: &str, cert_file: &str) -> (u16, Option<String>, String) {
    let config = ConfigBuilder::new()
        .provider("private", &format!("format = \"openai\"\nbase_url = \"{base}\"\n"))
        .raw(
            "[targets.private]\nprovider = \"private\"\nmodel = \"private-model\"\ncontext_window = 100000\n",
        )
        .route("chat", &["private"], "policy = \"once\"")
        .policy("once", r#"retry = { max_attempts = 1, base = "10ms", cap = "50ms" }"#);
    Gateway::start_with_env(&config, &[("SSL_CERT_FILE", cert_file)])
        .ask("chat")
        .await
}

#[tokio::test]
async fn a_provider_behind_a_private_ca_is_trusted_only_through_ssl_cert_file() {
    let dir = TempDir::new("tls");
    if !support::needs::command("openssl", &["version"], OPENSSL) {
        return;
    }
    make_certificates(dir.path());
    let (base, served) = tls_provider(dir.path()).await;

    // Trusted: the call goes through over TLS.
    let ca = dir.path().join("ca.pem").display().to_string();
    let (status, target, text) = ask(&base, &ca).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(target.as_deref(), Some("private"));
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "over TLS");
    assert_eq!(served.lock().unwrap().len(), 1);

    // Not trusted: refused at the handshake, as a connection error; nothing was sent.
    let (status, _, text) = ask(&base, "").await;
    assert!(status >= 500, "{status}: {text}");
    let error = support::assert_openai_error(&text, "an untrusted certificate");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("certificate"), "{text}");
    assert_eq!(
        served.lock().unwrap().len(),
        1,
        "no request passed an untrusted handshake"
    );

    // A file that cannot be read fails the call and says which.
    let (status, _, text) = ask(&base, "/nonexistent/ca.pem").await;
    assert!(status >= 500, "{status}: {text}");
    assert!(text.contains("SSL_CERT_FILE /nonexistent/ca.pem"), "{text}");
    assert_eq!(served.lock().unwrap().len(), 1);
}

/// Runs a one-step workflow whose `http` step calls `tool`, on a server started with
/// `SSL_CERT_FILE` set to `cert_file`; returns the task once it ended.
async fn run_tool_step(tool: &str, cert_file: &str) -> serde_json::Value {
    // The tool listens on loopback, which only a pattern naming it opens.
    let config = ConfigBuilder::new().raw(&format!("[engine.egress]\nallow = [\"{tool}\"]"));
    let gateway = Gateway::start_with_env(&config, &[("SSL_CERT_FILE", cert_file)]);
    let workflow = json!({"name": "fetch", "steps": [
        {"name": "get", "kind": "http", "url": tool, "retry": {"max_attempts": 1}}
    ]});
    let (status, body) = gateway.post_json("/v1/workflows", &workflow).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, task) = gateway
        .post_json("/v1/tasks", &json!({"workflow": "fetch", "input": {}}))
        .await;
    assert_eq!(status, 201, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let task = gateway.get_json(&format!("/v1/tasks/{id}")).await;
        if task["status"] == "succeeded" || task["status"] == "failed" {
            return task;
        }
        support::pause(std::time::Duration::from_millis(50)).await;
    }
    panic!("task {id} did not end");
}

#[tokio::test]
async fn a_tool_behind_a_private_ca_is_trusted_only_through_ssl_cert_file() {
    let dir = TempDir::new("tls-tool");
    if !support::needs::command("openssl", &["version"], OPENSSL) {
        return;
    }
    make_certificates(dir.path());
    let (base, served) = tls_provider(dir.path()).await;
    let tool = format!("{base}/tool");
    let ca = dir.path().join("ca.pem").display().to_string();
    let task = run_tool_step(&tool, &ca).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["output"]["choices"][0]["message"]["content"], "over TLS",
        "{task}"
    );
    assert_eq!(served.lock().unwrap().len(), 1);

    let task = run_tool_step(&tool, "").await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate")),
        "{task}"
    );
    assert_eq!(
        served.lock().unwrap().len(),
        1,
        "no request passed an untrusted handshake"
    );
}
