//! The baseline: one minimal HTTP/1.1 round trip over loopback with hyper, the cheapest
//! network call holdfast could ever wrap.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::measure::time_async;

/// Starts a server on 127.0.0.1 answering every request with a short body.
pub async fn serve() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Mean time of one request/response over a kept-alive connection to `addr`.
pub async fn round_trip(addr: SocketAddr, requests: u32) -> anyhow::Result<Duration> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    for _ in 0..requests / 10 {
        one(&mut sender, addr).await?; // warm-up
    }
    let (result, elapsed) = time_async(async {
        for _ in 0..requests {
            one(&mut sender, addr).await?;
        }
        anyhow::Ok(())
    })
    .await;
    result?;
    Ok(elapsed / requests.max(1))
}

async fn one(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let request = Request::get(format!("http://{addr}/")).body(Empty::new())?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    response.into_body().collect().await?;
    Ok(())
}
