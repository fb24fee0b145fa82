//! A streamed exchange: run the pipeline to the commit point, then relay.
//!
//! The decision: the pipeline's job ends at the commit point (a target's headers and
//! first event arrived); failures before it are ordinary failed attempts that retry
//! and fall back, and a call that gives up before it gets an ordinary error response
//! (or a degraded answer). After it, the [`Relay`] owns the stream, and what only its
//! end can tell (usage, cost, whether it broke off) settles the ledger entry written
//! at the commit, through a finisher that runs however the stream ends. A stream that
//! breaks may be finished by `recovery.rs` when the route allows it.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use holdfast_policy::Instant;

use crate::call::{self, Job, Ran};
use crate::events::millis;
use crate::exchange::{Dialect, encoder, entry, failed};
use crate::gateway::Gateway;
use crate::idempotency::{Leader, Stored};
use crate::intake::Door;
use crate::meta::Reply;
use crate::recovery::Recovery;
use crate::respond;
use crate::sse::{Finisher, Relay, Source, StreamEnd};

/// Serves a streamed exchange.
pub(crate) async fn serve(
    door: &Door,
    job: &Job<'_>,
    dialect: Dialect,
    leader: Option<Leader>,
) -> Response {
    let Ran {
        result,
        trace,
        reply,
        served_number,
    } = call::stream(job).await;
    let served = match result {
        Ok(served) => served,
        Err(err) => return failed(door, job, dialect, err, trace, reply),
    };
    let gw = &door.gateway.inner;
    gw.ledger.insert(entry(
        door,
        job.route,
        true,
        200,
        "streaming",
        &reply,
        trace,
    ));
    let record = leader.as_ref().map(Leader::max_bytes);
    let settle = Settle {
        gateway: door.gateway.clone(),
        id: Arc::clone(&door.id),
        started: door.started,
        number: served_number.unwrap_or(0),
        leader,
        reply: reply.clone(),
        sample: crate::sampling::Pending::of(door, &job.route.name, job.request),
    };
    let encoder = encoder(dialect, job.request, &job.route.name, job.tokens);
    let key = job.meta.idempotency_key.as_deref().unwrap_or(job.id);
    let recovery = Recovery::for_job(&door.gateway, job, served.target, key);
    let relay = Relay::new(
        Source::Live(Box::new(served.response)),
        encoder,
        record,
        settle.into_finisher(),
    )
    .with_recovery(recovery)
    .counting_breaks(&door.gateway, served.target);
    respond::sse(relay.into_body(), &reply)
}

/// What settles a stream's ledger entry and idempotency claim when it ends.
struct Settle {
    gateway: Gateway,
    id: Arc<str>,
    started: Instant,
    number: u32,
    leader: Option<Leader>,
    reply: Reply,
    /// The exchange, when its route samples it: offered once the stream is complete.
    sample: Option<crate::sampling::Pending>,
}

impl Settle {
    fn into_finisher(self) -> Finisher {
        Box::new(move |end, recorded| self.finish(end, recorded))
    }

    fn finish(self, end: StreamEnd, recorded: Option<Vec<u8>>) {
        let gw = &self.gateway.inner;
        let now = gw.clock.now();
        let (result, usage, broke) = match &end {
            StreamEnd::Complete { usage, .. } => ("ok", *usage, None),
            StreamEnd::Failed {
                outcome,
                message,
                usage,
            } => ("stream_error", *usage, Some((*outcome, message.clone()))),
            StreamEnd::ClientGone { usage } => ("client_closed", *usage, None),
        };
        let mut cost_usd = 0.0;
        gw.ledger.update(&self.id, |entry| {
            entry.result = result;
            entry.latency_ms = millis(now.saturating_duration_since(self.started));
            if let Some(usage) = usage {
                entry.trace.settle(gw, self.number, usage);
            }
            cost_usd = entry.trace.cost_usd();
            if let Some((outcome, message)) = broke {
                entry.error_code = Some("stream_interrupted");
                entry.stream_error = Some(format!("{}: {message}", outcome.class()));
            }
        });
        let StreamEnd::Complete { text, .. } = end else {
            return;
        };
        if let (Some(body), Some(leader)) = (recorded, self.leader) {
            let stored = Stored {
                status: StatusCode::OK,
                content_type: "text/event-stream",
                body: Bytes::from(body),
                reply: self.reply,
            };
            leader.complete(stored, now);
        }
        if let Some(sample) = self.sample {
            sample.offer(gw, text, cost_usd);
        }
    }
}
