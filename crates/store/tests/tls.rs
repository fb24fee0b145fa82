//! PostgreSQL over TLS, against the test server and stand-ins for what goes wrong.
//!
//! The test server's certificate is issued for 127.0.0.1 by a CA that
//! `scripts/setup-test-deps` makes (`HOLDFAST_TEST_POSTGRES_CA`): `verify-full` with
//! that CA in `sslrootcert` connects, and every connection of the store's pool is
//! encrypted; a CA that did not sign it is refused at the handshake, with the CA's
//! path and the mode in the message. A server that answers "no TLS" (a stand-in that
//! speaks only that first byte of the protocol) is refused when the URL asks for TLS.
//! No message carries the URL's password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../test-support/needs.rs"]
mod needs;

use std::path::{Path, PathBuf};

use holdfast_store::{Options, StoreError};
use sqlx::{Connection, Executor};

const PASSWORD: &str = "hunter2-tls-secret";

/// `url` with `params` set (replacing any already there) and the password [`PASSWORD`]
/// (trust authentication ignores it; a message must not show it).
fn with_params(url: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let names: Vec<&str> = params.iter().map(|(name, _)| *name).collect();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| !names.contains(&key.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .extend_pairs(params);
    url.set_password(Some(PASSWORD)).unwrap();
    url.to_string()
}

fn options(schema: &str) -> Options {
    Options {
        postgres_schema: Some(schema.to_owned()),
        postgres_max_connections: 2,
        ..Options::default()
    }
}

/// A self-signed CA, made by `openssl` in a directory of its own, that signed nothing
/// the test server presents.
fn unrelated_ca() -> Option<PathBuf> {
    if !needs::command(
        "openssl",
        &["version"],
        "scripts/setup-test-deps installs it (Debian package openssl)",
    ) {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("holdfast-store-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("openssl")
        .args("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes".split(' '))
        .args(["-keyout", "other.key", "-out", "other-ca.pem", "-days", "2"])
        .args(["-subj", "/CN=not-the-test-server-CA"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir.join("other-ca.pem"))
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_connects_and_encrypts_every_connection() {
    let Some(server) = needs::postgres_url() else {
        return;
    };
    let Some(ca) = needs::postgres_ca() else {
        return;
    };
    let app = format!("hf_tls_{}", std::process::id());
    let url = with_params(
        &server,
        &[
            ("sslmode", "verify-full"),
            ("sslrootcert", &ca),
            ("application_name", &app),
        ],
    );
    let schema = format!("hf_{}_tls", std::process::id());
    let store = holdfast_store::open_with(&url, options(&schema))
        .await
        .unwrap();
    assert!(store.list_workflows().await.unwrap().is_empty());

    // The server's own view of the store's connections.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let (connections, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1 AND a.pid <> pg_backend_pid()",
    )
    .bind(&app)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(connections >= 1, "the store holds a connection");
    assert_eq!(encrypted, connections, "every connection is TLS");
    drop(store);
    admin
        .execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_ca_that_did_not_sign_the_servers_certificate_is_refused_by_name() {
    let Some(server) = needs::postgres_url() else {
        return;
    };
    let Some(wrong) = unrelated_ca() else { return };
    let wrong = wrong.display().to_string();
    for mode in ["verify-full", "verify-ca"] {
        let url = with_params(&server, &[("sslmode", mode), ("sslrootcert", &wrong)]);
        let err = holdfast_store::open_with(&url, Options::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        let message = err.to_string();
        let says = format!("not signed by the CA in sslrootcert {wrong}");
        assert!(message.contains(&says), "{message}");
        assert!(message.contains(&format!("sslmode={mode}")), "{message}");
        assert!(!message.contains(PASSWORD), "{message}");
    }
    let _ = std::fs::remove_dir_all(Path::new(&wrong).parent().unwrap());
}

/// A server that refuses TLS: it answers the client's SSLRequest with `N`, as
/// PostgreSQL with `ssl = off` does, and closes.
async fn server_without_tls() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_url_asking_for_tls_is_refused_clearly_by_a_server_without_it() {
    let addr = server_without_tls().await;
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!("postgres://holdfast:{PASSWORD}@{addr}/db?sslmode={mode}");
        let err = holdfast_store::open(&url).await.unwrap_err();
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("the server does not accept TLS connections")
                && message.contains(&format!("sslmode={mode} asks for TLS")),
            "{message}"
        );
        assert!(
            message.contains(&format!("holdfast:***@{addr}")),
            "{message}"
        );
        assert!(!message.contains(PASSWORD), "{message}");
    }
}
