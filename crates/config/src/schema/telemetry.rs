//! `[telemetry]`: where traces go.
//!
//! Off unless `otlp_endpoint` is set: a gateway exports nothing it was not asked to.
//! The exporter never holds a request up, so the one knob that trades completeness
//! for memory is `queue_size`: spans beyond it are dropped and counted on `/metrics`.

use serde::Deserialize;

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// The OpenTelemetry collector's OTLP address, `http://HOST:PORT` (plain text: a
    /// collector beside holdfast, or a sidecar). For `grpc` its gRPC port (4317 by
    /// convention); for `http` its HTTP port (4318), to which `/v1/traces` is added
    /// when the URL has no path. Unset (the default): no traces are exported, and
    /// a client's `traceparent` is passed on to providers, tools and workers as it came.
    pub otlp_endpoint: Option<String>,
    /// `"grpc"` (OTLP/gRPC) or `"http"` (OTLP/HTTP with protobuf bodies). Default
    /// `"grpc"`.
    pub protocol: OtlpProtocol,
    /// The share of traces started here that are recorded, 0.0..=1.0. A trace whose
    /// client sent a `traceparent` follows the client's sampled flag instead. Default
    /// 1.0.
    pub sampling_ratio: f64,
    /// The `service.name` resource attribute of every span. Not empty. Default
    /// `"holdfast"`.
    pub service_name: String,
    /// The most finished spans waiting for export, 1..=1000000. A span that finds the
    /// queue full (the collector is down or slow) is dropped and counted in
    /// `holdfast_telemetry_spans_dropped_total`; requests never wait for the exporter.
    /// Default 4096.
    pub queue_size: usize,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            otlp_endpoint: None,
            protocol: OtlpProtocol::Grpc,
            sampling_ratio: 1.0,
            service_name: "holdfast".to_owned(),
            queue_size: 4096,
        }
    }
}

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP over gRPC.
    #[default]
    Grpc,
    /// OTLP over HTTP, protobuf bodies.
    Http,
}
