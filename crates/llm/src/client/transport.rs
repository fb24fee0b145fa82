//! The HTTP layer under the provider client: a request out; the status, headers and a
//! stream of body bytes back, over a pooled connection.
//!
//! The decision: calls go straight through hyper-util's pooled client (rustls with the
//! webpki roots for `https`, HTTP/2 when the provider offers it over ALPN) instead of
//! through reqwest, whose per-request machinery (redirect bookkeeping that parses the
//! URL again, proxy matching, a retry layer, header merging) was a fifth of the
//! gateway's instructions per call. reqwest keeps one job: a provider that the
//! environment sends through a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, minus
//! `NO_PROXY` and loopback hosts), since it speaks to proxies and the direct client
//! does not. Which one serves a base URL is decided once, when the URL is first
//! called. Neither follows redirects: a provider API does not redirect, and following
//! one would carry the request (and, on the same host, its key) somewhere the
//! configuration never named.
//!
//! Certificates are checked against Mozilla's roots (webpki-roots, so no system
//! OpenSSL is needed) plus those in the PEM file `SSL_CERT_FILE` names (`tls.rs`): a
//! self-hosted model behind a private CA works without a flag. A file that cannot be
//! read, or holds no certificate, fails every call with its name in the message rather
//! than silently trusting less than was asked.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyDataStream, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::tls::{CertFile, ssl_cert_file};

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle connections kept per host: enough for a busy gateway's steady concurrency.
const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// TCP keepalive probes on provider connections, so a dead peer is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
const USER_AGENT: &str = concat!("holdfast/", env!("CARGO_PKG_VERSION"));

/// A response's body, as it arrives.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// What came back: the head, and the body still to read.
pub(crate) struct Received {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: BodyStream,
}

/// A failure below HTTP: no connection, a broken one, or a body cut off (its `detail`
/// says which).
#[derive(Debug)]
pub(crate) struct TransportError {
    /// The connection could not be made.
    pub(crate) connect: bool,
    /// A timeout of the transport's own (only connecting has one).
    pub(crate) timeout: bool,
    /// The error and its causes on one line; never holds the URL.
    pub(crate) detail: String,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

type Direct = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTP client: direct, or through the environment's proxy. Shared behind an
/// `Arc`, one per connect timeout and way out.
pub(crate) enum Transport {
    /// hyper-util's client, straight to the provider.
    Direct(Box<Direct>),
    /// reqwest, which honours the proxy variables.
    Proxied(reqwest::Client),
}

impl Transport {
    /// A client whose connections must open within `connect`.
    pub(crate) fn new(connect: Duration, proxied: bool) -> Result<Transport, TransportError> {
        let extra_roots = ssl_cert_file().map_err(TransportError::other)?;
        if proxied {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(connect)
                .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                .pool_idle_timeout(POOL_IDLE)
                .tcp_nodelay(true)
                .tcp_keepalive(TCP_KEEPALIVE)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(USER_AGENT);
            if let Some(file) = &extra_roots {
                let certificates = reqwest::Certificate::from_pem_bundle(&file.pem)
                    .map_err(|e| TransportError::other(file.problem(&e.to_string())))?;
                for certificate in certificates {
                    builder = builder.add_root_certificate(certificate);
                }
            }
            return builder
                .build()
                .map(Transport::Proxied)
                .map_err(|e| TransportError::from_reqwest(&e));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect));
        http.set_nodelay(true);
        http.set_keepalive(Some(TCP_KEEPALIVE));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(extra_roots.as_ref())?)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Transport::Direct(Box::new(client)))
    }

    /// Sends `request` and returns once the response head arrived.
    pub(crate) async fn send(
        &self,
        mut request: Request<Bytes>,
    ) -> Result<Received, TransportError> {
        match self {
            Transport::Direct(client) => {
                request.headers_mut().insert(
                    http::header::USER_AGENT,
                    http::HeaderValue::from_static(USER_AGENT),
                );
                let response = client
                    .request(request.map(Full::new))
                    .await
                    .map_err(|e| TransportError::from_client(&e))?;
                let (head, body) = response.into_parts();
                let body = BodyDataStream::new(body).map_err(|e| TransportError::from_body(&e));
                Ok(Received {
                    status: head.status,
                    headers: head.headers,
                    body: Box::pin(body),
                })
            }
            Transport::Proxied(client) => {
                let request = reqwest::Request::try_from(request)
                    .map_err(|e| TransportError::from_reqwest(&e))?;
                let response = client
                    .execute(request)
                    .await
                    .map_err(|e| TransportError::from_reqwest(&e))?;
                let (status, headers) = (response.status(), response.headers().clone());
                let body = response
                    .bytes_stream()
                    .map(|item| item.map_err(|e| TransportError::from_reqwest(&e)));
                Ok(Received {
                    status,
                    headers,
                    body: Box::pin(body),
                })
            }
        }
    }
}

