//! `holdfast mock-provider`: a fault-injecting LLM provider for users' own tests.
//!
//! Faults come from `--faults FILE` (TOML or JSON), then the flags on top, and can be
//! replaced at run time with `POST /admin/faults`. The bound address is printed on
//! stdout (`listening on 127.0.0.1:PORT`) so that a test can start it on port 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use holdfast_mock::{
    Distribution, Faults, Flapping, Format, MockProvider, Outage, Span, Stall, StreamFault,
    StreamStall,
};
use holdfast_policy::SystemClock;

use super::usage;

/// Arguments of `holdfast mock-provider`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Wire format to impersonate: openai or anthropic.
    #[arg(long, default_value = "openai")]
    format: String,
    /// Seed for every random fault.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    faults: FaultArgs,
}

/// The fault set as flags: shared by `holdfast mock-provider` and `holdfast fault-proxy`.
#[derive(Debug, clap::Args)]
pub(crate) struct FaultArgs {
    /// Fault file (TOML, or JSON if it ends in .json); flags apply on top.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Share of requests answered 429 (with Retry-After).
    #[arg(long, value_name = "P")]
    rate_429: Option<f64>,
    /// Share of requests answered 500.
    #[arg(long, value_name = "P")]
    rate_500: Option<f64>,
    /// Share of requests answered 502.
    #[arg(long, value_name = "P")]
    rate_502: Option<f64>,
    /// Share of requests answered 503.
    #[arg(long, value_name = "P")]
    rate_503: Option<f64>,
    /// Share of requests answered 529 (overloaded).
    #[arg(long, value_name = "P")]
    rate_529: Option<f64>,
    /// Retry-After sent with 429s ("5s", "250ms").
    #[arg(long, value_name = "DURATION")]
    retry_after: Option<Span>,
    /// Refuse every request as unauthorized.
    #[arg(long)]
    auth_fail: bool,
    /// Require this environment variable's value as the API key.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Share of requests refused for exhausted quota.
    #[arg(long, value_name = "P")]
    quota: Option<f64>,
    /// Calls served at full speed at once: beyond it latency grows with the calls in
    /// flight, beyond twice it calls get 503 (a provider in a brownout).
    #[arg(long, value_name = "N")]
    capacity: Option<u32>,
    /// Context window in tokens; larger prompts get the provider's real overflow error.
    #[arg(long, value_name = "TOKENS")]
    context_window: Option<u64>,
    /// Share of answers stopped by the content filter.
    #[arg(long, value_name = "P")]
    content_filter: Option<f64>,
    /// Latency before the answer: "80ms" (fixed) or "20ms..200ms" (uniform).
    #[arg(long, value_name = "DURATION[..MAX]")]
    latency: Option<String>,
    /// Time between streamed chunks.
    #[arg(long, value_name = "DURATION")]
    token_interval: Option<Span>,
    /// Share of requests never answered.
    #[arg(long, value_name = "P")]
    silent: Option<f64>,
    /// Share of requests stalled before the first byte: "P" or "P:DURATION".
    #[arg(long, value_name = "P[:DURATION]")]
    stall_first_byte: Option<String>,
    /// Share of streams cut without a final chunk: "P" or "P:AFTER_CHUNKS".
    #[arg(long, value_name = "P[:N]")]
    cut_stream: Option<String>,
    /// Share of streams that stall mid-way: "P", "P:N" or "P:N:DURATION".
    #[arg(long, value_name = "P[:N[:DURATION]]")]
    stall_stream: Option<String>,
    /// Share of non-streamed answers with a malformed JSON body.
    #[arg(long, value_name = "P")]
    malformed: Option<f64>,
    /// Share of streams with one malformed event.
    #[arg(long, value_name = "P")]
    malformed_event: Option<f64>,
    /// Share of streams with an in-band error event after the 200: "P" or "P:N".
    #[arg(long, value_name = "P[:N]")]
    inband_error: Option<String>,
    /// An outage window in seconds since start: "START..END" or "START..END:STATUS".
    #[arg(long, value_name = "START..END[:STATUS]")]
    outage: Vec<String>,
    /// Alternate healthy and failing: "UP/DOWN" or "UP/DOWN:STATUS" ("5s/2s:503").
    #[arg(long, value_name = "UP/DOWN[:STATUS]")]
    flapping: Option<String>,
    /// Answer an assistant prefill with the provider's real 400 instead of continuing it.
    #[arg(long)]
    no_prefill: bool,
    /// The scripted answer text.
    #[arg(long)]
    answer: Option<String>,
}

/// Serves the mock provider until Ctrl-C or SIGTERM.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format = Format::from_str(&args.format).map_err(|e| usage(e.to_string()))?;
    let faults = faults(&args.faults)?;
    let provider = MockProvider::new(format, faults, args.seed, Arc::new(SystemClock::new()))
        .map_err(|e| usage(e.to_string()))?;
    super::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("listening on {}", listener.local_addr()?);
        holdfast_mock::serve(listener, provider, super::shutdown_signal()).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// The fault set the flags describe: the file's, then each flag on top.
