//! Starting the exporter from `[telemetry]`, and the handle the server and the engine
//! record spans through.
//!
//! Sampling is decided once per trace, when its first span's ids are drawn: a
//! client's sampled flag is followed, otherwise the trace id is compared with
//! `sampling_ratio` (the SDK's `ParentBased(TraceIdRatioBased)`), so every span of a
//! trace, the provider's included, agrees.

use std::sync::Arc;

use holdfast_config::OtlpProtocol;
use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample, SpanData, SpanExporter};

use crate::context::Trace;
use crate::queue::{Dropped, EXPORT_TIMEOUT, Queue};

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp_endpoint {endpoint}: {message}")]
pub struct TelemetryError {
    endpoint: String,
    message: String,
}

/// Where finished spans go.
#[derive(Debug)]
pub struct Telemetry {
    queue: Queue,
    sampler: Sampler,
    pub(crate) scope: InstrumentationScope,
}

impl Telemetry {
    /// Starts exporting as `settings` say, on the current tokio runtime. Connecting
    /// is lazy: a collector that is down is not an error here, its spans are counted
    /// as dropped.
    pub fn start(settings: &holdfast_config::Telemetry) -> Result<Arc<Telemetry>, TelemetryError> {
        let built = match settings.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&settings.endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(&settings.endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        };
        let mut exporter = built.map_err(|e| TelemetryError {
            endpoint: settings.endpoint.clone(),
            message: e.to_string(),
        })?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(settings.service_name.clone())
                .build(),
        );
        Ok(Arc::new(Telemetry::over(
            exporter,
            settings.queue_size,
            settings.sampling_ratio,
        )))
    }

    /// A handle exporting into `exporter` through a queue of `queue_size` spans.
    pub(crate) fn over<E: SpanExporter + 'static>(
        exporter: E,
        queue_size: usize,
        ratio: f64,
    ) -> Telemetry {
        Telemetry {
            queue: Queue::start(exporter, queue_size),
            sampler: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
            scope: InstrumentationScope::builder("holdfast")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }
    }

    /// The trace of a request that arrived with `headers`: a span of holdfast's under
    /// the client's, sampled as the client or the ratio says.
    pub fn begin(&self, headers: &http::HeaderMap) -> Trace {
        Trace::from_headers(headers).with_span(|parent, trace_id| self.sampled(parent, trace_id))
    }

    /// Spans lost so far.
    pub fn dropped(&self) -> &Dropped {
        &self.queue.dropped
    }

    /// Whether a trace under `parent` (or a new one) with `trace_id` is recorded.
    pub(crate) fn sampled(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        let cx = parent.map(|p| Context::new().with_remote_span_context(p.clone()));
        let result =
            self.sampler
                .should_sample(cx.as_ref(), trace_id, "", &SpanKind::Server, &[], &[]);
        matches!(result.decision, SamplingDecision::RecordAndSample)
    }

    /// Queues a finished span.
    pub(crate) fn push(&self, span: SpanData) {
        self.queue.push(span);
    }
}
