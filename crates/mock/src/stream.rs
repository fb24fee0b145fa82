//! Streaming an answer as server-sent events, with the stream faults applied.
//!
//! A spawned task writes the frames into a small channel that backs the response body,
//! sleeping on the provider's clock between chunks. Cutting a stream is an error item
//! in the body: hyper then closes the connection without the terminating chunk, which
//! is exactly what a client sees when a provider's connection drops mid-answer. When
//! the client goes away the channel closes and the task ends.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use holdfast_policy::Rng;
use tokio::sync::mpsc;

use crate::format::Frames;
use crate::plan::Quirk;
use crate::provider::MockProvider;
use crate::timing::Distribution;

/// Everything a stream needs besides the frames.
pub(crate) struct Script {
    pub(crate) quirk: Quirk,
    pub(crate) malformed_event: String,
    pub(crate) inband_error: String,
    pub(crate) token_interval: Distribution,
    pub(crate) rng: Rng,
}

type Item = Result<Bytes, io::Error>;

/// The response body for a stream of `frames`.
pub(crate) fn body(provider: MockProvider, frames: Frames, script: Script) -> Body {
    let (tx, rx) = mpsc::channel::<Item>(8);
    tokio::spawn(drive(provider, frames, script, tx));
    let items = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(items)
}

/// Whether the client is gone.
async fn send(tx: &mpsc::Sender<Item>, frame: String) -> Result<(), ()> {
    tx.send(Ok(Bytes::from(frame))).await.map_err(|_| ())
}

async fn drive(provider: MockProvider, frames: Frames, mut script: Script, tx: mpsc::Sender<Item>) {
    // Ignored: an error only means that the client went away.
    let _ = run(&provider, frames, &mut script, &tx).await;
}

async fn run(
    provider: &MockProvider,
    frames: Frames,
    script: &mut Script,
    tx: &mpsc::Sender<Item>,
) -> Result<(), ()> {
    for frame in frames.preamble {
        send(tx, frame).await?;
    }
    let count = frames.deltas.len();
    let mut deltas = frames.deltas.into_iter();
    for index in 0..=count {
        match script.quirk {
            Quirk::CutStream { after } if strikes(after, index, count) => {
                return cut(provider, tx).await;
            }
            Quirk::InbandError { after } if strikes(after, index, count) => {
                return send(tx, script.inband_error.clone()).await;
            }
            Quirk::StallStream { after, duration } if strikes(after, index, count) => {
                provider.pause(duration).await;
            }
            Quirk::MalformedEvent if index == count / 2 => {
                send(tx, script.malformed_event.clone()).await?;
            }
            Quirk::CutStream { .. }
            | Quirk::InbandError { .. }
            | Quirk::StallStream { .. }
            | Quirk::MalformedEvent
            | Quirk::Malformed
            | Quirk::None => {}
        }
        if let Some(delta) = deltas.next() {
            provider
                .pause(script.token_interval.sample(&mut script.rng))
                .await;
            send(tx, delta).await?;
        }
    }
    for frame in frames.finish {
        send(tx, frame).await?;
    }
    Ok(())
}

/// Drops the connection once what was sent before has reached the socket: hyper
/// flushes when the body has nothing ready, so wait for the channel to drain (and a
/// moment more) before the error item, or the chunks before the cut would be lost.
async fn cut(provider: &MockProvider, tx: &mpsc::Sender<Item>) -> Result<(), ()> {
    while tx.capacity() < tx.max_capacity() {
        if tx.is_closed() {
            return Err(());
        }
        tokio::task::yield_now().await;
    }
    provider.pause(FLUSH_GRACE).await;
    let error = io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "holdfast mock: cut_stream",
    );
    tx.send(Err(error)).await.map_err(|_| ())
}

/// How long a cut waits after the channel drained, for hyper to write the last chunk.
const FLUSH_GRACE: Duration = Duration::from_millis(5);

/// A fault set to strike after `after` chunks strikes at chunk `index` of `count`;
/// past the end, it strikes after the last chunk (never after the finish).
fn strikes(after: u32, index: usize, count: usize) -> bool {
    usize::try_from(after).unwrap_or(usize::MAX).min(count) == index
}
