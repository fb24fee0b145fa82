//! The fault proxy's cost with no faults: calls through `holdfast fault-proxy` to the
//! mock provider versus calls straight to the mock, measured side by side in one run.
//!
//! Why: the proxy sits in front of a real deployment's provider during an experiment,
//! and while no fault is scheduled it must be invisible; the target is at most 0.2 ms
//! added at the median. Alternating rounds at concurrency 1 with the same client leave
//! only the proxy's own cost in the difference (see `gateway.rs` for why a same-run
//! ratio). Plain requests, streams paced as a provider paces its tokens, and streams
//! with no pause at all (a burst, reported but not judged: it measures the relay's CPU
//! per event, not a delay a client sees). Loopback only, about 30 s.
//!
//! Run: `cargo build --release -p holdfast && cargo run --release -p holdfast-bench --bin fault_proxy`

use std::time::Duration;

use bytes::Bytes;
use holdfast_bench::load::{self, Endpoint};
use holdfast_bench::measure::{human, percentile};
use holdfast_bench::process::{Server, holdfast_binary};

/// Requests per round and rounds per path, alternating direct and through.
const ROUND: usize = 500;
const ROUNDS: usize = 4;

/// The target: the proxy adds at most this at the median.
const MAX_ADDED_P50: Duration = Duration::from_micros(200);

/// One row of the table: what is asked, of which mock pair, and whether the target
/// applies.
struct Case {
    name: &'static str,
    stream: bool,
    /// Index into the (mock, proxy) pairs.
    pair: usize,
    /// Requests per round.
    round: usize,
    /// Whether the row is judged against [`MAX_ADDED_P50`].
    judged: bool,
}

const CASES: [Case; 3] = [
    Case {
        name: "plain",
        stream: false,
        pair: 0,
        round: ROUND,
        judged: true,
    },
    // A provider spaces its tokens: the proxy's cost is then what it adds to the last.
    Case {
        name: "streamed, 1 ms between tokens",
        stream: true,
        pair: 1,
        round: ROUND / 5,
        judged: true,
    },
    // No pause at all: 37 events in a burst, so the row measures the relay's CPU per
    // event on a busy machine rather than a delay a client would see.
    Case {
        name: "streamed, no pause (burst)",
        stream: true,
        pair: 0,
        round: ROUND,
        judged: false,
    },
];

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut pairs = Vec::new();
    for mock_flags in [&[][..], &["--token-interval", "1ms"][..]] {
        let mut mock_args = args(&["mock-provider", "--listen", "127.0.0.1:0"]);
        mock_args.extend(args(mock_flags));
        let mock = Server::start(&binary, &mock_args, &[])?;
        let upstream = format!("http://{}", mock.addr());
        let proxy = Server::start(
            &binary,
            &args(&[
                "fault-proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &upstream,
            ]),
            &[],
        )?;
        pairs.push((mock, proxy));
    }
    println!("fault proxy vs direct to the mock (loopback, no faults, concurrency 1, same client)");
    println!(
        "{:<30} {:>11} {:>11} {:>11} {:>11} {:>8}  verdict",
        "request", "direct p50", "proxy p50", "added p50", "added p99", "ratio"
    );
    let mut met = true;
    for case in &CASES {
        let stream = case.stream;
        let (mock, proxy) = &pairs[case.pair];
        let endpoint = |addr: std::net::SocketAddr| -> anyhow::Result<Endpoint> {
            let body = format!(
                r#"{{"model":"mock","stream":{stream},"messages":[{{"role":"user","content":"hello"}}]}}"#
            );
            Ok(Endpoint {
                uri: format!("http://{addr}/v1/chat/completions").parse()?,
                body: Bytes::from(body),
                headers: vec![("authorization".to_owned(), "Bearer sk-bench".to_owned())],
            })
        };
        let (direct, through) = (endpoint(mock.addr())?, endpoint(proxy.addr())?);
        let (d, t) = runtime.block_on(async {
            let client = load::client();
            load::latencies(&client, &direct, case.round / 2).await?;
            load::latencies(&client, &through, case.round / 2).await?;
            let (mut d, mut t) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                d.extend(load::latencies(&client, &direct, case.round).await?);
                t.extend(load::latencies(&client, &through, case.round).await?);
            }
            d.sort_unstable();
            t.sort_unstable();
            anyhow::Ok((d, t))
        })?;
        let (d50, t50) = (percentile(&d, 50.0), percentile(&t, 50.0));
        let added50 = t50.saturating_sub(d50);
        let added99 = percentile(&t, 99.0).saturating_sub(percentile(&d, 99.0));
        let ok = added50 <= MAX_ADDED_P50;
        let verdict = match (case.judged, ok) {
            (true, true) => "met",
            (true, false) => "MISSED",
            (false, _) => "not judged",
        };
        met &= ok || !case.judged;
        println!(
            "{:<30} {:>11} {:>11} {:>11} {:>11} {:>7.2}×  {verdict} (target added p50 ≤ {})",
            case.name,
            human(d50),
            human(t50),
            human(added50),
            human(added99),
            t50.as_secs_f64() / d50.as_secs_f64().max(1e-9),
            human(MAX_ADDED_P50),
        );
    }
    if !met {
        anyhow::bail!("the fault proxy adds more than its target");
    }
    Ok(())
}
