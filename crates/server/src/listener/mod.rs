//! The listener: accepting connections and serving HTTP/1 on them, guarded against
//! slow and flooding clients.
//!
//! What guards it (all in `[server]`): a request head must arrive within
//! `header_read_timeout`, a kept-alive connection may idle `idle_timeout` between
//! requests (`head.rs`), a request body must arrive within `body_read_timeout`
//! (`body.rs`), a head may not exceed `max_header_bytes`, and at most
//! `max_connections` connections are open at once. Each request also takes a slot in
//! its client key's `max_concurrent_requests` before it is routed (`inflight.rs`,
//! through `connection.rs`). Nothing times a response: a stream lasts as long as its
//! answer.
//!
//! The decision that shapes it: at the connection cap, stop accepting instead of
//! accepting and closing. New connections then wait in the kernel's accept queue and
//! are served, in order, as soon as a connection closes; a burst costs its clients a
//! wait rather than errors they must retry, and holdfast spends nothing on connections
//! it cannot serve (accepting only to close would let a flood keep it busy doing just
//! that). The timeouts bound how long a slow client holds a slot, so the queue moves.
//! When the kernel's queue is full, its own overflow handling (dropped SYNs, which
//! clients retry) applies.
//!
//! Graceful shutdown: once `shutdown` completes, the socket is closed to new
//! connections, idle ones are closed, and the server returns when every request in
//! flight (streams included) has finished.

mod body;
mod connection;
mod head;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::gateway::Gateway;

pub(crate) use body::timed_out;

/// How long to wait before accepting again after an error such as running out of
/// file descriptors, which accepting again at once would only repeat.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes, then lets every connection
/// finish what it is doing. `gateway` gives each new connection the settings and
/// clock of the configuration current when it is accepted.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    gateway: &Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let cap = gateway.inner.listener.max_connections;
    let slots = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_the_clients(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed; trying again in 1 s");
                let clock = &gateway.inner.clock;
                tokio::select! {
                    () = clock.sleep_until(clock.now() + ACCEPT_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let inner = gateway.live.current();
        let connection =
            connection::open(stream, &app, &gateway.live, &inner.listener, &inner.clock);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A client's doing (a timeout, a bad head, a reset): not holdfast's.
                tracing::debug!(error = %e, "connection closed");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Whether an accept error concerns one client's connection only (it went away
/// before it was accepted), so that accepting the next one can go on at once.
fn is_the_clients(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
