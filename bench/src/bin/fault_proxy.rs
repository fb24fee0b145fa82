//! The fault proxy's cost with no faults: calls through `holdfast fault-proxy` to the
//! mock provider versus calls straight to the mock, measured side by side in one run.
//!
//! Why: the proxy sits in front of a real deployment's provider during an experiment,
//! and while no fault is scheduled it must be invisible; the target is at most 0.2 ms
//! added at the median. Alternating rounds at concurrency 1 with the same client leave
//! only the proxy's own cost in the difference (see `gateway.rs` for why a same-run
//! ratio). Plain and streamed requests both. Loopback only, about 10 s.
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

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mock = Server::start(
        &binary,
        &args(&["mock-provider", "--listen", "127.0.0.1:0"]),
        &[],
    )?;
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
    println!("fault proxy vs direct to the mock (loopback, no faults, concurrency 1, same client)");
    println!(
        "{:<10} {:>11} {:>11} {:>11} {:>11} {:>8}  verdict",
        "request", "direct p50", "proxy p50", "added p50", "added p99", "ratio"
    );
    let mut met = true;
    for stream in [false, true] {
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
            load::latencies(&client, &direct, 200).await?;
            load::latencies(&client, &through, 200).await?;
            let (mut d, mut t) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                d.extend(load::latencies(&client, &direct, ROUND).await?);
                t.extend(load::latencies(&client, &through, ROUND).await?);
            }
            d.sort_unstable();
            t.sort_unstable();
            anyhow::Ok((d, t))
        })?;
        let (d50, t50) = (percentile(&d, 50.0), percentile(&t, 50.0));
        let added50 = t50.saturating_sub(d50);
        let added99 = percentile(&t, 99.0).saturating_sub(percentile(&d, 99.0));
        let ok = added50 <= MAX_ADDED_P50;
        met &= ok;
        println!(
            "{:<10} {:>11} {:>11} {:>11} {:>11} {:>7.2}×  {} (target added p50 ≤ {})",
            if stream { "streamed" } else { "plain" },
            human(d50),
            human(t50),
            human(added50),
            human(added99),
            t50.as_secs_f64() / d50.as_secs_f64().max(1e-9),
            if ok { "met" } else { "MISSED" },
            human(MAX_ADDED_P50),
        );
    }
    if !met {
        anyhow::bail!("the fault proxy adds more than its target");
    }
    Ok(())
}