pub(crate) fn faults(args: &FaultArgs) -> anyhow::Result<Faults> {
    let mut f = match &args.faults {
        Some(path) => Faults::load(path).map_err(|e| usage(format!("{}: {e}", path.display())))?,
        None => Faults::default(),
    };
    let rates = &mut f.error_rates;
    set(&mut rates.rate_limited, args.rate_429);
    set(&mut rates.internal, args.rate_500);
    set(&mut rates.bad_gateway, args.rate_502);
    set(&mut rates.unavailable, args.rate_503);
    set(&mut rates.overloaded, args.rate_529);
    if let Some(wait) = args.retry_after {
        rates.retry_after = Some(wait);
    }
    f.auth |= args.auth_fail;
    if let Some(var) = &args.api_key_env {
        let key =
            std::env::var(var).map_err(|_| usage(format!("--api-key-env: {var} is not set")))?;
        f.api_key = Some(holdfast_mock::ApiKey(key));
    }
    set(&mut f.quota, args.quota);
    f.context_window = args.context_window.or(f.context_window);
    f.capacity = args.capacity.or(f.capacity);
    set(&mut f.content_filter, args.content_filter);
    if let Some(latency) = &args.latency {
        f.latency = distribution(latency)?;
    }
    if let Some(interval) = args.token_interval {
        f.token_interval = Distribution::Fixed(interval);
    }
    set(&mut f.silent, args.silent);
    set(&mut f.malformed, args.malformed);
    set(&mut f.malformed_event, args.malformed_event);
    stream_faults(args, &mut f)?;
    for outage in &args.outage {
        f.outages.push(parse_outage(outage)?);
    }
    if let Some(flapping) = &args.flapping {
        f.flapping = Some(parse_flapping(flapping)?);
    }
    if args.no_prefill {
        f.supports_prefill = false;
    }
    if let Some(answer) = &args.answer {
        f.answer.clone_from(answer);
    }
    Ok(f)
}

fn stream_faults(args: &FaultArgs, f: &mut Faults) -> anyhow::Result<()> {
    if let Some(spec) = &args.stall_first_byte {
        let parts = fields("--stall-first-byte", spec, 2)?;
        f.stall_before_first_byte = Stall {
            rate: number("--stall-first-byte", parts[0])?,
            duration: optional(
                &parts,
                1,
                "--stall-first-byte",
                f.stall_before_first_byte.duration,
            )?,
        };
    }
    if let Some(spec) = &args.cut_stream {
        f.cut_stream = stream_fault("--cut-stream", spec, &f.cut_stream)?;
    }
    if let Some(spec) = &args.inband_error {
        f.inband_error = stream_fault("--inband-error", spec, &f.inband_error)?;
    }
    if let Some(spec) = &args.stall_stream {
        let parts = fields("--stall-stream", spec, 3)?;
        f.stall_stream = StreamStall {
            rate: number("--stall-stream", parts[0])?,
            after_chunks: optional(&parts, 1, "--stall-stream", f.stall_stream.after_chunks)?,
            duration: optional(&parts, 2, "--stall-stream", f.stall_stream.duration)?,
        };
    }
    Ok(())
}

fn stream_fault(flag: &str, spec: &str, current: &StreamFault) -> anyhow::Result<StreamFault> {
    let parts = fields(flag, spec, 2)?;
    Ok(StreamFault {
        rate: number(flag, parts[0])?,
        after_chunks: optional(&parts, 1, flag, current.after_chunks)?,
    })
}

fn set(field: &mut f64, value: Option<f64>) {
    if let Some(value) = value {
        *field = value;
    }
}

fn fields<'a>(flag: &str, spec: &'a str, max: usize) -> anyhow::Result<Vec<&'a str>> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() > max || parts.iter().any(|p| p.is_empty()) {
        return Err(usage(format!("{flag}: cannot read `{spec}`")));
    }
    Ok(parts)
}

fn number<T: FromStr>(flag: &str, text: &str) -> anyhow::Result<T> {
    text.trim()
        .parse()
        .map_err(|_| usage(format!("{flag}: `{text}` is not a valid value")))
}

fn optional<T: FromStr>(parts: &[&str], index: usize, flag: &str, default: T) -> anyhow::Result<T> {
    parts
        .get(index)
        .map_or(Ok(default), |text| number(flag, text))
}

fn distribution(spec: &str) -> anyhow::Result<Distribution> {
    match spec.split_once("..") {
        Some((min, max)) => Ok(Distribution::Uniform {
            min: number("--latency", min)?,
            max: number("--latency", max)?,
        }),
        None => Ok(Distribution::Fixed(number("--latency", spec)?)),
    }
}

fn parse_outage(spec: &str) -> anyhow::Result<Outage> {
    let (window, status) = spec
        .split_once(':')
        .map_or((spec, None), |(w, s)| (w, Some(s)));
    let (start, end) = window
        .split_once("..")
        .ok_or_else(|| usage(format!("--outage: `{spec}` is not START..END[:STATUS]")))?;
    Ok(Outage {
        start: number("--outage", start)?,
        end: number("--outage", end)?,
        status: status.map_or(Ok(503), |s| number("--outage", s))?,
    })
}

fn parse_flapping(spec: &str) -> anyhow::Result<Flapping> {
    let (periods, status) = spec
        .split_once(':')
        .map_or((spec, None), |(p, s)| (p, Some(s)));
    let (up, down) = periods
        .split_once('/')
        .ok_or_else(|| usage(format!("--flapping: `{spec}` is not UP/DOWN[:STATUS]")))?;
    Ok(Flapping {
        period_up: number("--flapping", up)?,
        period_down: number("--flapping", down)?,
        status: status.map_or(Ok(503), |s| number("--flapping", s))?,
    })
}
