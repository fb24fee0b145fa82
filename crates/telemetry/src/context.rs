//! W3C trace context in and out: the `traceparent`/`tracestate` a client sent, and the
//! ones holdfast sends on for each attempt.
//!
//! With export off there are no spans of holdfast's to be parents, so the client's
//! headers are passed on as they came: a provider that traces still joins the
//! client's trace. With export on, a request's span is the client's span's child and
//! each attempt's span is the request's child; what a provider hears names the attempt.

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// The W3C header naming the caller's span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendors' state along a trace.
pub const TRACESTATE: &str = "tracestate";

/// A request's place in a trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The client's span, when it sent a valid `traceparent`.
    pub(crate) parent: Option<SpanContext>,
    /// holdfast's span for the request, when traces are exported.
    pub(crate) span: Option<SpanContext>,
}

impl Trace {
    /// The client's trace context from `headers`, with no span of holdfast's.
    pub fn from_headers(headers: &HeaderMap) -> Trace {
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        let parent = Some(cx.span().span_context().clone()).filter(SpanContext::is_valid);
        Trace { parent, span: None }
    }

    /// With a span of holdfast's under the client's (or starting a trace), sampled
    /// when `sampled` says so.
    pub(crate) fn with_span(
        mut self,
        sampled: impl FnOnce(Option<&SpanContext>, TraceId) -> bool,
    ) -> Trace {
        let ids = RandomIdGenerator::default();
        let trace_id = self
            .parent
            .as_ref()
            .map_or_else(|| ids.new_trace_id(), SpanContext::trace_id);
        let flags = if sampled(self.parent.as_ref(), trace_id) {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let state = self
            .parent
            .as_ref()
            .map(|p| p.trace_state().clone())
            .unwrap_or_default();
        self.span = Some(SpanContext::new(
            trace_id,
            ids.new_span_id(),
            flags,
            false,
            state,
        ));
        self
    }

    /// The span id of attempt `number` under this request's span, when there is a
    /// span to be its parent: derived from the two, so that the attempt's id needs
    /// to be kept nowhere between its send and its span.
    pub fn child(&self, number: u32) -> Option<SpanId> {
        let span = self.span.as_ref()?;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in span
            .span_id()
            .to_bytes()
            .into_iter()
            .chain(number.to_be_bytes())
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Some(SpanId::from(hash.max(1)))
    }

    /// The headers to send for attempt `number`: its own span under the request's,
    /// or, without one, the client's as it came; empty when there is neither.
    pub fn headers(&self, number: u32) -> Vec<(String, String)> {
        let context = match (&self.span, self.child(number), &self.parent) {
            (Some(span), Some(child), _) => SpanContext::new(
                span.trace_id(),
                child,
                span.trace_flags(),
                false,
                span.trace_state().clone(),
            ),
            (_, _, Some(parent)) => parent.clone(),
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        let cx = Context::new().with_remote_span_context(context);
        TraceContextPropagator::new().inject_context(&cx, &mut Out(&mut out));
        out
    }

    /// The request span's trace and span ids, as hex, for log lines.
    pub fn ids(&self) -> Option<(String, String)> {
        let span = self.span.as_ref().or(self.parent.as_ref())?;
        Some((span.trace_id().to_string(), span.span_id().to_string()))
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Out<'a>(&'a mut Vec<(String, String)>);

impl Injector for Out<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.push((key.to_owned(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        map
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn without_export_the_clients_headers_pass_on_as_they_came() {
        let trace = Trace::from_headers(&headers(&[(TRACEPARENT, PARENT), (TRACESTATE, "k=v")]));
        assert_eq!(trace.child(1), None);
        assert_eq!(
            trace.headers(1),
            vec![
                (TRACEPARENT.to_owned(), PARENT.to_owned()),
                (TRACESTATE.to_owned(), "k=v".to_owned())
            ]
        );
    }

    #[test]
    fn an_attempt_is_named_under_the_clients_trace() {
        let trace =
            Trace::from_headers(&headers(&[(TRACEPARENT, PARENT)])).with_span(|p, _| p.is_some());
        let child = trace.child(2);
        assert_ne!(child, trace.child(1));
        let sent = trace.headers(2);
        let expected = format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            child.map(|c| c.to_string()).unwrap_or_default()
        );
        assert_eq!(sent, vec![(TRACEPARENT.to_owned(), expected)]);
    }

    #[test]
    fn a_bad_traceparent_is_ignored_and_nothing_is_sent() {
        let trace = Trace::from_headers(&headers(&[(TRACEPARENT, "00-zz-00-01")]));
        assert!(trace.headers(1).is_empty());
    }
}
