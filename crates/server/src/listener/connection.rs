//! One client connection: its socket, its HTTP/1 settings and the service that hands
//! each request to the router.
//!
//! The decision: everything a connection needs is decided when it is accepted, from
//! the configuration current then (a reload changes the timeouts of the connections
//! accepted after it), and lives in the connection's own task: its byte counter, its
//! head timer (`head.rs`) and its service. The service takes the request's slot in its
//! key's cap on requests in flight (`inflight.rs`, or answers 429), puts the request
//! body under its read deadline (`body.rs`), and calls the router resolved once for the
//! whole server; the response body holds the slot until it ends.
//!
//! Closing is a lingering close, as web servers have long done: a connection that ends
//! while its client is still sending (a 413 for a body over the limit, a 431 for a head
//! over `max_header_bytes`, a 408) first sends its FIN, then reads and discards what
//! still arrives, for at most [`LINGER`], before the socket closes. Closing at once with
//! unread bytes makes the kernel answer with a reset, and a reset can destroy the answer
//! before the client reads it: the client sees a broken connection instead of the
//! error that says what to fix. The connection keeps its slot under the connection cap
//! while it lingers.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use holdfast_config::Listener;
use holdfast_policy::Clock;
use holdfast_policy::clock::Sleep;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::body::ReadDeadline;
use super::head::{BytesRead, HeadTimer};
use crate::inflight::{self, Held, Slot};
use crate::live::Live;

/// How long a closing connection reads and discards what its client still sends.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The HTTP/1 connection of an accepted socket, ready to be driven to its end.
pub(super) type Connection = http1::Connection<TokioIo<Counted>, Service>;

/// Serves `stream` with `app`, under `settings`, reading time from `clock`; `live`
/// gives each request the client keys and their counts.
pub(super) fn open(
    stream: TcpStream,
    app: &Router,
    live: &Arc<Live>,
    settings: &Listener,
    clock: &Arc<dyn Clock>,
) -> Connection {
    // Small SSE chunks must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let read = BytesRead::default();
    let timer = HeadTimer::new(
        Arc::clone(clock),
        Arc::clone(&read),
        settings.header_read_timeout,
        settings.idle_timeout,
    );
    let service = Service {
        app: app.clone(),
        live: Arc::clone(live),
        clock: Arc::clone(clock),
        body_read_timeout: settings.body_read_timeout,
    };
    http1::Builder::new()
        .timer(timer)
        // Turns hyper's head timer on; its length is the timer's (`head.rs`).
        .header_read_timeout(settings.header_read_timeout)
        .max_header_size(settings.max_header_bytes)
        .serve_connection(
            TokioIo::new(Counted {
                stream,
                read,
                clock: Arc::clone(clock),
                linger: None,
            }),
            service,
        )
}

/// A connection's requests: admitted under their key's cap, then handed to the router
/// with their bodies under a deadline.
#[derive(Clone)]
pub(super) struct Service {
    app: Router,
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    body_read_timeout: std::time::Duration,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = hyper::Response<Held>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Answer {
        let slot = {
            let gw = self.live.peek();
            match inflight::admit(&gw, &request) {
                Ok(slot) => slot,
                Err(err) => return Answer::Refused(Some(inflight::refusal(&gw, &request, &err))),
            }
        };
        let request = if request.body().is_end_stream() {
            request.map(Body::new)
        } else {
            let (clock, timeout) = (Arc::clone(&self.clock), self.body_read_timeout);
            request.map(|body| Body::new(ReadDeadline::new(body, clock, timeout)))
        };
        // A clone of the resolved router is one reference count.
        let routed = tower_service::Service::call(&mut self.app.clone(), request);
        Answer::Routed(routed, slot)
    }
}

/// The response to one request: the router's, its body holding the request's slot;
/// or the refusal of a key at its cap.
pub(super) enum Answer {
    Routed(RouteFuture<Infallible>, Option<Slot>),
    Refused(Option<Response>),
}

impl Future for Answer {
    type Output = Result<hyper::Response<Held>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.get_mut() {
            Answer::Routed(routed, slot) => match Pin::new(routed).poll(cx) {
                Poll::Ready(Ok(response)) => response.map(|body| Held::new(body, slot.take())),
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            Answer::Refused(refused) => refused
                .take()
                .unwrap_or_default()
                .map(|body| Held::new(body, None)),
        };
        Poll::Ready(Ok(response))
    }
}

/// A socket that counts the bytes read from it, for the head timer, and lingers when
/// it closes.
pub(super) struct Counted {
    stream: TcpStream,
    read: BytesRead,
    clock: Arc<dyn Clock>,
    /// Set once the write side is shut: the end of the lingering close.
    linger: Option<Sleep>,
}

impl Counted {
    /// Reads and discards until the client closes its side, the socket fails, or the
    /// linger ends; `Pending` while the client may still send.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        match self.linger.as_mut() {
            Some(ends) => ends.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            this.read.fetch_add(read as u64, Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            // The FIN follows everything written: the answer is on its way.
            if let Err(e) = ready!(Pin::new(&mut this.stream).poll_shutdown(cx)) {
                return Poll::Ready(Err(e));
            }
            let ends = this.clock.now() + LINGER;
            this.linger = Some(this.clock.sleep_until(ends));
        }
        this.poll_drain(cx).map(Ok)
    }
}