/// TLS as the direct client speaks it: ring's primitives, TLS 1.2 and 1.3, Mozilla's
/// roots and `extra`'s certificates.
fn tls_config(extra: Option<&CertFile>) -> Result<rustls::ClientConfig, TransportError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(file) = extra {
        let certificates = CertificateDer::pem_slice_iter(&file.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                TransportError::other(file.problem(&format!("not a PEM file of certificates: {e}")))
            })?;
        let (added, _unusable) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(TransportError::other(
                file.problem("holds no usable certificate"),
            ));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::other(format!("setting up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Whether the environment's proxy variables send `uri` through a proxy. A loopback
/// host never is (as in Go's HTTP client): a proxy's loopback is its own, not this
/// machine's, so a local model server is reached directly whatever `NO_PROXY` says.
pub(crate) fn proxied(uri: &http::Uri) -> bool {
    !is_loopback(uri)
        && hyper_util::client::proxy::matcher::Matcher::from_env()
            .intercept(uri)
            .is_some()
}

/// Whether `uri`'s host is this machine's loopback (`localhost`, 127/8, `::1`).
fn is_loopback(uri: &http::Uri) -> bool {
    let host = uri.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl TransportError {
    pub(crate) fn other(detail: String) -> Self {
        TransportError {
            connect: false,
            timeout: false,
            detail,
        }
    }

    fn from_client(error: &hyper_util::client::legacy::Error) -> Self {
        let connect = error.is_connect();
        let lead = if connect {
            "could not connect"
        } else {
            "the request failed"
        };
        TransportError {
            connect,
            timeout: connect && timed_out(error),
            detail: describe(lead, error),
        }
    }

    fn from_body(error: &hyper::Error) -> Self {
        TransportError {
            connect: false,
            timeout: error.is_timeout(),
            detail: describe("the response body broke off", error),
        }
    }

    fn from_reqwest(error: &reqwest::Error) -> Self {
        let lead = if error.is_connect() {
            "could not connect"
        } else if error.is_body() || error.is_decode() {
            "the response body broke off"
        } else {
            "the request failed"
        };
        TransportError {
            connect: error.is_connect(),
            timeout: error.is_timeout(),
            // reqwest's own message names the URL: only its causes are kept.
            detail: describe_causes(lead, error.source()),
        }
    }
}

/// Whether an I/O timeout is among `error`'s causes.
fn timed_out(error: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// `lead`, then `error` and its causes, each said once.
fn describe(lead: &str, error: &(dyn StdError + 'static)) -> String {
    describe_causes(lead, Some(error))
}

/// `lead`, then `first` and the causes below it, each said once, on one line: what an
/// HTTP client's error says is mostly in its causes ("error sending request" alone
/// tells nobody that a certificate was refused).
pub fn describe_causes(lead: &str, first: Option<&(dyn StdError + 'static)>) -> String {
    let mut text = lead.to_owned();
    let mut source = first;
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which hosts count as loopback; that `proxied` never proxies them is shown with
    /// a real proxy in `crates/cli/tests/gateway_proxy.rs`.
    #[test]
    fn loopback_hosts_are_told_from_the_rest() {
        let loopback = |url: &str| is_loopback(&url.parse().unwrap_or_default());
        for url in [
            "http://127.0.0.1:9/v1/chat/completions",
            "http://127.8.9.10/v1",
            "https://[::1]:8443/v1/messages",
            "http://LOCALHOST:11434/v1",
        ] {
            assert!(loopback(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "http://10.0.0.7:8000/v1",
            "http://[2001:db8::1]/v1",
            "http://localhost.example.com/v1",
            "http://128.0.0.1/v1",
        ] {
            assert!(!loopback(url), "{url}");
        }
    }
}
