//! A closed-loop HTTP load generator over loopback: latency samples at concurrency 1,
//! throughput at a fixed concurrency for a fixed time, and long-lived streams.
//!
//! Why one hyper client for everything: a gateway's cost is only meaningful as the
//! difference (or ratio) between going direct and going through it, so both paths are
//! driven by the very same client code, connection pool and runtime; the client's own
//! overhead then cancels out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::measure::{Stopwatch, pause};

/// The shared client: HTTP/1.1, keep-alive, a pool big enough for every worker.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Builds the client.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(2048)
        .build(connector)
}

/// One request to send again and again: a POST of a JSON body with headers.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL.
    pub uri: Uri,
    /// The JSON body.
    pub body: Bytes,
    /// Extra headers (`authorization`).
    pub headers: Vec<(String, String)>,
}

impl Endpoint {
    fn request(&self) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut builder =
            Request::post(self.uri.clone()).header("content-type", "application/json");
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        Ok(builder.body(Full::new(self.body.clone()))?)
    }

    /// Sends the request and returns the response once its status is 200.
    pub async fn start(&self, client: &HttpClient) -> anyhow::Result<hyper::Response<Incoming>> {
        let response = client
            .request(self.request()?)
            .await
            .with_context(|| format!("POST {}", self.uri))?;
        if response.status() != hyper::StatusCode::OK {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            bail!(
                "POST {}: {status}: {}",
                self.uri,
                String::from_utf8_lossy(&body)
            );
        }
        Ok(response)
    }

    /// One whole request: sent, answered 200, body read to the end.
    pub async fn call(&self, client: &HttpClient) -> anyhow::Result<()> {
        let response = self.start(client).await?;
        response
            .into_body()
            .collect()
            .await
            .context("reading the body")?;
        Ok(())
    }
}

/// `n` requests one after another; each one's latency, sorted.
pub async fn latencies(
    client: &HttpClient,
    endpoint: &Endpoint,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let clock = Stopwatch::start();
        endpoint.call(client).await?;
        samples.push(clock.elapsed());
    }
    samples.sort_unstable();
    Ok(samples)
}

/// What one throughput round did.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Requests answered within the span, per second of it.
    pub per_second: f64,
    /// Every request answered, those in flight when the span ended included: the
    /// count to divide a server's CPU time by.
    pub completed: u64,
}

/// Requests per second with `concurrency` workers each sending back to back for `span`.
/// Fails if any request fails.
pub async fn throughput(
    client: &HttpClient,
    endpoint: &Endpoint,
    concurrency: usize,
    span: Duration,
) -> anyhow::Result<Throughput> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        workers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                endpoint.call(&client).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    let clock = Stopwatch::start();
    pause(span).await;
    let counted = done.load(Ordering::Relaxed);
    let elapsed = clock.elapsed();
    stop.store(true, Ordering::Relaxed);
    while let Some(result) = workers.join_next().await {
        result??;
    }
    Ok(Throughput {
        per_second: counted as f64 / elapsed.as_secs_f64(),
        completed: done.load(Ordering::Relaxed),
    })
}

/// Opens `n` streaming requests at once and returns their bodies once each has
/// delivered its first frame: the streams stay open as long as the bodies live.
pub async fn open_streams(
    client: &HttpClient,
    endpoint: &Endpoint,
    n: usize,
) -> anyhow::Result<Vec<Incoming>> {
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        opening.spawn(async move {
            let mut body = endpoint.start(&client).await?.into_body();
            body.frame()
                .await
                .context("the stream ended before its first frame")??;
            anyhow::Ok(body)
        });
    }
    let mut bodies = Vec::with_capacity(n);
    while let Some(result) = opening.join_next().await {
        bodies.push(result??);
    }
    Ok(bodies)
}
