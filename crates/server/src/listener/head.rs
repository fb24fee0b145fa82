//! How long a connection may take to send a request head, and how long it may sit idle
//! before one.
//!
//! The decision: reuse hyper's head timer rather than watch the socket ourselves, since
//! only hyper knows when it is waiting for a head (and not, say, for a body, or for the
//! end of a stream it is writing, when its reads only watch for a hang-up). But hyper's
//! HTTP/1 server has a single `header_read_timeout`, started whenever it begins waiting
//! for a head: at the accept, and again once a response is written on a kept-alive
//! connection. Alone it would close an idle kept-alive connection after the short head
//! timeout. So each connection gets its own [`HeadTimer`] (hyper's only use of a timer
//! in an HTTP/1 server is that head wait, so every sleep it asks for is one): the first
//! wait, from the accept, lasts `header_read_timeout`; a later one lasts `idle_timeout`
//! until a byte of the next request arrives ([`BytesRead`] changes), and from that byte
//! `header_read_timeout` (as Go's `IdleTimeout` and `ReadHeaderTimeout`). hyper's own
//! deadline is ignored: time is read through the gateway's [`Clock`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use holdfast_policy::Clock;

/// Bytes read so far on one connection, counted by its socket and read by its timer.
pub(super) type BytesRead = Arc<AtomicU64>;

/// One connection's head timer (see the module docs).
pub(super) struct HeadTimer {
    clock: Arc<dyn Clock>,
    read: BytesRead,
    header: Duration,
    idle: Duration,
    /// Whether the connection's first head wait has begun.
    begun: AtomicBool,
}

impl HeadTimer {
    pub(super) fn new(
        clock: Arc<dyn Clock>,
        read: BytesRead,
        header: Duration,
        idle: Duration,
    ) -> HeadTimer {
        HeadTimer {
            clock,
            read,
            header,
            idle,
            begun: AtomicBool::new(false),
        }
    }

    /// A head wait beginning now.
    fn wait(&self) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = self.clock.now();
        let (deadline, idle_from) = if self.begun.swap(true, Ordering::Relaxed) {
            (now + self.idle, Some(self.read.load(Ordering::Relaxed)))
        } else {
            (now + self.header, None)
        };
        Box::pin(HeadWait {
            sleep: Mutex::new(self.clock.sleep_until(deadline)),
            clock: Arc::clone(&self.clock),
            read: Arc::clone(&self.read),
            header: self.header,
            idle_from,
        })
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, _: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.wait()
    }

    fn sleep_until(&self, _: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.wait()
    }
}

/// One head wait: idle until a byte arrives (unless it is the first), then a head.
struct HeadWait {
    /// In a mutex only because hyper wants its sleeps `Sync`; polling takes it with
    /// `get_mut`, without locking.
    sleep: Mutex<holdfast_policy::clock::Sleep>,
    clock: Arc<dyn Clock>,
    read: BytesRead,
    header: Duration,
    /// While idle: the connection's byte count when the wait began.
    idle_from: Option<u64>,
}

impl Future for HeadWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let sleep = this.sleep.get_mut().unwrap_or_else(|e| e.into_inner());
        // hyper polls this right after each read that left the head incomplete, so a
        // first byte is seen here as soon as it arrives.
        if let Some(at_start) = this.idle_from
            && this.read.load(Ordering::Relaxed) != at_start
        {
            this.idle_from = None;
            *sleep = this.clock.sleep_until(this.clock.now() + this.header);
        }
        sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadWait {}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_policy::SystemClock;
    use std::task::Waker;
    use tokio::time::advance;

    fn poll(wait: &mut Pin<Box<dyn hyper::rt::Sleep>>) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        wait.as_mut().poll(&mut cx).is_ready()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn the_first_wait_is_a_head_later_ones_idle_until_a_byte_then_a_head() {
        let read = BytesRead::default();
        let timer = HeadTimer::new(
            Arc::new(SystemClock::new()),
            Arc::clone(&read),
            10 * SECOND,
            75 * SECOND,
        );
        let mut first = hyper::rt::Timer::sleep(&timer, Duration::ZERO);
        advance(9 * SECOND).await;
        assert!(!poll(&mut first));
        advance(SECOND).await;
        assert!(poll(&mut first), "the first head has header_read_timeout");

        let mut idle = hyper::rt::Timer::sleep(&timer, Duration::ZERO);
        advance(74 * SECOND).await;
        assert!(!poll(&mut idle), "idle, not yet idle_timeout");
        read.fetch_add(1, Ordering::Relaxed);
        assert!(!poll(&mut idle), "a byte arrived: the head timeout starts");
        advance(9 * SECOND).await;
        assert!(!poll(&mut idle));
        advance(SECOND).await;
        assert!(
            poll(&mut idle),
            "the head took header_read_timeout from its first byte"
        );

        let mut silent = hyper::rt::Timer::sleep(&timer, Duration::ZERO);
        advance(74 * SECOND).await;
        assert!(!poll(&mut silent));
        advance(SECOND).await;
        assert!(
            poll(&mut silent),
            "an idle connection closes after idle_timeout"
        );
    }
}
