//! The body-read deadline: a request body must arrive whole within
//! `server.body_read_timeout` of its head.
//!
//! The decision: a deadline for the whole body, not a limit on the gap between two
//! reads, since a body trickled in one byte a second never leaves a gap long enough to
//! trip the latter. It is enforced on the body a handler reads rather than on the
//! socket, so that a handler that already knows which endpoint was called answers the
//! client in that endpoint's error format (HTTP 408 `request_timeout`, [`timed_out`]),
//! and so that nothing but the request body is ever timed: a response, however long it
//! streams, is not.

use std::error::Error;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use holdfast_policy::{Clock, Instant};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::error::ApiError;

/// A request body that fails with [`BodyReadTimeout`] once its deadline passes.
pub(super) struct ReadDeadline {
    body: Incoming,
    clock: Arc<dyn Clock>,
    deadline: Instant,
    timeout: Duration,
    /// Set the first time the body has to wait: a body that arrived with its head (the
    /// common case) never needs a timer.
    sleep: Option<holdfast_policy::clock::Sleep>,
}

impl ReadDeadline {
    /// `body`, which must arrive whole within `timeout` from now.
    pub(super) fn new(body: Incoming, clock: Arc<dyn Clock>, timeout: Duration) -> ReadDeadline {
        ReadDeadline {
            body,
            deadline: clock.now() + timeout,
            clock,
            timeout,
            sleep: None,
        }
    }
}

/// The error a [`ReadDeadline`] body fails with.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {}s of its head", .0.as_secs_f64())]
pub(crate) struct BodyReadTimeout(pub(crate) Duration);

impl Body for ReadDeadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let (clock, deadline) = (&this.clock, this.deadline);
        let sleep = this
            .sleep
            .get_or_insert_with(|| clock.sleep_until(deadline));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadTimeout(this.timeout).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client's error when reading a body failed because it did not arrive in time;
/// `None` for any other failure. Looks through the wrappers (axum's, a length limit's)
/// the error came through.
pub(crate) fn timed_out(err: &(dyn Error + 'static)) -> Option<ApiError> {
    let mut at = Some(err);
    while let Some(err) = at {
        if let Some(BodyReadTimeout(timeout)) = err.downcast_ref::<BodyReadTimeout>() {
            return Some(ApiError::BodyReadTimeout { timeout: *timeout });
        }
        at = err.source();
    }
    None
}
